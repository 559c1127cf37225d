"""``dialtone``: the command line of a Dialtone node.

Every subcommand is registered here, explicitly: a module that fails to import fails the
command (and the test that runs each subcommand's ``--help``), it never vanishes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import yaml

from dialer import cli as dialer_cli
from dialer import sim_cli
from dialtone import db_cli
from dialtone.config import SERVE_FLAGS, NodeConfig, load_config
from dialtone.http import cli as console_cli
from dialtone_errors import DialtoneError
from ivr_flows import cli as flow_cli
from routing import cli as routing_cli
from telephony import dsp_cli

log = logging.getLogger("dialtone")


def _add_dialer_parsers(subparsers: Any) -> None:
    """``campaign`` and ``dnc``: their handlers take (args, console) and are run through
    :func:`dialer.cli.run`, which turns a DialerError into a message and exit 2.
    ``campaign run`` records its calls as CDRs in its ``--db``: the recorder is handed down
    (the dialer does not import this layer)."""
    from dialtone.cdr import campaign_run_cdrs

    before = set(subparsers.choices)
    dialer_cli.add_parsers(subparsers)
    for name in set(subparsers.choices) - before:
        subparsers.choices[name].set_defaults(runner=dialer_cli.run,
                                              call_recorder=campaign_run_cdrs)


# Each registers its subcommands on the top-level subparsers; the order is the order of --help.
REGISTRARS: tuple[tuple[str, Callable[[Any], None]], ...] = (
    ("flow", flow_cli.add_parsers),
    ("campaign/dnc", _add_dialer_parsers),
    ("dialer simulate", sim_cli.add_parsers),
    ("router/agent", routing_cli.add_parsers),
    ("dtmf/amd", dsp_cli.add_parsers),
    ("user", console_cli.add_parsers),
    ("db", db_cli.add_parsers),
    ("cdr", db_cli.add_cdr_parsers),
)


def _user_password(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError(f"bad --auth-user {text!r}: want USER:PASSWORD")
    return user, password


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """``--config`` and every node flag; an absent flag leaves its field to the file, the
    environment or the default (argparse.SUPPRESS keeps it out of the namespace)."""
    parser.add_argument("--config", metavar="YAML", default=None,
                        help="node configuration file (flags and DIALTONE_* variables win)")
    for flag in SERVE_FLAGS:
        dest = "cfg:" + flag.path
        if flag.kind == "false":
            parser.add_argument(flag.flag, dest=dest, action="store_false",
                                default=argparse.SUPPRESS, help=flag.help)
        elif flag.kind == "true":
            parser.add_argument(flag.flag, dest=dest, action="store_true",
                                default=argparse.SUPPRESS, help=flag.help)
        elif flag.kind == "append":
            parser.add_argument(flag.flag, dest=dest, action="append",
                                default=argparse.SUPPRESS, choices=flag.choices, help=flag.help)
        elif flag.kind == "user_password":
            parser.add_argument(flag.flag, dest=dest, action="append", type=_user_password,
                                default=argparse.SUPPRESS, metavar=flag.metavar, help=flag.help)
        else:
            parser.add_argument(flag.flag, dest=dest, default=argparse.SUPPRESS,
                                type=flag.convert or str, choices=flag.choices,
                                metavar=flag.metavar, help=flag.help)


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    flags: dict[str, Any] = {}
    for key, value in vars(args).items():
        if not key.startswith("cfg:"):
            continue
        path = key[len("cfg:"):]
        if path == "sip.trusted":
            value = [a.strip() for a in value.split(",") if a.strip()]
        elif path == "sip.auth_users":
            value = dict(value)
        flags[path] = value
    if flags.get("sip.password") is not None:
        print("dialtone: warning: --password on the command line is visible to every user "
              "(ps) and kept in the shell's history; use --password-file FILE or "
              "DIALTONE_SIP__PASSWORD", file=sys.stderr)
    if flags.get("sip.auth_users"):
        # Still honoured (scripts use it); the users are no secret, their passwords are.
        print("dialtone: warning: --auth-user USER:PASSWORD puts the password on the command "
              "line, visible to every user (ps) and kept in the shell's history; put the "
              "users in the configuration file (sip.auth_users) or in "
              "DIALTONE_SIP__AUTH_USERS='{\"USER\": \"PASSWORD\"}'", file=sys.stderr)
    return load_config(yaml_path=args.config, flags=flags)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialtone",
        description="Dialtone: a SIP/RTP IVR and predictive outbound dialer.")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="answer calls over SIP/RTP (and run the IVR flow)",
                           description="Run a node: SIP/RTP, the IVR flow, the routing bus.")
    add_config_flags(serve)
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="the node's effective configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser(
        "show", help="print the effective configuration (file < environment < flags), "
                     "secrets masked")
    add_config_flags(show)
    show.add_argument("--json", action="store_true", help="JSON instead of YAML")
    show.set_defaults(func=cmd_config_show)

    events = sub.add_parser("events", help="the call event log (--events) and its schema")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    schema = events_sub.add_parser("schema", help="print (or write) the event log's JSON Schema")
    schema.add_argument("--out", metavar="PATH")
    schema.set_defaults(func=cmd_events_schema)
    check = events_sub.add_parser("check", help="validate an event log against the schema")
    check.add_argument("files", nargs="+", metavar="EVENTS.jsonl")
    check.set_defaults(func=cmd_events_check)

    for _name, register in REGISTRARS:
        register(sub)
    return parser


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def cmd_serve(args: argparse.Namespace) -> int:
    from dialtone.node import serve

    config = config_from_args(args)
    from dialtone.logs import apply_log_format

    apply_log_format(config.log_format, node_id=config.effective_node_id)
    if config.workers > 1:
        from dialtone.workers import supervise

        return supervise(config, getattr(args, "argv", None) or sys.argv[1:])
    _install_uvloop()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except NotImplementedError:  # pragma: no cover - not POSIX
                pass
        return await serve(config, stop)

    return asyncio.run(main())


def cmd_config_show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    data = config_from_args(args).masked()
    if args.json:
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        out.write(yaml.safe_dump(data, sort_keys=False))
    return 0


def cmd_events_schema(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialtone.events import event_log_schema

    text = json.dumps(event_log_schema(), indent=2) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        (out or sys.stdout).write(text)
    return 0


def cmd_events_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialtone.events import check_event_log

    out = out or sys.stdout
    bad = 0
    for path in args.files:
        for problem in check_event_log(path):
            out.write(problem + "\n")
            bad += 1
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # serve --workers re-runs it
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Any = getattr(args, "runner", None) or args.func
    try:
        return int(func(args) or 0)
    except DialtoneError as exc:  # ConfigError included: a message, never a traceback
        print(f"dialtone: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
