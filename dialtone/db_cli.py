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


def _when(text: str) -> float:
    """ISO 8601 (a date, or a time; UTC unless it names its offset) or epoch seconds."""
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad time {text!r}: want ISO 8601 (2026-12-05 or 2026-12-05T10:00:00Z) "
            f"or epoch seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def add_cdr_parsers(subparsers: Any) -> None:
    """Register ``cdr export``."""
    cdr = subparsers.add_parser("cdr", help="call detail records (one row per call)")
    cdr_sub = cdr.add_subparsers(dest="cdr_command", required=True)
    export = cdr_sub.add_parser("export", help="write the CDRs of calls started in a period")
    export.add_argument("--since", type=_when, required=True, metavar="WHEN",
                        help="first call start (ISO 8601, UTC unless an offset is given, "
                             "or epoch seconds)")
    export.add_argument("--until", type=_when, default=None, metavar="WHEN",
                        help="end of the period, exclusive (default: now)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--out", metavar="PATH", default=None, help="file (default stdout)")
    add_db_option(export)
    export.set_defaults(func=cmd_cdr_export)


def _iso(t: float | None) -> str | None:
    from datetime import UTC, datetime

    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def cmd_cdr_export(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """CSV (a header, times in ISO 8601 UTC, the flow path as ``a>b>c``) or JSON lines (the
    path as a list).  Refuses a database behind head rather than guessing its columns."""
    import csv
    import json

    from dialer.db import make_engine
    from dialtone.cdr import CDR_FIELDS, iter_cdrs
    from dialtone.migrations import current_revision, head_revision
    from dialtone_errors import ConfigError

    url = database_url(args)
    if current_revision(url) != head_revision():
        raise ConfigError(f"database {url}: not at the newest schema; "
                          f"run `dialtone db upgrade --db URL` first")
    engine = make_engine(url)
    fh = open(args.out, "w", encoding="utf-8", newline="") if args.out else None  # noqa: SIM115
    sink = fh or out or sys.stdout
    times = ("started_at", "answered_at", "ended_at")
    try:
        writer = csv.writer(sink) if args.format == "csv" else None
        if writer is not None:
            writer.writerow(CDR_FIELDS)
        for row in iter_cdrs(engine, since=args.since, until=args.until):
            path = json.loads(row["flow_path"] or "[]")
            for name in times:
                row[name] = _iso(row[name])
            if writer is not None:
                row["flow_path"] = ">".join(path)
                writer.writerow(["" if row[k] is None else row[k] for k in CDR_FIELDS])
            else:
                row["flow_path"] = path
                sink.write(json.dumps(row) + "\n")
    finally:
        if fh is not None:
            fh.close()
        engine.dispose()
    return 0
