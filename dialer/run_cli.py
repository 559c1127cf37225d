"""``dialtone campaign run|start|pause|resume|status|schema``: campaigns on real calls.

``run CAMPAIGN.yaml --trunk sip:HOST:PORT`` creates or updates the campaign from its file,
imports its list, and dials it with its own SIP user agent on 127.0.0.1 (port 0: the OS
picks one; not the whole node).  ``--until-done`` returns when every contact has a final
disposition or waits for a retry later than the run; ``--json`` prints the report
``{"summary": {...}, "contacts": [...]}``.

``--register sip:USER@HOST[:PORT]`` dials registered to a PBX instead of over a trunk
(dialer.registration): the password comes from ``--password-file`` or the environment
variable ``DIALTONE_DIALER__PASSWORD`` (the node's name for it), never from the command line,
where ``ps`` and the shell's history would show it.  ``--trunk`` then defaults to the PBX.

The calls placed get CDR rows in ``--db`` when the caller hands a recorder down
(:data:`RecorderFactory`; ``dialtone campaign run`` does, from dialtone.cdr).

``start`` and ``resume`` set the campaign running (a dialer running it picks that up within
a second), ``pause`` stops its dialling (calls in progress go on), ``status`` is a live view
of the running dialer's snapshot and the store's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from dialer.campaign_file import CampaignFileError, campaign_schema, load_campaign_file
from dialer.db import DEFAULT_DB_URL, make_engine
from dialer.engine import CampaignEngine, EngineConfig, EngineStats
from dialer.errors import CampaignNotFound, DialerError
from dialer.lists import ColumnMapping
from dialer.registration import PbxAccount, PbxRegistration
from dialer.store import DialerStore

__all__ = ["PASSWORD_ENV", "CallObserver", "RecorderFactory", "add_run_parsers",
           "campaign_report", "pbx_account", "run_campaign"]

PASSWORD_ENV = "DIALTONE_DIALER__PASSWORD"
"""The registration password's environment variable (as ``dialtone serve`` reads it)."""

CallObserver = Callable[[dict[str, Any]], None]
"""Sees every event of the run (the user agent's and the engine's), as they happen."""

RecorderFactory = Callable[[str, str], AbstractContextManager[CallObserver | None]]
"""``(db URL, node id)`` -> a context giving an observer that records the calls (CDRs),
flushed when the context exits.  Passed down by the layer that owns CDRs."""


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL (default {DEFAULT_DB_URL})")
    p.add_argument("--now", type=float, default=None, help=argparse.SUPPRESS)


def add_run_parsers(csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add run/start/pause/resume/status/schema to ``dialtone campaign``'s sub-parsers."""
    p = csub.add_parser("run", help="create/update a campaign from its file and dial it")
    p.add_argument("file", help="campaign YAML")
    p.add_argument("--trunk", default=None, help="sip:HOST:PORT the calls go to "
                   "(default with --register: the PBX)")
    p.add_argument("--register", default=None, metavar="sip:USER@HOST[:PORT]",
                   help="register to this PBX as USER before dialling (kept refreshed; "
                   "unregistered at the end); calls go through it with that identity")
    p.add_argument("--auth-user", default=None,
                   help="digest user for REGISTER and INVITE challenges (default USER)")
    p.add_argument("--password-file", default=None, metavar="FILE",
                   help=f"the registration password (first line); default: the "
                   f"environment variable {PASSWORD_ENV}")
    p.add_argument("--register-expires", type=int, default=300, metavar="SECONDS",
                   help="registration expiry asked for (default 300)")
    p.add_argument("--until-done", action="store_true",
                   help="return when no contact can be dialled any more in this run")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--owner", default="", help="lease owner (default HOST:CAMPAIGN)")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--sip-port", type=int, default=0, help="local SIP port (0: any)")
    p.add_argument("--rtp-ports", default="20000-30000", help="local RTP port range")
    p.add_argument("--events", default=None, help="append the call events (JSON lines)")
    p.add_argument("--mqtt", default=None, metavar="URL",
                   help="mqtt://HOST:PORT of the routing core: agents from its presence "
                        "(agents: {from: routing}), contacts offered to it when connected")
    _db_arg(p)
    p.set_defaults(func=_run)

    for name, status, text in (("start", "running", "let the campaign dial"),
                               ("resume", "running", "dial again after a pause"),
                               ("pause", "paused", "stop dialling (calls in progress go on)")):
        p = csub.add_parser(name, help=text)
        p.add_argument("name")
        _db_arg(p)
        p.set_defaults(func=_set_status, status=status, verb=name)

    p = csub.add_parser("status", help="a live view of a campaign")
    p.add_argument("name")
    p.add_argument("--once", action="store_true", help="print once and exit")
    p.add_argument("--json", action="store_true", help="print once, as JSON")
    p.add_argument("--interval", type=float, default=1.0)
    _db_arg(p)
    p.set_defaults(func=_status)

    p = csub.add_parser("schema", help="the campaign file's JSON Schema")
    p.set_defaults(func=_schema)


