"""The lease API on SQLite: DNC at dial time, windows, retries, callbacks, expiry, ledger."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dialer.callbacks import CallbackStore
from dialer.errors import LeaseLost
from dialer.lists import ColumnMapping
from dialer.policy import CampaignSettings, decide
from dialer.store import DialerStore
from dialer.windows import ALWAYS

from .dialer_helpers import at, new_store

NOON_NY = at("America/New_York", 2026, 3, 4, 12)


def load(store: DialerStore, name: str, csv: str, **kw: object) -> None:
    rep = store.import_contacts(name, io.BytesIO(csv.encode()), now=0.0, **kw)  # type: ignore[arg-type]
    assert rep.bad_rows == 0


def test_dnc_checked_at_dial_time_not_only_import(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    load(store, "c1", "phone\n+1 212 555 0100\n+1 212 555 0101\n+1 212 555 0102\n")
    # Added after the import, before dialling: never leased.
    store.dnc.add("(212) 555-0101", now=NOON_NY)
    cid = store.campaign("c1").id
    store.dnc.add("+1 212 555 0102", now=NOON_NY, campaign_id=cid)
    leases = store.lease("c1", now=NOON_NY, count=10, owner="d1")
    assert [le.e164 for le in leases] == ["+12125550100"]
    by = {c["phone"]: c["disposition"] for c in store.contact_report("c1")}
    assert by["+12125550101"] == "dnc" and by["+12125550102"] == "dnc"


def test_dnc_number_moves_to_contacts_next_number(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    load(store, "c1", "home,mobile\n+1 212 555 0100,+1 212 555 0199\n",
         mapping=ColumnMapping(("home", "mobile")))
    store.dnc.add("+1 212 555 0100", now=0.0)
    (le,) = store.lease("c1", now=NOON_NY, count=5, owner="d1")
    assert (le.e164, le.label) == ("+12125550199", "mobile")


def test_opt_out_takes_effect_on_every_campaign_at_once(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    store.create_campaign("c2", CampaignSettings(region="US"), now=0.0)
    load(store, "c1", "phone\n+1 212 555 0100\n")
    load(store, "c2", "phone\n+1 212 555 0100\n+1 212 555 0111\n")
    (le,) = store.lease("c1", now=NOON_NY, count=1, owner="d1")
    store.record_outcome(le, "opted_out", now=NOON_NY + 40)
    assert store.dnc.check("+12125550100")[0].source == "opt_out"
    leased = store.lease("c2", now=NOON_NY + 41, count=5, owner="d2")
    assert [x.e164 for x in leased] == ["+12125550111"]


def test_window_and_unknown_zone_at_lease(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    load(store, "c1", "phone\n+1 212 555 0100\n+1 208 555 0100\n+800 1234 5678\n")
    # 08:30 New York = 06:30 Boise/LA: only New York is open; +800 has no zone.
    t = at("America/New_York", 2026, 3, 4, 8, 30)
    (ny,) = store.lease("c1", now=t, count=5, owner="d")
    assert ny.e164 == "+12125550100"
    store.record_outcome(ny, "connected", now=t + 60)
    t2 = at("America/Los_Angeles", 2026, 3, 4, 9, 0)
    assert [x.e164 for x in store.lease("c1", now=t2, count=5, owner="d")] == ["+12085550100"]
    store.update_settings("c1", store.campaign("c1").settings.replace(window=ALWAYS))
    assert [x.e164 for x in store.lease("c1", now=t2, count=5, owner="d")] == ["+80012345678"]


def test_tz_column_overrides_number_zone(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    load(store, "c1", "phone,tz\n+1 212 555 0100,Asia/Tokyo\n",
         mapping=ColumnMapping(timezone="tz"))
    assert store.lease("c1", now=NOON_NY, count=5, owner="d") == []  # 02:00 in Tokyo
    assert len(store.lease("c1", now=at("Asia/Tokyo", 2026, 3, 5, 10), count=5, owner="d")) == 1


def test_lease_expiry_and_lost_lease(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    load(store, "c1", "phone\n+1 212 555 0100\n")
    (a,) = store.lease("c1", now=NOON_NY, count=5, owner="d1", lease_s=60)
    assert store.lease("c1", now=NOON_NY + 59, count=5, owner="d2") == []
    (b,) = store.lease("c1", now=NOON_NY + 61, count=5, owner="d2")
    assert b.contact_id == a.contact_id and b.attempt == 2
    with pytest.raises(LeaseLost):
        store.record_outcome(a, "no_answer", now=NOON_NY + 70)
    store.record_outcome(b, "connected", now=NOON_NY + 90, time_to_agent_s=0.4, agent="a1")
    ledger = list(store.ledger("c1"))
    assert [r["outcome"] for r in ledger] == ["no_answer", "connected"]
    assert ledger[1]["time_to_agent_s"] == 0.4
    assert store.summary("c1", now=NOON_NY + 90)["by_state"] == {"connected": 1}


def test_release_and_renew(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    load(store, "c1", "phone\n+1 212 555 0100\n")
    (a,) = store.lease("c1", now=NOON_NY, count=1, owner="d1", lease_s=30)
    a2 = store.renew(a, now=NOON_NY + 20, lease_s=30)
    assert a2.until == NOON_NY + 50
    assert store.lease("c1", now=NOON_NY + 40, count=1, owner="d2") == []
    store.release(a2)
    (b,) = store.lease("c1", now=NOON_NY + 41, count=1, owner="d2")
    assert b.attempt == 1 and next(iter(store.ledger("c1")))["attempt"] == b.attempt_id


def test_retry_policy_delays_next_number_and_max_attempts(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US", max_attempts=3,
                      retries={"busy": 600, "no_answer": 3600})
    load(store, "c1", "home,mobile\n+1 212 555 0100,+1 212 555 0199\n",
         mapping=ColumnMapping(("home", "mobile")))
    t = NOON_NY
    (a,) = store.lease("c1", now=t, count=1, owner="d")
    store.record_outcome(a, "no_answer", now=t + 30)
    (b,) = store.lease("c1", now=t + 31, count=1, owner="d")   # next number at once
    assert b.e164 == "+12125550199"
    store.record_outcome(b, "busy", now=t + 60)                 # wrapped: busy delay
    assert store.lease("c1", now=t + 60 + 599, count=1, owner="d") == []
    (c,) = store.lease("c1", now=t + 60 + 600, count=1, owner="d")
    assert c.e164 == "+12125550100" and c.attempt == 3
    store.record_outcome(c, "no_answer", now=t + 700)
    assert store.lease("c1", now=t + 86400, count=1, owner="d") == []
    (row,) = list(store.contact_report("c1"))
    assert (row["disposition"], row["attempts"], row["status"]) == ("no_answer", 3, "final")


def test_invalid_number_never_retried_and_abandoned_locks_out(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US", max_attempts=5, retries={"abandoned": 60})
    load(store, "c1", "home,mobile\n+1 212 555 0100,+1 212 555 0199\n+1 212 555 0300,\n",
         mapping=ColumnMapping(("home", "mobile")))
    t = NOON_NY
    a, b = store.lease("c1", now=t, count=2, owner="d")
    store.record_outcome(a, "invalid_number", now=t + 5)
    store.record_outcome(b, "abandoned", now=t + 5, message_played="safe_harbour_en")
    nxt = store.lease("c1", now=t + 3600, count=5, owner="d")
    assert [x.e164 for x in nxt] == ["+12125550199"]  # b locked out for 72 h
    store.record_outcome(nxt[0], "invalid_number", now=t + 3700)
    assert store.lease("c1", now=t + 71 * 3600, count=5, owner="d") == []
    # An agent reserved for the call lifts the lockout.
    (r,) = store.lease("c1", now=t + 71 * 3600, count=5, owner="d", agent_reserved=True)
    assert r.e164 == "+12125550300"
    store.release(r)
    assert len(store.lease("c1", now=t + 72 * 3600 + 6, count=5, owner="d")) == 1
    by = {c["phones"][0]: c for c in store.contact_report("c1")}
    assert by["+12125550100"]["disposition"] == "invalid_number"
    assert by["+12125550100"]["status"] == "final"
    assert [r["message_played"] for r in store.ledger("c1") if r["abandoned"]] == \
        ["safe_harbour_en"]


def test_decide_is_pure() -> None:
    st = CampaignSettings(max_attempts=1)
    d = decide(st, disposition="busy", attempts=1, phone_pos=0, valid_positions=[0],
               locked_until=0.0, now=100.0)
    assert (d.status, d.disposition) == ("final", "busy")
    d = decide(CampaignSettings(), disposition="confirmed", attempts=1, phone_pos=0,
               valid_positions=[0], locked_until=0.0, now=100.0)
    assert d.status == "final"


def test_priorities_then_due_time(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    load(store, "c1", "phone,prio\n+1 212 555 0100,1\n+1 212 555 0101,9\n+1 212 555 0102,1\n",
         mapping=ColumnMapping(priority="prio"))
    got = [x.e164 for x in store.lease("c1", now=NOON_NY, count=3, owner="d")]
    assert got == ["+12125550101", "+12125550100", "+12125550102"]


def test_callbacks_first_when_due_in_their_window(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    load(store, "c1", "phone,prio\n+1 212 555 0100,9\n+1 212 555 0101,0\n",
         mapping=ColumnMapping(priority="prio"))
    cbs = CallbackStore(store.engine)
    created = at("America/New_York", 2026, 3, 4, 13)
    cbs.create(call_id="call-1", number="+1 212 555 0177", slot="evening", language="en",
               created_at=created, context={"intent": "billing"})
    cbs.create(call_id="call-2", number="+1 212 555 0101", slot="morning", language="en",
               created_at=created)
    cbs.create(call_id="call-3", number="garbage", slot="morning", language="en",
               created_at=created)
    done = store.ingest_ivr_callbacks("c1", cbs, now=created)
    assert len(done) == 2 and cbs.pending() == []
    # 14:00: no callback due yet; the priority contact comes first, the callback contacts
    # (a future callback) are held back.
    t = at("America/New_York", 2026, 3, 4, 14)
    (first,) = store.lease("c1", now=t, count=5, owner="d")
    assert first.e164 == "+12125550100"
    store.record_outcome(first, "connected", now=t + 60)
    # 17:05: the evening callback is due and comes first.
    t = at("America/New_York", 2026, 3, 4, 17, 5)
    (cb,) = store.lease("c1", now=t, count=5, owner="d")
    assert cb.callback and cb.e164 == "+12125550177" and cb.fields["intent"] == "billing"
    store.record_outcome(cb, "connected", now=t + 60)
    # The morning slot is the next day's (it had passed at 13:00).
    t = at("America/New_York", 2026, 3, 5, 9, 1)
    (m,) = store.lease("c1", now=t, count=5, owner="d")
    assert m.callback and m.e164 == "+12125550101"
    store.record_outcome(m, "connected", now=t + 60)
    # Manager's callback with its own time; the callback window is the campaign's by default.
    store.schedule_callback("c1", "+1 212 555 0188", at=t + 3600, now=t, source="manager")
    assert store.lease("c1", now=t + 3599, count=5, owner="d") == []
    (g,) = store.lease("c1", now=t + 3600, count=5, owner="d")
    assert g.callback and g.e164 == "+12125550188"


def test_abandonment_windows_and_budget(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US", window="always", max_attempts=1)
    load(store, "c1", "phone\n" + "".join(f"+1 212 555 {i:04d}\n" for i in range(100)))
    day = 86400.0
    t0 = 1_000_000.0
    plan = [(t0, "connected")] * 40 + [(t0, "abandoned")] * 2 + \
        [(t0 + 31 * day, "connected")] * 20 + [(t0 + 31 * day, "abandoned")] + \
        [(t0 + 31 * day, "machine")] * 5
    for when, disp in plan:
        (le,) = store.lease("c1", now=when, count=1, owner="d")
        store.record_outcome(le, disp, now=when + 30)
    ab = store.abandonment("c1", now=t0 + 31 * day + 100)
    assert (ab.live, ab.abandoned) == (63, 3)
    assert (ab.period_live, ab.period_abandoned) == (21, 1)   # second 30-day period
    assert (ab.live_24h, ab.abandoned_24h) == (21, 1)
    assert ab.budget_left == pytest.approx(0.03 * 21 - 1)
    assert ab.rate == pytest.approx(3 / 63)
