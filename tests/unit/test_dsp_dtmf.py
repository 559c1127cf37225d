"""In-band DTMF: the ITU-T Q.24 battery (both G.711 laws), streaming latency, talk-off."""

from __future__ import annotations

import glob
import os
import wave

import numpy as np
import pytest

from telephony.dsp.dtmf import (
    KEYS,
    DtmfConfig,
    DtmfDetector,
    DtmfDetectorBank,
    detect_file_digits,
    span_features,
    span_verdict,
)
from telephony.dsp.testsignals import dtmf_tone
from telephony.dsp.testsignals import g711_round_trip as g711
from telephony.events import DtmfReceived

FS = 8000
LAWS = ["ulaw", "alaw"]


def tone(key: str, ms: float, level: float = -10.0, dev: float = 0.0, twist: float = 0.0,
         rng: np.random.Generator | None = None) -> np.ndarray:
    """A DTMF pair; ``level`` dBm0 per tone, ``twist`` dB = row level - column level."""
    ph = rng.uniform(0, 2 * np.pi, 2) if rng is not None else (0.3, 1.1)
    return dtmf_tone(key, ms, level=level, dev=dev, twist=twist, phases=ph)


def sequence(keys: str, on_ms: float = 50, off_ms: float = 50, lead_ms: float = 37,
             law: str = "ulaw", snr_db: float | None = None, seed: int = 0,
             **kw: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(lead_ms * 8))]
    for k in keys:
        parts += [tone(k, on_ms, rng=rng, **kw), np.zeros(int(off_ms * 8))]
    x = np.concatenate(parts + [np.zeros(800)])
    if snr_db is not None:
        sig = np.mean(x[x != 0] ** 2)
        x = x + rng.standard_normal(len(x)) * np.sqrt(sig / 10 ** (snr_db / 10))
    return g711(x, law)


def digits(x: np.ndarray) -> str:
    return "".join(str(d["digit"]) for d in detect_file_digits(x))


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("dev", [-0.015, 0.015, 0.0])
def test_accepts_frequency_within_1_5_percent(law: str, dev: float) -> None:
    assert digits(sequence(KEYS * 2, law=law, dev=dev, seed=3)) == KEYS * 2


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("dev", [-0.035, 0.035, -0.05, 0.05])
def test_rejects_frequency_beyond_3_5_percent(law: str, dev: float) -> None:
    assert digits(sequence(KEYS * 2, law=law, dev=dev, seed=4)) == ""


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("twist", [8.0, -4.0, 6.0, -2.0])
def test_accepts_twist(law: str, twist: float) -> None:
    assert digits(sequence(KEYS, law=law, twist=twist, level=-12)) == KEYS


@pytest.mark.parametrize("twist", [12.0, -8.0])
def test_rejects_excessive_twist(twist: float) -> None:
    assert digits(sequence(KEYS, twist=twist, level=-12)) == ""


@pytest.mark.parametrize("key", ["*", "4"])
def test_twist_is_measured_without_the_other_tone_leaking_in(key: str) -> None:
    """A clean pair 10 dB apart against a 9 dB limit, at 72 combinations of the two tones'
    phases: the strong 941 Hz tone of a "*" leaks into the 1209 Hz bin of a 20 ms window
    (5.4 bins away), which moved the measured twist between 8.3 and 10.9 dB and let 26 of
    the 72 "*" through before the tones were solved jointly; an 8 dB pair still passes."""
    config = DtmfConfig(max_twist_db=9.0, soft_twist_db=0.0, tone_twist_db=9.0)
    for a in np.linspace(0, 2 * np.pi, 12, endpoint=False):
        for b in np.linspace(0, 2 * np.pi, 6, endpoint=False):
            for twist, want in ((10.0, ""), (8.0, key)):
                x = np.concatenate([np.zeros(800), dtmf_tone(key, 60, level=-12, twist=twist,
                                                             phases=(a, b)), np.zeros(800)])
                found = detect_file_digits(np.round(x).astype(np.int16), config=config)
                assert "".join(str(d["digit"]) for d in found) == want, (twist, a, b)


