"""Fast paths of the jitter buffer, PLC history and receive statistics give the general result."""

from __future__ import annotations

import random

import numpy as np
import pytest

from telephony.codecs.base import get_codec
from telephony.codecs.g711 import PcmuCodec
from telephony.codecs.plc import G711Plc
from telephony.errors import ConfigError
from telephony.rtp.cn import ComfortNoise
from telephony.rtp.jitter import Frame, FrameKind, JitterBuffer, JitterConfig
from telephony.rtp.packet import RtpPacket
from telephony.rtp.stream import RtpReceiveStats

PCMU = get_codec("PCMU")


class _GeneralPcmu(PcmuCodec):
    """PCMU whose payload size is not known up front: ``put`` must take its general path."""

    def samples_for_payload(self, payload_length: int) -> int:
        return 0


class _GeneralPathBuffer(JitterBuffer):
    """A buffer whose ``get`` always takes the general (count-based) path."""

    def get(self, *, now: float) -> Frame:
        n = self.frame_samples
        nxt = self._next
        if nxt is None:
            nxt = self._try_start(now)
            if nxt is None:
                return self._idle_frame()
        elif self._last_quiet is not False and self._transit is not None:
            nxt = self._adapt(nxt, now)
            if nxt is None:
                self.stats.inserted_frames += 1
                return self._quiet_fill(self._next)
        self._next = nxt + n
        i = nxt & self._mask
        return self._get_slow(nxt, i, i + n, n)


def _scenario(seed: int) -> tuple[list[tuple[float, bytes]], float, str]:
    r = random.Random(seed)
    ts, seq, ssrc = r.getrandbits(32), r.getrandbits(16), r.getrandbits(32)
    ptime, t, out = 160, 0.0, []
    quiet = r.random() < 0.5
    for k in range(300):
        t += ptime / 8000
        if r.random() < 0.01:
            ssrc = r.getrandbits(32)
        if r.random() < 0.01:
            ts = (ts + r.choice([24000, -24000])) & 0xFFFFFFFF
        if r.random() < 0.05:
            ptime = r.choice([80, 160, 240])
        amp = r.choice([20, 200, 6000]) if quiet else 6000
        pcm = (amp * np.sin(np.arange(ptime) * 0.3 + k)).astype(np.int16)
        if r.random() < 0.03:
            payload, pt = ComfortNoise(r.randint(30, 70)).serialize(), 13
        else:
            payload, pt = PCMU.encode(pcm), 0
        data = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc,
                         payload=payload).serialize()
        seq, ts = (seq + 1) & 0xFFFF, (ts + ptime) & 0xFFFFFFFF
        if r.random() < 0.05:
            continue
        d = max(0.0, r.gauss(0.06, 0.03)) + (0.5 if r.random() < 0.01 else 0.0)
        out.append((t + d, data))
        if r.random() < 0.03:
            out.append((t + d + r.uniform(0, 0.05), data))
    out.sort(key=lambda a: a[0])
    return out, t, r.choice(["quantile", "jitter"])


def _play(jb: JitterBuffer, arrivals: list[tuple[float, bytes]], end: float) -> list[tuple]:
    played, i = [], 0
    for tick in range(int(end / 0.02) + 40):
        now = 0.0031 + 0.02 * tick
        while i < len(arrivals) and arrivals[i][0] <= now:
            jb.put(RtpPacket.parse(arrivals[i][1]), now=arrivals[i][0])
            i += 1
        f = jb.get(now=now)
        played.append((f.kind, f.timestamp, f.pcm.tobytes(), jb.target_delay))
    return played


@pytest.mark.parametrize("seed", range(12))
def test_fast_paths_play_exactly_what_the_general_paths_play(seed: int) -> None:
    arrivals, end, estimator = _scenario(seed)
    fast = JitterBuffer(JitterConfig(estimator=estimator, seed=seed))
    general = _GeneralPathBuffer(
        JitterConfig(estimator=estimator, seed=seed, payload_types={0: _GeneralPcmu()})
    )
    a, b = _play(fast, arrivals, end), _play(general, arrivals, end)
    assert a == b
    assert fast.stats == general.stats
    assert fast.stats.played > 100  # the scenario really played audio (and hit the fast path)