def _schema(args: argparse.Namespace, con: Console) -> int:
    con.file.write(json.dumps(campaign_schema(), indent=2) + "\n")
    return 0


def _set_status(args: argparse.Namespace, con: Console) -> int:
    store = DialerStore(make_engine(args.db))
    info = store.campaign(args.name)
    if args.status == "running" and not info.settings.caller_id:
        con.print(f"[red]error:[/] campaign {args.name!r} has no caller_id: it cannot start")
        return 2
    store.set_status(args.name, args.status)
    con.print(f"campaign [bold]{args.name}[/] {args.status}")
    return 0


# --- report --------------------------------------------------------------------------------------


def campaign_report(store: DialerStore, name: str, *, now: float,
                    stats: EngineStats | None = None) -> dict[str, Any]:
    """``{"summary": {...}, "contacts": [...]}`` (issue 14's report)."""
    summary = store.summary(name, now=now)
    contacts = list(store.contact_report(name))
    by: dict[str, int] = {}
    for c in contacts:
        by[c["disposition"]] = by.get(c["disposition"], 0) + 1
    summary["dispositions"] = dict(sorted(by.items()))
    if stats is not None:
        ms = stats.amd_decision_ms
        summary["run"] = {
            "placed": stats.placed, "answered": stats.answered,
            "connected": stats.connected, "connected_late": stats.connected_late,
            "abandoned": stats.abandoned, "machines": stats.machines, "peak_answered": stats.peak_answered,
            "amd_decision_ms_median": statistics.median(ms) if ms else None,
            "wait_s_max": max(stats.wait_s) if stats.wait_s else None,
            "greeting_to_bridge_s_max": (max(stats.greeting_to_bridge_s)
                                         if stats.greeting_to_bridge_s else None)}
    return {"summary": summary, "contacts": contacts}


# --- run -----------------------------------------------------------------------------------------


