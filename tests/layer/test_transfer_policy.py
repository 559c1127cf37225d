"""Transfers under policy over loopback (issue 12 finding 2): inbound REFER refused (403)
by default, permitted targets only when enabled, and no descriptor leaks on failure."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from telephony.aio.call import Call
from telephony.aio.useragent import UserAgent
from telephony.errors import CallFailed, TransferFailed
from telephony.eventlog import MemoryEventLog
from telephony.sip.transfer_policy import TransferPolicy
from tests.conftest import free_port
from tests.layer.test_call_api import ua_config

pytestmark = pytest.mark.asyncio


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class Target:
    """A UDP socket standing in for a transfer target: did anyone send it an INVITE?"""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def received(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(65535))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()


async def start_pair(policy: TransferPolicy) -> tuple[UserAgent, UserAgent, MemoryEventLog,
                                                      asyncio.Queue[Call]]:
    calls: asyncio.Queue[Call] = asyncio.Queue()

    async def app(call: Call) -> None:
        calls.put_nowait(call)
        await call.wait_ended()

    log = MemoryEventLog()
    sport = free_port()
    server = UserAgent(replace(ua_config(sport, 24000), transfer_policy=policy), handler=app,
                       events=log)
    client = UserAgent(ua_config(free_port(), 24400))
    await server.start()
    await client.start()
    return server, client, log, calls


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    yield t
    t.close()


async def refer(call: Call, target: str) -> int:
    """Send a REFER from ``call`` and return the final status the peer gave it."""
    call._refer_result = call._ua.loop.create_future()
    call._ua._refer(call, target)
    return await asyncio.wait_for(call._refer_result, 5)


async def test_inbound_refer_is_refused_by_default(target: Target) -> None:
    server, client, log, _ = await start_pair(TransferPolicy())
    try:
        call = await client.dial(f"sip:ivr@127.0.0.1:{server.local_addr[1]}")
        # The probe: a premium-rate number on an arbitrary host:port.
        status = await refer(call, f"sip:+900123456@127.0.0.1:{target.port}")
        assert status == 403 and call._refer_rejected
        await asyncio.sleep(0.3)
        assert target.received() == []  # nothing was dialled
        assert len(server.calls) == 1  # only the caller's call
        refused = [e for e in log.events if e["type"] == "transfer_refused"]
        assert refused and refused[0]["refer"] and "disabled" in refused[0]["reason"]
        await call.hangup()
    finally:
        await client.close()
        await server.close()


async def test_enabled_refer_obeys_only_the_policy(target: Target) -> None:
    policy = TransferPolicy.from_patterns([f"sip:agent-*@127.0.0.1:{target.port}"],
                                          inbound_refer=True)
    server, client, log, _ = await start_pair(policy)
    try:
        call = await client.dial(f"sip:ivr@127.0.0.1:{server.local_addr[1]}")
        for bad in (f"sip:+900123456@127.0.0.1:{target.port}",   # wrong number
                    f"sip:agent-1@127.0.0.1:{target.port + 1}",   # wrong port
                    f"sip:agent-1@127.0.0.1:{target.port};transport=tcp",  # wrong transport
                    "tel:+900123456"):
            assert await refer(call, bad) == 403, bad
        await asyncio.sleep(0.2)
        assert target.received() == []
        # A permitted target: 202, and the node dials it (the INVITE reaches the target).
        call._refer_result = server.loop.create_future()
        client._refer(call, f"sip:agent-7@127.0.0.1:{target.port}")
        for _ in range(50):
            got = target.received()
            if got:
                break
            await asyncio.sleep(0.05)
        assert got and got[0].startswith(b"INVITE sip:agent-7@127.0.0.1")
        assert sum(e["type"] == "transfer_refused" for e in log.events) == 4
        await call.hangup()
    finally:
        await client.close()
        await server.close()


async def test_call_api_transfer_checks_the_policy_before_refer_or_bridge(target: Target) -> None:
    policy = TransferPolicy.from_patterns(["sip:queue@pbx.example.com"])
    server, client, _, _ = await start_pair(TransferPolicy())
    client.config = replace(client.config, transfer_policy=policy)
    try:
        call = await client.dial(f"sip:ivr@127.0.0.1:{server.local_addr[1]}")
        before = server.endpoint.stats["requests_received"]
        with pytest.raises(TransferFailed, match="refused"):
            await call.transfer(f"sip:+900123456@127.0.0.1:{target.port}")
        await asyncio.sleep(0.2)
        # no REFER went out, and no bridge leg was dialled
        assert server.endpoint.stats["requests_received"] == before
        assert target.received() == [] and len(client.calls) == 1
        with pytest.raises(CallFailed) as info:
            await client.dial(f"sip:x@127.0.0.1:{target.port}", transfer=True)
        assert info.value.status == 403
        await call.hangup()
    finally:
        await client.close()
        await server.close()


async def test_a_thousand_failing_transfers_leak_no_descriptor() -> None:
    """Every failure path of ``dial`` frees the RTP/RTCP pair it opened (the issue's 300
    ``tel:`` REFERs leaked 600 descriptors)."""
    closed_tcp = free_port()  # nobody listens: the TCP connect is refused at once
    policy = TransferPolicy.from_patterns([
        "sip:*@127.0.0.1", f"sip:*@127.0.0.1:{closed_tcp};transport=tcp", "tel:+4420*"])
    ua = UserAgent(replace(ua_config(free_port(), 25000), transfer_policy=policy,
                           tel_gateway=None))
    await ua.start()
    try:
        # (target, through the policy?): every way a transfer's call can fail early
        targets = [
            ("sip:+900123456@10.9.9.9", True),                  # refused by the policy
            ("tel:+442079460000", True),                        # permitted, no tel: gateway
            ("sip:bob@127.0.0.1:99999", False),                 # invite() raises after the
                                                                # RTP pair is open
            (f"sip:agent@127.0.0.1:{closed_tcp};transport=tcp", True),  # TCP refused
        ]
        statuses: dict[str, set[int]] = {t: set() for t, _ in targets}
        # warm up once per path so lazily created objects are not counted as leaks
        for t, checked in targets:
            with pytest.raises(CallFailed):
                await ua.dial(t, transfer=checked, timeout=5)
        await asyncio.sleep(0.1)
        gc.collect()
        before = fd_count()
        for i in range(1000):
            t, checked = targets[i % len(targets)]
            with pytest.raises(CallFailed) as info:
                await ua.dial(t, transfer=checked, timeout=5)
            statuses[t].add(info.value.status)
        await asyncio.sleep(0.2)
        gc.collect()
        after = fd_count()
        assert after <= before, (before, after)
        assert ua.calls == {} and not ua.media.mixer.calls and not ua.media._sockets
        assert list(statuses.values()) == [{403}, {416}, {416}, {503}]
    finally:
        await ua.close()
