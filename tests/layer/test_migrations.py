"""Alembic: an empty SQLite and an empty PostgreSQL schema upgrade to head, and the models
match what the migrations built (autogenerate's comparison finds nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from dialer.db import make_engine
from dialtone.cli import main
from dialtone.migrations import current_revision, ensure_schema, head_revision, target_metadata
from dialtone_errors import ConfigError
from tests.layer.test_dialer_postgres import pg_base, pg_url  # noqa: F401 - fixtures


def _diff(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, target_metadata()))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_sqlite_upgrade_to_head_matches_the_models(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    assert main(["db", "current", "--db", url]) == 1
    assert "empty" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", url]) == 0
    assert current_revision(url) == head_revision()
    assert main(["db", "current", "--db", url]) == 0
    assert f"{head_revision()} (head {head_revision()}, at head)" in capsys.readouterr().out
    assert set(target_metadata().tables) <= _tables(url)
    assert _diff(url) == []


def test_postgres_upgrade_to_head_matches_the_models(pg_url: str) -> None:  # noqa: F811
    assert _tables(pg_url) == set()
    with pytest.raises(ConfigError, match="dialtone db upgrade"):
        ensure_schema(pg_url)  # a shared database is never migrated behind the operator's back
    assert main(["db", "upgrade", "--db", pg_url]) == 0
    assert current_revision(pg_url) == head_revision()
    assert ensure_schema(pg_url) == "current"
    assert _diff(pg_url) == []


def test_a_database_made_by_create_all_is_adopted(tmp_path: Path) -> None:
    """Earlier nodes made their tables with create_all: the first migration keeps them."""
    from dialer.store import DialerStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = DialerStore(url)
    store.create_campaign("kept", now=0.0)
    store.engine.dispose()
    assert ensure_schema(url) == "upgraded"
    assert _diff(url) == []
    assert [c.name for c in DialerStore(url).campaigns()] == ["kept"]
