"""Issue 12, finding 1: one packet must not silence the node (sans-IO, virtual clock).

The finding: an RTP packet of payload type 13 (RFC 3389 comfort noise) with a 1-byte
payload 0x80 (its reserved bit set) or an empty payload made ``ComfortNoise.parse`` raise
out of ``MediaMixer.tick``, which ended the shared 20 ms loop for every call.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.events import MediaFailed
from telephony.media import FRAME, CallMedia, MediaConfig, MediaMixer
from telephony.rtp.packet import is_rtcp
from telephony.rtp.stream import RtpSender

TICK = 0.020


class Fleet:
    """``n`` calls in one mixer, each fed 50 packets/s by its own sender, ticked together;
    counts the packets each call sends back."""

    def __init__(self, n: int, *, batch_min: int | None = None) -> None:
        self.mixer = MediaMixer()
        if batch_min is not None:
            self.mixer.batch_min = batch_min
        self.now = 0.0
        self.calls: list[CallMedia] = []
        self.peers: list[tuple[str, int]] = []
        self.senders: list[RtpSender] = []
        for i in range(n):
            peer = ("127.0.0.1", 40000 + 2 * i)
            m = CallMedia(MediaConfig(media_timeout=5.0), now=0.0, rng=random.Random(i),
                          remote=peer)
            self.mixer.add(m)
            self.calls.append(m)
            self.peers.append(peer)
            self.senders.append(RtpSender(0, rng=random.Random(100 + i)))
        self.sent = [0] * n
        self.frame = np.full(FRAME, 0xFF, dtype=np.uint8).tobytes()  # mu-law silence

    def step(self, *, feed: bool = True) -> None:
        self.now += TICK
        if feed:
            for m, peer, sender in zip(self.calls, self.peers, self.senders):
                m.receive_rtp(sender.packetize(self.frame, timestamp_advance=FRAME), peer,
                              now=self.now - 0.005)
        index = {id(m): i for i, m in enumerate(self.calls)}
        for m, data, addr in self.mixer.tick(now=self.now):
            if not is_rtcp(data):
                assert addr == self.peers[index[id(m)]]
                self.sent[index[id(m)]] += 1


@pytest.mark.parametrize("payload", [b"\x80", b"", b"\xff\x01\x02"])
@pytest.mark.parametrize("batch_min", [1, 48])
def test_a_bad_comfort_noise_packet_is_dropped_and_every_call_keeps_its_audio(
        payload: bytes, batch_min: int) -> None:
    """The report's packet, on the columns path (batch_min 1) and the objects' (48)."""
    fleet = Fleet(3, batch_min=batch_min)
    for _ in range(50):
        fleet.step()
    victim = fleet.calls[1]
    bad = RtpSender(13, rng=random.Random(9)).packetize(payload, timestamp_advance=FRAME)
    victim.receive_rtp(bad, fleet.peers[1], now=fleet.now)
    before = list(fleet.sent)
    for _ in range(50):
        fleet.step()
    assert [b - a for a, b in zip(before, fleet.sent)] == [50, 50, 50]
    assert victim.counters["rx_bad"] == 1
    assert fleet.mixer.counters["rx_bad"] == 1
    assert fleet.mixer.calls_failed == 0 and victim.next_event() is None


def test_a_cn_packet_becoming_the_stream_type_is_dropped_on_the_columns_path_too() -> None:
    """Valid CN makes 13 the call's current payload type (it may enter the columns as such);
    a malformed CN after it is then counted and dropped there as well."""
    fleet = Fleet(2, batch_min=1)
    for _ in range(20):
        fleet.step()
    cn = RtpSender(13, rng=random.Random(5))
    for k in range(30):
        fleet.calls[0].receive_rtp(cn.packetize(b"\x28", timestamp_advance=FRAME),
                                   fleet.peers[0], now=fleet.now)
        fleet.step()
        if k == 20:
            fleet.calls[0].receive_rtp(cn.packetize(b"\x80", timestamp_advance=FRAME),
                                       fleet.peers[0], now=fleet.now)
    assert fleet.calls[0].counters["rx_bad"] >= 1
    assert fleet.mixer.calls_failed == 0


def test_an_oversized_audio_payload_is_dropped_not_raised() -> None:
    fleet = Fleet(2)
    for _ in range(10):
        fleet.step()
    huge = RtpSender(0, rng=random.Random(2)).packetize(b"\x55" * 40000, timestamp_advance=40000)
    fleet.calls[0].receive_rtp(huge, fleet.peers[0], now=fleet.now)
    before = list(fleet.sent)
    for _ in range(10):
        fleet.step()
    assert [b - a for a, b in zip(before, fleet.sent)] == [10, 10]
    assert fleet.calls[0].counters["rx_bad"] == 1


def test_a_comfort_noise_flood_is_bounded() -> None:
    """CN packets with no audio to play never start playout: they must not pile up."""
    m = CallMedia(MediaConfig(), now=0.0, remote=("127.0.0.1", 40000))
    cn = RtpSender(13, rng=random.Random(5))
    for k in range(2000):
        m.receive_rtp(cn.packetize(b"\x28", timestamp_advance=FRAME), ("127.0.0.1", 40000),
                      now=k * 0.001)
    assert len(m.jitter._cn) <= 64


@pytest.mark.parametrize("step", ["rx_frame", "tx_frame", "packets", "apply_vad"])
def test_one_call_raising_in_the_tick_ends_that_call_only(
        step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever one call's code raises, that call leaves the mixer with MediaFailed (its
    cause logged) and the others keep 50 packets/s."""
    fleet = Fleet(3)
    broken = fleet.calls[1]
    broken.start_recording(now=0.0)  # so that apply_vad runs for it every tick

    def boom(*_a: object, **_k: object) -> object:
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(broken, step, boom)
    for _ in range(50):
        fleet.step()
    assert fleet.sent[0] == 50 and fleet.sent[2] == 50
    assert fleet.sent[1] == 0
    assert broken not in fleet.mixer.calls and broken.slot is None
    event = broken.next_event()
    assert isinstance(event, MediaFailed) and "ZeroDivisionError: injected" in event.cause
    assert fleet.mixer.calls_failed == 1


