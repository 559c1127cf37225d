"""The media engine's pacing over a real socket: packets leave on the 20 ms grid."""

from __future__ import annotations

import asyncio
import socket

import numpy as np

from telephony.aio.media_engine import MediaEngine, MediaEngineConfig
from telephony.media import CallMedia, MediaConfig
from telephony.rtp.packet import is_rtcp

LEGS = 3
TICKS = 25


async def test_engine_sends_on_the_20ms_grid() -> None:
    """Packets leave at their deadline (never before), one per leg per tick."""
    engine = MediaEngine(MediaEngineConfig(port_min=46800, port_max=46900))
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    try:
        for _ in range(LEGS):
            m = CallMedia(MediaConfig(media_timeout=0.0), now=engine.clock(),
                          remote=rx.getsockname())
            await engine.open(m)
            m.play("p", np.zeros(8000 * 5, np.int16), now=engine.clock())

        async def ticks_done() -> None:
            while len(engine.tick_lateness) < TICKS:
                await asyncio.sleep(0.005)

        received = 0

        def drain() -> None:
            nonlocal received
            while True:
                try:
                    data = rx.recv(2048)
                except BlockingIOError:
                    return
                received += not is_rtcp(data)

        drain()  # what left before the count started
        engine.record_lateness = True
        await asyncio.wait_for(ticks_done(), 10)
        engine.record_lateness = False
        ticks = len(engine.tick_lateness)
        received = 0
        await asyncio.sleep(0)  # one loop pass: loopback delivery is immediate
        drain()
        lateness = np.array(engine.tick_lateness)
        assert (lateness >= 0).all()  # sent at or after the deadline, never early
        # every leg sent one packet per tick counted (give or take the ticks at either edge)
        assert LEGS * (ticks - 2) <= received <= LEGS * (ticks + 2)
    finally:
        await engine.close()
        rx.close()
