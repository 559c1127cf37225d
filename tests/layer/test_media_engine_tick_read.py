"""The media engine reading its RTP sockets at the tick (``rtp_read: tick``), over real sockets."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import numpy as np
import pytest

from telephony.aio.media_engine import MediaEngine, MediaEngineConfig
from telephony.codecs.base import get_codec
from telephony.errors import MediaError
from telephony.media import FRAME, CallMedia, MediaConfig
from telephony.rtp.packet import RtpPacket, is_rtcp
from telephony.rtp.stream import RtpSender


def _recv_all(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            return out


@pytest.mark.parametrize("mode", ["loop", "tick"])
async def test_both_read_modes_receive_every_packet_and_send_from_the_call_port(mode: str) -> None:
    engine = MediaEngine(MediaEngineConfig(port_min=46700, port_max=46780, rtp_read=mode))
    peers = []
    legs = []
    try:
        for i in range(3):
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind(("127.0.0.1", 0))
            peer.setblocking(False)
            peers.append(peer)
            m = CallMedia(MediaConfig(media_timeout=0.0), now=engine.clock(),
                          rng=random.Random(i), remote=peer.getsockname())
            port = await engine.open(m)
            legs.append((m, port))
        codec = get_codec("PCMU")
        tone = (np.sin(np.arange(FRAME) * 0.2) * 6000).astype(np.int16)
        senders = [RtpSender(0, rng=random.Random(10 + i)) for i in range(3)]
        for k in range(10):
            for (m, port), peer, tx in zip(legs, peers, senders):
                # two packets in some ticks (a burst), none in others
                for _ in range(2 if k % 3 == 0 else (0 if k % 3 == 1 else 1)):
                    peer.sendto(tx.packetize(codec.encode(tone), timestamp_advance=FRAME),
                                ("127.0.0.1", port))
            await asyncio.sleep(0.020)
        await asyncio.sleep(0.1)
        for m, _port in legs:
            assert m.counters["rx_packets"] == 10 + 1  # 4 ticks of 2, 3 of 1 (k % 3 == 2)
            assert m.counters["rx_bad"] == 0
        for (_m, port), peer in zip(legs, peers):
            got = [RtpPacket.parse(d) for d in _recv_all(peer) if not is_rtcp(d)]
            assert len(got) >= 10  # silence every tick while the call is up
        if mode == "tick":
            assert len(engine._readers) == 6
        engine.close_media(legs[0][0])
        if mode == "tick":
            assert len(engine._readers) == 4
    finally:
        await engine.close()
        for peer in peers:
            peer.close()
    assert not engine._readers


async def test_tick_read_takes_a_few_datagrams_per_socket_per_tick() -> None:
    engine = MediaEngine(MediaEngineConfig(port_min=46780, port_max=46800, rtp_read="tick",
                                           tick_read_rounds=2))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    try:
        engine._ensure_running = lambda: None  # type: ignore[method-assign]  # no tick task
        m = CallMedia(MediaConfig(media_timeout=0.0), now=engine.clock(),
                      remote=peer.getsockname())
        port = await engine.open(m)
        header = struct.Struct("!BBHII")
        for seq in range(5):
            peer.sendto(header.pack(0x80, 0, seq, seq * FRAME, 77) + bytes(FRAME),
                        ("127.0.0.1", port))
        await asyncio.sleep(0.05)
        assert engine.read_sockets() == 2
        assert engine.read_sockets() == 2
        assert engine.read_sockets() == 1
        assert engine.read_sockets() == 0
    finally:
        await engine.close()
        peer.close()


def test_unknown_read_mode_is_refused() -> None:
    with pytest.raises(MediaError):
        MediaEngineConfig(rtp_read="io_uring")
