"""Recycling: finished contacts back into the pool, never DNC, opted-out or invalid numbers;
and ``campaign import --bad-rows`` / ``campaign recycle`` on the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from dialer.cli import main
from dialer.errors import DialerError
from dialer.lists import ColumnMapping
from dialer.store import DialerStore

from .dialer_helpers import at, new_store

NOON_NY = at("America/New_York", 2026, 3, 4, 12)
NUMBERS = [f"+1 212 555 01{i:02d}" for i in range(8)]


def finish(store: DialerStore, outcomes: dict[str, str], now: float) -> None:
    """Lease every dialable contact and record the outcome given for its number."""
    for le in store.lease("c1", now=now, count=100, owner="d"):
        store.record_outcome(le, outcomes[le.e164], now=now + 30)


def states(store: DialerStore) -> dict[str, tuple[str, str, int]]:
    return {c["phones"][0]: (c["status"], c["disposition"], c["attempts"])
            for c in store.contact_report("c1")}


def test_recycle_puts_back_what_was_asked_and_never_dnc_opted_out_or_invalid(
        tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US", max_attempts=1)
    store.import_contacts("c1", io.BytesIO(("phone\n" + "\n".join(NUMBERS)).encode()), now=0.0)
    e = [n.replace(" ", "") for n in NUMBERS]
    outcomes = {e[0]: "no_answer", e[1]: "busy", e[2]: "machine", e[3]: "opted_out",
                e[4]: "invalid_number", e[5]: "connected", e[6]: "no_answer",
                e[7]: "no_answer"}
    finish(store, outcomes, NOON_NY)
    assert all(st[0] == "final" for st in states(store).values())
    # A number put on a DNC list after its last call is never recycled either.
    store.dnc.add(e[6], now=NOON_NY + 60)
    store.dnc.add(e[7], now=NOON_NY + 60, campaign_id=store.campaign("c1").id)
    # max_attempts is 1: without --reset-attempts nothing could be dialled again.
    rep = store.recycle("c1", now=NOON_NY + 3600, dispositions=["no_answer", "busy"])
    assert (rep.recycled, rep.skipped_at_limit) == (0, 4)
    assert store.lease("c1", now=NOON_NY + 3600, count=100, owner="d") == []
    rep = store.recycle("c1", now=NOON_NY + 3600, dispositions=["no_answer", "busy"],
                        reset_attempts=True)
    assert (rep.recycled, rep.skipped_dnc, rep.by_disposition) == (
        2, 2, {"busy": 1, "no_answer": 1})
    after = states(store)
    assert after[e[0]] == ("pending", "no_answer", 0) and after[e[1]][0] == "pending"
    for n in (e[2], e[3], e[4], e[5], e[6], e[7]):
        assert after[n][0] == "final", n
    leased = store.lease("c1", now=NOON_NY + 3600, count=100, owner="d")
    assert sorted(le.e164 for le in leased) == [e[0], e[1]]
    for bad in (["dnc"], ["opted_out"], ["busy", "invalid_number"], []):
        with pytest.raises(DialerError):
            store.recycle("c1", now=NOON_NY, dispositions=bad, reset_attempts=True)


def test_recycled_contact_starts_on_its_first_number_that_may_be_dialled(
        tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US", max_attempts=3, retries={})
    store.import_contacts("c1", io.BytesIO(
        b"home,work,mobile\n+1 212 555 0100,+1 212 555 0101,+1 212 555 0102\n"),
        ColumnMapping(("home", "work", "mobile")), now=0.0)
    (le,) = store.lease("c1", now=NOON_NY, count=1, owner="d")
    store.record_outcome(le, "invalid_number", now=NOON_NY + 5)  # home: never again
    (le,) = store.lease("c1", now=NOON_NY + 10, count=1, owner="d")
    assert le.label == "work"
    store.record_outcome(le, "no_answer", now=NOON_NY + 40)  # retries={}: final
    store.dnc.add("+12125550101", now=NOON_NY + 50)  # work: listed since
    rep = store.recycle("c1", now=NOON_NY + 60, dispositions=["no_answer"])
    assert rep.recycled == 1
    (le,) = store.lease("c1", now=NOON_NY + 60, count=1, owner="d")
    assert (le.label, le.attempt) == ("mobile", 3)


def run(db: str, *argv: str) -> tuple[int, str]:
    con = Console(record=True, width=200, color_system=None)
    code = main([*argv, "--db", db], con)
    return code, con.export_text()


def test_cli_bad_rows_file_and_recycle(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'd.db'}"
    lst = tmp_path / "list.csv"
    lst.write_bytes(b"name,mobile,home\nAnn,+1 212 555 0100,\nBob,nope,+1 212 555 0101\n"
                    b"Cy,12,\nDi\nEd,+800 1234 5678,\n")
    assert run(db, "campaign", "create", "c1", "--region", "US", "--max-attempts", "1",
               "--window", "always")[0] == 0
    bad = tmp_path / "bad.csv"
    code, out = run(db, "campaign", "import", "c1", str(lst), "--phone", "mobile,home",
                    "--bad-rows", str(bad), "--now", str(NOON_NY - 60))
    assert code == 0 and str(bad) in out
    with bad.open(newline="") as f:
        got = list(csv.DictReader(f))
    assert [(r["row"], r["kind"], r["column"]) for r in got] == [
        ("3", "warning", "mobile"), ("4", "rejected", "mobile"), ("5", "rejected", "mobile"),
        ("6", "unknown_zone", "")]
    assert got[1]["reason"] == "impossible number" and got[1]["value"] == "12"
    assert got[2]["reason"].startswith("missing column")

    code, out = run(db, "campaign", "recycle", "c1", "--dispositions", "busy,opted_out")
    assert code == 2 and "opted_out" in out
    store = DialerStore(db)
    for le in store.lease("c1", now=NOON_NY, count=10, owner="d"):
        store.record_outcome(le, "busy", now=NOON_NY + 20)
    code, out = run(db, "campaign", "recycle", "c1", "--json", "--now", str(NOON_NY + 60))
    assert code == 0 and json.loads(out)["skipped_at_limit"] == 3
    code, out = run(db, "campaign", "recycle", "c1", "--reset-attempts",
                    "--now", str(NOON_NY + 60))
    assert code == 0 and "3 contacts recycled" in out
    assert len(store.lease("c1", now=NOON_NY + 60, count=10, owner="d")) == 3
