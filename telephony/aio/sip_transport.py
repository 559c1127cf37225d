"""The thin asyncio layer that drives a sans-IO :class:`~telephony.sip.endpoint.SipEndpoint`.

It owns the sockets (UDP, TCP; TLS drops in as another stream transport), feeds what
arrives to the endpoint with the loop's monotonic clock as ``now``, sends what the
endpoint has to send, and re-arms one timer with ``loop.call_at`` (aioquic's
``asyncio/protocol.py`` shape).  Nothing here decides anything about SIP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from telephony.errors import SipParseError
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import SipEvent
from telephony.sip.message import ParseLimits, SipStreamParser

log = logging.getLogger(__name__)

Addr = tuple[str, int]
SipTrace = Callable[[str, bytes, Addr, str], None]
"""A tap on the wire: ``(direction "recv"|"send", data, peer, transport)``."""


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransportLayer) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.receive(data, (addr[0], addr[1]), "udp")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction timers deal with it.
        log.debug("SIP UDP error: %s", exc)


class _StreamProtocol(asyncio.Protocol):
    """One TCP connection: frames messages by Content-Length (RFC 3261 18.3)."""

    def __init__(self, owner: SipTransportLayer, transport_name: str = "tcp") -> None:
        self.owner = owner
        self.name = transport_name
        self.parser = SipStreamParser(ParseLimits(owner.endpoint_max_size))
        self.transport: asyncio.Transport | None = None
        self.peer: Addr | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.owner.streams[self.peer] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            self.parser.feed(data)
            for msg in self.parser.messages():
                self.owner.receive(msg.serialize(), self.peer, self.name)
        except SipParseError as exc:
            # A framing error on a stream cannot be resynchronised: close it (RFC 3261 18.3).
            log.info("closing SIP %s connection from %s: %s", self.name, self.peer, exc.reason)
            self.owner.endpoint.stats["dropped_malformed"] += 1  # a Counter
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.owner.streams.get(self.peer) is self:
            del self.owner.streams[self.peer]


class SipTransportLayer:
    """Sockets and the timer for one SIP endpoint."""

    def __init__(self, endpoint: SipEndpoint, on_event: Callable[[SipEvent], None], *,
                 trace: SipTrace | None = None) -> None:
        self.endpoint = endpoint
        self.on_event = on_event
        self.trace = trace
        self.loop = asyncio.get_running_loop()
        self.udp: _UdpProtocol | None = None
        self.streams: dict[Addr, _StreamProtocol] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pending_connects: dict[Addr, list[bytes]] = {}
        self.endpoint_max_size = endpoint.config.max_message_size

    def now(self) -> float:
        return self.loop.time()

    async def listen_udp(self, host: str, port: int) -> Addr:
        transport, proto = await self.loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port))
        self.udp = proto
        sock = transport.get_extra_info("sockname")
        return sock[0], sock[1]

    async def listen_tcp(self, host: str, port: int) -> Addr:
        server = await self.loop.create_server(lambda: _StreamProtocol(self), host, port)
        self._servers.append(server)
        sock = server.sockets[0].getsockname()
        return sock[0], sock[1]

    # --- the drive loop -----------------------------------------------------------------

    def receive(self, data: bytes, addr: Addr, transport: str) -> None:
        if self.trace is not None:
            self.trace("recv", data, addr, transport)
        self.endpoint.receive_datagram(data, addr, self.now(), transport=transport)
        self.flush()

    def flush(self) -> None:
        """Send what the endpoint wants sent, dispatch its events, re-arm its timer."""
        now = self.now()
        for out in self.endpoint.datagrams_to_send(now):
            self._send(out.data, out.addr, out.transport)
        while (event := self.endpoint.next_event()) is not None:
            try:
                self.on_event(event)
            except Exception:  # an application bug must not kill the SIP stack
                log.exception("error handling SIP event %r", event)
        # Event handlers may have called the endpoint (answer, BYE): send that too.
        for out in self.endpoint.datagrams_to_send(now):
            self._send(out.data, out.addr, out.transport)
        self._arm_timer()

    def _arm_timer(self) -> None:
        at = self.endpoint.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.now())
        self.flush()

    def _send(self, data: bytes, addr: Addr, transport: str) -> None:
        if self.trace is not None:
            self.trace("send", data, addr, transport)
        if transport == "udp":
            if self.udp is not None and self.udp.transport is not None:
                self.udp.transport.sendto(data, addr)
            return
        stream = self.streams.get(addr)
        if stream is not None and stream.transport is not None and not stream.transport.is_closing():
            stream.transport.write(data)
            return
        pending = self._pending_connects.get(addr)
        if pending is not None:
            pending.append(data)
            return
        self._pending_connects[addr] = [data]
        self.loop.create_task(self._connect(addr, transport))

    async def _connect(self, addr: Addr, transport: str) -> None:
        try:
            _, proto = await self.loop.create_connection(
                lambda: _StreamProtocol(self, transport), addr[0], addr[1])
        except OSError as exc:
            log.info("SIP %s connect to %s failed: %s", transport, addr, exc)
            self._pending_connects.pop(addr, None)
            # RFC 3261 17.1.4: a transport error fails the transactions at once (an outbound
            # INVITE ends in CallFailed 503 and frees its ports) instead of waiting timer B.
            self.endpoint.connection_failed(addr, transport, self.now())
            self.flush()
            return
        for data in self._pending_connects.pop(addr, []):
            assert proto.transport is not None
            proto.transport.write(data)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for server in self._servers:
            server.close()
        for stream in list(self.streams.values()):
            if stream.transport is not None:
                stream.transport.close()
        if self.udp is not None and self.udp.transport is not None:
            self.udp.transport.close()
        for server in self._servers:
            await server.wait_closed()
