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
