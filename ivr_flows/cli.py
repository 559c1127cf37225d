"""``dialtone flow ...``: validate, schema, prompts, run (caller scripts on a virtual clock).

The lead wires :func:`add_parsers` into the ``dialtone`` command; ``python -m
ivr_flows.cli flow ...`` works on its own too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from dialtone_errors import DialtoneError
from ivr_flows.errors import FlowValidationError
from ivr_flows.loader import (
    BUILTIN_KEYS,
    LoadedFlow,
    flow_schema,
    load_flow,
    used_prompt_keys,
)


def add_parsers(subparsers: Any) -> None:
    """Register ``flow`` and its subcommands on an argparse subparsers object."""
    flow = subparsers.add_parser("flow", help="IVR flows: validate, schema, prompts, run")
    sub = flow.add_subparsers(dest="flow_command", required=True)
    v = sub.add_parser("validate", help="validate flow files; every problem, file:line [node]")
    v.add_argument("flows", nargs="+", metavar="FLOW")
    v.set_defaults(func=cmd_validate)
    s = sub.add_parser("schema", help="print (or write) the flow format's JSON Schema")
    s.add_argument("--out", metavar="PATH")
    s.set_defaults(func=cmd_schema)
    p = sub.add_parser("prompts", help="which recordings are missing per language")
    p.add_argument("flow", metavar="FLOW")
    p.set_defaults(func=cmd_prompts)
    r = sub.add_parser("run", help="run caller scripts against a flow on a virtual clock")
    r.add_argument("flow", metavar="FLOW")
    r.add_argument("--caller", nargs="+", required=True, metavar="SCRIPT")
    r.add_argument("--json", action="store_true", help="machine-readable results")
    r.add_argument("--coverage", action="store_true", help="list edges no script exercised")
    r.add_argument("--caller-side", choices=("media", "event"), default="media",
                   help="media: RTP/G.711/VAD/DTMF detection in-process (default); "
                        "event: event-level caller, faster")
    r.add_argument("--sip", metavar="URI", default=None,
                   help="drive a real call to this SIP URI (a node serving FLOW) instead of "
                        "running in process; expectations are checked in --events")
    r.add_argument("--events", metavar="PATH", default=None,
                   help="with --sip: the event log the serving node writes (--events)")
    r.set_defaults(func=cmd_run)


def _load_or_report(path: str, out: TextIO) -> LoadedFlow | None:
    """The loaded flow, or None after printing each of its problems to ``out``."""
    try:
        return load_flow(path)
    except FlowValidationError as e:
        for p in e.problems:
            print(str(p), file=out)
        return None


def cmd_validate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    status = 0
    for f in args.flows:
        try:
            lf = load_flow(f)
        except FlowValidationError as e:
            status = 1
            for p in e.problems:
                print(str(p), file=out)
            print(f"{f}: {len(e.problems)} problem(s)", file=out)
        else:
            print(f"{f}: OK ({len(lf.flow.nodes)} nodes, languages "
                  f"{', '.join(lf.flow.languages)})", file=out)
    return status


def cmd_schema(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    text = json.dumps(flow_schema(), indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=out)
    else:
        print(text, file=out)
    return 0


def cmd_prompts(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    lf = _load_or_report(args.flow, out)
    if lf is None:
        return 1
    keys = used_prompt_keys(lf.flow) - BUILTIN_KEYS
    missing = lf.catalogue.missing_recordings(keys)
    for lang, ks in missing.items():
        have = len(keys) - len(ks)
        print(f"{lang}: {have}/{len(keys)} recorded; {len(ks)} by TTS", file=out)
        for k in ks:
            print(f"  missing {lang}/{k}.wav", file=out)
    return 0


def cmd_run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from ivr_flows.harness import uncovered_edges
    from ivr_flows.pytest_plugin import make_harness
    from ivr_flows.scripts import load_script

    lf = _load_or_report(args.flow, out)
    if lf is None:
        return 1
    results = []
    skipped: list[str] = []
    try:
        if getattr(args, "sip", None):
            if not args.events:
                print("error: --sip needs --events PATH (the serving node's event log)", file=out)
                return 2
            import asyncio

            from ivr_flows.sip_caller import run_scripts_over_sip

            ran = asyncio.run(run_scripts_over_sip([load_script(s) for s in args.caller],
                                                   target=args.sip, events=Path(args.events)))
            results = [r for r in ran if not isinstance(r, str)]
            skipped = [r for r in ran if isinstance(r, str)]
        else:
            harness = make_harness(lf, media=getattr(args, "caller_side", "media") == "media")
            for s in args.caller:
                results.append(harness.run(load_script(s)))
    except DialtoneError as e:
        print(f"error: {e}", file=out)
        return 2
    for reason in skipped:
        print(reason, file=out)
    failed = [r for r in results if not r.passed]
    missing = uncovered_edges(lf, results) if args.coverage else []
    if args.json:
        doc: dict[str, Any] = {"flow": str(args.flow), "passed": not failed,
                               "results": [r.to_dict() for r in results]}
        if args.coverage:
            doc["uncovered_edges"] = [list(e) for e in missing]
        print(json.dumps(doc, indent=2, default=str, ensure_ascii=False), file=out)
    else:
        for r in results:
            print(f"== {r.script}: {'PASS' if r.passed else 'FAIL'} "
                  f"({r.simulated_s:.1f} s simulated)", file=out)
            for line in r.trace_lines():
                print(line, file=out)
        if args.coverage:
            print(f"coverage: {len(missing)} edge(s) not exercised", file=out)
            for src, label, target in missing:
                print(f"  {src} --{label}--> {target}", file=out)
        print(f"{len(results) - len(failed)}/{len(results)} script(s) passed", file=out)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dialtone")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
