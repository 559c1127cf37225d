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
