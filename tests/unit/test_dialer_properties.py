"""Property: whatever the list, the DNC entries, the time and the count asked, the lease never
returns a DNC number or a number outside its window in any of its zones; and the same when
every pacing strategy in the registry decides the count, driven by random call events."""

from __future__ import annotations

import io
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.lists import ColumnMapping
from dialer.pacing import (
    AgentBusy,
    AgentLoggedIn,
    AgentReady,
    AgentWrap,
    AmdDecided,
    CallAbandoned,
    CallAnswered,
    CallConnected,
    CallDialled,
    CallEnded,
    CallOutcome,
    CallRinging,
    Pacer,
)
from dialer.policy import CampaignSettings
from dialer.store import DialerStore, Lease
from dialer.windows import CallingWindow

NUMBERS = ["+1 212 555 0100", "+1 208 555 0101", "+1 605 555 0102", "+1 907 555 0103",
           "+1 808 555 0104", "+44 7400 123456", "+33 6 12 34 56 78", "+61 2 9876 5432",
           "+800 1234 5678", "+1 800 555 0199", "+7 912 345 6789", "+81 3 1234 5678"]
ZONE_COL = ["", "", "", "Asia/Tokyo", "Europe/Paris", "America/Chicago"]

contact = st.tuples(st.sampled_from(NUMBERS), st.sampled_from(NUMBERS),
                    st.sampled_from(ZONE_COL), st.integers(0, 3))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contacts=st.lists(contact, min_size=1, max_size=12),
       dnc=st.sets(st.sampled_from(NUMBERS), max_size=6),
       campaign_dnc=st.sets(st.sampled_from(NUMBERS), max_size=3),
       nows=st.lists(st.integers(1_767_225_600, 1_798_761_600), min_size=1, max_size=3),
       count=st.integers(0, 20),
       start=st.integers(0, 20), length=st.integers(1, 12))
def test_lease_never_returns_dnc_or_outside_window(
        contacts: list[tuple[str, str, str, int]], dnc: set[str], campaign_dnc: set[str],
        nows: list[int], count: int, start: int, length: int) -> None:
    window = CallingWindow.daily(f"{start:02d}:00", f"{min(start + length, 24):02d}:00")
    with tempfile.TemporaryDirectory() as tmp:
        store = DialerStore(f"sqlite:///{Path(tmp) / 'p.db'}")
        info = store.create_campaign("p", CampaignSettings(region="US", window=window),
                                     now=0.0)
        lines = ["a,b,tz,prio"] + [f"{a},{b},{tz},{p}" for a, b, tz, p in contacts]
        store.import_contacts("p", io.BytesIO("\n".join(lines).encode()),
                              ColumnMapping(("a", "b"), timezone="tz", priority="prio"),
                              now=0.0)
        blocked = {store.dnc.add(n, now=0.0) for n in dnc}
        blocked |= {store.dnc.add(n, now=0.0, campaign_id=info.id) for n in campaign_dnc}
        for now in sorted(nows):
            leases = store.lease("p", now=float(now), count=count, owner="x")
            assert len(leases) <= count
            for le in leases:
                assert le.e164 not in blocked
                assert le.zones, "a number with no known zone was leased"
                assert window.is_open(le.zones, float(now))
                store.record_outcome(le, "busy", now=float(now) + 10)


# -- every pacing strategy, driving the store -------------------------------------------------

STRATEGY_SPECS = {"preview": ["preview"], "progressive": ["progressive"],
                  "ratio": ["ratio:1.5", "ratio:3"], "adaptive": ["adaptive:HARD_LIMIT"],
                  "predictive": ["predictive"]}
"""Specs per registered strategy; a strategy added to the registry must be added here."""

AREAS = ["+1 212 555 01", "+1 208 555 01", "+1 605 555 01", "+1 907 555 01", "+1 808 555 01",
         "+1 312 555 01", "+44 20 7946 00", "+33 1 23 45 67", "+81 3 1234 56", "+61 2 9876 54",
         "+800 1234 56"]
POOL = [f"{a}{i:02d}" for a in AREAS for i in range(10)]
OUTCOMES = ["busy", "no_answer", "failed", "machine", "opted_out", "invalid_number"]


def test_every_registered_strategy_is_covered() -> None:
    from dialer.pacing import default_registry
    assert sorted(STRATEGY_SPECS) == default_registry().names()


