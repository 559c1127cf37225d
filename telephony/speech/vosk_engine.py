"""Vosk (Kaldi) recogniser on a user-supplied model.

No model ships with Dialtone: the user downloads one (e.g. vosk-model-small-es)
and passes its directory as ``model_path``.  Recognition runs a
``KaldiRecognizer`` at the call's sample rate (8000 Hz for G.711); with a grammar
the recogniser is restricted to the phrases plus ``[unk]`` (Vosk's JSON phrase
list), so out-of-grammar speech comes back as ``[unk]`` and becomes a no-match.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from telephony.speech.base import Recognizer, SpeechResult
from telephony.speech.errors import SpeechEngineUnavailable, SpeechModelMissing

__all__ = ["VoskRecognizer"]

_MODEL_HINT = (
    "download a Vosk model (https://alphacephei.com/vosk/models) and pass its directory "
    "as model_path"
)
_DIGIT_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "es": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"),
    "fr": ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"),
}


class VoskRecognizer(Recognizer):
    """Recogniser on a Vosk model directory (one model = one language)."""

    name = "vosk"

    def __init__(
        self, *, model_path: str | Path | None = None, language: str | None = None
    ) -> None:
        if model_path is None:
            raise SpeechModelMissing("vosk", None, _MODEL_HINT)
        path = Path(model_path)
        if not path.is_dir():
            raise SpeechModelMissing("vosk", str(path), _MODEL_HINT)
        try:
            import vosk
        except ImportError as exc:
            raise SpeechEngineUnavailable("vosk", "pip install vosk") from exc
        vosk.SetLogLevel(-1)
        self._vosk: Any = vosk
        self._model: Any = vosk.Model(str(path))
        self._language = language
        self._lock = threading.Lock()

    def _run(self, audio: bytes, sample_rate: int, grammar: list[str] | None) -> dict[str, Any]:
        if grammar is None:
            rec = self._vosk.KaldiRecognizer(self._model, float(sample_rate))
        else:
            rec = self._vosk.KaldiRecognizer(
                self._model, float(sample_rate), json.dumps(grammar + ["[unk]"], ensure_ascii=False)
            )
        rec.SetWords(True)
        rec.AcceptWaveform(audio)
        result: dict[str, Any] = json.loads(rec.FinalResult())
        return result

    @staticmethod
    def _confidence(result: dict[str, Any]) -> float:
        words = result.get("result") or []
        if not words:
            return 0.0
        return float(min(float(w.get("conf", 0.0)) for w in words))

    def recognize(
        self,
        audio: bytes,
        *,
        sample_rate: int = 8000,
        language: str,
        phrases: Sequence[str] | None = None,
    ) -> SpeechResult:
        """Free text, or the best of ``phrases`` (``[unk]`` -> no-match)."""
        grammar = None if not phrases else [p.lower() for p in phrases]
        with self._lock:
            result = self._run(audio, sample_rate, grammar)
        text = str(result.get("text", "")).strip()
        if not text or "[unk]" in text:
            return SpeechResult.no_match(self.name)
        conf = self._confidence(result)
        if phrases:
            by_lower = {p.lower(): p for p in phrases}
            phrase = by_lower.get(text)
            if phrase is None:
                return SpeechResult.no_match(self.name)
            return SpeechResult(text=phrase, confidence=conf, phrase=phrase, engine=self.name)
        return SpeechResult(text=text, confidence=conf, phrase=None, engine=self.name)

    def recognize_digits(
        self,
        audio: bytes,
        *,
        sample_rate: int = 8000,
        language: str,
        min_digits: int = 1,
        max_digits: int | None = None,
    ) -> SpeechResult:
        """Digits through a grammar of the language's digit words."""
        words = _DIGIT_WORDS.get(language.split("-")[0].lower())
        grammar = list(words) if words else None
        with self._lock:
            result = self._run(audio, sample_rate, grammar)
        mapping = {w: str(i) for i, w in enumerate(words or ())}
        tokens = str(result.get("text", "")).split()
        digits = "".join(mapping.get(t, t if t.isdigit() else "") for t in tokens)
        return SpeechResult.digit_string(digits, self._confidence(result), self.name,
                                         min_digits=min_digits, max_digits=max_digits or None)
