"""RTP sockets and the one shared 20 ms tick that drives every call's media.

Pacing uses absolute deadlines on the loop's monotonic clock: tick ``k`` is due at
``start + k * 0.020``, so error never accumulates (aiortc's ``mediastreams.py`` shape,
not pyVoIP's relative sleeps).  If the loop falls behind, the missed ticks run back to
back (each call still gets one frame per 20 ms of media) up to ``max_catch_up``; beyond
that the schedule is reset and the gap counted in ``late_resets``.
"""

from __future__ import annotations

import asyncio
import logging
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


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, engine: MediaEngine, media: CallMedia) -> None:
        self.engine = engine
        self.media = media
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.media.receive_rtp(data, (addr[0], addr[1]), now=self.engine.loop.time())

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


class MediaEngine:
    """Owns the RTP port range, one socket per call leg, and the shared tick task."""

    def __init__(self, config: MediaEngineConfig | None = None) -> None:
        self.config = config or MediaEngineConfig()
        self.loop = asyncio.get_running_loop()
        self.mixer = MediaMixer()
        self._sockets: dict[int, _RtpProtocol] = {}
        self._next_port = self.config.port_min
        self._task: asyncio.Task[None] | None = None
        self.late_resets = 0
        self.tick_lateness: list[float] = []
        self.record_lateness = False
        self.after_tick: list[Any] = []

    @property
    def advertised_host(self) -> str:
        return self.config.advertised_host or self.config.host

    async def open(self, media: CallMedia) -> int:
        """Bind an even port from the range for ``media`` (RTCP on port+1 is not bound: we
        multiplex RTCP on the RTP port, RFC 5761, and accept it there)."""
        cfg = self.config
        span = (cfg.port_max - cfg.port_min) // 2
        for _ in range(span):
            port = self._next_port
            self._next_port += 2
            if self._next_port >= cfg.port_max:
                self._next_port = cfg.port_min
            if port in self._sockets:
                continue
            try:
                transport, proto = await self.loop.create_datagram_endpoint(
                    lambda: _RtpProtocol(self, media), local_addr=(cfg.host, port))
            except OSError:
                continue
            self._sockets[port] = proto
            media.local_port = port  # type: ignore[attr-defined]
            self.mixer.add(media)
            self._ensure_running()
            return port
        raise MediaError(f"no free RTP port in {cfg.port_min}-{cfg.port_max}")

    def close_media(self, media: CallMedia) -> None:
        self.mixer.remove(media)
        port = getattr(media, "local_port", None)
        if port is None:
            return
        proto = self._sockets.pop(port, None)
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        loop = self.loop
        start = loop.time()
        k = 0
        while self.mixer.calls:
            k += 1
            due = start + k * TICK
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            if self.record_lateness:
                self.tick_lateness.append(now - due)
            behind = int((now - due) / TICK)
            if behind > self.config.max_catch_up:
                self.late_resets += 1
                start = now - k * TICK
            self._tick(due)
        self._task = None

    def _tick(self, now: float) -> None:
        for media, packet, addr in self.mixer.tick(now=now):
            proto = self._sockets.get(getattr(media, "local_port", -1))
            if proto is not None and proto.transport is not None:
                proto.transport.sendto(packet, addr)
        for cb in self.after_tick:
            cb(now)

    async def close(self) -> None:
        for media in list(self.mixer.calls):
            self.close_media(media)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
