"""``dialtone serve``: one Dialtone node (SIP endpoint, media, the IVR flow, the routing bus).

Embedded defaults: SQLite, the in-process reference router, SIP on 127.0.0.1:5080.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from telephony.aio.call import Call
from telephony.aio.media_engine import MediaEngineConfig
from telephony.aio.useragent import UserAgent, UserAgentConfig
from telephony.eventlog import EventSink, JsonLinesEventLog, NullEventLog
from telephony.media import MediaConfig
from telephony.sip.auth import DigestCredentials, DigestServer
from telephony.sip.endpoint import SipConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 5080
    advertise: str | None = None
    rtp_ports: tuple[int, int] = (20000, 30000)
    events: str | None = None
    flow: str | None = None
    mqtt: str | None = None
    router_config: str | None = None
    db: str = "sqlite:///var/dialtone.db"
    node_id: str | None = None
    media_timeout: float = 30.0
    trusted: tuple[str, ...] | None = None
    auth_users: tuple[tuple[str, str], ...] = ()
    auth_realm: str = "dialtone"
    auth_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    recognizer: str = "template"
    vosk_model: str | None = None
    tcp: bool = True
    register: str | None = None
    user: str | None = None
    password: str | None = None
    answer_delay: float = 0.0
    """Ring (180) this long before answering."""
    sip_trace: str | None = None
    sip_t1: float = 0.5
    """RFC 3261 T1 (the base of every SIP retransmission and linger timer)."""
    """Append every SIP message received and sent to this file (see :class:`SipTraceFile`)."""


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


def user_agent_config(options: ServeOptions,
                      sip_trace: SipTraceFile | None = None) -> UserAgentConfig:
    inbound_auth = None
    if options.auth_users:
        # INVITEs from sources outside --trusted are challenged (RFC 3261 22.1); nonces are
        # stateless (HMAC of a timestamp) under a secret made fresh for each run.
        passwords = dict(options.auth_users)
        inbound_auth = DigestServer(options.auth_realm, passwords.get,
                                    nonce_secret=secrets.token_bytes(32),
                                    algorithms=options.auth_algorithms)
    sip = SipConfig(host=options.host, port=options.port, advertised_host=options.advertise,
                    t1=options.sip_t1, inbound_auth=inbound_auth,
                    trusted_sources=frozenset(options.trusted) if options.trusted else None)
    media = MediaEngineConfig(host=options.host, advertised_host=options.advertise,
                              port_min=options.rtp_ports[0], port_max=options.rtp_ports[1])
    defaults = replace(MediaConfig(), media_timeout=options.media_timeout)
    return UserAgentConfig(sip=sip, media=media, media_defaults=defaults, listen_tcp=options.tcp,
                           answer_delay=options.answer_delay, sip_trace=sip_trace)


async def build_flow_handler(options: ServeOptions, ua_ref: list[UserAgent], events: EventSink
                             ) -> tuple[Callable[[Call], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """The IVR application for ``--flow``: returns (handler, close)."""
    from ivr_flows.app import build_app

    return await build_app(options, ua_ref, events)


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


async def serve(options: ServeOptions, stop: asyncio.Event) -> int:
    raise_fd_limit()
    events: EventSink = JsonLinesEventLog(options.events) if options.events else NullEventLog()
    node_id = options.node_id or f"{options.host}-{options.port}".replace(".", "-").replace(":", "-")
    ua_ref: list[UserAgent] = []
    close_app: Callable[[], Awaitable[None]] | None = None
    handler: Callable[[Call], Awaitable[None]] = hold_until_bye
    if options.db.startswith("sqlite:///"):
        path = options.db[len("sqlite:///"):]
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    if options.flow:
        handler, close_app = await build_flow_handler(replace(options, node_id=node_id), ua_ref,
                                                      events)
    trace = SipTraceFile(options.sip_trace) if options.sip_trace else None
    ua = UserAgent(user_agent_config(options, trace), handler=handler, events=events)
    ua_ref.append(ua)
    host, port = await ua.start()
    # Everything built so far (flow, prompts, templates, modules) lives as long as the node:
    # keep it out of the cyclic collector's full passes, which otherwise stall the media tick.
    gc.collect()
    gc.freeze()
    events.emit({"type": "node_started", "node_id": node_id, "sip": f"{host}:{port}",
                 "flow": options.flow})
    print(f"dialtone: listening on sip:{host}:{port} (udp{'+tcp' if options.tcp else ''})"
          f"{' with flow ' + options.flow if options.flow else ''}", flush=True)
    if options.register:
        creds = DigestCredentials(options.user or "dialtone", options.password or "")
        aor = f"sip:{options.user or 'dialtone'}@{options.register.split(':', 1)[-1].split(';')[0]}"
        ok = await ua.register(options.register, aor=aor, credentials=creds)
        print(f"dialtone: registration to {options.register} {'ok' if ok else 'FAILED'}",
              flush=True)
    try:
        await stop.wait()
    finally:
        await ua.close()
        if close_app is not None:
            await close_app()
        if trace is not None:
            trace.close()
        events.emit({"type": "node_stopped", "node_id": node_id})
        close: Any = getattr(events, "close", None)
        if close is not None:
            close()
    return 0