def test_partly_received_frame_keeps_the_received_samples() -> None:
    # 30 ms packets with one lost: the frame straddling the gap is half audio, half PLC.
    tone = (6000 * np.sin(np.arange(240 * 12) * 0.2)).astype(np.int16)
    tone = PCMU.decode(PCMU.encode(tone))
    jb = JitterBuffer(JitterConfig(min_delay=0.04))
    frames = []
    for tick in range(25):
        now = 0.0105 + 0.02 * tick
        for k in range(12):
            if k != 5 and 0.03 * k + 0.03 <= now < 0.03 * k + 0.05:
                pkt = RtpPacket(timestamp=1000 + 240 * k, ssrc=1,
                                payload=PCMU.encode(tone[240 * k : 240 * (k + 1)]))
                jb.put(pkt, now=0.03 * k + 0.03)
        frames.append(jb.get(now=now))
    # packet 5 covers samples 1200..1440: frame 7 (1120..1280) has 80 received samples first
    f = next(f for f in frames if f.timestamp == 1000 + 160 * 7)
    assert f.kind is FrameKind.CONCEALED
    assert np.array_equal(f.pcm[:80], tone[1120:1200])
    assert not np.array_equal(f.pcm[80:], tone[1200:1280])


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_decode_into_equals_decode(name: str) -> None:
    codec = get_codec(name)
    payload = bytes(range(256)) * 2
    out = np.full(len(payload) + 4, 7, dtype=np.int16)
    codec.decode_into(payload, out[2:-2])
    assert np.array_equal(out[2:-2], codec.decode(payload))
    assert out[:2].tolist() == [7, 7] and out[-2:].tolist() == [7, 7]


def test_plc_history_is_the_tail_of_everything_pushed() -> None:
    plc = G711Plc()
    rng = np.random.default_rng(1)
    pushed = [np.zeros(plc._hist_len, dtype=np.int16)]
    for k in range(300):  # many compactions of the history buffer, frames of 3 sizes
        n = (80, 160, 240)[k % 3]
        frame = rng.integers(-32768, 32767, n, dtype=np.int16)
        plc.good(frame)
        pushed.append(frame)
        if k % 37 == 0:
            want = np.concatenate(pushed)[-plc._hist_len :].astype(np.float32)
            assert np.array_equal(plc._history, want)
    plc.good(rng.integers(-100, 100, 1000, dtype=np.int16))  # longer than the history
    assert plc._history.shape == (plc._hist_len,)


def test_receive_stats_fast_path_wraps_and_counts_duplicates() -> None:
    st = RtpReceiveStats(probation=0)
    for k, seq in enumerate([65533, 65534, 65535, 0, 1, 1, 2, 0, 4]):
        st.update(RtpPacket(sequence_number=seq, timestamp=160 * k, ssrc=5), now=0.02 * k)
    assert st.cycles == 65536 and st.max_seq == 4
    assert st.duplicates == 2 and st.received == 7
    assert st.expected == 8 and st.lost == 1


def test_playout_align_centres_the_delay_on_the_target() -> None:
    with pytest.raises(ConfigError):
        JitterBuffer(JitterConfig(playout_align=1.5))
    src = (3000 * np.sin(np.arange(160) * 0.3)).astype(np.int16)
    for align, lo, hi in ((0.0, 0.0, 0.020), (0.5, -0.010, 0.010)):
        jb = JitterBuffer(JitterConfig(playout_align=align))
        delays = []
        for k in range(200):
            now = 0.0105 + 0.02 * k
            jb.put(RtpPacket(timestamp=160 * k, ssrc=1, payload=PCMU.encode(src)),
                   now=0.04 + 0.02 * k - 0.02)
            jb.get(now=now)
            d = jb.current_delay(now=now)
            if k > 10 and d is not None:
                delays.append(d + 0.02 - jb.target_delay)  # the slot played this tick
        assert min(delays) >= lo - 0.0021 and max(delays) <= hi + 0.0021
        assert jb.stats.late == 0 and jb.stats.played >= 190


def test_dtmf_bank_skip_advances_the_sample_count_only() -> None:
    from telephony.dsp.dtmf import DtmfDetectorBank

    bank = DtmfDetectorBank(4)
    bank.skip(160)
    bank.skip(160)
    assert bank.samples_seen == 320
    assert not bank.tone_active.any()
    assert bank.process(np.zeros((4, 160), dtype=np.int16), now=0.0) == []
    assert bank.samples_seen == 480
