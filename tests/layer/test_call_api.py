"""The Call API end to end over loopback: two in-process UserAgents call each other."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from telephony.aio.call import Call
from telephony.aio.media_engine import MediaEngineConfig
from telephony.aio.useragent import UserAgent, UserAgentConfig
from telephony.errors import CallFailed, TransferFailed
from telephony.eventlog import MemoryEventLog
from telephony.events import HoldChanged, RemoteHangup
from telephony.sip.endpoint import SipConfig
from telephony.sip.transfer_policy import TransferPolicy

pytestmark = pytest.mark.asyncio

Handler = Callable[[Call], Awaitable[None]]


def ua_config(port: int = 0, rtp_base: int = 40000, *, t1: float = 0.1) -> UserAgentConfig:
    """SIP on ``port`` (0: one the OS picks, held from bind to serve); RTP from a range the
    engine allocates in, skipping ports already taken."""
    return UserAgentConfig(
        sip=SipConfig(host="127.0.0.1", port=port, t1=t1),  # timer B = 64 * T1
        media=MediaEngineConfig(host="127.0.0.1", port_min=rtp_base, port_max=rtp_base + 8000),
    )


async def wait_for_event(log: MemoryEventLog, kind: str, count: int = 1,
                         timeout: float = 5.0) -> list[dict[str, object]]:
    """Wait (polling the log every 10 ms) until ``count`` events of ``kind`` were logged."""
    async def poll() -> list[dict[str, object]]:
        while len(log.of_type(kind)) < count:
            await asyncio.sleep(0.01)
        return log.of_type(kind)

    return await asyncio.wait_for(poll(), timeout)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def media_flowing(call: Call, packets: int = 5, timeout: float = 5.0) -> None:
    """Wait until ``call`` has received ``packets`` RTP packets from its peer."""
    async def poll() -> None:
        while call.media.rx_stats.received < packets:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


class Pair:
    def __init__(self) -> None:
        self.server_log = MemoryEventLog()
        self.client_log = MemoryEventLog()
        self.handler: Handler | None = None
        self.server_calls: asyncio.Queue[Call] = asyncio.Queue()
        self.server: UserAgent
        self.client: UserAgent
        self.target = ""

    async def _handle(self, call: Call) -> None:
        self.server_calls.put_nowait(call)
        if self.handler is not None:
            await self.handler(call)
        else:
            await call.wait_ended()

    async def start(self) -> None:
        self.server = UserAgent(ua_config(), handler=self._handle, events=self.server_log)
        self.client = UserAgent(ua_config(), events=self.client_log)
        _, sport = await self.server.start()
        await self.client.start()
        self.target = f"sip:ivr@127.0.0.1:{sport}"

    async def close(self) -> None:
        await self.client.close()
        await self.server.close()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    p = Pair()
    await p.start()
    try:
        yield p
    finally:
        await p.close()


async def test_call_answer_and_remote_hangup(pair: Pair) -> None:
    call = await asyncio.wait_for(pair.client.dial(pair.target), 5)
    server_call = await asyncio.wait_for(pair.server_calls.get(), 5)
    assert server_call.direction == "inbound"
    await media_flowing(server_call)
    await call.hangup()
    assert await server_call.wait_ended(5) == "remote_bye"
    types = [e["type"] for e in pair.server_log.events]
    assert types[:2] == ["call_started", "call_answered"]
    ended = pair.server_log.of_type("call_ended")
    assert len(ended) == 1 and ended[0]["cause"] == "remote_bye"
    assert ended[0]["rtp"]["received"] > 0  # media flowed


async def test_digits_by_rfc4733_info_and_inband_reach_collect_digits(pair: Pair) -> None:
    results: asyncio.Queue[object] = asyncio.Queue()

    async def app(call: Call) -> None:
        for _ in range(3):
            r = await call.collect_digits(2, timeout=5, inter_digit_timeout=2)
            results.put_nowait(r)

    pair.handler = app
    call = await pair.client.dial(pair.target)
    await media_flowing(call)
    for method, digits in (("rfc4733", "12"), ("info", "34"), ("inband", "56")):
        await call.send_dtmf(digits, method=method, duration_ms=100, gap_ms=100)
        r = await asyncio.wait_for(results.get(), 5)
        assert r.digits == digits, method  # type: ignore[attr-defined]
        assert set(r.sources) == {method}  # type: ignore[attr-defined]
    dtmf = pair.server_log.of_type("dtmf")
    assert [e["digit"] for e in dtmf] == list("123456")
    await call.hangup()


async def test_play_is_heard_by_the_other_side(pair: Pair, tmp_path: Path) -> None:
    tone = (4000 * np.sin(2 * np.pi * 600 * np.arange(8000) / 8000)).astype(np.int16)
    done = asyncio.Event()

    async def app(call: Call) -> None:
        await asyncio.sleep(0.2)
        r = await call.play(tone)
        assert not r.interrupted
        done.set()
        await call.wait_ended()

    pair.handler = app
    call = await pair.client.dial(pair.target)
    rec_task = asyncio.create_task(call.record(tmp_path / "heard.wav", max_seconds=2.0,
                                               both_directions=False))
    await asyncio.wait_for(done.wait(), 5)
    rec = await rec_task
    heard = rec.caller_audio().astype(float)
    xc = np.correlate(heard, tone.astype(float), mode="valid")
    k = int(np.argmax(xc))
    corr = np.corrcoef(heard[k:k + len(tone)], tone.astype(float))[0, 1]
    assert corr > 0.98
    assert (tmp_path / "heard.wav").stat().st_size > 16000
    await call.hangup()


async def test_barge_in_stops_prompt_on_digit(pair: Pair) -> None:
    outcome: asyncio.Queue[object] = asyncio.Queue()

    async def app(call: Call) -> None:
        r = await call.play(np.full(8000 * 10, 800, np.int16), barge_in=True)
        d = await call.collect_digits(1, timeout=2)
        outcome.put_nowait((r, d))

    pair.handler = app
    call = await pair.client.dial(pair.target)
    await wait_for_event(pair.server_log, "prompt_started")
    await call.send_dtmf("9")
    r, d = await asyncio.wait_for(outcome.get(), 5)  # type: ignore[misc]
    assert r.interrupted and d.digits == "9"
    await call.hangup()


async def test_server_hangup_reaches_client(pair: Pair) -> None:
    async def app(call: Call) -> None:
        await asyncio.sleep(0.3)
        await call.hangup()

    pair.handler = app
    call = await pair.client.dial(pair.target)
    events = []

    async def watch() -> None:
        async for ev in call.events():
            events.append(ev)

    w = asyncio.create_task(watch())
    assert await call.wait_ended(5) is not None
    await asyncio.wait_for(w, 2)
    assert isinstance(events[-1], RemoteHangup)


async def test_dial_refused_over_tcp_fails_with_503(pair: Pair) -> None:
    # connection refused is a transport error (RFC 3261 8.1.3.1): 503 at once, from SIP
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    started = asyncio.get_running_loop().time()
    with pytest.raises(CallFailed) as info:
        await pair.client.dial(f"sip:nobody@127.0.0.1:{port};transport=tcp", timeout=5)
    assert info.value.status == 503
    assert asyncio.get_running_loop().time() - started < 4  # SIP's answer, not dial's timeout


async def test_dial_to_a_silent_peer_fails_with_408_at_timer_b() -> None:
    # a peer that takes the datagrams and never answers: timer B (64 * T1) ends the INVITE
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    client = UserAgent(ua_config(t1=0.02))  # timer B = 1.28 s
    await client.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(CallFailed) as info:
            await client.dial(f"sip:nobody@127.0.0.1:{silent.getsockname()[1]}", timeout=10)
        elapsed = loop.time() - started
        assert info.value.status == 408 and info.value.reason != "no answer"  # not dial's own
        assert 1.2 < elapsed < 5
    finally:
        silent.close()
        await client.close()


async def test_hold_and_unhold_reinvite(pair: Pair) -> None:
    seen: list[bool] = []

    async def app(call: Call) -> None:
        async for ev in call.events():
            if isinstance(ev, HoldChanged):
                seen.append(ev.on_hold)

    pair.handler = app
    call = await pair.client.dial(pair.target)
    await pair.client.hold(call, True)
    await wait_until(lambda: len(seen) >= 1)
    await pair.client.hold(call, False)
    await wait_until(lambda: len(seen) >= 2)
    assert seen == [True, False]
    await call.hangup()


async def test_transfer_by_refer_places_the_new_call(pair: Pair) -> None:
    # The client asks the server (REFER) to call a third UA.
    third_calls: asyncio.Queue[Call] = asyncio.Queue()

    async def third_app(call: Call) -> None:
        third_calls.put_nowait(call)
        await call.wait_ended()

    third = UserAgent(ua_config(), handler=third_app)
    _, tport = await third.start()
    # inbound REFER is refused (403) unless the node's transfer policy enables it (issue 12)
    pair.server.config = replace(pair.server.config, transfer_policy=TransferPolicy.from_patterns(
        [f"sip:agent@127.0.0.1:{tport}"], inbound_refer=True))
    try:
        call = await pair.client.dial(pair.target)
        await call.transfer(f"sip:agent@127.0.0.1:{tport}")
        transferred = await asyncio.wait_for(third_calls.get(), 5)
        assert transferred.direction == "inbound"
        await call.hangup()
    finally:
        await third.close()


async def test_refer_reports_the_sipfrag_outcome_and_never_bridges(pair: Pair) -> None:
    # Call.refer (the dialer's connect: refer): the REFER's own refusal, then the referred
    # call's final status from the NOTIFY sipfrag (RFC 3515 2.4.4); no bridge fallback.
    third_calls: list[str] = []

    async def third_app(call: Call) -> None:
        third_calls.append(call.called)
        if call.called == "busy":
            third.endpoint.reject(call.ref, 486, now=third.now())
            third.transport.flush()
            return
        await call.answer()
        await call.wait_ended()

    third = UserAgent(replace(ua_config(), auto_answer=False), handler=third_app)
    _, tport = await third.start()
    try:
        call = await pair.client.dial(pair.target)
        refused = await call.refer(f"sip:agent@127.0.0.1:{tport}", timeout=5)
        assert (refused.status, refused.refused, refused.ok) == (403, True, False)
        assert third_calls == [] and not call.ended
        pair.server.config = replace(pair.server.config, transfer_policy=TransferPolicy
                                     .from_patterns(["sip:127.0.0.1"], inbound_refer=True))
        busy = await call.refer(f"sip:busy@127.0.0.1:{tport}", timeout=5)
        assert (busy.status, busy.refused, busy.ok) == (486, False, False)
        done = await call.refer(f"sip:agent@127.0.0.1:{tport}", timeout=5)
        assert (done.status, done.ok) == (200, True)
        assert third_calls == ["busy", "agent"]
        await call.hangup()
    finally:
        await third.close()


async def test_transfer_to_nowhere_fails(pair: Pair) -> None:
    # nobody listens there (TCP, so the refusal is immediate; the UDP path ends at timer B,
    # test_dial_to_a_silent_peer_fails_with_408_at_timer_b): REFER refused, the bridge fails
    call = await pair.client.dial(pair.target)
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    started = asyncio.get_running_loop().time()
    with pytest.raises(TransferFailed):
        await call.transfer(f"sip:agent@127.0.0.1:{port};transport=tcp", timeout=15)
    assert asyncio.get_running_loop().time() - started < 5
    assert not call.ended  # a failed transfer leaves the caller where they were
    await call.hangup()


async def test_rtcp_reports_flow_both_ways_and_bye_ends_them(pair: Pair) -> None:
    got: asyncio.Queue[Call] = asyncio.Queue()

    async def app(call: Call) -> None:
        got.put_nowait(call)
        await call.wait_ended()

    pair.handler = app
    call = await pair.client.dial(pair.target)
    server_call = await asyncio.wait_for(got.get(), 5)
    # the first report is due 1.25-3.75 s in (RFC 3550 6.2: half the 5 s interval, randomised)
    for _ in range(60):
        if call.media.counters["rx_rtcp"] and server_call.media.counters["rx_rtcp"]:
            break
        await asyncio.sleep(0.1)
    assert call.media.counters["rx_rtcp"] >= 1 and server_call.media.counters["rx_rtcp"] >= 1
    assert server_call.media.rtcp.reports_sent >= 1
    # the sender report we received is remembered for the report blocks we send (LSR/DLSR)
    assert call.media.rx_stats.report_block(now=pair.client.now()).lsr != 0
    await call.hangup()
    await server_call.wait_ended(5)
    # we left the RTP session with an RTCP BYE (whether it beats the SIP BYE to the peer's
    # closing sockets is a race, so its receipt is checked in tests/unit/test_media_pipeline.py)
    assert call.media.rtcp.get_timer() is None
