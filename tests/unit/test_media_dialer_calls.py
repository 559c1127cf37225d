"""The media settings of a dialer's calls, on a virtual clock: what a call sends while it has
nothing to play (MediaConfig.idle_tx), and no in-band DTMF pass when no call wants it."""

from __future__ import annotations

import random

import numpy as np
import pytest

from telephony.codecs.base import get_codec
from telephony.errors import MediaError
from telephony.events import DtmfReceived
from telephony.media import FRAME, CallMedia, MediaConfig, MediaMixer, dtmf_tone
from telephony.rtp.packet import RtpPacket
from telephony.rtp.stream import RtpSender

PEER = ("127.0.0.1", 40000)
TONE = (np.sin(np.arange(4 * FRAME) * 0.3) * 8000).astype(np.int16)


def _setup(**kw: object) -> tuple[CallMedia, MediaMixer]:
    mixer = MediaMixer()
    media = CallMedia(MediaConfig(media_timeout=0.0, **kw), now=0.0,  # type: ignore[arg-type]
                      rng=random.Random(3), remote=PEER)
    mixer.add(media)
    return media, mixer


def _ticks(mixer: MediaMixer, start: int, n: int) -> list[tuple[int, RtpPacket]]:
    """RTP packets sent in ticks ``start .. start + n - 1`` (RTCP left out), with their tick."""
    out = []
    for k in range(start, start + n):
        for _m, data, addr in mixer.tick(now=k * 0.020):
            if 192 <= data[1] <= 223:
                continue
            assert addr == PEER
            out.append((k, RtpPacket.parse(data)))
    return out


def test_silence_is_the_default_a_packet_every_tick() -> None:
    _media, mixer = _setup()
    sent = _ticks(mixer, 1, 50)
    assert [k for k, _ in sent] == list(range(1, 51))
    assert [p.marker for _, p in sent] == [True] + [False] * 49


def test_suppress_sends_the_burst_then_nothing_then_resumes_with_marker_and_continuity() -> None:
    media, mixer = _setup(idle_tx="suppress", idle_burst=5)
    burst = _ticks(mixer, 1, 40)
    assert [k for k, _ in burst] == [1, 2, 3, 4, 5]
    first = burst[0][1]
    media.play("p", TONE, now=0.8)
    resumed = _ticks(mixer, 41, 6)
    # the prompt starts at once: one packet every tick while it plays (4 frames), then idle
    assert [k for k, _ in resumed] == [41, 42, 43, 44]
    pkt = resumed[0][1]
    assert pkt.marker  # RFC 3551 4.1: the first packet of a talkspurt
    assert not any(p.marker for _, p in resumed[1:])
    # RFC 3550 5.1: the sequence number counts packets; the timestamp counts sampling time
    assert pkt.sequence_number == (burst[-1][1].sequence_number + 1) & 0xFFFF
    assert pkt.timestamp == (first.timestamp + 40 * FRAME) & 0xFFFFFFFF
    assert pkt.ssrc == first.ssrc
    assert np.abs(media.codec.decode(pkt.payload).astype(np.int32)).max() > 1000
    assert media.counters["tx_packets"] == 9


def test_suppress_sends_a_keepalive_and_stops_for_nothing_else() -> None:
    _media, mixer = _setup(idle_tx="suppress", idle_burst=2, idle_keepalive=0.1)
    sent = _ticks(mixer, 1, 20)
    # 2 of the burst, then 5 quiet ticks and a keep-alive (marked: a talkspurt of its own)
    assert [k for k, _ in sent] == [1, 2, 8, 14, 20]
    assert all(p.marker for _, p in sent[2:])
    assert sent[2][1].timestamp == (sent[0][1].timestamp + 7 * FRAME) & 0xFFFFFFFF


