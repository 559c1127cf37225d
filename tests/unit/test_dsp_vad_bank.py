"""EndpointerBank internals: per-channel reset, utterance audio from the numpy rings and
block store, no per-frame Python objects, webrtcvad skipped behind the gates."""

from __future__ import annotations

import gc
import glob
from pathlib import Path

import numpy as np
import pytest

from telephony.dsp.testsignals import dtmf_tone
from telephony.dsp.vad import Endpointer, EndpointerBank, EndpointerConfig
from telephony.dsp.wavio import read_wav_8k
from telephony.events import CallEvent, SpeechEnded, SpeechStarted

SOUNDS = Path("/usr/share/asterisk/sounds/en")
MOH = sorted(glob.glob("/usr/share/asterisk/moh/*.wav"))
pytestmark = pytest.mark.skipif(not SOUNDS.is_dir(), reason="Debian asterisk sounds missing")
F = 160


def speech(name: str) -> np.ndarray:
    return read_wav_8k(SOUNDS / f"{name}.wav")


def noisy(x: np.ndarray, seed: int, sd: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(x + rng.normal(0, sd, len(x)), -32768, 32767).astype(np.int16)


def stream(seed: int, seconds: float) -> np.ndarray:
    """Speech, pauses, a DTMF tone and (if installed) hold music, with line noise."""
    rng = np.random.default_rng(seed)
    names = ["hello-world", "vm-goodbye", "vm-intro", "vm-instructions", "auth-thankyou"]
    parts: list[np.ndarray] = []
    n = int(seconds * 8000)
    while sum(map(len, parts)) < n:
        parts.append(np.zeros(int(rng.uniform(0.1, 1.5) * 8000)))
        r = rng.random()
        if r < 0.7:
            parts.append(speech(names[rng.integers(len(names))]).astype(float))
        elif r < 0.85 or not MOH:
            parts.append(dtmf_tone("5", 200).astype(float))
        else:
            m = read_wav_8k(Path(MOH[0]))
            o = int(rng.integers(0, len(m) - 16000))
            parts.append(m[o:o + 16000].astype(float))
    return noisy(np.concatenate(parts)[:n // F * F], seed)


def feed(bank: EndpointerBank, x: np.ndarray, t0: float = 0.0,
         reset: dict[int, int] | None = None) -> list[tuple[int, int, CallEvent]]:
    """Feed ``(channels, samples)``; returns (frame index, channel, event)."""
    out = []
    for i in range(x.shape[1] // F):
        for ch, at in (reset or {}).items():
            if at == i:
                bank.reset_channel(ch)
        for ch, ev in bank.process(x[:, i * F:(i + 1) * F], now=t0 + (i + 1) * 0.02):
            out.append((i, ch, ev))
    return out


def test_reset_channel_is_a_new_endpointer() -> None:
    """Reset mid-utterance, mid-music or mid-confirmation: from then on the channel gives
    what a new one-call Endpointer gives on the same frames; other channels are untouched."""
    x = np.stack([stream(s, 24.0) for s in range(3)])
    untouched = [(i, ch, e) for i, ch, e in feed(EndpointerBank(3), x) if ch != 1]
    for at in (37, 211, 480):
        bank = EndpointerBank(3)
        got = feed(bank, x, reset={1: at})
        fresh = Endpointer()
        want = []
        for i in range(at, x.shape[1] // F):
            want += [(i, e) for e in fresh.process(x[1, i * F:(i + 1) * F], now=(i + 1) * 0.02)]
        assert [(i, e) for i, ch, e in got if ch == 1 and i >= at] == want
        assert [(i, ch, e) for i, ch, e in got if ch != 1] == untouched
        assert any(isinstance(e, SpeechEnded) for _, e in want)


def test_utterance_audio_is_the_input_with_pre_roll_and_hangover() -> None:
    """SpeechEnded.audio is the contiguous input from pre_roll_ms before the start to
    hangover_ms after the last voiced frame, also for utterances spanning several 1 s
    blocks and with more speakers than the store's first blocks (it grows)."""
    cfg = EndpointerConfig(max_utterance_ms=60000, end_silence_ms=1200)
    long_talk = np.concatenate([speech("vm-instructions"), np.zeros(1600),
                                speech("vm-intro")]).astype(float)
    total = (8000 + 800 * 6 + len(long_talk) + 16000) // F * F
    x = np.stack([noisy(np.concatenate([np.zeros(8000 + 800 * k), long_talk,
                                        np.zeros(total - 8000 - 800 * k - len(long_talk))]), k)
                  for k in range(6)])
    bank = EndpointerBank(6, cfg)
    starts: dict[int, float] = {}
    ends = 0
    for i, ch, ev in feed(bank, x):
        if isinstance(ev, SpeechStarted):
            starts[ch] = ev.at
            continue
        assert isinstance(ev, SpeechEnded)
        ends += 1
        audio = np.frombuffer(ev.audio, dtype=np.int16)
        assert len(audio) % F == 0 and len(audio) > 8000 * 4  # several blocks
        first = round(starts[ch] / 0.02) - cfg.pre_roll_ms // 20  # frame index of pre-roll
        last_voiced = round((starts[ch] + ev.duration_ms / 1000) / 0.02)  # frames, exclusive
        n = last_voiced - first + cfg.hangover_ms // 20
        assert len(audio) == n * F
        assert np.array_equal(audio, x[ch, first * F:(first + n) * F])
    assert ends == 6


def test_max_utterance_cut_keeps_the_audio_it_heard() -> None:
    cfg = EndpointerConfig(max_utterance_ms=1000)
    x = noisy(np.concatenate([np.zeros(4000), speech("vm-instructions")]).astype(float), 3)
    x = x[:len(x) // F * F][None, :]
    evs = feed(EndpointerBank(1, cfg), x)
    ends = [e for _, _, e in evs if isinstance(e, SpeechEnded)]
    assert len(ends) >= 2
    for e in ends:
        assert e.duration_ms <= 1000
        # at most pre-roll + the cut length + one frame
        assert len(e.audio) <= (cfg.pre_roll_ms + 1000 + 20) * 16


def test_no_python_objects_per_frame() -> None:
    """After warm-up, a 64-channel bank streaming speech keeps its gc-tracked object count
    flat (the old per-frame objects grew it by thousands)."""
    base = [stream(s, 8.0) for s in range(8)]
    x = np.stack([np.roll(base[k % 8], 7 * F * k) for k in range(64)])
    bank = EndpointerBank(64)
    half = x.shape[1] // F // 2
    feed(bank, x[:, :half * F])
    was = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        before = len(gc.get_objects())
        events = feed(bank, x[:, half * F:], t0=half * 0.02)
        ended = sum(isinstance(e, SpeechEnded) for _, _, e in events)
        del events
        gc.collect()
        after = len(gc.get_objects())
    finally:
        if was:
            gc.enable()
    assert ended >= 32
    assert after - before < 64


class _CountingVad:
    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    def is_speech(self, buf: bytes, rate: int) -> bool:
        self.calls += 1
        return bool(self.inner.is_speech(buf, rate))  # type: ignore[attr-defined]


def test_webrtcvad_is_not_asked_behind_the_gates() -> None:
    """Quiet line noise (below min_level_dbm0) and a DTMF tone flagged by the DTMF bank
    cost no webrtcvad call; speech does."""
    n = 200
    quiet = np.random.default_rng(1).normal(0, 30, n * F).astype(np.int16)
    tone = np.tile(dtmf_tone("5", 400)[:F * 10], n // 10)
    talk = noisy(np.resize(speech("vm-intro").astype(float), n * F), 2)
    bank = EndpointerBank(3)
    spies = [_CountingVad(v) for v in bank._vads]
    bank._vads[:] = spies  # type: ignore[assignment]
    x = np.stack([quiet, tone, talk])
    for i in range(n):
        bank.process(x[:, i * F:(i + 1) * F], now=(i + 1) * 0.02,
                     tone_active=np.array([False, True, False]))
    assert spies[0].calls == 0
    assert spies[1].calls == 0
    assert spies[2].calls > n // 3


def test_flush_and_reset_free_the_store() -> None:
    x = noisy(np.concatenate([np.zeros(4000), speech("vm-intro")]).astype(float), 5)
    x = np.stack([x[:len(x) // F * F]] * 2)
    bank = EndpointerBank(2)
    feed(bank, x)
    assert bank.speaking(0) and bank.speaking(1)
    (ended,) = bank.flush(0, now=99.0)
    assert isinstance(ended, SpeechEnded) and ended.at == 99.0 and len(ended.audio) > 0
    assert not bank.speaking(0) and bank.flush(0, now=99.0) == []
    bank.reset_channel(1)
    assert not bank.speaking(1) and bank.flush(1, now=99.0) == []
    # the freed blocks serve the next utterances, whose audio is still right
    again = [e for _, _, e in feed(bank, np.concatenate([x, np.zeros((2, 16000), np.int16)], 1),
                                   t0=100.0) if isinstance(e, SpeechEnded)]
    assert len(again) >= 2 and len(again) % 2 == 0
    assert [e.audio for e in again[0::2]] == [e.audio for e in again[1::2]]
