"""TCP limits (issue 12 finding 5) with short configured timeouts: a slow message is cut off,
an idle connection without calls is closed, a source may hold only so many connections,
and a connection cannot buffer more than its limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from telephony.aio.useragent import UserAgent
from tests.conftest import free_port
from tests.layer.test_call_api import ua_config

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def ua() -> AsyncIterator[UserAgent]:
    cfg = ua_config(free_port(), 27000)
    agent = UserAgent(replace(cfg, sip=replace(
        cfg.sip, tcp_message_timeout=0.3, tcp_idle_timeout=0.6, tcp_max_per_source=5,
        tcp_max_buffer=4096)))
    await agent.start()
    yield agent
    await agent.close()


async def closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True once the peer closed (EOF or reset) within ``timeout``."""
    try:
        while await asyncio.wait_for(reader.read(4096), timeout):
            pass
    except ConnectionResetError:
        return True  # abort() sends a RST
    except TimeoutError:
        return False
    return True


async def test_partial_message_is_cut_off(ua: UserAgent) -> None:
    reader, writer = await asyncio.open_connection(*ua.local_addr)
    writer.write(b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKa\r\n")
    await writer.drain()
    # keep trickling bytes (so the idle timeout never fires): the message deadline does
    for _ in range(3):
        await asyncio.sleep(0.1)
        writer.write(b"X-Slow: 1\r\n")
    assert await closed(reader, 3.0)
    assert ua.transport.endpoint.stats["tcp_closed_message_timeout"] == 1
    writer.close()


async def test_idle_connection_without_calls_is_closed(ua: UserAgent) -> None:
    reader, writer = await asyncio.open_connection(*ua.local_addr)
    writer.write(b"\r\n\r\n")  # a keep-alive, then nothing
    await writer.drain()
    assert await closed(reader, 3.0)
    assert ua.transport.endpoint.stats["tcp_closed_idle"] == 1
    assert ua.transport.streams == {}
    writer.close()


async def test_per_source_cap_and_buffer_bound(ua: UserAgent) -> None:
    conns = [await asyncio.open_connection(*ua.local_addr) for _ in range(8)]
    await asyncio.sleep(0.1)
    assert len(ua.transport.streams) == 5
    assert ua.transport.endpoint.stats["tcp_refused_per_source"] == 3
    # a header that never ends, beyond the buffer bound: closed at once, memory freed
    reader, writer = conns[0]
    writer.write(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nX-Big: " + b"a" * 8000)
    await writer.drain()
    assert await closed(reader, 2.0)
    assert ua.transport.endpoint.stats["tcp_closed_buffer"] == 1
    for _, w in conns:
        w.close()
