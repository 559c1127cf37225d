"""``dialtone db upgrade|current``: the node's schema under Alembic (dialtone.migrations)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

__all__ = ["add_parsers", "database_url"]


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """``--db URL`` and ``--config YAML``: the URL is the flag, else the node's configuration
    (file < DIALTONE_DB < flag), as ``dialtone serve`` would use it."""
    parser.add_argument("--db", metavar="URL", default=None,
                        help="SQLAlchemy URL (default: the node's, sqlite:///var/dialtone.db)")
    parser.add_argument("--config", metavar="YAML", default=None,
                        help="node configuration file whose db: to use")


def database_url(args: argparse.Namespace) -> str:
    """The database a command works on: ``--db``, else the node configuration's ``db``."""
    from dialtone.config import load_config

    flags = {"db": args.db} if args.db else {}
    return load_config(yaml_path=args.config, flags=flags).db


def add_parsers(subparsers: Any) -> None:
    """Register ``db upgrade`` and ``db current``."""
    db = subparsers.add_parser("db", help="the database schema (Alembic migrations)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the database to the newest schema")
    add_db_option(up)
    up.add_argument("--revision", default="head", help="target revision (default head)")
    up.set_defaults(func=cmd_db_upgrade)
    cur = db_sub.add_parser("current", help="print the database's revision and the head")
    add_db_option(cur)
    cur.set_defaults(func=cmd_db_current)


def cmd_db_upgrade(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialtone.config import mask_url
    from dialtone.migrations import current_revision, upgrade

    out = out or sys.stdout
    url = database_url(args)
    before = current_revision(url)
    upgrade(url, args.revision)
    after = current_revision(url)
    out.write(f"{mask_url(url)}: {before or 'empty'} -> {after}\n")
    return 0


def cmd_db_current(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Prints ``URL: REVISION (head HEAD)``; exit 1 when the database is behind head."""
    from dialtone.config import mask_url
    from dialtone.migrations import current_revision, head_revision

    out = out or sys.stdout
    url = database_url(args)
    current, head = current_revision(url), head_revision()
    state = "at head" if current == head else "behind: run `dialtone db upgrade`"
    out.write(f"{mask_url(url)}: {current or 'empty'} (head {head}, {state})\n")
    return 0 if current == head else 1
