"""G.711 Appendix I style packet-loss concealment."""

from __future__ import annotations

import numpy as np

from telephony.codecs.plc import G711Plc

RATE = 8000


def _tone(freq: float, seconds: float, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _prime(plc: G711Plc, signal: np.ndarray, frames: int) -> None:
    for i in range(frames):
        out = plc.good(signal[i * 160 : (i + 1) * 160])
        assert np.array_equal(out, signal[i * 160 : (i + 1) * 160])


def test_pitch_estimate_finds_period_of_a_tone() -> None:
    plc = G711Plc()
    _prime(plc, _tone(100.0, 0.5), 10)  # period 80 samples
    plc.conceal(160)
    assert plc.pitch == 80


def test_concealment_continues_periodic_signal_then_fades_to_silence() -> None:
    sig = _tone(100.0, 1.0)
    plc = G711Plc()
    _prime(plc, sig, 10)
    frames = [plc.conceal(80) for _ in range(8)]  # 8 x 10 ms
    first = frames[0].astype(np.int32)
    # The first 10 ms is a faithful repetition of the (exactly periodic) tone.
    assert np.abs(first - sig[1600:1680]).max() < 400
    peaks = [int(np.abs(f).max()) for f in frames]
    assert peaks[0] > 7500 and peaks[1] > 6000  # attenuation starts after 10 ms
    assert peaks[2] < peaks[1] and peaks[3] < peaks[2]
    assert peaks[6] == 0 and peaks[7] == 0  # silence after 60 ms
    assert plc.erased_ms == 80.0


def test_recovery_overlap_adds_into_the_real_signal() -> None:
    sig = _tone(100.0, 1.0)
    plc = G711Plc()
    _prime(plc, sig, 10)
    plc.conceal(160)
    real = sig[1760:1920]
    out = plc.good(real)
    assert plc.erased_ms == 0.0
    assert not np.array_equal(out, real)  # the start is blended
    assert np.array_equal(out[80:], real[80:])  # the rest is untouched
    assert np.abs(out.astype(np.int32) - real).max() < 2000  # and the blend is smooth


def test_concealment_of_silence_is_silence() -> None:
    plc = G711Plc()
    out = plc.conceal(160)
    assert out.dtype == np.int16 and out.shape == (160,) and not out.any()
