"""The node's database schema under Alembic: every table of every layer, one history.

The tables belong to their layers (``dialer.models``, ``dialer.callbacks``,
``routing.outbox``, ``dialtone.cdr``); this package, in the node's layer, is the one place that
sees them all, so it holds the migrations (``versions/``) and the commands behind
``dialtone db upgrade`` and ``dialtone db current``.

On start the node calls :func:`ensure_schema`: a SQLite database (the single-node default, one
file the node owns) is upgraded to head there and then, so ``make run`` needs no extra step;
any other database (PostgreSQL, shared by several nodes) must already be at head, or the node
refuses with a message to run ``dialtone db upgrade``.  Two nodes starting together must not
race to alter a shared schema, and an operator decides when a shared database changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData
from sqlalchemy.exc import SQLAlchemyError

from dialtone_errors import ConfigError

__all__ = ["alembic_config", "current_revision", "ensure_schema", "head_revision",
           "target_metadata", "upgrade"]

HERE = Path(__file__).resolve().parent


def target_metadata() -> MetaData:
    """One MetaData holding a copy of every table the node's layers define."""
    from dialer.callbacks import CallbackBase
    from dialer.models import DialerBase
    from dialtone.cdr import CdrBase
    from routing.outbox import outbox_table

    merged = MetaData()
    tables = [*DialerBase.metadata.tables.values(), *CallbackBase.metadata.tables.values(),
              outbox_table, *CdrBase.metadata.tables.values()]
    for table in tables:
        table.to_metadata(merged)
    return merged


def alembic_config(url: str) -> Config:
    """An Alembic configuration for ``url`` (no alembic.ini: the package is the location)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["dialtone_url"] = url
    return cfg


def _engine(url: str) -> Engine:
    from dialer.db import make_engine  # SQLite pragmas, postgresql:// as psycopg 3

    return make_engine(url)


def head_revision() -> str:
    """The newest revision this package ships."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    """The revision ``url`` is at (None: never migrated)."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise ConfigError(f"database {url!r}: {exc}") from exc
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate ``url`` to ``revision``."""
    # alembic names each of its plugins at INFO: noise in a node's log, not an event
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        command.upgrade(alembic_config(url), revision)
    except SQLAlchemyError as exc:
        raise ConfigError(f"database {url!r}: upgrade failed: {exc}") from exc


def ensure_schema(url: str) -> str:
    """Make sure ``url`` is at head before the node uses it; returns what was done.

    SQLite is upgraded in place; another database behind head is refused (ConfigError naming
    the command to run)."""
    head = head_revision()
    current = current_revision(url)
    if current == head:
        return "current"
    if url.startswith("sqlite"):
        upgrade(url)
        return "upgraded"
    from dialtone.config import mask_url

    at = current or "an empty schema"
    raise ConfigError(f"database {mask_url(url)} is at {at}, this node needs {head}: "
                      f"run `dialtone db upgrade --db URL` first")
