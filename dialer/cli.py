"""``dialtone campaign ...`` and ``dialtone dnc ...``: the store's command line.

:func:`add_parsers` registers both on an argparse sub-parsers action (the node's
``dialtone/cli.py`` calls it); :func:`main` runs them alone (tests, ``python -m dialer.cli``).
Every handler takes the parsed namespace and a rich Console and returns an exit code.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dialer.db import DEFAULT_DB_URL, make_engine
from dialer.errors import DialerError, ListImportError
from dialer.lists import ColumnMapping
from dialer.models import GLOBAL_SCOPE
from dialer.policy import CampaignSettings
from dialer.store import RECYCLE_DEFAULT, DialerStore
from dialer.windows import CallingWindow

__all__ = ["add_parsers", "main"]

Handler = Callable[[argparse.Namespace, Console], int]

BAD_ROWS_HEADER = ("row", "kind", "reason", "column", "value")
"""Columns of ``campaign import --bad-rows FILE``: the spreadsheet row (header = 1); ``kind``
``rejected`` (not imported), ``warning`` (imported without that number) or ``unknown_zone``
(imported, never dialled); the reason; the column and value at fault."""


def _store(args: argparse.Namespace) -> DialerStore:
    return DialerStore(make_engine(args.db))


def _now(args: argparse.Namespace) -> float:
    # The command line is the glue: it owns the clock (tests pass --now).
    return float(args.now) if getattr(args, "now", None) is not None else time.time()


def _common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument("--db", default=DEFAULT_DB_URL,
                   help=f"database URL (default {DEFAULT_DB_URL}; postgresql://... for "
                        "several dialer processes)")
    p.add_argument("--now", type=float, default=None, help=argparse.SUPPRESS)
    if json_flag:
        p.add_argument("--json", action="store_true", help="print JSON")


def _parse_value(text: str) -> Any:
    """``key=value`` values are YAML scalars/structures (numbers, lists, mappings)."""
    return yaml.safe_load(text)


def _settings_from_args(args: argparse.Namespace, base: CampaignSettings) -> CampaignSettings:
    st = base
    if args.file:
        data = yaml.safe_load(Path(args.file).read_text()) or {}
        data.pop("name", None)
        st = CampaignSettings.from_dict({**st.to_dict(), **data})
    for key in ("region", "caller_id", "pacing", "kind"):
        v = getattr(args, key, None)
        if v is not None:
            st = st.with_value(key, v)
    if args.max_attempts is not None:
        st = st.with_value("max_attempts", args.max_attempts)
    if args.window is not None:
        st = st.replace(window=_window_arg(args.window))
    return st


def _window_arg(text: str) -> CallingWindow:
    """``always``, ``09:00-20:00``, ``mon-fri 09:00-20:00`` or a YAML mapping."""
    t = text.strip()
    if t.lower() == "always":
        return CallingWindow.parse("always")
    if t.startswith("{"):
        return CallingWindow.parse(yaml.safe_load(t))
    days = "mon,tue,wed,thu,fri,sat,sun"
    if " " in t:
        days, t = t.split(None, 1)
        if "-" in days and "," not in days:
            order = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            a, b = days.split("-")
            days = ",".join(order[order.index(a[:3].lower()):order.index(b[:3].lower()) + 1])
    start, _, end = t.partition("-")
    return CallingWindow.daily(start, end, days.split(","))


# -- campaign ---------------------------------------------------------------------------------

def _campaign_create(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    st = _settings_from_args(args, CampaignSettings())
    info = store.create_campaign(args.name, st, now=_now(args))
    if args.json:
        con.print_json(json.dumps({"id": info.id, "name": info.name,
                                   "settings": st.to_dict()}))
    else:
        con.print(f"campaign [bold]{info.name}[/] created (region {st.region})")
    return 0


def _campaign_import(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    if args.mapping:
        mapping = ColumnMapping.parse(args.mapping)
    else:
        mapping = ColumnMapping(tuple(c.strip() for c in args.phone.split(",")),
                                args.timezone_column, args.language_column,
                                args.priority_column)
    path = Path(args.file)
    size = path.stat().st_size
    quiet = args.json or args.no_progress or size < 1_000_000
    bad_out: IO[str] | None = None
    sink: Callable[[ListImportError, str], None] | None = None
    if args.bad_rows:
        # Every problem, as it is found (the report on screen keeps only the first ones).
        bad_out = open(args.bad_rows, "w", newline="", encoding="utf-8")  # noqa: SIM115
        writer = csv.writer(bad_out)
        writer.writerow(BAD_ROWS_HEADER)

        def sink(err: ListImportError, kind: str) -> None:
            writer.writerow((err.row, kind, err.reason, err.column or "", err.value or ""))
    try:
        with Progress(TextColumn("importing"), BarColumn(), DownloadColumn(),
                      TimeRemainingColumn(), console=con, disable=quiet) as bar:
            task = bar.add_task("import", total=size)
            report = store.import_contacts(
                args.name, path, mapping, now=_now(args), encoding=args.encoding,
                delimiter=args.delimiter,
                progress=lambda done: bar.update(task, completed=done), on_problem=sink)
            bar.update(task, completed=size)
    finally:
        if bad_out is not None:
            bad_out.close()
    if args.json:
        con.print_json(json.dumps(report.to_dict()))
    else:
        t = Table(title=f"import into {args.name}")
        for col in ("rows", "imported", "merged", "bad rows", "warnings", "unknown zone"):
            t.add_column(col, justify="right")
        t.add_row(*(f"{v:,}" for v in (report.rows, report.imported, report.merged,
                                       report.bad_rows, report.warnings,
                                       report.unknown_zone)))
        con.print(t)
        if report.problems:
            p = Table(title="problems (first ones)")
            p.add_column("row", justify="right")
            p.add_column("column")
            p.add_column("reason")
            p.add_column("value")
            for e in report.problems[:args.show]:
                p.add_row(str(e.row), e.column or "", e.reason, e.value or "")
            con.print(p)
        if report.unknown_zone_rows:
            con.print(f"[yellow]{report.unknown_zone} contacts with no known time zone (not "
                      f"dialled): rows {', '.join(map(str, report.unknown_zone_rows[:20]))}")
        if args.bad_rows:
            con.print(f"every problem ({report.bad_rows + report.warnings + report.unknown_zone:,}"
                      f" rows) written to {args.bad_rows}")
    return 0


def _campaign_recycle(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    wanted = [d.strip() for d in args.dispositions.split(",") if d.strip()]
    rep = store.recycle(args.name, now=_now(args), dispositions=wanted,
                        reset_attempts=args.reset_attempts)
    if args.json:
        con.print_json(json.dumps(rep.to_dict()))
        return 0
    t = Table(title=f"recycled in {args.name}")
    t.add_column("disposition")
    t.add_column("contacts back in the pool", justify="right")
    for d in rep.dispositions:
        t.add_row(d, f"{rep.by_disposition.get(d, 0):,}")
    con.print(t)
    con.print(f"{rep.recycled:,} contacts recycled")
    if rep.skipped_at_limit:
        con.print(f"[yellow]{rep.skipped_at_limit:,} at their attempt limit left final "
                  "(--reset-attempts to dial them again)")
    if rep.skipped_dnc:
        con.print(f"{rep.skipped_dnc:,} with no number that may be dialled (DNC or invalid) "
                  "left final")
    return 0


def _campaign_list(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    infos = store.campaigns()
    rows = []
    for i in infos:
        sm = store.summary(i.name, now=_now(args))
        rows.append({"name": i.name, "status": i.status, "region": i.settings.region,
                     "contacts": sm["contacts"], "attempts": sm["attempts"],
                     "abandon_rate": sm["abandonment"]["rate"]})
    if args.json:
        con.print_json(json.dumps(rows))
        return 0
    t = Table(title="campaigns")
    for col in ("name", "status", "region", "contacts", "attempts", "abandoned"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r["status"], r["region"], f"{r['contacts']:,}",
                  f"{r['attempts']:,}", f"{r['abandon_rate']:.1%}")
    con.print(t)
    return 0


def _campaign_show(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    info = store.campaign(args.name)
    sm = store.summary(args.name, now=_now(args))
    if args.json:
        con.print_json(json.dumps({"settings": info.settings.to_dict(), "summary": sm}))
        return 0
    t = Table(title=f"campaign {info.name}", show_header=False)
    t.add_column("key")
    t.add_column("value")
    for k, v in info.settings.to_dict().items():
        t.add_row(k, json.dumps(v) if not isinstance(v, str) else v)
    con.print(t)
    _print_summary(con, sm)
    return 0


def _print_summary(con: Console, sm: dict[str, Any]) -> None:
    t = Table(title="contacts")
    t.add_column("state / disposition")
    t.add_column("contacts", justify="right")
    for k, v in sm["by_state"].items():
        t.add_row(k, f"{v:,}")
    con.print(t)
    ab = sm["abandonment"]
    a = Table(title=f"abandonment (target {ab['target']:.1%} of live answers)")
    for col in ("window", "live answers", "abandoned", "rate"):
        a.add_column(col)
    a.add_row("campaign", str(ab["live"]), str(ab["abandoned"]), f"{ab['rate']:.2%}")
    a.add_row("this 30-day period", str(ab["period_live"]), str(ab["period_abandoned"]),
              f"{ab['period_rate']:.2%}")
    a.add_row("last 24 h", str(ab["live_24h"]), str(ab["abandoned_24h"]),
              f"{ab['rate_24h']:.2%}")
    con.print(a)
    con.print(f"budget left this period: {ab['budget_left']:.2f} abandoned calls; "
              f"unknown time zone: {sm['unknown_timezone']}")


def _campaign_set(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    st = store.campaign(args.name).settings
    for pair in args.values:
        key, sep, value = pair.partition("=")
        if not sep:
            raise DialerError(f"expected key=value, got {pair!r}")
        st = st.with_value(key.strip(), _parse_value(value))
    store.update_settings(args.name, st)
    if args.json:
        con.print_json(json.dumps(st.to_dict()))
    else:
        con.print(f"campaign [bold]{args.name}[/] updated")
    return 0


def _campaign_report(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    sm = store.summary(args.name, now=_now(args))
    if args.json:
        contacts = [] if args.summary_only else list(store.contact_report(args.name))
        con.print_json(json.dumps({"summary": sm, "contacts": contacts}, default=str))
        return 0
    _print_summary(con, sm)
    return 0


def _campaign_export(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    rows = store.ledger(args.name) if args.ledger else store.contact_report(args.name)
    out: IO[str] = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.format == "jsonl":
            for r in rows:
                out.write(json.dumps(r, default=str) + "\n")
        else:
            w: csv.DictWriter[str] | None = None
            for r in rows:
                flat = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                        for k, v in r.items()}
                if w is None:
                    w = csv.DictWriter(out, fieldnames=list(flat))
                    w.writeheader()
                w.writerow(flat)
    finally:
        if args.output:
            out.close()
    return 0


# -- dnc --------------------------------------------------------------------------------------

def _scope(store: DialerStore, args: argparse.Namespace) -> tuple[int | None, str]:
    if args.campaign:
        info = store.campaign(args.campaign)
        return info.id, info.settings.region
    return None, args.region


def _dnc_add(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    cid, region = _scope(store, args)
    done = [store.dnc.add(n, now=_now(args), campaign_id=cid, source=args.source,
                          region=region) for n in args.numbers]
    if args.json:
        con.print_json(json.dumps({"added": done, "campaign": args.campaign}))
    else:
        con.print(f"on the {'campaign ' + args.campaign if cid else 'global'} DNC list: "
                  + ", ".join(done))
    return 0


def _dnc_import(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    cid, region = _scope(store, args)
    rep = store.dnc.import_file(args.file, now=_now(args), campaign_id=cid, region=region,
                                column=args.column, source_name=f"import:{Path(args.file).name}")
    if args.json:
        con.print_json(json.dumps({"added": rep.added, "already": rep.already,
                                   "problems": [{"row": p.row, "reason": p.reason,
                                                 "value": p.value} for p in rep.problems]}))
        return 0
    con.print(f"{rep.added:,} added, {rep.already:,} already listed, "
              f"{len(rep.problems):,} bad lines")
    for p in rep.problems[:20]:
        con.print(f"  {p}")
    return 0


def _dnc_check(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    cid, region = _scope(store, args)
    entries = store.dnc.check(args.number, campaign_id=cid, region=region)
    found = [{"number": e.e164, "list": "global" if e.campaign_id == GLOBAL_SCOPE else
              args.campaign, "source": e.source, "added_at": e.added_at} for e in entries]
    if args.json:
        con.print_json(json.dumps({"number": args.number, "blocked": bool(found),
                                   "entries": found}))
    elif found:
        t = Table(title=f"{args.number} is on a do-not-call list")
        for col in ("number", "list", "source", "added_at"):
            t.add_column(col)
        for f in found:
            t.add_row(str(f["number"]), str(f["list"]), str(f["source"]),
                      time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(f["added_at"]))))
        con.print(t)
    else:
        con.print(f"{args.number}: not on a do-not-call list")
    return 1 if found else 0


def _dnc_remove(args: argparse.Namespace, con: Console) -> int:
    store = _store(args)
    cid, region = _scope(store, args)
    ok = store.dnc.remove(args.number, campaign_id=cid, region=region)
    con.print(f"{args.number}: {'removed' if ok else 'was not listed'}")
    return 0 if ok else 1


# -- registration -----------------------------------------------------------------------------

def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``campaign`` and ``dnc`` on ``sub``; each leaf sets ``func`` (a Handler)."""
    camp = sub.add_parser("campaign", help="outbound campaigns: lists, settings, reports")
    csub = camp.add_subparsers(dest="campaign_cmd", required=True)

    p = csub.add_parser("create", help="create a campaign")
    p.add_argument("name")
    p.add_argument("--file", help="campaign YAML (its keys become settings)")
    p.add_argument("--region", help="default region for national numbers (GB, US...)")
    p.add_argument("--caller-id", dest="caller_id")
    p.add_argument("--pacing")
    p.add_argument("--kind", choices=("agents", "message"))
    p.add_argument("--max-attempts", dest="max_attempts", type=int)
    p.add_argument("--window", help="'always', '09:00-20:00' or 'mon-fri 09:00-20:00' "
                                    "(callee's local time; default 08:00-21:00)")
    _common(p)
    p.set_defaults(func=_campaign_create)

    p = csub.add_parser("import", help="import a CSV list into a campaign")
    p.add_argument("name")
    p.add_argument("file")
    p.add_argument("--phone", default="phone",
                   help="phone column(s), comma-separated, in dialling order")
    p.add_argument("--timezone-column", dest="timezone_column")
    p.add_argument("--language-column", dest="language_column")
    p.add_argument("--priority-column", dest="priority_column")
    p.add_argument("--mapping", help="'phone=mobile,home;timezone=tz;language=lang;"
                                     "priority=prio' (instead of the flags above)")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--delimiter", default=",")
    p.add_argument("--show", type=int, default=20, help="problems to list")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--bad-rows", dest="bad_rows", metavar="FILE",
                   help="write every problem to FILE as CSV: "
                        + ",".join(BAD_ROWS_HEADER))
    _common(p)
    p.set_defaults(func=_campaign_import)

    p = csub.add_parser("recycle", help="put finished contacts back into the dialable pool "
                                        "(never DNC, opted-out or invalid numbers)")
    p.add_argument("name")
    p.add_argument("--dispositions", default=",".join(RECYCLE_DEFAULT),
                   help=f"final dispositions to recycle (default {','.join(RECYCLE_DEFAULT)})")
    p.add_argument("--reset-attempts", dest="reset_attempts", action="store_true",
                   help="start their attempt count again (else contacts at max_attempts stay)")
    _common(p)
    p.set_defaults(func=_campaign_recycle)

    p = csub.add_parser("list", help="list campaigns")
    _common(p)
    p.set_defaults(func=_campaign_list)

    p = csub.add_parser("show", help="a campaign's settings and state")
    p.add_argument("name")
    _common(p)
    p.set_defaults(func=_campaign_show)

    p = csub.add_parser("set", help="change settings: key=value (YAML values; retries.busy=600)")
    p.add_argument("name")
    p.add_argument("values", nargs="+")
    _common(p)
    p.set_defaults(func=_campaign_set)

    p = csub.add_parser("report", help="summary and per-contact dispositions")
    p.add_argument("name")
    p.add_argument("--summary-only", action="store_true")
    _common(p)
    p.set_defaults(func=_campaign_report)

    p = csub.add_parser("export", help="contacts (or the compliance ledger) as CSV or JSONL")
    p.add_argument("name")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--ledger", action="store_true", help="the call ledger, not the contacts")
    p.add_argument("-o", "--output")
    _common(p, json_flag=False)
    p.set_defaults(func=_campaign_export)

    from dialer.run_cli import add_run_parsers
    add_run_parsers(csub)

    dnc = sub.add_parser("dnc", help="do-not-call lists (global or per campaign)")
    dsub = dnc.add_subparsers(dest="dnc_cmd", required=True)

    def scope(q: argparse.ArgumentParser) -> None:
        q.add_argument("--campaign", help="the campaign's list (default: the global list)")
        q.add_argument("--region", default="US", help="region for national numbers")
        _common(q)

    p = dsub.add_parser("add", help="add numbers")
    p.add_argument("numbers", nargs="+")
    p.add_argument("--source", default="manual")
    scope(p)
    p.set_defaults(func=_dnc_add)
    p = dsub.add_parser("import", help="import one number per line, or a CSV")
    p.add_argument("file")
    p.add_argument("--column", help="CSV column with the numbers (default phone)")
    scope(p)
    p.set_defaults(func=_dnc_import)
    p = dsub.add_parser("check", help="is a number listed? (exit 1 if it is)")
    p.add_argument("number")
    scope(p)
    p.set_defaults(func=_dnc_check)
    p = dsub.add_parser("remove", help="take a number off a list")
    p.add_argument("number")
    scope(p)
    p.set_defaults(func=_dnc_remove)


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run a parsed command; a DialerError becomes a message and exit code 2."""
    con = console or Console()
    handler: Handler = args.func
    try:
        return handler(args, con)
    except DialerError as exc:
        con.print(f"[red]error:[/] {exc}")
        return 2


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """``python -m dialer.cli campaign ...`` (and tests)."""
    ap = argparse.ArgumentParser(prog="dialtone")
    add_parsers(ap.add_subparsers(dest="command", required=True))
    return run(ap.parse_args(argv), console)


if __name__ == "__main__":
    raise SystemExit(main())