@pytest.mark.parametrize("spec", [s for specs in STRATEGY_SPECS.values() for s in specs])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(numbers=st.lists(st.sampled_from(POOL), min_size=5, max_size=40, unique=True),
       tz_col=st.lists(st.sampled_from(ZONE_COL), min_size=40, max_size=40),
       dnc=st.sets(st.sampled_from(POOL), max_size=15),
       agents=st.integers(1, 6), start=st.integers(0, 20), length=st.integers(1, 12),
       t0=st.integers(1_767_225_600, 1_798_761_600),
       steps=st.lists(st.tuples(st.integers(1, 4 * 3600), st.sampled_from(POOL),
                                st.booleans()), min_size=5, max_size=25),
       rng=st.randoms(use_true_random=False))
def test_pacer_driven_leases_never_dial_dnc_or_outside_window(
        spec: str, numbers: list[str], tz_col: list[str], dnc: set[str], agents: int,
        start: int, length: int, t0: int, steps: list[tuple[int, str, bool]],
        rng: random.Random) -> None:
    """The pacer (each strategy) says how many calls to place; that many are leased from the
    store; random call progress, outcomes, opt-outs and DNC additions feed both back.  No
    leased contact is ever on a DNC list at that moment or outside its window in any of its
    zones, and never more are leased than the pacer asked for."""
    window = CallingWindow.daily(f"{start:02d}:00", f"{min(start + length, 24):02d}:00")
    pacer = Pacer.from_name(spec)
    with tempfile.TemporaryDirectory() as tmp:
        store = DialerStore(f"sqlite:///{Path(tmp) / 'p.db'}")
        info = store.create_campaign("p", CampaignSettings(region="US", window=window,
                                                           max_attempts=4), now=0.0)
        lines = ["phone,tz"] + [f"{n},{tz}" for n, tz in zip(numbers, tz_col, strict=False)]
        store.import_contacts("p", io.BytesIO("\n".join(lines).encode()),
                              ColumnMapping(("phone",), timezone="tz"), now=0.0)
        blocked = {store.dnc.add(n, now=0.0, campaign_id=info.id if i % 2 else None)
                   for i, n in enumerate(sorted(dnc))}
        now = float(t0)
        for a in range(agents):
            pacer.on_event(AgentLoggedIn(f"a{a}"), now=now)
            pacer.on_event(AgentReady(f"a{a}"), now=now)
        free = [f"a{a}" for a in range(agents)]
        wrapping: list[str] = []
        calls: dict[str, Lease] = {}
        seq = 0
        for dt, extra_dnc, add_dnc in steps:
            now += dt
            if add_dnc:  # a number listed while the campaign runs: never dialled after
                blocked.add(store.dnc.add(extra_dnc, now=now))
            for agent in wrapping:
                pacer.on_event(AgentReady(agent), now=now)
                free.append(agent)
            wrapping = []
            for call_id, le in list(calls.items()):
                # Each call in flight resolves one way or another before the next step.
                fate = rng.random()
                if fate < 0.3 and free:
                    agent = free.pop()
                    pacer.on_event(CallAnswered(call_id), now=now)
                    pacer.on_event(AmdDecided(call_id, human=True), now=now)
                    pacer.on_event(CallConnected(call_id, agent), now=now)
                    pacer.on_event(AgentBusy(agent, call_id), now=now + 1)
                    pacer.on_event(CallEnded(call_id, CallOutcome.COMPLETED), now=now + 2)
                    pacer.on_event(AgentWrap(agent), now=now + 2)
                    wrapping.append(agent)
                    outcome = "opted_out" if rng.random() < 0.3 else "connected"
                elif fate < 0.4:
                    pacer.on_event(CallAnswered(call_id), now=now)
                    pacer.on_event(AmdDecided(call_id, human=True), now=now)
                    pacer.on_event(CallAbandoned(call_id), now=now + 2)
                    pacer.on_event(CallEnded(call_id, CallOutcome.ABANDONED), now=now + 2)
                    outcome = "abandoned"
                else:
                    outcome = rng.choice(OUTCOMES)
                    pacer.on_event(CallRinging(call_id), now=now)
                    pacer.on_event(CallEnded(call_id, CallOutcome.NO_ANSWER), now=now + 1)
                store.record_outcome(le, outcome, now=now + 3)
                if outcome == "opted_out":
                    blocked.add(le.e164)
                del calls[call_id]
            now += 4
            asked = pacer.calls_to_place(now=now)
            if spec == "preview":
                # The pacer never dials by itself: each free agent asks for one contact.
                asked = len(free)
            leases = store.lease("p", now=now, count=asked, owner="x", lease_s=86400.0)
            assert len(leases) <= asked
            for le in leases:
                assert le.e164 not in blocked, f"{spec} dialled a DNC number"
                assert le.zones, "a number with no known zone was leased"
                assert window.is_open(le.zones, now), f"{spec} dialled outside the window"
                seq += 1
                call_id = f"c{seq}"
                calls[call_id] = le
                pacer.on_event(CallDialled(call_id), now=now)
