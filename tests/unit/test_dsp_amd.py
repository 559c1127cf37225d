"""AMD and beep detection on a held-out slice of the generated labelled set."""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os
import shutil
import wave
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from telephony.dsp.amd import AmdConfig, AmdDetector, AmdResult, classify_recording
from telephony.dsp.tones import BeepDetector

GEN = Path(__file__).resolve().parents[2] / "audio_fixtures" / "gen_dsp.py"
pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or not Path("/usr/share/asterisk/sounds/en").is_dir(),
    reason="espeak-ng or the Debian prompts are missing")


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_dsp", GEN)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def held_out(gen: ModuleType) -> list[tuple[np.ndarray, dict[str, object]]]:
    """24 live answers and 24 machines from a seed the defaults were not tuned on."""
    rng = np.random.default_rng(99)
    out = []
    for kind in ["human", "machine"] * 24:
        x, meta = gen.human(rng) if kind == "human" else gen.machine(rng)
        out.append((gen.through_mulaw(x + gen.line_noise(rng, len(x))), meta))
    return out


def test_accuracy_on_held_out_set(held_out: list[tuple[np.ndarray, dict[str, object]]]) -> None:
    results = [(classify_recording(x), meta) for x, meta in held_out]
    correct = sum(r.result == m["label"] for r, m in results)
    humans = [(r, m) for r, m in results if m["label"] == "human"]
    assert correct >= 0.9 * len(results)
    assert sum(r.result == "machine" for r, _ in humans) <= 1
    delays = [r.decision_ms - int(m["speech_end_ms"]) for r, m in humans  # type: ignore[call-overload]
              if r.result == "human"]
    assert 0 < float(np.median(delays)) <= 800
    beeps = [(r, m) for r, m in results if m["beep_ms"] is not None]
    assert beeps
    found = sum(r.beep_ms is not None and abs(r.beep_ms - int(m["beep_ms"])) <= 60  # type: ignore[call-overload]
                for r, m in beeps)
    assert found >= len(beeps) - 1