def test_suppress_ends_when_the_call_is_bridged() -> None:
    media, mixer = _setup(idle_tx="suppress", idle_burst=1)
    other = CallMedia(MediaConfig(media_timeout=0.0), now=0.0, rng=random.Random(4),
                      remote=("127.0.0.1", 40002))
    mixer.add(other)

    def sent(start: int, n: int) -> list[tuple[CallMedia, RtpPacket]]:
        return [(m, RtpPacket.parse(data)) for k in range(start, start + n)
                for m, data, _addr in mixer.tick(now=k * 0.020) if not 192 <= data[1] <= 223]

    first = sent(1, 10)
    assert sum(m is media for m, _ in first) == 1 and sum(m is other for m, _ in first) == 10
    media.bridge(other)
    both = sent(11, 3)
    assert sum(m is media for m, _ in both) == 3 and sum(m is other for m, _ in both) == 3
    mine = [p for m, p in both if m is media]
    assert [p.marker for p in mine] == [True, False, False]


def test_suppress_lets_rfc4733_digits_through() -> None:
    media, mixer = _setup(idle_tx="suppress", idle_burst=1)
    _ticks(mixer, 1, 10)
    media.send_dtmf("5", 100, now=0.2)
    sent = _ticks(mixer, 11, 12)
    events = [p for _, p in sent if p.payload_type == 101]
    assert events and events[0].marker
    assert all(p.payload_type == 101 for _, p in sent)  # back to quiet after the digit


def test_unknown_idle_tx_is_refused() -> None:
    with pytest.raises(MediaError):
        MediaConfig(idle_tx="comfort")


def _feed_digit(mixer: MediaMixer, legs: list[CallMedia], start: int) -> None:
    """Every leg hears the same: 200 ms of silence, an in-band "7" of 100 ms, 300 ms of
    silence (PCMU, one packet per tick from its own peer address)."""
    codec = get_codec("PCMU")
    audio = np.concatenate([np.zeros(1600, np.int16), dtmf_tone("7", 100),
                            np.zeros(2400, np.int16)])
    senders = [RtpSender(0, rng=random.Random(50 + i)) for i in range(len(legs))]
    for j, k in enumerate(range(start, start + len(audio) // FRAME)):
        frame = audio[j * FRAME:(j + 1) * FRAME]
        for m, tx in zip(legs, senders):
            m.receive_rtp(tx.packetize(codec.encode(frame), timestamp_advance=FRAME),
                          m.remote, now=k * 0.020 - 0.005)  # type: ignore[arg-type]
        mixer.tick(now=k * 0.020)


def _digits(m: CallMedia) -> list[str]:
    out = []
    while (ev := m.next_event()) is not None:
        if isinstance(ev, DtmfReceived):
            out.append(ev.digit)
    return out


def test_no_inband_dtmf_pass_while_no_call_wants_it_then_digits_for_a_call_that_does() -> None:
    mixer = MediaMixer()
    quiet = [CallMedia(MediaConfig(media_timeout=0.0, inband_dtmf=False), now=0.0,
                       rng=random.Random(i), remote=("127.0.0.1", 41000 + 2 * i))
             for i in range(3)]
    for m in quiet:
        mixer.add(m)
    _feed_digit(mixer, quiet, 1)
    assert mixer.dtmf_skipped >= 30  # every tick: no call has in-band DTMF on
    assert all(_digits(m) == [] for m in quiet)
    ivr = CallMedia(MediaConfig(media_timeout=0.0), now=0.0, rng=random.Random(9),
                    remote=("127.0.0.1", 41100))
    mixer.add(ivr)
    skipped = mixer.dtmf_skipped
    _feed_digit(mixer, [*quiet, ivr], 100)
    assert _digits(ivr) == ["7"]
    assert all(_digits(m) == [] for m in quiet)
    assert mixer.dtmf_skipped - skipped < 30  # the pass ran (silent banks aside)
    mixer.remove(ivr)
    skipped = mixer.dtmf_skipped
    _feed_digit(mixer, quiet, 200)
    assert mixer.dtmf_skipped - skipped == 30
