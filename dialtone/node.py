"""One Dialtone node: built from a :class:`~dialtone.config.NodeConfig`, torn down in reverse.

``dialtone serve`` is :func:`serve`.  The node owns, in build order: the event log, the routing
bus (the in-process reference router by default, or MQTT 5 with ``--mqtt``), the IVR
application (with ``--flow``), and the SIP/RTP user agent.  Call events go to the log and, as
:class:`routing.contract.CallEventMessage`, to the bus, flow or no flow; with ``--mqtt`` the
bus also keeps the node's retained "online" status (its last will says "offline").

Embedded defaults: SQLite, the in-process reference router, SIP on 127.0.0.1:5080.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dialtone.cdr import CdrRecorder, CdrWriter
from dialtone.config import NodeConfig
from routing.bus import RoutingBus
from routing.contract import CallEventKind, CallEventMessage
from routing.factory import open_bus
from telephony.aio.call import Call
from telephony.aio.media_engine import MediaEngineConfig
from telephony.aio.useragent import UserAgent, UserAgentConfig
from telephony.eventlog import EventSink, JsonLinesEventLog, NullEventLog
from telephony.media import MediaConfig
from telephony.sip.admission import AdmissionConfig
from telephony.sip.auth import DigestCredentials, DigestServer
from telephony.sip.endpoint import SipConfig
from telephony.sip.transfer_policy import TransferPolicy

if TYPE_CHECKING:
    from dialtone.dialing import DialerSupervisor

log = logging.getLogger(__name__)

Handler = Callable[[Call], Awaitable[None]]


async def hold_until_bye(call: Call) -> None:
    """The application without a flow: keep the call up (sending silence) until the caller
    hangs up."""
    await call.wait_ended()


class SipTraceFile:
    """Writes each SIP message as a header line ``<direction> <transport> <host>:<port> <length>``
    followed by exactly ``length`` bytes of the message and a newline (verbatim, so binary
    garbage and bare LFs survive)."""

    def __init__(self, path: str) -> None:
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()

    def __call__(self, direction: str, data: bytes, addr: tuple[str, int], transport: str) -> None:
        head = f"{direction} {transport} {addr[0]}:{addr[1]} {len(data)}\n".encode()
        self._fh.write(head + data + b"\n")

    def close(self) -> None:
        self._fh.close()


def user_agent_config(config: NodeConfig, sip_trace: SipTraceFile | None = None
                      ) -> UserAgentConfig:
    """The library's configuration values, from the node's."""
    sip_section = config.sip
    inbound_auth = None
    if sip_section.auth_users:
        # INVITEs from sources outside --trusted are challenged (RFC 3261 22.1); nonces are
        # stateless (HMAC of a timestamp) under a secret made fresh for each run.
        passwords = {user: secret.get_secret_value()
                     for user, secret in sip_section.auth_users.items()}
        inbound_auth = DigestServer(sip_section.auth_realm, passwords.get,
                                    nonce_secret=secrets.token_bytes(32),
                                    algorithms=tuple(sip_section.auth_algorithms))
    admission = AdmissionConfig(max_calls=sip_section.max_calls,
                                calls_per_second=sip_section.max_cps,
                                source_calls_per_second=sip_section.max_cps_per_source,
                                max_tick_lateness=sip_section.max_tick_lateness)
    sip = SipConfig(host=sip_section.host, port=sip_section.port,
                    advertised_host=sip_section.advertise, t1=sip_section.t1,
                    inbound_auth=inbound_auth,
                    trusted_sources=(frozenset(sip_section.trusted)
                                     if sip_section.trusted is not None else None),
                    admission=admission, tcp_message_timeout=sip_section.tcp_message_timeout,
                    tcp_idle_timeout=sip_section.tcp_idle_timeout,
                    tcp_max_per_source=sip_section.tcp_max_per_source)
    lo, hi = config.media.port_range
    media = MediaEngineConfig(host=sip_section.host, advertised_host=sip_section.advertise,
                              port_min=lo, port_max=hi)
    defaults = replace(MediaConfig(), media_timeout=config.media.timeout,
                       latch=config.media.latch)
    policy = TransferPolicy.from_patterns(sip_section.transfer_allow,
                                          inbound_refer=sip_section.accept_refer)
    return UserAgentConfig(sip=sip, media=media, media_defaults=defaults,
                           listen_tcp=sip_section.tcp, answer_delay=config.media.answer_delay,
                           sip_trace=sip_trace, transfer_policy=policy,
                           tel_gateway=sip_section.tel_gateway)


def raise_fd_limit() -> int:
    """Each call leg holds two UDP sockets (RTP, RTCP): lift the soft descriptor limit to the
    hard one (often 1024 -> 524288) so hundreds of calls fit.  Returns the new soft limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class CallEventPublisher:
    """Turns the node's call events into routing-bus :class:`CallEventMessage` s (for CDR and
    workforce tools), flow or no flow; the bus's outbox keeps them while a broker is away."""

    def __init__(self, bus: RoutingBus, node_id: str) -> None:
        self.bus = bus
        self.node_id = node_id
        self._pending: set[asyncio.Task[None]] = set()
        self._inbound: set[str] = set()

    def publish(self, kind: CallEventKind, call_id: str, **fields: Any) -> None:
        msg = CallEventMessage(kind=kind, call_id=call_id, node_id=self.node_id, at=time.time(),
                               **fields)
        task = asyncio.get_running_loop().create_task(self.bus.publish_event(msg))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("call event not published: %s", task.exception())

    def observe(self, event: dict[str, Any]) -> None:
        """The SIP leg's own events: every inbound call answered and ended (outbound legs,
        such as a transfer's, belong to the call that made them)."""
        kind = event.get("type")
        call_id = str(event.get("call_id", ""))
        if kind == "call_started" and event.get("direction") == "inbound":
            self._inbound.add(call_id)
        elif kind == "call_answered" and call_id in self._inbound:
            self.publish("answered", call_id)
        elif kind == "call_ended" and call_id in self._inbound:
            self._inbound.discard(call_id)
            self.publish("ended", call_id, detail={"cause": str(event["cause"])})

    async def drain(self, timeout: float = 2.0) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)


