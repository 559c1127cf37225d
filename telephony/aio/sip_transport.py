"""The thin asyncio layer that drives a sans-IO :class:`~telephony.sip.endpoint.SipEndpoint`.

It owns the sockets (UDP, TCP; TLS drops in as another stream transport), feeds what
arrives to the endpoint with the loop's monotonic clock as ``now``, sends what the
endpoint has to send, and re-arms one timer with ``loop.call_at`` (aioquic's
``asyncio/protocol.py`` shape).  Nothing here decides anything about SIP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections import Counter, deque
from collections.abc import Callable
from typing import cast

from telephony.errors import SipParseError
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import SipEvent
from telephony.sip.message import ParseLimits, SipStreamParser

log = logging.getLogger(__name__)

Addr = tuple[str, int]
SipTrace = Callable[[str, bytes, Addr, str], None]
"""A tap on the wire: ``(direction "recv"|"send", data, peer, transport)``."""


# A new INVITE (no To tag): the work an overload sheds.  Everything else (responses, ACK,
# CANCEL, BYE, in-dialog requests, OPTIONS) is cheap and keeps calls and health checks alive.
_TO_TAG = re.compile(rb"\n(?:to|t)[ \t]*:[^\n]*;[ \t]*tag[ \t]*=", re.IGNORECASE)


_CALL_ID = re.compile(rb"\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def call_id_of(data: bytes) -> bytes | None:
    """The raw Call-ID of a message, found without parsing it (None if it has none)."""
    match = _CALL_ID.search(data)
    return match.group(1).strip() if match else None


def is_new_call(data: bytes) -> bool:
    """True for an INVITE outside any dialog (RFC 3261 12.1: the To has no tag yet)."""
    return data[:7] == b"INVITE " and _TO_TAG.search(data) is None


class _UdpSocket:
    """The SIP UDP socket, read in batches (``udp_read_batch`` datagrams per readiness).

    asyncio's datagram transport reads one datagram per loop iteration; under an INVITE
    flood the kernel queue then fills and OPTIONS and BYEs wait (or are dropped) behind
    INVITEs.  Reading a batch and sorting it (new calls queued, the rest handled at once)
    keeps in-dialog traffic and health checks moving (issue 12 finding 4)."""

    def __init__(self, owner: SipTransportLayer, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.batch = owner.endpoint.config.udp_read_batch
        owner.loop.add_reader(sock.fileno(), self._read_ready)

    def _read_ready(self) -> None:
        owner = self.owner
        for _ in range(self.batch):
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # ICMP port unreachable and the like: the transaction timers deal with it.
                log.debug("SIP UDP error: %s", exc)
                break
            owner.arrived(data, (addr[0], addr[1]), "udp")

    def sendto(self, data: bytes, addr: Addr) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            # socket buffer full: UDP is lossy and SIP retransmits (RFC 3261 17.1.1.2)
            self.owner.endpoint.stats["udp_send_dropped"] += 1
        except OSError as exc:
            log.debug("SIP UDP send to %s failed: %s", addr, exc)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.owner.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class _StreamProtocol(asyncio.Protocol):
    """One TCP connection: frames messages by Content-Length (RFC 3261 18.3), with the
    limits of issue 12 finding 5 (message deadline, idle timeout, bounded buffer)."""

    def __init__(self, owner: SipTransportLayer, transport_name: str = "tcp", *,
                 accepted: bool = False) -> None:
        self.owner = owner
        self.name = transport_name
        self.accepted = accepted
        self.parser = SipStreamParser(ParseLimits(owner.endpoint_max_size))
        self.transport: asyncio.Transport | None = None
        self.peer: Addr | None = None
        self.last_activity = owner.now()
        self.message_started: float | None = None
        """When the first byte of the message now being received arrived (None between)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.owner.stream_opened(self)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        owner = self.owner
        now = owner.now()
        self.last_activity = now
        parser = self.parser
        if self.message_started is None:
            self.message_started = now
        got = False
        try:
            parser.feed(data)
            for msg in parser.messages():
                got = True
                owner.arrived(msg.serialize(), self.peer, self.name)
        except SipParseError as exc:
            # A framing error on a stream cannot be resynchronised: close it (RFC 3261 18.3).
            log.info("closing SIP %s connection from %s: %s", self.name, self.peer, exc.reason)
            owner.endpoint.stats["dropped_malformed"] += 1  # a Counter
            self.transport.close()
            return
        if parser.buffered == 0:
            self.message_started = None
        elif got:
            self.message_started = now  # the rest belongs to the next message
        if parser.buffered > owner.limits.tcp_max_buffer:
            owner.close_stream(self, "buffer")

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.stream_closed(self)