# --- the fuzz: arbitrary datagrams to every RTP/RTCP handler of a live mixer ---------------

_datagrams = st.one_of(
    st.binary(max_size=300),
    # RTP-shaped: version 2, any marker/PT, then anything
    st.tuples(st.integers(0x80, 0xBF), st.integers(0, 255), st.binary(min_size=10, max_size=200))
    .map(lambda t: bytes((t[0], t[1])) + t[2]),
    # the report's CN packets, and CN with random levels
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=3))
    .map(lambda t: bytes((0x80, 13)) + t[0].to_bytes(2, "big") + bytes(8) + t[1]),
    # RTCP-shaped: version 2, PT 200-204
    st.tuples(st.integers(0x80, 0x9F), st.integers(192, 223), st.binary(max_size=120))
    .map(lambda t: bytes((t[0], t[1])) + len(t[2]).to_bytes(2, "big") + t[2]),
    # telephone-event PT 101
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=8))
    .map(lambda t: bytes((0x80, 101)) + t[0].to_bytes(2, "big") + bytes(8) + t[1]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch_min=st.sampled_from([1, 48]),
       attacks=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["rtp", "rtcp", "other"]),
                                  _datagrams), min_size=1, max_size=25))
def test_arbitrary_datagrams_never_stop_the_mixer(
        batch_min: int, attacks: list[tuple[int, str, bytes]]) -> None:
    """Arbitrary bytes to the RTP port (from the call's own source), the RTCP port, and from
    a stranger, spread over the ticks; the other calls keep their 50 packets/s, and the
    attacked call is never failed: every bad datagram is counted and dropped."""
    fleet = Fleet(3, batch_min=batch_min)
    for _ in range(10):
        fleet.step()
    victim = fleet.calls[0]
    before = list(fleet.sent)
    for when, port, data in sorted(attacks, key=lambda a: a[0]):
        while fleet.now < 0.2 + when * TICK:
            fleet.step()
        if port == "rtp":
            victim.receive_rtp(data, fleet.peers[0], now=fleet.now)
        elif port == "rtcp":
            victim.receive_rtcp(data, (fleet.peers[0][0], fleet.peers[0][1] + 1), now=fleet.now)
        else:
            victim.receive_rtp(data, ("127.0.0.1", 50000), now=fleet.now)
    for _ in range(10):
        fleet.step()
    elapsed = [b - a for a, b in zip(before, fleet.sent)]
    total_ticks = round((fleet.now - 0.2) / TICK)
    assert elapsed[1] == elapsed[2] == total_ticks
    assert elapsed[0] == total_ticks  # the attacked call still sends too
    assert fleet.mixer.calls_failed == 0 and fleet.mixer.tick_errors == 0
    assert victim in fleet.mixer.calls
    # and it still receives: its own stream's packets are counted
    assert victim.counters["rx_packets"] >= 20
