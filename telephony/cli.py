"""``dialtone``: the command line.

``dialtone serve`` runs the SIP endpoint (and, with ``--flow``, the IVR); the other
subcommands come from their packages (``dtmf``/``amd`` from telephony.dsp_cli, ``flow``
from ivr_flows.cli, ``router``/``agent`` from routing.cli).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from telephony.errors import ConfigError, DialtoneError

log = logging.getLogger("dialtone")

_PLUGINS = ("telephony.dsp_cli", "ivr_flows.cli", "routing.cli")


def parse_hostport(text: str, default_port: int = 5080) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    host = host.strip("[]")
    if not port.isdigit():
        raise ConfigError(f"bad address {text!r}: want HOST:PORT")
    return host, int(port)


def parse_port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit() or int(lo) >= int(hi):
        raise ConfigError(f"bad port range {text!r}: want LOW-HIGH")
    return int(lo), int(hi)


def _user_password(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise ConfigError(f"bad --auth-user {text!r}: want USER:PASSWORD")
    return user, password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialtone", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="answer calls over SIP/RTP (and run the IVR flow)")
    serve.add_argument("--sip", default="127.0.0.1:5080", help="HOST:PORT to listen on (UDP+TCP)")
    serve.add_argument("--advertise", default=None, help="host to put in Via/Contact/SDP")
    serve.add_argument("--rtp-ports", default="20000-30000", help="RTP port range LOW-HIGH")
    serve.add_argument("--events", default=None, help="append call events as JSON lines here")
    serve.add_argument("--flow", default=None, help="IVR flow file (YAML/JSON) to run on calls")
    serve.add_argument("--mqtt", default=None,
                       help="mqtt://HOST:PORT of the routing core (default: in-process router)")
    serve.add_argument("--router-config", default=None,
                       help="YAML of the in-process reference router (default: "
                            "routing/examples/router.yaml); unused with --mqtt")
    serve.add_argument("--db", default="sqlite:///var/dialtone.db", help="SQLAlchemy URL")
    serve.add_argument("--node-id", default=None, help="this node's id (default: host-port)")
    serve.add_argument("--media-timeout", type=float, default=30.0,
                       help="end a call after this many seconds without RTP (0: never)")
    serve.add_argument("--trusted", default=None,
                       help="comma-separated source addresses trusted without digest auth")
    serve.add_argument("--auth-user", action="append", default=[], metavar="USER:PASSWORD",
                       help="with --trusted: INVITEs from other sources must authenticate "
                            "(digest, SHA-256 or MD5) as one of these users (repeatable)")
    serve.add_argument("--auth-realm", default="dialtone", help="realm of those challenges")
    serve.add_argument("--auth-algorithm", action="append", default=[],
                       choices=("SHA-256", "MD5"),
                       help="digest algorithms offered, strongest first (default SHA-256 and "
                            "MD5; some old clients, SIPp among them, fail on SHA-256)")
    serve.add_argument("--recognizer", default="template",
                       choices=("template", "pocketsphinx", "vosk"),
                       help="speech engine for menus: template (offline DTW over espeak-ng "
                            "renderings of the grammar, any language; default), pocketsphinx "
                            "(English), vosk (needs --vosk-model)")
    serve.add_argument("--vosk-model", default=None, metavar="DIR",
                       help="path of a Vosk model directory (8 kHz or 16 kHz)")
    serve.add_argument("--no-tcp", action="store_true", help="UDP only")
    serve.add_argument("--register", default=None,
                       help="register to this registrar URI (with --user/--password)")
    serve.add_argument("--user", default=None)
    serve.add_argument("--password", default=None)
    serve.add_argument("--answer-delay", type=float, default=0.0,
                       help="ring (180) this many seconds before answering")
    serve.add_argument("--sip-t1", type=float, default=0.5,
                       help="SIP timer T1 in seconds (RFC 3261 17.1.1.1; lower on loopback tests)")
    serve.add_argument("--sip-trace", default=None,
                       help="append every SIP message sent and received to this file")
    serve.set_defaults(func=_cmd_serve)

    for name in _PLUGINS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # a package without its CLI yet must not break the rest
            log.debug("CLI plugin %s unavailable: %s", name, exc)
            continue
        add = getattr(module, "add_parsers", None)
        if add is not None:
            add(sub)
    return parser


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _cmd_serve(args: argparse.Namespace) -> int:
    from telephony.server import ServeOptions, serve

    host, port = parse_hostport(args.sip)
    lo, hi = parse_port_range(args.rtp_ports)
    options = ServeOptions(
        host=host, port=port, advertise=args.advertise, rtp_ports=(lo, hi), events=args.events,
        flow=args.flow, mqtt=args.mqtt, router_config=args.router_config, db=args.db, node_id=args.node_id,
        media_timeout=args.media_timeout,
        trusted=tuple(a.strip() for a in args.trusted.split(",")) if args.trusted else None,
        auth_users=tuple(_user_password(u) for u in args.auth_user), auth_realm=args.auth_realm,
        auth_algorithms=tuple(args.auth_algorithm) or ("SHA-256", "MD5"),
        recognizer=args.recognizer, vosk_model=args.vosk_model,
        tcp=not args.no_tcp, register=args.register, user=args.user, password=args.password,
        answer_delay=args.answer_delay, sip_trace=args.sip_trace, sip_t1=args.sip_t1,
    )
    _install_uvloop()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except NotImplementedError:
                pass
        return await serve(options, stop)

    return asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Any = args.func
    try:
        return int(func(args) or 0)
    except DialtoneError as exc:
        print(f"dialtone: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
