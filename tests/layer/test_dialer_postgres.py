"""Two OS processes lease from one campaign in a real PostgreSQL: no contact leased twice.

Uses the machine's server on 127.0.0.1:5432 (trust auth, database ``test``) in a schema of
its own, dropped afterwards; else starts a temporary cluster with initdb/pg_ctl; else skips
(fails under CI=true).
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, free_port

psycopg = pytest.importorskip("psycopg")

N_CONTACTS = 400


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


@pytest.fixture(scope="module")
def pg_base() -> Iterator[tuple[str, str]]:
    """(libpq dsn, SQLAlchemy URL base without options) of a PostgreSQL to use."""
    user = "postgres"
    dsn = f"host=127.0.0.1 port=5432 dbname=test user={user}"
    if _reachable(dsn):
        yield dsn, f"postgresql+psycopg://{user}@127.0.0.1:5432/test"
        return
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if not (initdb and pg_ctl) or os.geteuid() == 0 and not shutil.which("runuser"):
        msg = "no PostgreSQL at 127.0.0.1:5432 and no initdb/pg_ctl to start one"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    with tempfile.TemporaryDirectory() as tmp:
        data, port = Path(tmp) / "data", free_port(__import__("socket").SOCK_STREAM)
        prefix: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses root: run the cluster as nobody, in a folder it may write.
            os.chmod(tmp, 0o777)
            prefix = ["runuser", "-u", "nobody", "--"]
        subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-w", "-o",
                        f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)
        try:
            dsn = f"host=127.0.0.1 port={port} dbname=postgres user=postgres"
            yield dsn, f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "fast", "stop"],
                           capture_output=True, check=False)


@pytest.fixture
def pg_url(pg_base: tuple[str, str]) -> Iterator[str]:
    dsn, url = pg_base
    schema = f"dialer_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _dialer(url: str, owner: str, start: mp.synchronize.Event, out: mp.Queue[list[int]]) -> None:
    from dialer.store import DialerStore
    store = DialerStore(url)
    start.wait(30)
    got: list[int] = []
    now = 1_000_000.0
    while True:
        leases = store.lease("shared", now=now, count=7, owner=owner, lease_s=3600)
        if not leases:
            break
        for le in leases:
            got.append(le.contact_id)
            store.record_outcome(le, "connected", now=now + 1)
    out.put(got)


def test_two_processes_never_lease_one_contact_twice(pg_url: str) -> None:
    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore
    store = DialerStore(pg_url)
    assert store.engine.dialect.name == "postgresql"
    store.create_campaign("shared", CampaignSettings(region="US", window="always"), now=0.0)
    csv = "phone\n" + "".join(f"+1 212 555 {i:04d}\n" for i in range(N_CONTACTS))
    rep = store.import_contacts("shared", io.BytesIO(csv.encode()), now=0.0, batch_size=150)
    assert rep.imported == N_CONTACTS
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out: mp.Queue[list[int]] = ctx.Queue()
    procs = [ctx.Process(target=_dialer, args=(pg_url, f"d{i}", start, out)) for i in range(2)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    every = results[0] + results[1]
    assert len(every) == len(set(every)), "a contact was leased twice"
    assert len(every) == N_CONTACTS
    assert all(results), "one process got nothing: the test did not exercise contention"
    ledger = list(store.ledger("shared"))
    assert len(ledger) == N_CONTACTS and {r["outcome"] for r in ledger} == {"connected"}
    store.engine.dispose()


def test_import_merges_and_recycling_on_postgresql(pg_url: str) -> None:
    """The importer's PostgreSQL path (RETURNING ids, merges into stored contacts in a few
    statements) and recycling, on a real server."""
    from dialer.lists import ColumnMapping
    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore
    from dialer.windows import ALWAYS
    store = DialerStore(pg_url)
    store.create_campaign("c", CampaignSettings(region="GB", window=ALWAYS, max_attempts=1),
                          now=0.0)
    m = ColumnMapping(("mobile", "home"))
    first = (b"name,mobile,home,email\nAnn,07400 123456,,\n"
             b"Ann again,+44 7400 123456,020 7946 0000,ann@example.org\nBob,07400 223456,,\n"
             b"bad,xx,,\n")
    rep = store.import_contacts("c", io.BytesIO(first), m, now=0.0, batch_size=2)
    assert (rep.rows, rep.imported, rep.merged, rep.bad_rows) == (4, 2, 1, 1)
    second = b"name,mobile,home,email\nX,020 7946 0000,07400 999999,x@example.org\n"
    rep2 = store.import_contacts("c", io.BytesIO(second), m, now=0.0)
    assert (rep2.imported, rep2.merged) == (0, 1)
    ann, bob = sorted(store.contact_report("c"), key=lambda c: c["row"])
    assert ann["phones"] == ["+447400123456", "+442079460000", "+447400999999"]
    assert ann["fields"] == {"name": "Ann", "email": "ann@example.org"}
    assert bob["phones"] == ["+447400223456"]
    for le in store.lease("c", now=100.0, count=10, owner="d"):
        store.record_outcome(le, "no_answer", now=110.0)
    store.dnc.add("+447400223456", now=120.0)  # Bob's only number
    rep3 = store.recycle("c", now=200.0, dispositions=["no_answer"], reset_attempts=True)
    assert (rep3.recycled, rep3.skipped_dnc) == (1, 1)
    (le,) = store.lease("c", now=200.0, count=10, owner="d")
    assert le.e164 == "+447400123456"
    store.engine.dispose()


def test_outcomes_and_renewals_in_batches_on_postgresql(pg_url: str) -> None:
    """record_outcomes (executemany, expanding IN) and renew_many (UPDATE ... RETURNING) on a
    real server: one transaction each, every outcome with its own result."""
    from dialer.errors import DialerError, LeaseLost
    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore, Outcome
    from dialer.windows import ALWAYS
    store = DialerStore(pg_url)
    store.create_campaign("b", CampaignSettings(region="GB", window=ALWAYS, max_attempts=2,
                                                retries={"busy": 600.0}), now=0.0)
    csv = "phone\n" + "".join(f"+4420790000{i:02d}\n" for i in range(5))
    store.import_contacts("b", io.BytesIO(csv.encode()), now=0.0)
    now = 1_000_000.0
    a, b, c, d, e = store.lease("b", now=now, count=5, owner="d1", lease_s=60)
    renewed = store.renew_many([a, b, c, d], now=now + 30, lease_s=60)
    assert all(r is not None and r.until == now + 90 for r in renewed)
    (e2,) = store.lease("b", now=now + 61, count=5, owner="d2", lease_s=60)
    assert e2.contact_id == e.contact_id
    assert store.renew_many([e], now=now + 62, lease_s=60) == [None]
    errs = store.record_outcomes([Outcome(a, "machine", now + 70, amd="machine"),
                                  Outcome(b, "busy", now + 70), Outcome(c, "opted_out", now + 70),
                                  Outcome(e, "no_answer", now + 70),
                                  Outcome(a, "machine", now + 70)])
    assert errs[:3] == [None, None, None]
    assert isinstance(errs[3], LeaseLost) and isinstance(errs[4], DialerError)
    by = store.summary("b", now=now + 70)["by_state"]
    assert by == {"machine": 1, "opted_out": 1, "pending": 3}
    assert [x.source for x in store.dnc.check(c.e164)] == ["opt_out"]
    outcomes = {r["attempt"]: r["outcome"] for r in store.ledger("b")}
    assert outcomes == {a.attempt_id: "machine", b.attempt_id: "busy",
                        c.attempt_id: "opted_out", d.attempt_id: None,
                        e.attempt_id: "no_answer", e2.attempt_id: None}
    store.engine.dispose()
