"""The media engine on loopback (issue 12): the watchdog restarts a dead or stalled tick,
and a stranger's datagram does not take a call's outgoing audio."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import pytest

from telephony.aio.media_engine import MediaEngine, MediaEngineConfig
from telephony.media import FRAME, CallMedia, MediaConfig
from telephony.rtp.stream import RtpSender

pytestmark = pytest.mark.asyncio


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def _drain(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            return n
        n += 1


class Rig:
    """An engine with two calls, each with its peer socket on loopback."""

    def __init__(self, engine: MediaEngine) -> None:
        self.engine = engine
        self.peers = [_udp(), _udp()]
        self.calls: list[CallMedia] = []

    async def open(self) -> None:
        for peer in self.peers:
            m = CallMedia(MediaConfig(media_timeout=0.0), now=self.engine.clock(),
                          remote=peer.getsockname())
            await self.engine.open(m)
            self.calls.append(m)

    async def rate(self, seconds: float) -> list[float]:
        """Packets per second each peer receives over ``seconds``."""
        for p in self.peers:
            _drain(p)
        await asyncio.sleep(seconds)
        return [_drain(p) / seconds for p in self.peers]

    async def close(self) -> None:
        await self.engine.close()
        for p in self.peers:
            p.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    engine = MediaEngine(MediaEngineConfig(port_min=47000, port_max=47100,
                                           watchdog_interval=0.1, watchdog_stall=0.3))
    r = Rig(engine)
    await r.open()
    try:
        yield r
    finally:
        await r.close()


async def _wait_for(cond: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_watchdog_restarts_a_tick_task_that_died(rig: Rig,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert min(await rig.rate(0.4)) > 40
    engine = rig.engine
    real = engine._sleep_until
    faults = {"left": 1}

    async def faulty(when: float) -> None:
        if faults["left"]:
            faults["left"] -= 1
            raise RuntimeError("injected fault in the tick task")
        await real(when)

    monkeypatch.setattr(engine, "_sleep_until", faulty)
    dead = engine._task
    assert dead is not None
    await _wait_for(lambda: dead.done())
    assert isinstance(dead.exception(), RuntimeError)
    await _wait_for(lambda: engine.tick_restarts == 1)
    # the tick resumed: both calls get their 50 packets/s again
    rates = await rig.rate(0.5)
    assert min(rates) > 40, rates
    assert engine._task is not None and not engine._task.done()


async def test_watchdog_restarts_a_cancelled_tick(rig: Rig) -> None:
    task = rig.engine._task
    assert task is not None
    task.cancel()
    await _wait_for(lambda: rig.engine.tick_restarts == 1)
    assert min(await rig.rate(0.5)) > 40


async def test_watchdog_restarts_a_stalled_tick(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick stuck on an await that never ends: the watchdog cancels and restarts it."""
    engine = rig.engine
    real = engine._sleep_until
    stuck = {"left": 1}

    async def hang(when: float) -> None:
        if stuck["left"]:
            stuck["left"] -= 1
            await asyncio.Event().wait()  # never set
        await real(when)

    monkeypatch.setattr(engine, "_sleep_until", hang)
    await _wait_for(lambda: engine.tick_restarts == 1)
    assert min(await rig.rate(0.5)) > 40


async def test_after_tick_callback_errors_do_not_stop_the_tick(rig: Rig) -> None:
    calls = {"n": 0}

    def bad(_now: float) -> None:
        calls["n"] += 1
        raise ValueError("a buggy consumer")

    rig.engine.after_tick.append(bad)
    assert min(await rig.rate(0.4)) > 40
    assert rig.engine.tick_errors == calls["n"] > 10
    assert rig.engine.tick_restarts == 0


async def test_a_strangers_datagram_before_the_callers_does_not_take_the_audio() -> None:
    """Issue 12: with the old first-packet latch one datagram sent before the caller's first
    packet redirected the call's outgoing audio.  Default (strict) latch: it stays with the
    SDP address, the stranger gets nothing, and the rejection is counted."""
    engine = MediaEngine(MediaEngineConfig(port_min=47200, port_max=47300))
    caller, stranger = _udp(), _udp()
    try:
        m = CallMedia(MediaConfig(media_timeout=0.0), now=engine.clock())
        port = await engine.open(m)
        m.set_remote(caller.getsockname(), signalling_host="127.0.0.1")
        rogue = RtpSender(0, rng=random.Random(3))
        for _ in range(3):  # even a short plausible stream from another port
            stranger.sendto(rogue.packetize(b"\xff" * FRAME, timestamp_advance=FRAME),
                            ("127.0.0.1", port))
            await asyncio.sleep(0.02)
        good = RtpSender(0, rng=random.Random(4))
        for _ in range(10):
            caller.sendto(good.packetize(b"\xff" * FRAME, timestamp_advance=FRAME),
                          ("127.0.0.1", port))
            await asyncio.sleep(0.02)
        _drain(stranger)
        _drain(caller)
        await asyncio.sleep(0.3)
        assert _drain(stranger) == 0
        assert _drain(caller) > 10
        assert m.remote == caller.getsockname()
        assert m.counters["rx_wrong_source"] == 3
        assert engine.mixer.counters["rx_wrong_source"] == 3
    finally:
        await engine.close()
        caller.close()
        stranger.close()
