"""RTP sockets and the one shared 20 ms tick that drives every call's media.

Pacing uses absolute deadlines on the loop's monotonic clock: tick ``k`` is due at
``start + k * 0.020``, so error never accumulates (aiortc's ``mediastreams.py`` shape,
not pyVoIP's relative sleeps).  If the loop falls behind, the missed ticks run back to
back (each call still gets one frame per 20 ms of media) up to ``max_catch_up``; beyond
that the schedule is reset and the gap counted in ``late_resets``.

Sending on the deadline: the mixer's work for tick ``k`` (jitter buffers, DSP, encoding)
takes longer with more calls, and by a varying amount; sending its packets as soon as it is
done would pass that variation on as send jitter.  So the engine starts the work ``lead``
seconds before the deadline (the recent worst-case work time plus a margin, at most
``max_lead``), then waits for the deadline and sends.  The media sees ``now = due`` as
before; the packets leave on the 20 ms grid.

Reading the RTP sockets (``rtp_read``): ``loop`` (default) gives each socket to the event
loop, whose callback queues every datagram for the next tick as it arrives.  ``tick`` keeps
the sockets off the loop: at each tick one ``epoll`` call (level-triggered)
says which sockets hold datagrams, one ``recvfrom`` each takes a datagram, and the
sockets still readable are asked again, a few rounds at most.  Nothing is lost (a datagram
waits in its socket's buffer for the tick, where the loop's callback would have queued it
for the same tick) and the system calls per datagram fall from an ``epoll_wait``, a
``recvmsg`` and one that finds the socket empty (libuv) to a ``recvfrom`` and a share of one
``epoll``; the loop wakes up once per tick instead of once per burst of arrivals.  The cost:
a datagram's arrival time is the tick's read time (up to 20 ms after it came), which the
jitter buffer's delay estimate and the RTCP jitter see; a steady stream keeps its phase to
the tick, so it matters only when a peer's send times straddle the tick.  Off by default
(BENCHMARKS.md, "The dialer's media path (issue 14)": cheaper per datagram in isolation,
not shown end to end).

The engine reads ``time.monotonic()`` (the clock of asyncio's default loop.time(), and
within a millisecond that of uvloop's), not ``loop.time()``: uvloop caches its time once per
loop iteration, so inside a long callback it lags by that callback's duration.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

from telephony.errors import MediaError
from telephony.media import CallMedia, MediaMixer

log = logging.getLogger(__name__)

TICK = 0.020


@dataclass(frozen=True, slots=True)
class MediaEngineConfig:
    host: str = "127.0.0.1"
    advertised_host: str | None = None
    port_min: int = 20000
    port_max: int = 30000
    max_catch_up: int = 5
    send_on_deadline: bool = True
    """Compute each tick ahead and send its packets at the deadline (see the module doc)."""
    max_lead: float = 0.016
    """Longest head start of a tick's work before its deadline, seconds."""
    watchdog_interval: float = 0.5
    """How often the watchdog checks that the tick is alive, seconds (0 disables it)."""
    watchdog_stall: float = 2.0
    """A tick task that has not ticked for this long while calls exist is restarted."""
    rtp_read: str = "loop"
    """How the RTP/RTCP sockets are read: ``loop`` (the event loop's datagram callbacks) or
    ``tick`` (one epoll and a recvfrom per datagram at each tick; see the module doc)."""
    tick_read_rounds: int = 4
    """``tick``: most datagrams taken from one socket in one tick."""

    def __post_init__(self) -> None:
        if self.rtp_read not in ("loop", "tick"):
            raise MediaError(f"rtp_read must be loop or tick, not {self.rtp_read!r}")


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, engine: MediaEngine, media: CallMedia) -> None:
        self.engine = engine
        self.media = media
        self.transport: asyncio.DatagramTransport | None = None
        # bound once: this runs for every packet of every call
        self._receive = media.receive_rtp
        self._clock = engine.clock

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(addr) != 2:  # IPv6: (host, port, flowinfo, scope_id)
            addr = (addr[0], addr[1])
        self._receive(data, addr, now=self._clock())

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


class _RtcpProtocol(_RtpProtocol):
    """The RTCP port (RTP port + 1, RFC 3550 11)."""

    def __init__(self, engine: MediaEngine, media: CallMedia) -> None:
        super().__init__(engine, media)
        self._receive = media.receive_rtcp


class _RawTransport:
    """A socket read by the engine at its tick (``rtp_read: tick``): the little of
    :class:`asyncio.DatagramTransport` the engine uses."""

    __slots__ = ("_engine", "drops", "fd", "sock")

    def __init__(self, engine: MediaEngine, sock: socket.socket) -> None:
        self._engine = engine
        self.sock = sock
        self.fd = sock.fileno()
        self.drops = 0

    def sendto(self, data: bytes, addr: Any) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:  # a full buffer (BlockingIOError), ICMP errors: drop it
            self.drops += 1
            log.debug("RTP send to %s failed: %s", addr, exc)

    def close(self) -> None:
        if self.fd >= 0:
            self._engine._unregister(self.fd)
            self.sock.close()
            self.fd = -1


