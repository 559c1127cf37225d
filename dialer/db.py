"""Engines for the dialer: SQLite in WAL mode (single node) or PostgreSQL (several).

On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so that the lease's select and
update run under the database's single write lock: two dialer processes on one SQLite file
can never lease the same contact.  On PostgreSQL the lease uses ``SELECT ... FOR UPDATE SKIP
LOCKED`` instead (dialer.store).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

__all__ = ["DEFAULT_DB_URL", "make_engine", "read_session", "write_options", "write_session"]

DEFAULT_DB_URL = "sqlite:///var/dialtone.db"

_WRITE = "dialtone_write"


def make_engine(url: str = DEFAULT_DB_URL, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and immediate writes.

    ``postgresql://`` URLs are taken to mean psycopg 3 (``postgresql+psycopg://``).
    """
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() != "sqlite":
        return create_engine(u, **kwargs)
    if u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(u, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own implicit
        # transactions would defeat BEGIN IMMEDIATE): the documented SQLAlchemy recipe.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def write_options() -> dict[str, Any]:
    """Execution options that make a connection's transactions writes (``BEGIN IMMEDIATE`` on
    SQLite), for code that runs on a Connection rather than a session (the bulk import)."""
    return {_WRITE: True}


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session in one write transaction (committed on success, rolled back on error)."""
    with Session(engine.execution_options(**{_WRITE: True}), expire_on_commit=False) as s, \
            s.begin():
        yield s


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads."""
    with Session(engine, expire_on_commit=False) as s, s.begin():
        yield s
