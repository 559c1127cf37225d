"""Alembic's environment for the node's schema (run by :mod:`dialtone.migrations`)."""

from __future__ import annotations

from alembic import context

from dialtone.migrations import _engine, target_metadata

config = context.config
url = config.attributes.get("dialtone_url") or config.get_main_option("sqlalchemy.url")
if not url:
    raise SystemExit("dialtone migrations: no database URL (use `dialtone db upgrade --db URL`)")
metadata = target_metadata()

engine = _engine(url)
try:
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # BEGIN IMMEDIATE (dialer.db): nodes starting together on one file take turns, and
            # the second reads the version the first wrote instead of creating tables twice.
            connection = connection.execution_options(dialtone_write=True)
        # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table.
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
finally:
    engine.dispose()
