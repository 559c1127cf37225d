"""Growing the DSP banks (DtmfDetectorBank, EndpointerBank) while they run: the channels
they had go on exactly as in an ungrown bank, the new ones exactly as fresh detectors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from telephony.dsp.dtmf import DtmfDetectorBank, InbandDigit
from telephony.dsp.testsignals import dtmf_tone
from telephony.dsp.tones import BeepDetector, TonalityDetector
from telephony.dsp.vad import EndpointerBank
from telephony.dsp.wavio import read_wav_8k
from telephony.errors import MediaError
from telephony.events import CallEvent, SpeechEnded, SpeechStarted

SOUNDS = Path("/usr/share/asterisk/sounds/en")
pytestmark = pytest.mark.skipif(not SOUNDS.is_dir(), reason="Debian asterisk sounds missing")
F = 160
NAMES = ["hello-world", "vm-goodbye", "vm-intro", "auth-thankyou", "vm-instructions"]


def stream(seed: int, seconds: float) -> np.ndarray:
    """Prompts, pauses and DTMF digits (alone or over speech), with line noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 8000) // F * F
    parts: list[np.ndarray] = []
    while sum(map(len, parts)) < n:
        parts.append(np.zeros(int(rng.uniform(0.1, 1.2) * 8000)))
        if rng.random() < 0.55:
            parts.append(read_wav_8k(SOUNDS / f"{NAMES[rng.integers(len(NAMES))]}.wav")
                         .astype(float))
        else:
            tone = dtmf_tone("0123456789*#"[rng.integers(12)], int(rng.choice([50, 90, 250])))
            parts.append(tone.astype(float) * rng.uniform(0.3, 1.0))
    x = np.concatenate(parts)[:n] + rng.normal(0, 15, n)
    return np.clip(x, -32768, 32767).astype(np.int16)


Events = list[tuple[int, int, InbandDigit | CallEvent]]
"""(tick, channel, event)"""


def run(dtmf: DtmfDetectorBank, vad: EndpointerBank, x: np.ndarray, ticks: range,
        out: Events) -> None:
    """Feed ``x[:, tick]`` frames as the mixer does (the DTMF flag gates the endpointer)."""
    for k in ticks:
        frames = x[:, k * F:(k + 1) * F]
        now = (k + 1) * 0.02
        out += [(k, ch, ev) for ch, ev in dtmf.process(frames, now=now)]
        out += [(k, ch, ev) for ch, ev in vad.process(frames, now=now,
                                                      tone_active=dtmf.tone_active)]


def of(events: Events, channel: int, rename: int | None = None) -> Events:
    return [(k, channel if rename is None else rename, _stable(ev))
            for k, ch, ev in events if ch == channel]


def _stable(ev: InbandDigit | CallEvent) -> InbandDigit | CallEvent:
    """The event with a digit's onset time rounded to the microsecond.

    The onset time comes from float32 sums whose rounding numpy's SIMD kernels may order
    differently for a bank of 1 and of 37 channels (1.5e-10 s apart on an AMD EPYC); the
    onset sample, the digit, its kind and duration are still compared exactly."""
    if isinstance(ev, InbandDigit):
        return dataclasses.replace(ev, onset=round(ev.onset, 6))
    return ev


