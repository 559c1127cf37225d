"""Jitter buffer: playout, reordering, loss, late loss, CN, resync, adaptation (fake clock)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from telephony.codecs.base import get_codec
from telephony.rtp.cn import ComfortNoise
from telephony.rtp.jitter import FrameKind, JitterBuffer, JitterConfig
from telephony.rtp.packet import RtpPacket
from telephony.rtp.pcap import read_pcap_file

PCMU = get_codec("PCMU")
PCMA = get_codec("PCMA")
G711A = "/usr/share/sip-tester/g711a.pcap"
TAIL = 3
"""Frames concealed after the last packet before playout goes idle (60 ms / 20 ms)."""


def _tone_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n * 160) / 8000
    sig = 5000 * np.sin(2 * np.pi * 300 * t) + rng.normal(0, 300, t.size)
    # G.711 is lossy: use values that survive encode/decode so frames compare exactly.
    pcm = PCMU.decode(PCMU.encode(sig.astype(np.int16)))
    return [pcm[i * 160 : (i + 1) * 160] for i in range(n)]


def _packet(
    k: int,
    frame: np.ndarray,
    *,
    ts0: int = 1000,
    ssrc: int = 7,
    marker: bool = False,
    codec=PCMU,
    seq0: int = 0,
) -> RtpPacket:
    return RtpPacket(
        payload_type=codec.payload_type,
        sequence_number=(seq0 + k) & 0xFFFF,
        timestamp=(ts0 + 160 * k) & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=codec.encode(frame),
        marker=marker,
    )


def _run(
    jb: JitterBuffer, arrivals: list[tuple[float, RtpPacket]], ticks: int, t0: float = 0.0105
) -> list:
    arrivals = sorted(arrivals, key=lambda a: a[0])
    frames = []
    i = 0
    for k in range(ticks):
        now = t0 + 0.02 * k
        while i < len(arrivals) and arrivals[i][0] <= now:
            jb.put(arrivals[i][1], now=arrivals[i][0])
            i += 1
        frames.append(jb.get(now=now))
    return frames


def _audio(frames) -> list:
    return [f for f in frames if f.kind is FrameKind.AUDIO]


def test_in_order_stream_plays_every_frame_after_min_delay() -> None:
    src = _tone_frames(50)
    jb = JitterBuffer()
    frames = _run(jb, [(0.04 + 0.02 * k, _packet(k, f)) for k, f in enumerate(src)], 60)
    audio = _audio(frames)
    assert len(audio) == 50 and jb.stats.concealed == TAIL and jb.stats.late == 0
    assert [f.kind for f in frames[-10:]] == [FrameKind.AUDIO] * 3 + [FrameKind.CONCEALED] * 3 + [
        FrameKind.SILENCE
    ] * 4
    assert all(np.array_equal(a.pcm, s) for a, s in zip(audio, src))
    assert [a.timestamp for a in audio] == [1000 + 160 * k for k in range(50)]
    # no jitter: packet 0 (arrived at 40 ms) is due 20 ms later, at 60 ms, and plays at
    # the first tick from then on (ticks at 10.5 ms + k * 20 ms)
    first = next(i for i, f in enumerate(frames) if f.kind is FrameKind.AUDIO)
    assert frames[0].kind is FrameKind.SILENCE
    assert 0.0105 + 0.02 * first == pytest.approx(0.0705, abs=1e-9)
    assert jb.target_delay == pytest.approx(0.020)


def test_reordering_and_duplicates_are_absorbed() -> None:
    src = _tone_frames(40)
    arrivals = []
    for k, f in enumerate(src):
        jitter = 0.015 if k % 2 == 0 else 0.0  # every even packet overtaken by the next
        arrivals.append((0.04 + 0.02 * k + jitter, _packet(k, f)))
    arrivals.append((0.04 + 0.02 * 5 + 0.001, _packet(5, src[5])))
    jb = JitterBuffer(JitterConfig(min_delay=0.04))
    audio = _audio(_run(jb, arrivals, 60))
    assert len(audio) == 40 and jb.stats.late == 0 and jb.stats.duplicates == 1
    assert all(np.array_equal(a.pcm, s) for a, s in zip(audio, src))


def test_loss_is_concealed_and_late_packets_counted() -> None:
    src = _tone_frames(30)
    arrivals = [(0.04 + 0.02 * k, _packet(k, f)) for k, f in enumerate(src) if k != 10]
    arrivals.append((0.04 + 0.02 * 15 + 0.2, _packet(15, src[15])))  # 200 ms late copy
    arrivals = [a for a in arrivals if not (a[1].sequence_number == 15 and a[0] < 0.4)]
    jb = JitterBuffer()
    frames = _run(jb, arrivals, 40)
    kinds = [f.kind for f in frames if f.timestamp is not None]
    assert kinds[10] is FrameKind.CONCEALED and kinds[15] is FrameKind.CONCEALED
    assert kinds.count(FrameKind.AUDIO) == 28
    assert jb.stats.late == 1 and jb.stats.concealed == 2 + TAIL
    assert np.abs(frames[kinds.index(FrameKind.CONCEALED) + 2].pcm).max() > 1000  # PLC output


def test_comfort_noise_then_new_talkspurt_resyncs() -> None:
    src = _tone_frames(60)
    arrivals = [(0.04 + 0.02 * k, _packet(k, src[k], marker=k == 0)) for k in range(20)]
    cn = RtpPacket(
        payload_type=13,
        sequence_number=20,
        timestamp=1000 + 160 * 20,
        ssrc=7,
        payload=ComfortNoise(40).serialize(),
    )
    arrivals.append((0.04 + 0.02 * 20, cn))
    # silence (DTX) for 400 ms, then a talkspurt whose timestamps continue the clock
    arrivals += [
        (0.04 + 0.02 * k, _packet(k, src[k], marker=k == 40, seq0=-19)) for k in range(40, 60)
    ]
    jb = JitterBuffer(JitterConfig(seed=3))
    frames = _run(jb, arrivals, 75)
    kinds = [f.kind for f in frames]
    noise = [f for f in frames if f.kind is FrameKind.COMFORT_NOISE]
    assert len(noise) >= 15
    rms = float(np.sqrt(np.mean(np.concatenate([f.pcm for f in noise]).astype(float) ** 2)))
    assert rms == pytest.approx(ComfortNoise(40).rms, rel=0.1)  # -40 dBov: about 328
    audio = _audio(frames)
    assert len(audio) == 40 and jb.stats.concealed == TAIL
    assert np.array_equal(audio[20].pcm, src[40])
    assert kinds.index(FrameKind.COMFORT_NOISE) < len(kinds) - kinds[::-1].index(FrameKind.AUDIO)


def test_ssrc_change_and_timestamp_jump_resync() -> None:
    src = _tone_frames(60)
    arrivals = [(0.04 + 0.02 * k, _packet(k, src[k])) for k in range(20)]
    arrivals += [
        (0.04 + 0.02 * k, _packet(k - 20, src[k], ts0=0xFFFFFF00, ssrc=99, seq0=500))
        for k in range(20, 40)
    ]  # new source, timestamps wrapping past 2**32
    arrivals += [
        (0.04 + 0.02 * k, _packet(k, src[k], ts0=0xFFFFFF00 + 8000 * 60, ssrc=99, seq0=520 - 40))
        for k in range(40, 60)
    ]
    jb = JitterBuffer()
    frames = _run(jb, arrivals, 75)
    audio = _audio(frames)
    assert jb.stats.resyncs == 2
    assert len(audio) >= 57  # at most a frame lost at each switch
    assert np.array_equal(audio[-1].pcm, src[59])
    assert any(a.timestamp == (0xFFFFFF00 + 160 * 5) & 0xFFFFFFFF for a in audio)


@pytest.mark.skipif(not Path(G711A).exists(), reason="sip-tester captures not installed")
def test_payload_type_change_and_30ms_packets() -> None:
    dgrams = read_pcap_file(G711A)
    pkts = [RtpPacket.parse(d.payload) for d in dgrams[:40]]
    want = np.concatenate([PCMA.decode(p.payload) for p in pkts])
    t0 = dgrams[0].timestamp
    jb = JitterBuffer(JitterConfig(min_delay=0.04))
    frames = _run(jb, [(d.timestamp - t0, p) for d, p in zip(dgrams, pkts)], 70, t0=0.0)
    audio = _audio(frames)
    assert len(audio) == 40 * 240 // 160 and jb.stats.concealed == TAIL
    assert np.array_equal(np.concatenate([a.pcm for a in audio]), want)
    # PCMU then PCMA on the same SSRC and clock: both decode.
    src = _tone_frames(20)
    arrivals = [
        (0.04 + 0.02 * k, _packet(k, src[k], codec=PCMU if k < 10 else PCMA)) for k in range(20)
    ]
    jb2 = JitterBuffer()
    audio2 = _audio(_run(jb2, arrivals, 30))
    assert len(audio2) == 20
    assert (
        np.abs(audio2[15].pcm.astype(int) - src[15]).max() <= 128
    )  # A-law requantised: half a step at this level
    jb2.put(RtpPacket(payload_type=96, timestamp=99999, ssrc=7, payload=b"x"), now=1.0)
    assert jb2.stats.unknown_payload == 1


def test_target_adapts_up_with_jitter_and_back_down_after_a_spike() -> None:
    rng = random.Random(4)
    src = _tone_frames(1, seed=1)[0] // 40  # quiet audio: adaptation may act at any frame
    arrivals = []
    for k in range(800):
        if k < 300:
            d = 0.03 + rng.expovariate(1 / 0.03)  # heavy jitter
        elif k == 500:
            d = 0.5  # one huge spike
        else:
            d = 0.03 + rng.uniform(0, 0.002)  # calm
        arrivals.append((0.02 * k + d, _packet(k, src)))
    jb = JitterBuffer()
    targets = []
    arrivals.sort(key=lambda a: a[0])
    i = 0
    for k in range(850):
        now = 0.0105 + 0.02 * k
        while i < len(arrivals) and arrivals[i][0] <= now:
            jb.put(arrivals[i][1], now=arrivals[i][0])
            i += 1
        jb.get(now=now)
        targets.append(jb.target_delay)
    assert targets[290] > 0.08  # heavy jitter: a large target
    assert targets[495] > 0.05  # the 5 s transit window still holds the jittery packets
    assert targets[600] == pytest.approx(0.02, abs=0.005)  # calm again, spike included
    assert targets[799] < 0.03  # the single spike did not leave it high
    assert jb.stats.dropped_frames > 0  # the delay was actually shrunk in quiet frames
    assert jb.stats.late <= 8