@pytest.mark.parametrize(("key", "dev", "twist"), [("1", 0.012, 6.0), ("D", -0.012, -3.0)])
def test_span_features_of_a_pair(key: str, dev: float, twist: float) -> None:
    """The span measurement of a 45 ms pair (with 5 ms of silence each side, as a run of
    candidate windows holds): frequencies, twist and level to a fraction, the tones all
    the band power, a steady amplitude; the same pair 20 ms long is too short a span,
    and 3 % off or 9.5 dB apart is outside the limits."""
    def run(ms: float, **kw: float) -> dict[str, float] | None:
        pair = dtmf_tone(key, ms, level=-15, phases=(0.4, 2.0), **kw)
        return span_features(np.concatenate([np.zeros(40), pair, np.zeros(40)]),
                             KEYS.index(key))
    f = run(45, dev=dev, twist=twist)
    assert f is not None
    assert abs(f["dfr"] - dev) < 0.002 and abs(f["dfc"] - dev) < 0.002
    assert abs(f["twist"] - twist) < 0.3
    assert abs(f["lvl_r"] - (-15 + twist / 2)) < 0.5
    assert f["band"] > 0.95 and f["stab"] > 0.9
    assert span_verdict(f, DtmfConfig())
    assert not span_verdict(run(20), DtmfConfig())
    assert not span_verdict(run(45, dev=0.03), DtmfConfig())
    assert not span_verdict(run(45, twist=9.5), DtmfConfig())


def _voice(rng: np.random.Generator, n: int, dbm0: float) -> np.ndarray:
    """A voiced sound: harmonics of a gliding 90-260 Hz pitch under two formants (one
    at 1-1.7 kHz, among the column tones), amplitude-modulated, at ``dbm0``."""
    f0 = rng.uniform(90, 260)
    glide = rng.uniform(-0.3, 0.3)
    t = np.arange(n) / FS
    phase = 2 * np.pi * f0 * (t + glide * t ** 2 / 2)
    f1, f2 = rng.uniform(400, 800), rng.uniform(1000, 1700)
    x = np.zeros(n)
    for k in range(1, int(3400 / f0)):
        f = k * f0
        a = 1 / (1 + ((f - f1) / 150) ** 2) + 0.5 / (1 + ((f - f2) / 200) ** 2) + 0.02
        x += a * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 2 * np.pi))
    rms = 32768 * 10 ** ((dbm0 - 3.14) / 20) / np.sqrt(2)
    out: np.ndarray = x / np.sqrt(np.mean(x ** 2)) * rms
    return out


def _pair_under_voice(key: str, twist: float, seed: int) -> np.ndarray:
    """A 50 ms pair at -12 dBm0 per tone with a voice 12 dB under it, through A-law."""
    rng = np.random.default_rng(seed)
    pair = dtmf_tone(key, 50, level=-12, twist=twist, phases=rng.uniform(0, 2 * np.pi, 2))
    x = np.concatenate([np.zeros(800), pair, np.zeros(800)])
    return g711(x + _voice(rng, len(x), -24), "alaw")


@pytest.mark.parametrize(("seed", "key"), [(4, "1"), (4, "*"), (26, "1"), (31, "*")])
def test_reverse_twist_beyond_the_limit_under_a_voice_is_rejected(seed: int, key: str) -> None:
    """9.5 dB reverse twist (Q.24 accepts 8) under a voice: each was reported before
    (issue 17's last outside-limits digit): one window had a voice harmonic in the weak
    tone's bin and measured inside the 8.5 dB limit, the windows around it (9-10 dB)
    confirmed it.  The tone's windows together measure its twist (``tone_twist_db``), and
    the same pair at 8 dB under the same voice is still a digit."""
    assert digits(_pair_under_voice(key, 9.5, seed)) == ""
    assert digits(_pair_under_voice(key, 8.0, seed)) == key


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("level", [0.0, -10.0, -20.0, -30.0])
def test_level_range(law: str, level: float) -> None:
    assert digits(sequence(KEYS, law=law, level=level)) == KEYS


def test_too_weak_is_ignored() -> None:
    assert digits(sequence(KEYS, level=-45)) == ""


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("lead_ms", [0.0, 7.5, 13.0, 19.0])
def test_40ms_tones_and_40ms_pauses(law: str, lead_ms: float) -> None:
    x = sequence(KEYS + "5555", on_ms=40, off_ms=40, lead_ms=lead_ms, law=law)
    found = detect_file_digits(x)
    assert "".join(str(d["digit"]) for d in found) == KEYS + "5555"
    for i, d in enumerate(found):
        assert abs(int(d["start_ms"]) - (lead_ms + 80 * i)) <= 3  # type: ignore[call-overload]
        assert abs(int(d["duration_ms"]) - 40) <= 4  # type: ignore[call-overload]


@pytest.mark.parametrize("lead_ms", [0.0, 5.0, 11.0, 17.5])
def test_rejects_short_tones(lead_ms: float) -> None:
    assert digits(sequence(KEYS, on_ms=20, off_ms=60, lead_ms=lead_ms)) == ""
    assert len(digits(sequence(KEYS, on_ms=22, off_ms=60, lead_ms=lead_ms))) <= 2