class MediaEngine:
    """Owns the RTP port range, one socket per call leg, and the shared tick task."""

    def __init__(self, config: MediaEngineConfig | None = None) -> None:
        self.config = config or MediaEngineConfig()
        self.loop = asyncio.get_running_loop()
        self.clock = time.monotonic
        """The media clock (see the module docstring)."""
        self.mixer = MediaMixer()
        self._sockets: dict[int, _RtpProtocol] = {}
        self._rtcp_sockets: dict[int, _RtpProtocol] = {}
        self._next_port = self.config.port_min
        self._task: asyncio.Task[None] | None = None
        self.late_resets = 0
        self.tick_lateness: list[float] = []
        self.record_lateness = False
        self.after_tick: list[Any] = []
        self.tick_restarts = 0
        """Times the watchdog restarted the tick (it died or stalled)."""
        self.tick_errors = 0
        """Ticks whose mixer work or after-tick callbacks raised (the tick went on)."""
        self.last_tick = self.clock()
        """Media clock of the latest tick (the watchdog's liveness signal)."""
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing = False
        self._epoll: select.epoll | None = None
        self._readers: dict[int, Any] = {}
        """``rtp_read: tick``: file descriptor -> the receive method of its call's media."""

    @property
    def advertised_host(self) -> str:
        return self.config.advertised_host or self.config.host

    async def open(self, media: CallMedia) -> int:
        """Bind an even port from the range for ``media``, and port+1 for RTCP (RFC 3550 11;
        RTCP multiplexed on the RTP port, RFC 5761, is accepted there too)."""
        cfg = self.config
        span = (cfg.port_max - cfg.port_min) // 2
        for _ in range(span):
            port = self._next_port
            self._next_port += 2
            if self._next_port >= cfg.port_max:
                self._next_port = cfg.port_min
            if port in self._sockets:
                continue
            if cfg.rtp_read == "tick":
                pair = self._open_raw(media, port)
                if pair is None:
                    continue
                proto, rtcp = pair
            else:
                try:
                    transport, proto = await self.loop.create_datagram_endpoint(
                        lambda: _RtpProtocol(self, media), local_addr=(cfg.host, port))
                except OSError:
                    continue
                try:
                    _, rtcp = await self.loop.create_datagram_endpoint(
                        lambda: _RtcpProtocol(self, media), local_addr=(cfg.host, port + 1))
                except OSError:
                    transport.close()
                    continue
            self._rtcp_sockets[port] = rtcp
            self._sockets[port] = proto
            media.local_port = port  # type: ignore[attr-defined]
            self.mixer.add(media)
            self._ensure_running()
            return port
        raise MediaError(f"no free RTP port in {cfg.port_min}-{cfg.port_max}")

    def _open_raw(self, media: CallMedia, port: int) -> tuple[_RtpProtocol, _RtpProtocol] | None:
        """``rtp_read: tick``: bind the RTP and RTCP sockets and give them to the epoll."""
        host = self.config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        socks: list[socket.socket] = []
        try:
            for p in (port, port + 1):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.setblocking(False)
                sock.bind((host, p))
        except OSError:
            for sock in socks:
                sock.close()
            return None
        if self._epoll is None:
            self._epoll = select.epoll()
        protos = (_RtpProtocol(self, media), _RtcpProtocol(self, media))
        for sock, proto in zip(socks, protos):
            raw = _RawTransport(self, sock)
            proto.transport = raw  # type: ignore[assignment]
            self._readers[raw.fd] = (sock.recvfrom, proto._receive)
            self._epoll.register(raw.fd, select.EPOLLIN)
        return protos

    def _unregister(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None and self._epoll is not None:
            self._epoll.unregister(fd)

    def read_sockets(self) -> int:
        """``rtp_read: tick``: take the datagrams waiting in the calls' sockets (at most
        ``tick_read_rounds`` from one socket), each to its call's media; returns how many."""
        ep = self._epoll
        if ep is None or not self._readers:
            return 0
        readers = self._readers
        now = self.clock()
        got = 0
        for _ in range(self.config.tick_read_rounds):
            ready = ep.poll(0)
            if not ready:
                break
            for fd, _ev in ready:
                reader = readers.get(fd)
                if reader is None:  # closed by a call handled earlier in this round
                    continue
                try:
                    data, addr = reader[0](2048)
                except OSError:  # ICMP port unreachable (ECONNREFUSED), nothing left...
                    continue
                if len(addr) != 2:  # IPv6: (host, port, flowinfo, scope_id)
                    addr = (addr[0], addr[1])
                reader[1](data, addr, now=now)
                got += 1
        return got

    def close_media(self, media: CallMedia) -> None:
        self.mixer.remove(media)
        port = getattr(media, "local_port", None)
        if port is None:
            return
        bye = media.rtcp_bye(now=self.clock())
        rtcp = self._rtcp_sockets.pop(port, None)
        if rtcp is not None and rtcp.transport is not None:
            if bye is not None and media.remote_rtcp is not None:
                rtcp.transport.sendto(bye, media.remote_rtcp)
            rtcp.transport.close()
        proto = self._sockets.pop(port, None)
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    def _ensure_running(self) -> None:
        if self._closing:
            return
        if self._task is None or self._task.done():
            self.last_tick = self.clock()
            task = self._task = self.loop.create_task(self._run())
            task.add_done_callback(self._tick_done)
        if self._watchdog is None and self.config.watchdog_interval > 0:
            self._watchdog = self.loop.call_later(self.config.watchdog_interval, self._watch)

    def _tick_done(self, task: asyncio.Task[None]) -> None:
        """The tick task ended: normal when no call is left; otherwise it died (an exception,
        or cancelled by someone else): log it and start it again at once."""
        if self._closing or task is not self._task and self._task is not None:
            return
        if task.cancelled():
            cause = "cancelled"
        else:
            exc = task.exception()
            if exc is None:
                return  # no calls left (``_run`` returned)
            cause = f"{type(exc).__name__}: {exc}"
            log.error("media tick died", exc_info=exc)
        self._task = None
        if self.mixer.calls:
            self.tick_restarts += 1
            log.error("media tick stopped (%s) with %d calls: restarting it", cause,
                      len(self.mixer.calls))
            self._ensure_running()

    def _watch(self) -> None:
        """The watchdog: a tick task that stopped ticking (stuck on an await that never
        ends) is cancelled, and :meth:`_tick_done` starts a new one."""
        self._watchdog = None
        if self._closing or not self.mixer.calls:
            return
        task = self._task
        if task is None or task.done():
            self.tick_restarts += 1
            log.error("media tick not running with %d calls: restarting it",
                      len(self.mixer.calls))
            self._task = None
            self._ensure_running()
            return
        stalled = self.clock() - self.last_tick
        if stalled > self.config.watchdog_stall:
            log.error("media tick stalled for %.1f s: restarting it", stalled)
            self.last_tick = self.clock()
            task.cancel()  # _tick_done restarts it
        self._watchdog = self.loop.call_later(self.config.watchdog_interval, self._watch)

    async def _sleep_until(self, when: float) -> None:
        # uvloop's timers count from its cached time, which may lag: check and sleep again
        slept = False
        while (delay := when - self.clock()) > 0:
            await asyncio.sleep(delay)
            slept = True
        if not slept:
            # Behind schedule: still let the loop read the sockets once, so that a tick run
            # late (or back to back, catching up) sees the datagrams that arrived meanwhile
            # instead of finding every call's frame missing.
            await asyncio.sleep(0)

    async def _run(self) -> None:
        clock = self.clock
        cfg = self.config
        start = clock()
        k = 0
        lead = 0.0
        work: deque[float] = deque(maxlen=50)
        while self.mixer.calls:
            k += 1
            due = start + k * TICK
            await self._sleep_until(due - lead)
            began = clock()
            behind = int((began - due) / TICK)
            if behind > cfg.max_catch_up:
                self.late_resets += 1
                start = began - k * TICK
            if self._readers:
                try:
                    self.read_sockets()
                except Exception:  # a media's bug must not stop the tick
                    self.tick_errors += 1
                    log.exception("reading the RTP sockets failed")
            try:
                out = self.mixer.tick(now=due)
            except Exception:  # the mixer isolates calls; this is a last resort
                self.tick_errors += 1
                log.exception("media tick failed; the next tick goes on")
                out = []
            self.last_tick = clock()
            if cfg.send_on_deadline:
                work.append(clock() - began)
                # the slowest recent tick plus a margin for timer granularity (1 ms)
                lead = min(cfg.max_lead, max(work) + 0.002)
                await self._sleep_until(due)
            if self.record_lateness:
                self.tick_lateness.append(clock() - due)
            self._send(out)
            self._after_tick(due)
        self._task = None

    def _after_tick(self, now: float) -> None:
        for cb in self.after_tick:
            try:
                cb(now)
            except Exception:  # a callback's bug must not stop the tick
                self.tick_errors += 1
                log.exception("after-tick callback %r failed", cb)

    def _tick(self, now: float) -> None:
        """One tick at once: work and send (tests drive the engine with this)."""
        self.read_sockets()
        self._send(self.mixer.tick(now=now))
        self._after_tick(now)

    def _send(self, out: list[tuple[CallMedia, bytes, Any]]) -> None:
        sockets = self._sockets
        for media, packet, addr in out:
            port = getattr(media, "local_port", -1)
            # RTCP (packet types 200-204 where RTP has marker+PT) leaves from the RTCP port
            proto = self._rtcp_sockets.get(port) if 192 <= packet[1] <= 223 else sockets.get(port)
            if proto is not None and proto.transport is not None:
                proto.transport.sendto(packet, addr)

    async def close(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for media in list(self.mixer.calls):
            self.close_media(media)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