def bind_ephemeral(host: str, *, tcp: bool) -> tuple[socket.socket, socket.socket | None]:
    """A UDP socket on a port the OS chose (``port 0``) and, with ``tcp``, a TCP listening
    socket on the same port; both stay bound, so no one can take the port before we serve on
    it (the race of asking for a free port, closing it, then binding it again)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(64):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.bind((host, 0))
        except OSError:
            udp.close()
            raise
        if not tcp:
            return udp, None
        stream = socket.socket(family, socket.SOCK_STREAM)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            stream.bind((host, udp.getsockname()[1]))
            stream.listen(128)
        except OSError:  # that port is taken for TCP: ask the OS for another
            stream.close()
            udp.close()
            continue
        return udp, stream
    raise OSError(f"no port on {host} free for both UDP and TCP")


class SipTransportLayer:
    """Sockets and the timer for one SIP endpoint."""

    def __init__(self, endpoint: SipEndpoint, on_event: Callable[[SipEvent], None], *,
                 trace: SipTrace | None = None) -> None:
        self.endpoint = endpoint
        self.on_event = on_event
        self.trace = trace
        self.loop = asyncio.get_running_loop()
        self.limits = endpoint.config
        self.udp: _UdpSocket | None = None
        self.streams: dict[Addr, _StreamProtocol] = {}
        self._per_source: Counter[str] = Counter()
        self._servers: list[asyncio.base_events.Server] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._pending_connects: dict[Addr, list[bytes]] = {}
        self._new_calls: deque[tuple[bytes, Addr, str, bytes | None]] = deque()
        self._queued_ids: Counter[bytes | None] = Counter()
        """Call-IDs of the queued INVITEs: a CANCEL finds its INVITE in one look-up, so a
        CANCEL flood during an INVITE flood costs no scan of the queue."""
        self._drain_scheduled = False
        self.endpoint_max_size = endpoint.config.max_message_size

    def now(self) -> float:
        return self.loop.time()

    async def listen_udp(self, host: str, port: int, *, sock: socket.socket | None = None
                         ) -> Addr:
        """Listen for UDP on ``host:port``, or on ``sock`` already bound (see
        :func:`bind_ephemeral`)."""
        if sock is None:
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind(sockaddr)
            except OSError:
                sock.close()
                raise
        try:
            sock.setblocking(False)
            # A bigger kernel queue rides out loop stalls under a burst instead of dropping
            # OPTIONS and BYEs with the INVITEs (capped by net.core.rmem_max).
            want = self.limits.udp_receive_buffer
            if want and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < want:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
        except OSError:
            sock.close()
            raise
        self.udp = _UdpSocket(self, sock)
        name = sock.getsockname()
        return name[0], name[1]

    async def listen_tcp(self, host: str, port: int, *, sock: socket.socket | None = None
                         ) -> Addr:
        if sock is not None:
            server = await self.loop.create_server(
                lambda: _StreamProtocol(self, accepted=True), sock=sock)
        else:
            server = await self.loop.create_server(
                lambda: _StreamProtocol(self, accepted=True), host, port)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        return bound[0], bound[1]

    # --- the drive loop -----------------------------------------------------------------

    def arrived(self, data: bytes, addr: Addr, transport: str) -> None:
        """A message from the network: new calls wait their turn, the rest is handled now."""
        if not is_new_call(data):
            if data[:7] == b"CANCEL " and self._new_calls:
                # RFC 3261 9.2: a CANCEL applies to its INVITE; if that INVITE still waits
                # its turn here, it goes first, so the CANCEL finds it (487, not 481 and a
                # call answered after its caller gave up)
                call_id = call_id_of(data)
                if call_id is not None and self._queued_ids[call_id]:
                    self._take_queued_invite(call_id)
            self.receive(data, addr, transport)
            return
        queue = self._new_calls
        if len(queue) >= self.limits.max_queued_requests:
            # the oldest INVITE's caller has most likely retransmitted
            self._unqueued(queue.popleft())
            self.endpoint.stats["dropped_overload"] += 1
        call_id = call_id_of(data)
        queue.append((data, addr, transport, call_id))
        self._queued_ids[call_id] += 1
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon(self._drain_new_calls)

    def _unqueued(self, item: tuple[bytes, Addr, str, bytes | None]) -> None:
        ids = self._queued_ids
        ids[item[3]] -= 1
        if ids[item[3]] <= 0:
            del ids[item[3]]

    def _take_queued_invite(self, call_id: bytes) -> None:
        queue = self._new_calls
        for item in [item for item in queue if item[3] == call_id]:
            queue.remove(item)
            self._unqueued(item)
            self.receive(item[0], item[1], item[2])

    def _drain_new_calls(self) -> None:
        """Up to ``new_request_budget`` new INVITEs, then back to the loop (socket reads, the
        media tick, timers) before the next pass."""
        self._drain_scheduled = False
        queue = self._new_calls
        for _ in range(min(len(queue), self.limits.new_request_budget)):
            item = queue.popleft()
            self._unqueued(item)
            self.receive(item[0], item[1], item[2])
        if queue and not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon(self._drain_new_calls)

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
            if self.udp is not None:
                self.udp.sendto(data, addr)
            return
        stream = self.streams.get(addr)
        if stream is not None and stream.transport is not None and not stream.transport.is_closing():
            stream.transport.write(data)
            stream.last_activity = self.now()
            if stream.transport.get_write_buffer_size() > self.limits.tcp_max_buffer:
                self.close_stream(stream, "write_buffer")  # the peer does not read
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
            proto.last_activity = self.now()
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

    # --- stream bookkeeping and limits (issue 12 finding 5) ----------------------------------

    def stream_opened(self, stream: _StreamProtocol) -> None:
        assert stream.peer is not None and stream.transport is not None
        source = stream.peer[0]
        if stream.accepted and self._per_source[source] >= self.limits.tcp_max_per_source:
            self.endpoint.stats["tcp_refused_per_source"] += 1
            log.info("SIP %s: refusing a connection from %s (%d open, the cap)", stream.name,
                     source, self._per_source[source])
            stream.transport.abort()
            return
        self._per_source[source] += 1
        self.streams[stream.peer] = stream
        if self._sweeper is None:
            self._arm_sweeper()

    def stream_closed(self, stream: _StreamProtocol) -> None:
        peer = stream.peer
        if peer is None or self.streams.get(peer) is not stream:
            return
        del self.streams[peer]
        self._per_source[peer[0]] -= 1
        if self._per_source[peer[0]] <= 0:
            del self._per_source[peer[0]]

    def close_stream(self, stream: _StreamProtocol, why: str) -> None:
        """Close a connection that broke a limit (counted in ``stats["tcp_closed_<why>"]``)."""
        self.endpoint.stats[f"tcp_closed_{why}"] += 1
        log.info("closing SIP %s connection from %s: %s", stream.name, stream.peer, why)
        if stream.transport is not None:
            stream.transport.abort()  # nothing worth flushing; free the buffers now
        self.stream_closed(stream)

    def _sweep_interval(self) -> float:
        cfg = self.limits
        return max(0.05, min(1.0, cfg.tcp_message_timeout / 4, cfg.tcp_idle_timeout / 4))

    def _arm_sweeper(self) -> None:
        self._sweeper = self.loop.call_later(self._sweep_interval(), self._sweep)

    def _sweep(self) -> None:
        """Close connections whose message is overdue or that sat idle without a call."""
        self._sweeper = None
        now = self.now()
        cfg = self.limits
        for stream in list(self.streams.values()):
            started = stream.message_started
            if started is not None and now - started > cfg.tcp_message_timeout:
                # RFC 3261 18.3 does not bound it; a slow-header peer must not hold memory
                self.close_stream(stream, "message_timeout")
            elif now - stream.last_activity > cfg.tcp_idle_timeout:
                assert stream.peer is not None
                if self.endpoint.has_calls_with(stream.peer):
                    stream.last_activity = now  # in use by a call: check again later
                else:
                    self.close_stream(stream, "idle")
        if self.streams:
            self._arm_sweeper()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._timer is not None:
            self._timer.cancel()
        for server in self._servers:
            server.close()
        for stream in list(self.streams.values()):
            if stream.transport is not None:
                stream.transport.close()
        if self.udp is not None:
            self.udp.close()
        for server in self._servers:
            await server.wait_closed()