def test_streaming_decision_then_beep(gen: ModuleType) -> None:
    rng = np.random.default_rng(5)
    greeting = gen.set_level(np.concatenate(
        [gen.prompt("en", name) for name in ("vm-theperson", "vm-isunavail", "vm-intro")]), -16)
    t = np.arange(4000) / 8000
    x = np.concatenate([np.zeros(3000), greeting, np.zeros(2400),
                        6000 * np.sin(2 * np.pi * 1000 * t), np.zeros(8000)])
    x = gen.through_mulaw(x + gen.line_noise(rng, len(x)))
    det = AmdDetector()
    out: list[AmdResult] = []
    for i in range(len(x) // 160):
        r = det.process(x[i * 160:(i + 1) * 160], now=50.0 + i * 0.02)
        if r is not None:
            out.append(r)
    assert [r.kind for r in out] == ["decision", "beep"]
    assert out[0].result == "machine" and out[0].reason == "LONGGREETING"
    beep_onset_ms = (3000 + len(greeting) + 2400) / 8
    assert out[1].beep_ms is not None and abs(out[1].beep_ms - beep_onset_ms) <= 30
    assert out[1].decision_ms == out[0].decision_ms < out[1].beep_ms


def test_beep_before_any_decision_means_machine(gen: ModuleType) -> None:
    short = gen.set_level(gen.prompt("en", "vm-isunavail"), -16)  # one second of speech
    t = np.arange(3200) / 8000
    x = np.concatenate([np.zeros(3000), short, np.zeros(2400),
                        6000 * np.sin(2 * np.pi * 850 * t), np.zeros(8000)])
    r = classify_recording(gen.through_mulaw(x))
    assert (r.result, r.reason) == ("machine", "BEEP")
    assert r.beep_ms is not None and abs(r.beep_ms - (5400 + len(short)) / 8) <= 30
    assert r.decision_ms - r.beep_ms == 200  # the beep must hold 200 ms


def test_initial_silence_and_config(gen: ModuleType) -> None:
    rng = np.random.default_rng(1)
    quiet = gen.through_mulaw(gen.line_noise(rng, 6 * 8000))
    r = classify_recording(quiet)
    assert (r.result, r.reason, r.decision_ms) == ("machine", "INITIALSILENCE", 2500)
    cfg = AmdConfig(initial_silence_ms=4000, initial_silence_verdict="unknown")
    r = classify_recording(quiet, cfg)
    assert (r.result, r.decision_ms) == ("unknown", 4000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.greeting_ms = 1  # type: ignore[misc]


def test_short_hello_is_human_quickly(gen: ModuleType) -> None:
    hello = gen.set_level(gen.prompt("en", "hello"), -18)
    x = gen.through_mulaw(np.concatenate([np.zeros(4000), hello, np.zeros(5 * 8000)]))
    r = classify_recording(x)
    speech_end = (4000 + len(hello)) / 8
    assert r.result == "human"
    assert 0 < r.decision_ms - speech_end <= 900


def test_silence_rule_is_shorter_after_a_short_first_utterance(gen: ModuleType) -> None:
    """A person's one short word ("Hello?") is called human after
    ``short_greeting_silence_ms``; a longer opening still needs
    ``after_greeting_silence_ms`` (a machine that pauses after a short word is left to
    the late-machine watch)."""
    cfg = AmdConfig()
    assert cfg.short_greeting_silence_ms < cfg.after_greeting_silence_ms
    hello = gen.set_level(gen.prompt("en", "hello"), -18)
    x = gen.through_mulaw(np.concatenate([np.zeros(4000), hello, np.zeros(5 * 8000)]))
    r = classify_recording(x, cfg)
    assert r.result == "human" and r.reason.endswith(f"-{cfg.short_greeting_silence_ms}")
    off = classify_recording(x, dataclasses.replace(cfg, short_greeting_ms=0))
    assert off.reason.endswith(f"-{cfg.after_greeting_silence_ms}")
    assert off.decision_ms - r.decision_ms == (cfg.after_greeting_silence_ms
                                               - cfg.short_greeting_silence_ms)
    # two sentences of a greeting (longer than short_greeting_ms) that then stop
    long = gen.set_level(np.concatenate([gen.prompt("en", "hello"), np.zeros(1600),
                                         gen.prompt("en", "hello")]), -18)
    y = gen.through_mulaw(np.concatenate([np.zeros(4000), long, np.zeros(5 * 8000)]))
    assert classify_recording(y, cfg).reason.endswith(f"-{cfg.after_greeting_silence_ms}")


@pytest.mark.skipif(not os.path.isdir("/usr/share/asterisk/moh"), reason="no hold music")
def test_no_false_beeps_on_music_and_speech() -> None:
    files = sorted(glob.glob("/usr/share/asterisk/moh/*.wav"))
    files += sorted(f for f in glob.glob("/usr/share/asterisk/sounds/en/vm-*.wav"))
    chunks = []
    for f in files:
        with wave.open(f) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        chunks.append(x[: len(x) // 160 * 160].reshape(-1, 160))
    frames = np.concatenate(chunks)
    det = BeepDetector(1)
    # One channel fed frame by frame would be slow in Python; the batch API takes many
    # channels, so cut the audio into 40 parallel streams of consecutive frames.
    n = len(frames) // 40
    streams = frames[: 40 * n].reshape(40, n, 160)
    det = BeepDetector(40)
    beeps = []
    for i in range(n):
        beeps += det.process(streams[:, i], now=i * 0.02)
    hours = 40 * n * 0.02 / 3600
    assert hours > 0.3
    assert len(beeps) < max(1.0, hours)


def test_generated_dtmf_files_read_back(gen: ModuleType) -> None:
    """The generator's DTMF files (noise, twist, mu-law) come back digit for digit."""
    from telephony.dsp.dtmf import detect_file_digits

    rng = np.random.default_rng(11)
    for _ in range(6):
        x, digits = gen.dtmf_file(rng)
        sig = np.mean(x[x != 0] ** 2)
        noisy = x + rng.standard_normal(len(x)) * np.sqrt(sig / 10 ** (20 / 10))
        found = detect_file_digits(gen.through_mulaw(noisy))
        assert [d["digit"] for d in found] == [d["digit"] for d in digits]
        for got, want in zip(found, digits, strict=True):
            assert abs(int(got["start_ms"]) - int(want["start_ms"])) <= 3  # type: ignore[call-overload]
            assert abs(int(got["duration_ms"]) - int(want["duration_ms"])) <= 5  # type: ignore[call-overload]