class NodeEvents:
    """The node's one event stream: every event goes to the JSON-lines log and to the
    observers (the bus publisher), so the log and the bus never disagree."""

    def __init__(self, log_sink: EventSink) -> None:
        self.log_sink = log_sink
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.log_sink.emit(event)
        for observe in self.observers:
            observe(event)


class Node:
    """A running node; build it with :meth:`running`, an async context manager whose exit
    tears every layer down in reverse order."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.node_id = config.effective_node_id
        self.ua: UserAgent | None = None
        self.bus: RoutingBus | None = None
        self.sip_address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None
        self.cdr_writer: CdrWriter | None = None
        self.dialer: DialerSupervisor | None = None
        self.events: NodeEvents | None = None
        """The node's one event stream (the log, the bus, CDRs, the console observe it)."""

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, config: NodeConfig) -> AsyncIterator[Node]:
        node = cls(config)
        async with contextlib.AsyncExitStack() as stack:
            await node._start(stack)
            yield node

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        config = self.config
        raise_fd_limit()
        if config.db.startswith("sqlite:///"):
            path = config.db[len("sqlite:///"):]
            if path and os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
        # SQLite is brought to head here; a shared database behind head is refused
        # (dialtone.migrations explains why), before anything writes to it.
        from dialtone.migrations import ensure_schema

        await asyncio.to_thread(ensure_schema, config.db)
        log_sink: EventSink = NullEventLog()
        if config.events:
            json_log = JsonLinesEventLog(config.events)
            stack.callback(json_log.close)
            log_sink = json_log
        events = NodeEvents(log_sink)
        self.events = events
        stack.callback(events.emit, {"type": "node_stopped", "node_id": self.node_id})
        self.cdr_writer = self._start_cdrs(stack, events)

        handler: Handler = hold_until_bye
        if config.flow.path is not None or config.routing.mqtt is not None:
            # the bus: the flow hands calls off on it, and with --mqtt the node's status and
            # call events go to the broker even without a flow
            bus = open_bus(config.routing.mqtt, node_id=self.node_id,
                           router_config=config.routing.router_config, db_url=config.db)
            await bus.start()
            stack.push_async_callback(bus.close)
            self.bus = bus
            publisher = CallEventPublisher(bus, self.node_id)
            stack.push_async_callback(publisher.drain)
            events.observers.append(publisher.observe)
            if config.flow.path is not None:
                from dialtone.ivr import build_ivr

                app = await build_ivr(config, node_id=self.node_id, bus=bus, events=events,
                                      publisher=publisher)
                handler = app.handler

        trace = SipTraceFile(config.sip.trace) if config.sip.trace else None
        if trace is not None:
            stack.callback(trace.close)
        ua = UserAgent(user_agent_config(config, trace), handler=handler, events=events)
        self.sip_address = await ua.start()
        stack.push_async_callback(ua.close)
        self.ua = ua
        host, port = self.sip_address
        if config.dialer.trunk is not None:
            self._start_dialer(stack, ua, events)
        if config.http.listen is not None:
            await self._start_console(stack, events)
        started: dict[str, Any] = {"type": "node_started", "node_id": self.node_id,
                                   "sip": f"{host}:{port}", "flow": config.flow.path}
        if self.http_address is not None:
            started["http"] = "{}:{}".format(*self.http_address)
        events.emit(started)
        if config.sip.registrar:
            await self._register(ua)

    async def _start_console(self, stack: contextlib.AsyncExitStack, events: NodeEvents) -> None:
        """The campaign console (issue 15): built last, so it is torn down first."""
        from dialer.store import DialerStore
        from dialtone.config import parse_hostport
        from dialtone.http.app import create_app
        from dialtone.http.hub import EventHub
        from dialtone.http.live import AgentSource, BusAgents, StaticAgents
        from dialtone.http.server import ConsoleServer

        config = self.config
        assert config.http.listen is not None
        hub = EventHub()
        events.observers.append(hub.emit)
        store = DialerStore(config.db)
        stack.callback(store.engine.dispose)
        agents: AgentSource = (BusAgents(self.bus.agent_states) if self.bus is not None
                               else StaticAgents())
        app = create_app(config.http, store, hub=hub, agents=agents, emit=events.emit,
                         events_path=config.events,
                         admin_password=os.environ.get("DIALTONE_ADMIN_PASSWORD"),
                         ready=lambda: self.ua is not None,
                         dialer_trunk=lambda: config.dialer.trunk, node_stats=self.stats)
        host, port = parse_hostport(config.http.listen, 8080)
        server = ConsoleServer(app, host, port)
        self.http_address = await server.start()
        stack.push_async_callback(server.close)

    def stats(self) -> dict[str, dict[str, float]] | None:
        """The SIP endpoint's and the media mixer's counters, and the load gauges, for
        ``/metrics`` (read when scraped); None before the user agent is up."""
        ua = self.ua
        if ua is None:
            return None
        endpoint, media = ua.endpoint, ua.media
        mixer = dict(media.mixer.counters)
        mixer["tick_restarts"] = media.tick_restarts
        mixer["engine_tick_errors"] = media.tick_errors
        return {"sip": {k: float(v) for k, v in endpoint.stats.items()},
                "media": {k: float(v) for k, v in mixer.items()},
                "gauges": {"calls_up": float(endpoint.live_calls()),
                           "media_tick_lateness_seconds":
                               endpoint.admission.lateness(now=ua.now())}}

    def _start_dialer(self, stack: contextlib.AsyncExitStack, ua: UserAgent,
                      events: NodeEvents) -> None:
        """Outbound campaigns on the node's user agent (after it, so stopped before it)."""
        from dialer.store import DialerStore
        from dialtone.dialing import DialerSupervisor, pbx_account

        assert self.config.dialer.trunk is not None
        store = DialerStore(self.config.db)
        stack.callback(store.engine.dispose)
        dialer = DialerSupervisor(store, ua, trunk=self.config.dialer.trunk,
                                  node_id=self.node_id, emit=events.emit, bus=self.bus,
                                  account=pbx_account(self.config.dialer))
        events.observers.append(dialer.observe)  # the UA's registration events
        dialer.start()
        stack.push_async_callback(dialer.close)
        self.dialer = dialer

    def _start_cdrs(self, stack: contextlib.ExitStack | contextlib.AsyncExitStack,
                    events: NodeEvents) -> CdrWriter:
        """One CDR row per call in the node's database (dialtone.cdr); the writer drains and
        stops after the user agent (registered earlier, so torn down later)."""
        from dialer.db import make_engine

        engine = make_engine(self.config.db)
        stack.callback(engine.dispose)
        writer = CdrWriter(engine)
        stack.callback(writer.close)
        stack.callback(writer.flush)
        events.observers.append(CdrRecorder(writer, self.node_id).observe)
        return writer

    async def _register(self, ua: UserAgent) -> None:
        sip = self.config.sip
        assert sip.registrar is not None
        user = sip.user or "dialtone"
        password = sip.password_value()
        aor = f"sip:{user}@{sip.registrar.split(':', 1)[-1].split(';')[0]}"
        ok = await ua.register(sip.registrar, aor=aor,
                               credentials=DigestCredentials(user, password))
        print(f"dialtone: registration to {sip.registrar} {'ok' if ok else 'FAILED'}", flush=True)


async def serve(config: NodeConfig, stop: asyncio.Event) -> int:
    """Run a node until ``stop`` is set."""
    async with Node.running(config) as node:
        # Everything built so far (flow, prompts, templates, modules) lives as long as the
        # node: keep it out of the cyclic collector's full passes, which otherwise stall the
        # media tick.
        gc.collect()
        gc.freeze()
        assert node.sip_address is not None
        host, port = node.sip_address
        mode = f" with flow {config.flow.path}" if config.flow.path else " (no flow: hold)"
        routing = f", routing over {config.routing.mqtt}" if config.routing.mqtt else ""
        print(f"dialtone: listening on sip:{host}:{port} (udp{'+tcp' if config.sip.tcp else ''})"
              f"{mode}{routing}", flush=True)
        if node.http_address is not None:
            print("dialtone: console on http://{}:{}/".format(*node.http_address), flush=True)
        await stop.wait()
    return 0
