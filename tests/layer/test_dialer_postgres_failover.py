"""Several dialer nodes on one campaign in a real PostgreSQL: a dialer that dies hands its
leased contacts back once their lease expires, and its attempts close as ``lease_expired``
in the shared ledger; no contact is leased twice meanwhile."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import signal

from tests.layer.test_dialer_postgres import pg_base, pg_url  # noqa: F401 - fixtures

T0 = 1_000_000.0
LEASE_S = 5.0
N = 60


def _dies_holding_leases(url: str, out: mp.Queue[list[int]]) -> None:
    from dialer.store import DialerStore
    store = DialerStore(url)
    leases = store.lease("shared", now=T0, count=20, owner="doomed", lease_s=LEASE_S)
    out.put([le.contact_id for le in leases])
    signal.pause()  # killed here, mid-call as far as the ledger knows


def test_a_killed_dialer_hands_its_contacts_back_after_the_lease(
        pg_url: str) -> None:  # noqa: F811
    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore

    store = DialerStore(pg_url)
    store.create_campaign("shared", CampaignSettings(region="US", window="always"), now=0.0)
    csv = "phone\n" + "".join(f"+1 212 555 {i:04d}\n" for i in range(N))
    assert store.import_contacts("shared", io.BytesIO(csv.encode()), now=0.0).imported == N
    ctx = mp.get_context("spawn")
    out: mp.Queue[list[int]] = ctx.Queue()
    doomed = ctx.Process(target=_dies_holding_leases, args=(pg_url, out))
    doomed.start()
    held = out.get(timeout=60)
    assert len(held) == 20
    assert doomed.pid is not None
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(10)
    assert doomed.exitcode == -signal.SIGKILL

    # while the dead dialer's leases run, the survivor gets every other contact, none of its
    others = store.lease("shared", now=T0 + 1, count=N, owner="survivor", lease_s=600)
    assert len(others) == N - 20 and not {le.contact_id for le in others} & set(held)
    assert store.lease("shared", now=T0 + LEASE_S - 0.1, count=N, owner="survivor") == []
    # once they expire, the dead dialer's contacts come back, once each
    back = store.lease("shared", now=T0 + LEASE_S + 0.1, count=N, owner="survivor",
                       lease_s=600)
    assert sorted(le.contact_id for le in back) == sorted(held)
    for le in [*others, *back]:
        store.record_outcome(le, "connected", now=T0 + 10)
    ledger = list(store.ledger("shared"))
    outcomes = [r["outcome"] for r in ledger]
    assert outcomes.count("lease_expired") == 20 and outcomes.count("connected") == N
    expired = [r for r in ledger if r["outcome"] == "lease_expired"]
    assert {r["contact"] for r in expired} == set(held)
    assert {r["owner"] for r in expired} == {"doomed"}
    store.engine.dispose()


N_BUDGET = 200


def _spends_shared_budget(url: str, owner: str, seed: int,
                          start: mp.synchronize.Event, out: mp.Queue[tuple[str, int]]) -> None:
    """A dialer that dials ahead (risking an abandoned call) only while the campaign's budget,
    read from the shared ledger, has a whole abandoned call left (the pacer's rule)."""
    import random

    from dialer.store import DialerStore
    store = DialerStore(url)
    rng = random.Random(seed)
    start.wait(30)
    abandoned = 0
    now = T0
    while True:
        leases = store.lease("shared", now=now, count=1, owner=owner, lease_s=600)
        if not leases:
            break
        ahead = store.abandonment("shared", now=now).budget_left >= 1
        if ahead and rng.random() < 0.5:  # nobody free when the person answered
            store.record_outcome(leases[0], "abandoned", now=now + 1)
            abandoned += 1
        else:
            store.record_outcome(leases[0], "connected", now=now + 1)
        now += 1
    out.put((owner, abandoned))


def test_the_abandonment_budget_is_shared_by_two_dialers(pg_url: str) -> None:  # noqa: F811
    """Both dialers spend one budget: together they stay at the 3 % target, overshooting by
    at most one call each (the read-then-dial window), and each spends part of it."""
    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore

    store = DialerStore(pg_url)
    store.create_campaign("shared", CampaignSettings(region="US", window="always",
                                                     abandon_target=0.03), now=0.0)
    csv = "phone\n" + "".join(f"+1 212 555 {i:04d}\n" for i in range(N_BUDGET))
    assert store.import_contacts("shared", io.BytesIO(csv.encode()), now=0.0).imported \
        == N_BUDGET
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out: mp.Queue[tuple[str, int]] = ctx.Queue()
    procs = [ctx.Process(target=_spends_shared_budget, args=(pg_url, f"d{i}", i, start, out))
             for i in range(2)]
    for p in procs:
        p.start()
    start.set()
    spent = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    report = store.abandonment("shared", now=T0 + N_BUDGET + 10)
    assert report.period_abandoned == sum(spent.values())
    assert report.period_live == N_BUDGET  # an abandoned call was answered by a person
    cap = 0.03 * report.period_live
    assert report.period_abandoned <= cap + len(procs), (report, spent)
    assert report.period_abandoned >= cap - len(procs), "the budget was not used"
    assert all(spent.values()), spent
    store.engine.dispose()
