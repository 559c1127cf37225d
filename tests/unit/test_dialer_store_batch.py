"""Outcomes and renewals in batches: record_outcomes, renew_many and the OutcomeWriter
(group commit) on SQLite: each caller gets its own result, one bad outcome loses no other."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from dialer.errors import DialerError, LeaseLost
from dialer.store import DialerStore, Outcome
from dialer.store_batch import OutcomeWriter
from dialer.windows import ALWAYS

from .dialer_helpers import new_store

NOW = 1_000_000.0


def store_with(tmp: Path, n: int) -> DialerStore:
    store = new_store(tmp, region="GB", window=ALWAYS, max_attempts=2,
                      retries={"busy": 600.0})
    csv = "phone\n" + "".join(f"+4420790000{i:02d}\n" for i in range(n))
    assert store.import_contacts("c1", io.BytesIO(csv.encode()), now=0.0).bad_rows == 0
    return store


def count_commits(store: DialerStore) -> list[int]:
    commits = [0]

    @event.listens_for(store.engine, "commit")
    def _commit(_conn: Any) -> None:
        commits[0] += 1
    return commits


def test_a_batch_is_one_transaction_and_each_outcome_gets_its_own_result(
        tmp_path: Path) -> None:
    store = store_with(tmp_path, 6)
    a, b, c, d, e, f = store.lease("c1", now=NOW, count=6, owner="d1", lease_s=60)
    store.record_outcome(d, "connected", now=NOW + 1)  # d already has an outcome
    a, b, c, f = store.renew_many([a, b, c, f], now=NOW + 30, lease_s=60)  # type: ignore[misc]
    (e2,) = store.lease("c1", now=NOW + 61, count=1, owner="d2", lease_s=60)  # e expired
    assert e2.contact_id == e.contact_id
    commits = count_commits(store)
    errs = store.record_outcomes([
        Outcome(a, "machine", NOW + 70, amd="machine"),
        Outcome(b, "busy", NOW + 70, sip_status=486),
        Outcome(d, "busy", NOW + 70),  # DialerError: nothing written for it
        Outcome(e, "no_answer", NOW + 70),  # LeaseLost: ledger row written
        Outcome(c, "opted_out", NOW + 70),
        Outcome(c, "machine", NOW + 70),  # the same attempt twice: refused
    ])
    assert commits == [1]
    assert errs[0] is None and errs[1] is None and errs[4] is None
    assert isinstance(errs[2], DialerError) and "already has outcome connected" in str(errs[2])
    assert isinstance(errs[3], LeaseLost)
    assert isinstance(errs[5], DialerError) and "already has outcome opted_out" in str(errs[5])
    ledger = {r["attempt"]: r for r in store.ledger("c1")}
    assert ledger[a.attempt_id]["outcome"] == "machine"
    assert ledger[a.attempt_id]["amd"] == "machine"
    assert ledger[b.attempt_id]["sip_status"] == 486
    assert ledger[d.attempt_id]["outcome"] == "connected"
    assert ledger[e.attempt_id]["outcome"] == "no_answer"  # written though the lease was lost
    assert ledger[e2.attempt_id]["outcome"] is None  # e2's holder still has the contact
    assert ledger[f.attempt_id]["outcome"] is None
    report = {r["phone"]: r for r in store.contact_report("c1")}
    assert report[a.e164]["disposition"] == "machine"
    assert report[b.e164]["status"] == "pending"  # busy: retried (max_attempts 2)
    assert report[c.e164]["disposition"] == "opted_out"
    assert [x.source for x in store.dnc.check(c.e164)] == ["opt_out"]
    # The contacts are as one transaction per outcome would have left them.
    assert store.summary("c1", now=NOW + 70)["by_state"] == {
        "connected": 1, "machine": 1, "opted_out": 1, "pending": 3}


def test_a_failing_batch_is_written_one_by_one_and_loses_no_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = store_with(tmp_path, 4)
    leases = store.lease("c1", now=NOW, count=4, owner="d1", lease_s=60)
    bad = leases[2]

    real = store._write_outcomes

    def write(s: Any, outcomes: Any) -> Any:
        # A database error on one outcome (as a constraint the code did not foresee)
        # fails the batch's transaction as a whole.
        if any(o.lease.attempt_id == bad.attempt_id for o in outcomes):
            raise IntegrityError("UPDATE dialer_attempts", {}, Exception("boom"))
        return real(s, outcomes)
    monkeypatch.setattr(store, "_write_outcomes", write)
    errs = store.record_outcomes([Outcome(le, "machine", NOW + 5) for le in leases])
    assert [type(e) for e in errs] == [type(None), type(None), IntegrityError, type(None)]
    outcomes = {r["attempt"]: r["outcome"] for r in store.ledger("c1")}
    assert outcomes == {le.attempt_id: (None if le is bad else "machine") for le in leases}
    with pytest.raises(IntegrityError):
        store.record_outcome(bad, "machine", now=NOW + 6)


def test_renew_many_renews_what_is_held_in_one_statement(tmp_path: Path) -> None:
    store = store_with(tmp_path, 3)
    a, b, c = store.lease("c1", now=NOW, count=3, owner="d1", lease_s=30)
    store.record_outcome(b, "machine", now=NOW + 5)  # closed: no longer held
    commits = count_commits(store)
    new = store.renew_many([a, b, c], now=NOW + 20, lease_s=30)
    assert commits == [1]
    assert new[1] is None
    assert new[0] is not None and new[0].until == NOW + 50 and new[0].attempt_id == a.attempt_id
    assert new[2] is not None and new[2].until == NOW + 50
    # Expired leases are not renewed (another dialer may take the contact).
    assert store.renew_many([new[0]], now=NOW + 51, lease_s=30) == [None]
    with pytest.raises(LeaseLost):
        store.renew(new[0], now=NOW + 51, lease_s=30)
    assert store.lease("c1", now=NOW + 49, count=3, owner="d2") == []


async def test_outcome_writer_groups_concurrent_outcomes_and_raises_to_the_right_caller(
        tmp_path: Path) -> None:
    store = store_with(tmp_path, 45)
    leases = store.lease("c1", now=NOW, count=40, owner="d1", lease_s=60)
    lost = leases[7]
    leases = [store.renew(le, now=NOW + 30, lease_s=60) if le is not lost else le
              for le in leases]
    (taken,) = store.lease("c1", now=NOW + 61, count=1, owner="d2", lease_s=60)
    assert taken.contact_id == lost.contact_id
    done = leases[11]
    store.record_outcome(done, "busy", now=NOW + 62)
    writer = OutcomeWriter(store, delay_s=0.02)

    async def one(le: Any, delay: float) -> str:
        await asyncio.sleep(delay)
        try:
            await writer.record(Outcome(le, "machine", NOW + 63))
        except LeaseLost:
            return "lost"
        except DialerError:
            return "error"
        return "ok"
    results = await asyncio.gather(*(one(le, (i % 4) * 0.004) for i, le in enumerate(leases)))
    assert results[7] == "lost" and results[11] == "error"
    assert results.count("ok") == 38
    assert 1 <= writer.batches <= 3  # 40 calls ending within ~12 ms: a few transactions
    outcomes = [r["outcome"] for r in store.ledger("c1") if r["owner"] == "d1"]
    assert outcomes.count("machine") == 39 and outcomes.count("busy") == 1
    # A full batch goes at once, without waiting for the delay.
    more = store.lease("c1", now=NOW + 64, count=5, owner="d1", lease_s=60)
    big = OutcomeWriter(store, delay_s=30.0, max_batch=5)
    await asyncio.wait_for(asyncio.gather(
        *(big.record(Outcome(le, "machine", NOW + 65)) for le in more)), 5.0)
    assert len(more) == 5 and big.batches == 1


async def test_outcome_writer_a_cancelled_caller_still_has_its_outcome_written(
        tmp_path: Path) -> None:
    store = store_with(tmp_path, 2)
    a, b = store.lease("c1", now=NOW, count=2, owner="d1", lease_s=60)
    writer = OutcomeWriter(store, delay_s=0.02)
    ta = asyncio.ensure_future(writer.record(Outcome(a, "machine", NOW + 5)))
    await asyncio.sleep(0)
    ta.cancel()
    await writer.record(Outcome(b, "machine", NOW + 5))
    assert {r["outcome"] for r in store.ledger("c1")} == {"machine"}
