"""PocketSphinx and Vosk engines."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from telephony.errors import ConfigError
from telephony.speech.base import available_recognizers, create_recognizer
from telephony.speech.errors import SpeechConfigError, SpeechModelMissing

UTTERANCES = Path(__file__).resolve().parents[2] / "audio_fixtures" / "utterances"
MENU = json.loads((UTTERANCES / "manifest.json").read_text("utf-8"))["grammars"]["en"]["menu"]


def load(rel: str) -> bytes:
    with wave.open(str(UTTERANCES / rel)) as w:
        return w.readframes(w.getnframes())


def test_registry_names() -> None:
    assert {"template", "pocketsphinx", "vosk"} <= set(available_recognizers())


def test_vosk_without_model_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(SpeechModelMissing) as exc:
        create_recognizer("vosk")
    assert isinstance(exc.value, ConfigError) and "model_path" in str(exc.value)
    with pytest.raises(SpeechModelMissing) as exc2:
        create_recognizer("vosk", model_path=tmp_path / "missing")
    assert str(tmp_path / "missing") in str(exc2.value)


def test_pocketsphinx_grammar_on_telephone_audio() -> None:
    rec = create_recognizer("pocketsphinx")
    for rel, expected in [
        ("en/billing.wav", "billing"),
        ("en/technical_support_2.wav", "technical support"),
        ("en/sales_3.wav", "sales"),
    ]:
        res = rec.recognize(load(rel), language="en", phrases=MENU)
        assert res.phrase == expected and res.engine == "pocketsphinx"
    yes = rec.recognize(load("en/yes.wav"), language="en", phrases=["yes", "no"])
    assert yes.phrase == "yes"
    with pytest.raises(SpeechConfigError):
        rec.recognize(load("en/yes.wav"), language="es", phrases=["sí", "no"])