def test_short_interruption_does_not_split_a_digit() -> None:
    x = np.concatenate([np.zeros(400), tone("7", 60), np.zeros(40), tone("7", 60),
                        np.zeros(800)])
    found = detect_file_digits(g711(x, "ulaw"))
    assert [d["digit"] for d in found] == ["7"]
    assert abs(int(found[0]["duration_ms"]) - 125) <= 5  # type: ignore[call-overload]


@pytest.mark.parametrize("law", LAWS)
def test_snr_15_db(law: str) -> None:
    for seed in range(3):
        x = sequence(KEYS, on_ms=50, off_ms=50, law=law, snr_db=15, seed=seed, level=-20)
        assert digits(x) == KEYS


def test_streaming_reports_within_45ms() -> None:
    rng = np.random.default_rng(7)
    for trial in range(48):
        lead = float(rng.uniform(0, 40))
        x = sequence("1" if trial % 2 else "D", on_ms=80, lead_ms=100 + lead, seed=trial)
        det = DtmfDetector()
        starts = []
        for i in range(len(x) // 160):
            now = (i + 1) * 0.020
            for ev in det.process(x[i * 160:(i + 1) * 160], now=now):
                if ev.kind == "start":
                    starts.append((now, ev))
        assert len(starts) == 1
        now, ev = starts[0]
        true_onset = (100 + lead) / 1000
        assert abs(ev.onset - true_onset) <= 0.003
        assert now - true_onset <= 0.045


def test_events_and_tone_flag() -> None:
    x = sequence("9", on_ms=100, lead_ms=200)
    det = DtmfDetector()
    events, flags = [], []
    for i in range(len(x) // 160):
        events += det.process(x[i * 160:(i + 1) * 160], now=10.0 + (i + 1) * 0.02)
        flags.append(det.tone_active)
    assert [(e.digit, e.kind) for e in events] == [("9", "start"), ("9", "end")]
    end = events[1]
    assert abs(end.duration_ms - 100) <= 3 and abs(end.onset - 10.2) <= 0.003
    call_event = end.to_call_event()
    assert call_event == DtmfReceived("9", end.duration_ms, "inband", at=end.onset)
    assert not any(flags[:9]) and all(flags[12:15]) and not any(flags[-5:])


def test_bank_matches_single_detectors() -> None:
    signals = [sequence("123", seed=1), sequence("A#0", lead_ms=90, seed=2, level=-25),
               np.zeros(len(sequence("123")), dtype=np.int16)]
    n = min(len(s) for s in signals) // 160 * 160
    frames = np.stack([s[:n] for s in signals])
    bank = DtmfDetectorBank(3)
    singles = [DtmfDetector() for _ in signals]
    got_bank: list[tuple[int, str, str]] = []
    got_single: list[tuple[int, str, str]] = []
    for i in range(n // 160):
        now = (i + 1) * 0.02
        block = frames[:, i * 160:(i + 1) * 160]
        got_bank += [(ch, e.digit, e.kind) for ch, e in bank.process(block, now=now)]
        for ch, det in enumerate(singles):
            got_single += [(ch, e.digit, e.kind) for e in det.process(block[ch], now=now)]
    assert sorted(got_bank) == sorted(got_single)
    assert [d for ch, d, k in got_bank if ch == 1 and k == "end"] == ["A", "#", "0"]


def test_any_rate_file_detection() -> None:
    from scipy.signal import resample_poly

    x = sequence("42", on_ms=70).astype(np.float64)
    up = resample_poly(x, 2, 1)
    assert "".join(str(d["digit"]) for d in detect_file_digits(up, 16000)) == "42"


def _corpus() -> list[str]:
    files = {os.path.realpath(f) for lang in ("en", "es", "fr", "it", "ru")
             for f in glob.glob(f"/usr/share/asterisk/sounds/{lang}/**/*.wav", recursive=True)}
    return sorted(files) + sorted(glob.glob("/usr/share/asterisk/moh/*.wav"))


@pytest.mark.skipif(not os.path.isdir("/usr/share/asterisk/moh"), reason="Debian sounds missing")
def test_talk_off_on_every_prompt_and_hold_music() -> None:
    """About 2.5 hours of speech (five languages) and music: not one digit."""
    files = _corpus()
    assert len(files) > 2000
    total = 0
    false_digits = []
    for f in files:
        with wave.open(f) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)[::w.getnchannels()]
        total += len(x)
        found = detect_file_digits(x)
        if found:
            false_digits.append((f, found))
    assert total / FS / 3600 > 2.0
    assert false_digits == []