def test_grown_bank_keeps_its_channels_and_adds_fresh_ones() -> None:
    ticks = 1200  # 24 s
    old = np.stack([stream(s, ticks * 0.02) for s in range(4)])
    new = np.stack([stream(100 + s, ticks * 0.02) for s in range(33)])
    # Reference: the four calls alone in a bank that never grows.
    want: Events = []
    run(DtmfDetectorBank(4), EndpointerBank(4), old, range(ticks), want)

    dtmf, vad = DtmfDetectorBank(4), EndpointerBank(4)
    got: Events = []
    run(dtmf, vad, old, range(300), got)
    # Grow while an utterance is in progress on one of the channels.
    at = 300
    while not any(vad.speaking(c) for c in range(4)):
        run(dtmf, vad, old, range(at, at + 1), got)
        at += 1
    assert at < 600
    dtmf.grow(16)
    vad.grow(16)
    dtmf.grow(16)  # the same size: nothing changes
    vad.grow(16)
    grown_at = {c: at for c in range(4, 16)}
    x = np.concatenate([old, new[:12]])
    run(dtmf, vad, x, range(at, at + 150), got)
    dtmf.grow(37)
    vad.grow(37)
    assert dtmf.n_channels == vad.n_channels == 37
    grown_at.update({c: at + 150 for c in range(16, 37)})
    x = np.concatenate([old, new])
    run(dtmf, vad, x, range(at + 150, ticks), got)

    for c in range(4):
        assert of(got, c) == of(want, c)
    # Each added channel gives what a fresh one-call bank gives on the same frames, onset
    # samples counted from the channel's start.
    checked = 0
    for c in (4, 11, 15, 16, 30, 36):
        fresh: Events = []
        start = grown_at[c]
        run(DtmfDetectorBank(1), EndpointerBank(1), x[c:c + 1], range(start, ticks), fresh)
        assert of(got, c) == of(fresh, 0, rename=c)
        checked += len(fresh)
    kinds = {type(ev) for _, _, ev in got}
    assert {InbandDigit, SpeechStarted, SpeechEnded} <= kinds
    assert checked > 30
    ended = [ev for _, ch, ev in got if ch < 4 and isinstance(ev, SpeechEnded)]
    assert ended and all(len(ev.audio) > 0 for ev in ended)


def test_reset_channel_of_a_grown_bank_is_a_fresh_detector() -> None:
    """The DTMF bank's sample count is shared, but a reset channel's digits (onset times
    and samples) are those of a new detector started at the reset."""
    ticks = 600
    x = np.stack([stream(200 + s, ticks * 0.02) for s in range(3)])
    dtmf, vad = DtmfDetectorBank(2), EndpointerBank(2)
    got: Events = []
    run(dtmf, vad, x[:2], range(137), got)
    dtmf.grow(3)
    vad.grow(3)
    run(dtmf, vad, x, range(137, 211), got)
    dtmf.reset_channel(1)
    vad.reset_channel(1)
    run(dtmf, vad, x, range(211, ticks), got)
    fresh: Events = []
    run(DtmfDetectorBank(1), EndpointerBank(1), x[1:2], range(211, ticks), fresh)
    assert [e for e in of(got, 1) if e[0] >= 211] == of(fresh, 0, rename=1)
    assert any(isinstance(ev, InbandDigit) for _, _, ev in fresh)


def test_tone_detectors_grow_like_fresh_ones() -> None:
    x = np.stack([stream(300 + s, 8.0) for s in range(3)])
    beeps, tonal = BeepDetector(2), TonalityDetector(2)
    fresh_beeps, fresh_tonal = BeepDetector(1), TonalityDetector(1)
    sims, fresh_sims = [], []
    for k in range(x.shape[1] // F):
        if k == 77:
            beeps.grow(3)
            tonal.grow(3)
        if k >= 77:
            frames = x[:, k * F:(k + 1) * F]
            tonal.process(frames)
            fresh_tonal.process(frames[2:])
            sims.append(tonal.similarity[2])
            fresh_sims.append(fresh_tonal.similarity[0])
            got = [(b.onset, b.frequency_hz) for b in beeps.process(frames, now=k * 0.02)
                   if b.channel == 2]
            assert got == [(b.onset, b.frequency_hz)
                           for b in fresh_beeps.process(frames[2:], now=k * 0.02)]
        else:
            tonal.process(x[:2, k * F:(k + 1) * F])
            beeps.process(x[:2, k * F:(k + 1) * F], now=k * 0.02)
    assert sims == fresh_sims and max(sims) > 0.5


def test_banks_do_not_shrink() -> None:
    dtmf, vad = DtmfDetectorBank(8), EndpointerBank(8)
    with pytest.raises(MediaError):
        dtmf.grow(7)
    with pytest.raises(MediaError):
        vad.grow(4)
    with pytest.raises(MediaError):
        BeepDetector(3).grow(2)
    with pytest.raises(MediaError):
        TonalityDetector(3).grow(1)
    dtmf.grow(8)
    vad.grow(8)
    assert dtmf.n_channels == vad.n_channels == 8
    with pytest.raises(MediaError):
        vad.process(np.zeros((9, F), np.int16), now=0.02)
    vad.grow(9)
    assert vad.process(np.zeros((9, F), np.int16), now=0.02) == []
