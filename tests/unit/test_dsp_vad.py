"""Endpointer: utterances from real prompts, gated against DTMF, beeps and hold music."""

from __future__ import annotations

import glob
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from telephony.dsp.dtmf import COL_FREQS, ROW_FREQS, DtmfDetector
from telephony.dsp.vad import Endpointer, EndpointerConfig, vad_frames
from telephony.errors import MediaError
from telephony.events import CallEvent, SpeechEnded, SpeechStarted

SOUNDS = Path("/usr/share/asterisk/sounds/en")
pytestmark = pytest.mark.skipif(not SOUNDS.is_dir(), reason="Debian asterisk sounds missing")


def load(path: str | Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def run(ep: Endpointer, x: np.ndarray, dtmf: DtmfDetector | None = None,
        t0: float = 0.0) -> list[tuple[float, CallEvent]]:
    out: list[tuple[float, CallEvent]] = []
    for i in range(len(x) // 160):
        frame = x[i * 160:(i + 1) * 160]
        now = t0 + (i + 1) * 0.02
        tone = False
        if dtmf is not None:
            dtmf.process(frame, now=now)
            tone = dtmf.tone_active
        out += [(now, e) for e in ep.process(frame, now=now, tone_active=tone)]
    return out


def pad(x: np.ndarray, before: float, after: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    y = np.concatenate([np.zeros(int(before * 8000)), x, np.zeros(int(after * 8000))])
    return np.clip(y + rng.normal(0, 20, len(y)), -32768, 32767).astype(np.int16)


def test_one_prompt_is_one_utterance() -> None:
    speech = load(SOUNDS / "hello-world.wav")
    x = pad(speech, 1.0, 1.5)
    events = run(Endpointer(), x, t0=100.0)
    kinds = [type(e) for _, e in events]
    assert kinds == [SpeechStarted, SpeechEnded]
    (t_start, started), (t_end, ended) = events
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert 100.9 <= started.at <= 101.3  # the speech starts at 101.0 s (plus the file's lead-in)
    assert t_start - started.at <= 0.4
    assert 0.7 * len(speech) / 8 <= ended.duration_ms <= 1.2 * len(speech) / 8
    audio = np.frombuffer(ended.audio, dtype=np.int16)
    assert len(audio) >= len(speech) * 0.8
    # The end is announced end_silence_ms after the last speech.
    assert t_end - (started.at + ended.duration_ms / 1000) == pytest.approx(0.7, abs=0.1)


def test_two_prompts_with_a_long_pause_are_two_utterances() -> None:
    a, b = load(SOUNDS / "hello-world.wav"), load(SOUNDS / "vm-goodbye.wav")
    x = pad(np.concatenate([a, np.zeros(8000), b]), 0.5, 1.0)
    events = [e for _, e in run(Endpointer(), x)]
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * 2


def test_max_utterance_cuts() -> None:
    files = sorted(glob.glob(str(SOUNDS / "vm-*.wav")))[:12]
    x = pad(np.concatenate([load(f) for f in files]), 0.3, 0.5)
    cfg = EndpointerConfig(max_utterance_ms=3000, end_silence_ms=1500)
    ends = [e for _, e in run(Endpointer(cfg), x) if isinstance(e, SpeechEnded)]
    assert ends and all(e.duration_ms <= 3000 for e in ends)
    assert any(e.duration_ms >= 2900 for e in ends)


def dtmf_burst(keys: str) -> np.ndarray:
    parts = []
    t = np.arange(800) / 8000
    for k in keys:
        i = "123A456B789C*0#D".index(k)
        parts += [3000 * (np.sin(2 * np.pi * ROW_FREQS[i // 4] * t)
                          + np.sin(2 * np.pi * COL_FREQS[i % 4] * t)), np.zeros(800)]
    return np.concatenate(parts)


def test_keypresses_are_not_speech() -> None:
    x = pad(dtmf_burst("1234567890*#"), 0.5, 1.0)
    assert vad_frames(x).sum() > 20  # webrtcvad alone calls the tones speech
    assert run(Endpointer(), x, dtmf=DtmfDetector()) == []


def test_beep_and_dial_tone_are_not_speech() -> None:
    t = np.arange(16000) / 8000
    beep = 8000 * np.sin(2 * np.pi * 1000 * t)
    dial = 4000 * (np.sin(2 * np.pi * 350 * t) + np.sin(2 * np.pi * 440 * t))
    for sig in (beep, dial):
        x = pad(sig, 0.5, 1.0)
        assert vad_frames(x).sum() > 20
        assert run(Endpointer(), x) == []


@pytest.mark.skipif(not os.path.isdir("/usr/share/asterisk/moh"), reason="no hold music")
def test_hold_music_rarely_counts_as_speech() -> None:
    """webrtcvad calls most of the music speech; the stability gate keeps it out."""
    raw = gated = 0.0
    for f in sorted(glob.glob("/usr/share/asterisk/moh/*.wav")):
        x = load(f)[: 40 * 8000]
        raw += vad_frames(x).mean()
        gated += sum(e.duration_ms for _, e in run(Endpointer(), x)
                     if isinstance(e, SpeechEnded)) / 40000
    assert raw / 5 > 0.6
    assert gated / 5 < 0.15


def test_bad_config_and_frame() -> None:
    with pytest.raises(MediaError):
        Endpointer(EndpointerConfig(aggressiveness=4))
    with pytest.raises(MediaError):
        Endpointer().process(np.zeros(100, dtype=np.int16), now=0.0)


def test_bank_matches_single_endpointers() -> None:
    from telephony.dsp.vad import EndpointerBank

    a = pad(load(SOUNDS / "hello-world.wav"), 0.4, 1.2)
    b = pad(load(SOUNDS / "vm-goodbye.wav"), 0.9, 1.0)
    n = min(len(a), len(b)) // 160 * 160
    frames = np.stack([a[:n], b[:n], np.zeros(n, dtype=np.int16)])
    bank = EndpointerBank(3)
    singles = [Endpointer() for _ in range(3)]
    got_bank: list[tuple[int, CallEvent]] = []
    got_single: list[tuple[int, CallEvent]] = []
    for i in range(n // 160):
        block = frames[:, i * 160:(i + 1) * 160]
        got_bank += bank.process(block, now=(i + 1) * 0.02)
        for ch, ep in enumerate(singles):
            got_single += [(ch, e) for e in ep.process(block[ch], now=(i + 1) * 0.02)]
    assert sorted(got_bank, key=repr) == sorted(got_single, key=repr)
    assert {ch for ch, _ in got_bank} == {0, 1}
