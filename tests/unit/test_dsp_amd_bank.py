"""The AMD bank gives each call exactly what a detector of its own gives: the same results
at the same frames, on the labelled sets, with calls joining and leaving at different
times, the bank growing under them and channels reused."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from telephony.dsp.amd import FRAME, AmdDetector, AmdResult
from telephony.dsp.amdbank import AmdBank
from telephony.errors import MediaError

FIXTURES = Path(__file__).resolve().parents[2] / "audio_fixtures"
sys.path.insert(0, str(FIXTURES))

import gen_detector_set

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or not gen_detector_set.available(),
    reason="espeak-ng, the Debian prompts or hold music missing")

Trace = list[tuple[int, AmdResult]]


@pytest.fixture(scope="module")
def gen_dsp() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_dsp", FIXTURES / "gen_dsp.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def calls(gen_dsp: ModuleType) -> list[np.ndarray]:
    """Answers from both labelled sets: live answers (some saying "Hello?" twice),
    greetings with and without a beep, the short-word-then-pause greetings that become
    late machines, line noise alone, and a beep before any verdict."""
    out = [gen_detector_set.amd_item(17, i, label)[0]
           for label in ("human", "machine") for i in range(7)]
    rng = np.random.default_rng(99)
    for kind in ["human", "machine"] * 5:
        x, _ = gen_dsp.human(rng) if kind == "human" else gen_dsp.machine(rng)
        out.append(gen_dsp.through_mulaw(x + gen_dsp.line_noise(rng, len(x))))
    out.append(gen_dsp.through_mulaw(gen_dsp.line_noise(rng, 4 * 8000)))
    # a beep before any verdict: one second of speech, a pause, the beep
    short = gen_dsp.set_level(gen_dsp.prompt("en", "vm-isunavail"), -16)
    beep = 6000 * np.sin(2 * np.pi * 850 * np.arange(3200) / 8000)
    out.append(gen_dsp.through_mulaw(np.concatenate([np.zeros(3000), short, np.zeros(2400),
                                                     beep, np.zeros(8000)])))
    return [np.asarray(x, dtype=np.int16) for x in out]


def tone_window(i: int, n: int) -> np.ndarray:
    """A DTMF tone heard elsewhere on some frames of every third call."""
    flags = np.zeros(n, dtype=bool)
    if i % 3 == 0:
        flags[40 + i: 55 + i] = True
    return flags


def alone(x: np.ndarray, frames: int, tone: np.ndarray) -> tuple[Trace, AmdDetector]:
    det = AmdDetector()
    out: Trace = []
    for k in range(frames):
        r = det.process(x[k * FRAME:(k + 1) * FRAME], tone_active=bool(tone[k]))
        if r is not None:
            out.append((k, r))
    return out, det


def test_bank_matches_one_detector_per_call(calls: list[np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    n = len(calls)
    lengths = [len(x) // FRAME for x in calls]
    # every other call leaves early (hung up at a random frame), the rest run to the end
    frames = [m if i % 2 else int(rng.integers(m // 3, m)) for i, m in enumerate(lengths)]
    starts = rng.integers(0, 400, n).tolist()
    tones = [tone_window(i, m) for i, m in enumerate(lengths)]
    want = [alone(x, frames[i], tones[i]) for i, x in enumerate(calls)]

    bank = AmdBank(n_channels=4)
    got: list[Trace] = [[] for _ in calls]
    channel: dict[int, int] = {}
    grew = reused = 0
    for tick in range(max(s + f for s, f in zip(starts, frames)) + 1):
        for i in range(n):
            if tick == starts[i]:
                size, free = bank.n_channels, bank.n_channels - bank.calls
                channel[i] = bank.open()
                grew += bank.n_channels > size
                reused += free > 0 and channel[i] < size and tick > min(starts)
            elif i in channel and tick == starts[i] + frames[i]:
                bank.close(channel.pop(i))
        tone = np.zeros(bank.n_channels, dtype=bool)
        for i, ch in channel.items():
            k = tick - starts[i]
            bank.feed(ch, calls[i][k * FRAME:(k + 1) * FRAME])
            tone[ch] = tones[i][k]
        owner = {ch: i for i, ch in channel.items()}
        for ch, r in bank.process(tone_active=tone):
            got[owner[ch]].append((tick - starts[owner[ch]], r))
    assert grew >= 2 and reused >= 1  # grew under live calls (4, 16, 32), slots reused

    for i, (trace, det) in enumerate(want):
        assert got[i] == trace, f"call {i}"
    # the set exercises every rule of the decider
    reasons = {r.reason.split("-")[0] if r.kind == "decision" else r.kind
               for trace, _ in want for _, r in trace}
    assert {"HUMAN", "LONGGREETING", "INITIALSILENCE", "BEEP", "beep",
            "late_machine"} <= reasons, reasons


def test_decider_state_and_skipped_frames(calls: list[np.ndarray]) -> None:
    x = calls[7]  # a machine's greeting
    bank = AmdBank()
    a, b = bank.open(), bank.open()
    det = AmdDetector()
    for k in range(len(x) // FRAME):
        frame = x[k * FRAME:(k + 1) * FRAME]
        det.process(frame)
        bank.feed(a, frame)
        if k % 2:
            bank.feed(b, frame)  # b is fed every other frame: it skips the others
        bank.process()
    dec = bank.decider(a)
    assert (dec.decision, dec.first_decision, dec.beep_ms, dec.elapsed_ms) == (
        det.decision, det.first_decision, det.beep_ms, det.elapsed_ms)
    assert det.decision is not None
    assert bank.decider(b).elapsed_ms == (len(x) // FRAME) // 2 * 20
    bank.close(a)
    with pytest.raises(MediaError):
        bank.feed(a, x[:FRAME])
    assert bank.open() == a and bank.decider(a).elapsed_ms == 0  # a fresh call's
    assert bank.process() == []  # nothing fed: no pass