def pbx_account(register: str, *, auth_user: str | None, password_file: str | None,
                expires: int = 300, env: dict[str, str] | None = None) -> PbxAccount:
    """The account of ``--register``: the password from ``password_file`` (its first line)
    or the environment (:data:`PASSWORD_ENV`).  ``auth_user`` is the digest user alone: one
    with a colon looks like ``USER:PASSWORD`` (the form ``dialtone serve --auth-user``
    takes), a password that ``ps`` shows; it is used as given (as before), with a warning
    that does not repeat it."""
    if auth_user is not None and ":" in auth_user:
        Console(stderr=True, highlight=False).print(
            "[yellow]warning:[/] --auth-user takes the digest user only and is used as "
            "given; a password there is visible to every user (ps) and kept in the shell's "
            f"history: give it with --password-file FILE or {PASSWORD_ENV}")
    if password_file is not None:
        try:
            text = Path(password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise DialerError(f"--password-file {password_file}: {exc.strerror}") from exc
        password = text.splitlines()[0] if text.strip() else ""
    else:
        password = (os.environ if env is None else env).get(PASSWORD_ENV, "")
    if not password:
        raise DialerError(f"--register needs a password: --password-file FILE or the "
                          f"environment variable {PASSWORD_ENV}")
    return PbxAccount.parse(register, password=password, auth_user=auth_user, expires=expires)


class _Tee:
    """An event sink that writes the log and hands each event to observers."""

    def __init__(self, sink: Any, observers: list[CallObserver]) -> None:
        self.sink = sink
        self.observers = observers

    def emit(self, event: dict[str, Any]) -> None:
        self.sink.emit(event)
        for observe in self.observers:
            observe(event)


async def run_campaign(path: str | Path, *, trunk: str | None = None, db: str = DEFAULT_DB_URL,
                       until_done: bool = True, owner: str = "",
                       max_seconds: float | None = None, sip_port: int = 0,
                       rtp_ports: tuple[int, int] = (20000, 30000),
                       events_path: str | None = None, now: float | None = None,
                       mqtt: str | None = None, account: PbxAccount | None = None,
                       recorder: RecorderFactory | None = None) -> dict[str, Any]:
    """Create/update the campaign from ``path``, import its list, dial it; the report.

    With ``account`` the user agent registers to the PBX first (and ``trunk`` defaults to
    it); with ``recorder`` every call placed is recorded (CDRs) into ``db``."""
    loaded = load_campaign_file(path)
    if trunk is None:
        if account is None:
            raise DialerError("campaign run needs --trunk sip:HOST:PORT or --register")
        trunk = account.registrar
    name = loaded.spec.name
    node_id = owner or f"{socket.gethostname()}:{name}"
    cm: AbstractContextManager[CallObserver | None] = (
        recorder(db, node_id) if recorder is not None else contextlib.nullcontext(None))
    with cm as observe:
        return await _dial(loaded, name, trunk=trunk, db=db, until_done=until_done,
                           owner=owner, max_seconds=max_seconds, sip_port=sip_port,
                           rtp_ports=rtp_ports, events_path=events_path, now=now,
                           account=account, observe=observe, mqtt=mqtt)


async def _dial(loaded: Any, name: str, *, trunk: str, db: str, until_done: bool,
                owner: str, max_seconds: float | None, sip_port: int,
                rtp_ports: tuple[int, int], events_path: str | None, now: float | None,
                account: PbxAccount | None, observe: CallObserver | None,
                mqtt: str | None) -> dict[str, Any]:
    from telephony.aio.media_engine import MediaEngineConfig
    from telephony.aio.useragent import UserAgent, UserAgentConfig
    from telephony.eventlog import EventSink, JsonLinesEventLog, NullEventLog
    from telephony.sip.config import SipConfig

    store = DialerStore(make_engine(db))
    settings = loaded.settings()
    t0 = time.time() if now is None else now
    try:
        store.campaign(name)
        store.update_settings(name, settings)
    except CampaignNotFound:
        store.create_campaign(name, settings, now=t0)
    imported: dict[str, Any] | None = None
    if loaded.list_path is not None:
        imp = store.import_contacts(name, loaded.list_path, ColumnMapping(), now=t0)
        imported = imp.to_dict()
        imported["problems"] = imported["problems"][:50]
    log_sink: EventSink = JsonLinesEventLog(events_path) if events_path else NullEventLog()
    observers: list[CallObserver] = [observe] if observe is not None else []
    events = _Tee(log_sink, observers)
    # Only what a dialer needs: a SIP user agent on loopback or the given port, no node.
    config = UserAgentConfig(
        sip=SipConfig(host="127.0.0.1", port=sip_port),
        # (rtp_read="tick" reads RTP at the media tick: cheaper per datagram in isolation,
        # not shown end to end; BENCHMARKS.md "The dialer's media path (issue 14)")
        media=MediaEngineConfig(host="127.0.0.1", port_min=rtp_ports[0],
                                port_max=rtp_ports[1]),
        listen_tcp=False)
    ua = UserAgent(config, events=events)
    await ua.start()
    stats: EngineStats | None = None
    engine: CampaignEngine | None = None
    bus = None
    registration: PbxRegistration | None = None
    error: str | None = None
    pausing: list[asyncio.Task[None]] = []
    stopper = _Shutdown(asyncio.get_running_loop())
    try:
        bus = await _open_bus(mqtt, owner or f"{socket.gethostname()}:{name}")
        engine_config = EngineConfig(trunk=trunk, owner=owner)
        if account is not None:
            registration = PbxRegistration(ua, account)
            observers.append(registration.observe)
            engine_config = EngineConfig(trunk=trunk, owner=owner,
                                         credentials=account.credentials,
                                         from_uri=account.aor,
                                         may_dial=registration.may_dial,
                                         registration=registration.snapshot)
        engine = CampaignEngine(store, name, ua, engine_config, events=events, bus=bus)
        if registration is not None:
            run_engine = engine

            def refused(message: str) -> None:
                # Refused while dialling (a refresh): pause, as a trunk's 403 does.
                run_engine.config_error = message
                pausing.append(asyncio.ensure_future(run_engine.pause(message)))

            # Register before the first call; refused: dial nothing.
            if not await registration.start() and registration.state == "refused":
                error = registration.message
                store.set_status(name, "paused")
            registration.on_refused = refused
        if error is None:
            stopper.install(engine)
            stats = await engine.run(until_done=until_done, max_seconds=max_seconds)
            if pausing:
                await asyncio.gather(*pausing)
            if until_done and not engine.paused:
                store.set_status(name, "done")
    finally:
        stopper.restore()
        if registration is not None:
            await registration.close()
        await ua.close()
        if bus is not None:
            await bus.close()
        if events_path:
            log_sink.close()  # type: ignore[attr-defined]
    report = campaign_report(store, name, now=time.time(), stats=stats)
    if imported is not None:
        report["summary"]["import"] = imported
    if engine is not None and engine.config_error is not None:
        error = engine.config_error
    if registration is not None:
        # state, the registrar's last answer, the last failure (after close: unregistered)
        report["summary"]["registration"] = registration.snapshot()
    if error is not None:
        report["summary"]["error"] = error
    return report


SHUTDOWN_EXIT_S = 4.0
"""After the first SIGTERM/SIGINT, ``campaign run`` exits within this long whatever it is
waiting on (status 128 + the signal if it had to cut its shutdown short).  The shutdown:
no new call; every call in progress hung up at once (BYE, or CANCEL while ringing) and its
outcome written within :data:`dialer.engine.SHUTDOWN_GRACE_S` (2 s); then the user agent,
the registration and the MQTT bus close.  What is unfinished at the limit (an outcome the
store did not take, a stuck call) is left to the restart's recovery (its open attempts are
closed as ``failed``, as after ``kill -9``).  A second SIGTERM/SIGINT exits at once."""


class _Shutdown:
    """SIGTERM/SIGINT during ``campaign run``: the first shuts the engine down and arms a
    watchdog thread that ends the process at :data:`SHUTDOWN_EXIT_S`; the second ends it
    at once.  A Python-level handler (not ``loop.add_signal_handler``) so that a signal is
    acted on even while the event loop waits on something that never returns; the
    watchdog is a thread, so a store call stuck in a worker thread (which
    ``asyncio.run``'s executor shutdown would join for ever) does not hold the exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, exit_s: float = SHUTDOWN_EXIT_S
                 ) -> None:
        self.loop = loop
        self.exit_s = exit_s
        self.engine: CampaignEngine | None = None
        self.signalled: int | None = None
        self._old: dict[int, Any] = {}

    def install(self, engine: CampaignEngine) -> None:
        self.engine = engine
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no signals here
                self._old[sig] = signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        """Put the previous handlers back, unless a signal came (a second one must still
        exit at once while the user agent and the bus close)."""
        if self.signalled is not None:
            return
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.signalled is not None:
            _hard_exit(signum, "second signal: exiting at once")
        self.signalled = signum
        why = (f"shutdown not done within {self.exit_s:.0f} s: exiting; the restart closes "
               "the calls left open as failed")
        watchdog = threading.Timer(self.exit_s, _hard_exit, args=(signum, why))
        watchdog.daemon = True
        watchdog.start()
        if self.engine is not None:
            self.loop.call_soon_threadsafe(self.engine.shutdown)


def _hard_exit(signum: int, why: str) -> None:
    """End the process now (no executor join, no atexit): 128 + the signal."""
    with contextlib.suppress(OSError):
        os.write(2, f"dialtone campaign run: {why}\n".encode())
    os._exit(128 + signum)


async def _open_bus(url: str | None, owner: str) -> Any:
    """The routing core's MQTT bus (``--mqtt``), as node ``dialer-OWNER``; None without."""
    if not url:
        return None
    from routing.mqtt import MqttRoutingBus

    node_id = "dialer-" + re.sub(r"[^A-Za-z0-9_.:@-]", "-", owner)[:120]
    bus = MqttRoutingBus(url, node_id)
    await bus.start()
    # The retained agent states come right after the connection; dialling starts anyway
    # (the bus reconnects on its own) and takes agents as their presence arrives.
    if not await bus.wait_connected(5.0):
        Console(stderr=True).print(f"[yellow]warning:[/] no MQTT broker at {url} yet")
    return bus


def _run(args: argparse.Namespace, con: Console) -> int:
    lo, _, hi = str(args.rtp_ports).partition("-")
    account: PbxAccount | None = None
    if args.register is not None:
        account = pbx_account(args.register, auth_user=args.auth_user,
                              password_file=args.password_file,
                              expires=args.register_expires)
    elif args.auth_user is not None or args.password_file is not None:
        con.print("[red]error:[/] --auth-user and --password-file apply only with --register")
        return 2
    if args.trunk is None and account is None:
        con.print("[red]error:[/] give --trunk sip:HOST:PORT or --register sip:USER@HOST:PORT")
        return 2
    try:
        report = asyncio.run(run_campaign(
            args.file, trunk=args.trunk, db=args.db, until_done=args.until_done,
            owner=args.owner, max_seconds=args.max_seconds, sip_port=args.sip_port,
            rtp_ports=(int(lo), int(hi or lo)), events_path=args.events, now=args.now,
            mqtt=args.mqtt, account=account,
            recorder=getattr(args, "call_recorder", None)))
    except CampaignFileError as exc:
        con.print(f"[red]error:[/] {exc}")
        return 2
    error = report["summary"].get("error")
    imp = report["summary"].get("import") or {}
    if imp.get("bad_rows"):
        err = Console(stderr=True)
        err.print(f"[yellow]{imp['bad_rows']} bad row(s) in the list, not imported:[/]")
        for p in imp["problems"][:20]:
            err.print(f"  row {p['row']}: {p['reason']}"
                      + (f" ({p['value']!r})" if p.get("value") is not None else ""))
    if args.json:
        con.file.write(json.dumps(report, default=str) + "\n")
    else:
        _print_report(report, con)
    if error:
        Console(stderr=True).print(f"[red]error:[/] {error}")
        return 3
    return 0


def _print_report(report: dict[str, Any], con: Console) -> None:
    s = report["summary"]
    t = Table(title=f"campaign {s['campaign']} ({s['status']})")
    t.add_column("disposition")
    t.add_column("contacts", justify="right")
    for k, v in s["dispositions"].items():
        t.add_row(k, str(v))
    con.print(t)
    ab = s["abandonment"]
    con.print(f"abandoned {ab['abandoned']} of {ab['live']} live answers "
              f"({ab['rate']:.1%}, cap {ab['target']:.0%})")


# --- status --------------------------------------------------------------------------------------


def _status_view(store: DialerStore, name: str, now: float) -> tuple[Group, dict[str, Any]]:
    summary = store.summary(name, now=now)
    snap = store.engine_status(name)
    data: dict[str, Any] = {"summary": summary, "engine": None}
    head = Table(title=f"campaign {name}: {summary['status']}", show_header=False)
    head.add_column("what")
    head.add_column("value", justify="right")
    if snap is not None:
        at, eng = snap
        data["engine"] = {**eng, "age_s": round(now - at, 1)}
        head.add_row("dialler", f"{eng.get('owner')} ({now - at:.0f} s ago)")
        head.add_row("dial level", f"{eng.get('dial_level', 0):.2f}")
        head.add_row("dialling / answered now", f"{eng.get('dialling')} / "
                                                 f"{eng.get('answered_now')}")
        head.add_row("waiting for an agent / connected now",
                     f"{eng.get('waiting', 0)} / {eng.get('connected')}")
        head.add_row("AMD share (machines/answered)", f"{eng.get('amd_share', 0):.1%}")
        w = eng.get("wait_s_mean")
        head.add_row("mean wait for an agent", "-" if w is None else f"{w:.2f} s")
        t = eng.get("talk_s_mean")
        head.add_row("mean talk / wrap", ("-" if t is None else f"{t:.1f} s")
                     + f" / {eng.get('wrap_s', 0):.0f} s")
        head.add_row("PBX registration", registration_text(eng.get("registration")))
    ab = summary["abandonment"]
    now_ab = store.abandonment(name, now=now)
    hour = [r for r in store.ledger(name, since=now - 3600) if r["outcome"] is not None]
    live_1h = sum(1 for r in hour if r["live_answer"])
    ab_1h = sum(1 for r in hour if r["abandoned"])
    data["abandoned_1h"] = {"live": live_1h, "abandoned": ab_1h}
    head.add_row("abandoned (last hour)",
                 f"{(ab_1h / live_1h if live_1h else 0):.2%} of {live_1h}")
    head.add_row("abandoned (30-day period)",
                 f"{now_ab.period_rate:.2%} of {now_ab.period_live} (cap {now_ab.target:.0%})")
    head.add_row("abandoned (24 h)", f"{ab['rate_24h']:.2%} of {ab['live_24h']}")
    left = summary["by_state"].get("pending", 0)
    head.add_row("contacts left", str(left))
    agents = Table(title="agents")
    for col in ("agent", "state", "for"):
        agents.add_column(col)
    if snap is not None:
        for a in snap[1].get("agents", []):
            agents.add_row(a["uri"], a["state"], f"{a['since_s']:.0f} s")
    disp = Table(title="contacts")
    disp.add_column("state")
    disp.add_column("n", justify="right")
    for k, v in summary["by_state"].items():
        disp.add_row(k, str(v))
    return Group(head, agents, disp), data


def registration_text(reg: dict[str, Any] | None) -> str:
    """One line for the status view: ``registered as AOR at REGISTRAR (200 OK, expires in
    N s)``, or the state and the registrar's last answer; the last failure after it."""
    if not reg:
        return "none (a trunk)"
    answer = (f"{reg['status']} {reg['reason']}" if reg.get("status")
              else str(reg.get("reason") or "no answer yet"))
    if reg.get("registered"):
        text = (f"registered as {reg['aor']} at {reg['registrar']} ({answer}, expires in "
                f"{reg.get('expires_in')} s)")
    else:
        text = f"{reg.get('state')}: {reg['aor']} at {reg['registrar']} ({answer})"
    failure = reg.get("last_failure")
    if failure:
        what = (f"{failure['status']} {failure['reason']}" if failure.get("status")
                else "no answer")
        text += f"; last failure {what}, {failure['ago_s']:.0f} s ago"
    return text


def _status(args: argparse.Namespace, con: Console) -> int:
    store = DialerStore(make_engine(args.db))
    store.campaign(args.name)

    def now() -> float:
        return float(args.now) if args.now is not None else time.time()

    if args.json:
        _, data = _status_view(store, args.name, now())
        con.file.write(json.dumps(data, default=str) + "\n")
        return 0
    if args.once:
        con.print(_status_view(store, args.name, now())[0])
        return 0
    with Live(_status_view(store, args.name, now())[0], console=con,
              refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(args.interval)
                live.update(_status_view(store, args.name, now())[0])
        except KeyboardInterrupt:
            pass
    return 0
