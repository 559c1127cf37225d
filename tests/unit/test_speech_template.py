"""Template (MFCC + DTW) recogniser on the generated caller utterances."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from telephony.speech.base import SpeechResult, create_recognizer
from telephony.speech.dtw import dtw_distances, one_pass_dtw
from telephony.speech.errors import SpeechConfigError
from telephony.speech.features import MfccConfig, mfcc, speech_segments
from telephony.speech.template import TemplateRecognizer
from telephony.speech.tts import EspeakTts, TtsConfig

UTTERANCES = Path(__file__).resolve().parents[2] / "audio_fixtures" / "utterances"
MANIFEST: dict[str, Any] = json.loads((UTTERANCES / "manifest.json").read_text("utf-8"))


def load(rel: str) -> bytes:
    with wave.open(str(UTTERANCES / rel)) as w:
        assert w.getframerate() == 8000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.readframes(w.getnframes())


def entries(*kinds: str) -> list[tuple[str, dict[str, Any]]]:
    return [(rel, e) for rel, e in MANIFEST["utterances"].items() if e["kind"] in kinds]


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> TemplateRecognizer:
    tts = EspeakTts(TtsConfig(cache_dir=tmp_path_factory.mktemp("tts")))
    rec = create_recognizer("template", tts=tts)
    assert isinstance(rec, TemplateRecognizer)
    return rec


def grammar(entry: dict[str, Any]) -> list[str]:
    g = MANIFEST["grammars"][entry["language"]]
    return list(g["yes_no"] if entry["kind"] == "yes_no" else g["menu"])


def test_every_menu_and_yes_no_utterance_is_recognised(recognizer: TemplateRecognizer) -> None:
    results = {}
    for rel, entry in entries("menu", "yes_no"):
        res = recognizer.recognize(load(rel), language=entry["language"], phrases=grammar(entry))
        results[rel] = res
    wrong = {
        rel: r.phrase
        for rel, r in results.items()
        if r.phrase != MANIFEST["utterances"][rel]["expected"]
    }
    accuracy = 1 - len(wrong) / len(results)
    assert len(results) == 66
    assert accuracy == 1.0, wrong
    for res in results.values():
        assert res.engine == "template" and res.input_mode == "voice"
        assert 0.0 < res.confidence <= 1.0 and res.text == res.phrase


def test_out_of_grammar_and_hello_are_rejected(recognizer: TemplateRecognizer) -> None:
    for rel, entry in entries("out_of_grammar", "hello"):
        g = MANIFEST["grammars"][entry["language"]]["menu"]
        res = recognizer.recognize(load(rel), language=entry["language"], phrases=g)
        assert res == SpeechResult.no_match("template", res.alternatives), rel
        assert not res.is_match and res.confidence == 0.0
        # The n-best list (phrases that could be aligned at all) is kept for logging.
        assert res.alternatives and {a.text for a in res.alternatives} <= set(g)


def test_digit_strings(recognizer: TemplateRecognizer) -> None:
    total = correct_digits = 0
    for rel, entry in entries("digits"):
        res = recognizer.recognize_digits(load(rel), language=entry["language"])
        expected = entry["expected"]
        assert res.text.isdigit() and res.phrase == res.text
        assert len(res.text) == len(expected), (rel, res.text)
        correct_digits += sum(a == b for a, b in zip(res.text, expected))
        total += len(expected)
    # Isolated-digit DTW on unseen voices: most digits right (see benchmarks/results/speech.md).
    assert correct_digits / total >= 0.75
    short = recognizer.recognize_digits(load("en/digits_4821.wav"), language="en", max_digits=3)
    assert not short.is_match


def test_silence_is_no_match_and_grammar_required(recognizer: TemplateRecognizer) -> None:
    silence = np.zeros(8000, dtype="<i2").tobytes()
    assert not recognizer.recognize(silence, language="en", phrases=["sales", "billing"]).is_match
    assert not recognizer.recognize_digits(silence, language="en").is_match
    with pytest.raises(SpeechConfigError):
        recognizer.recognize(silence, language="en")
    with pytest.raises(SpeechConfigError):
        create_recognizer("no-such-engine")


def test_16k_input_is_resampled(recognizer: TemplateRecognizer) -> None:
    from scipy.signal import resample_poly

    audio = np.frombuffer(load("fr/facturation.wav"), dtype="<i2").astype(np.float64)
    up = np.round(resample_poly(audio, 2, 1)).astype("<i2").tobytes()
    res = recognizer.recognize(
        up, sample_rate=16000, language="fr", phrases=MANIFEST["grammars"]["fr"]["menu"]
    )
    assert res.phrase == "facturation"


def test_mfcc_shapes_and_segments() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.1, 8000)
    feats = mfcc(x, 8000, MfccConfig())
    assert feats.shape == (1 + (8000 - 200) // 80, 13)
    energy = np.full(100, -80.0)
    energy[10:30] = -20.0
    energy[35:60] = -20.0  # a 50 ms gap is bridged
    energy[80:90] = -20.0
    assert speech_segments(energy) == [(7, 63), (77, 93)]


def test_dtw_prefers_the_time_warped_copy() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 5))
    b = rng.normal(size=(40, 5))
    stretched = np.repeat(a, 2, axis=0)[::1][:70]  # a, slowed down
    d = dtw_distances(stretched, [a, b])
    assert d[0] < 0.2 * d[1]
    assert np.isinf(dtw_distances(a[:10], [a])[0])  # a template more than 2x longer
    hits = one_pass_dtw(np.vstack([a, b, a]), [a, b], word_penalty=5.0)
    assert [h.template for h in hits] == [0, 1, 0]
    assert [(h.start, h.stop) for h in hits] == [(0, 40), (40, 80), (80, 120)]
