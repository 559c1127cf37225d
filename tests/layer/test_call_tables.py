"""Nothing of a call outlives it (issue 12, memory after a burst): after many short calls
have ended and their RFC 3261 linger is over, the user agent's, the SIP endpoint's and the
media engine's per-call tables are empty, and the mixer's bank has shrunk back."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from telephony import media as media_mod
from telephony.aio.call import Call
from telephony.aio.useragent import UserAgent
from telephony.sip.admission import AdmissionConfig
from tests.conftest import free_port
from tests.layer.test_call_api import ua_config, wait_until

pytestmark = pytest.mark.asyncio

CALLS = 40


async def test_no_per_call_entry_is_left_after_calls_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_mod, "_SHRINK_TICKS", 10)  # 0.2 s instead of 5
    cfg = ua_config(free_port(), 27000, t1=0.01)  # 64*T1 linger of transactions: 0.64 s
    # (admission is not under test: a loaded test machine must not refuse these calls)
    cfg = replace(cfg, sip=replace(cfg.sip, linger=0.3, admission=AdmissionConfig(
        calls_per_second=None, max_tick_lateness=None)))

    async def app(call: Call) -> None:
        await call.answer()
        await call.wait_ended()

    server = UserAgent(cfg, handler=app)
    client = UserAgent(ua_config(free_port(), 27400, t1=0.01))
    sport = (await server.start())[1]
    await client.start()
    try:
        held = await client.dial(f"sip:ivr@127.0.0.1:{sport}")
        calls = await asyncio.gather(*(client.dial(f"sip:ivr@127.0.0.1:{sport}")
                                       for _ in range(CALLS)))
        await wait_until(lambda: len(server.media.mixer.calls) == CALLS + 1, timeout=20.0)
        peak = server.media.mixer.channels
        assert peak >= CALLS + 1
        await asyncio.gather(*(c.hangup() for c in calls))
        ep = server.endpoint

        def settled() -> bool:
            p = ep.pending()
            return p["calls"] == 1 and p["server_transactions"] + p["client_transactions"] <= 2

        await wait_until(settled, timeout=20.0)
        # the held call's entries only, in every table
        assert list(server.calls) == [next(iter(server.calls))] and len(server._sdp) == 1
        assert len(server._started_at) <= 1 and not server._setting_up
        assert not server._pending_dials and not server._reinvites and not server._bridged
        assert len(server.media.mixer.calls) == 1
        assert len(server.media._sockets) == len(server.media._rtcp_sockets) == 1
        assert ep.pending()["dialogs"] == 1
        # the bank went back to room for the held call (and that call kept its audio)
        await wait_until(lambda: server.media.mixer.channels < peak, timeout=20.0)
        assert server.media.mixer.channels == media_mod._bank_target(1)
        assert server.media.mixer.bank_shrinks == 1
        before = held.media.counters["rx_packets"]
        await asyncio.sleep(0.2)
        assert held.media.counters["rx_packets"] > before
    finally:
        await client.close()
        await server.close()
