"""PocketSphinx recogniser: open-vocabulary English fallback.

PocketSphinx 5 ships one acoustic model (US English, 16 kHz), so telephone audio
is resampled 8k -> 16k with ``scipy.signal.resample_poly`` (the upper band stays
empty, which costs accuracy).  With a grammar the decoder runs a JSGF search
over the phrases (words missing from the dictionary are dropped from the
grammar, and a phrase with none left cannot be matched); without one it uses
the default language model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np

from telephony.speech.base import Recognizer, SpeechAlternative, SpeechResult, pcm16_to_float
from telephony.speech.errors import SpeechConfigError, SpeechEngineUnavailable
from telephony.speech.features import resample

__all__ = ["PocketSphinxRecognizer"]

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_HINT = "pip install pocketsphinx (>= 5.0)"


def _words(phrase: str) -> list[str]:
    return re.findall(r"[a-z']+", phrase.lower())


class PocketSphinxRecognizer(Recognizer):
    """English recogniser on PocketSphinx's default model."""

    name = "pocketsphinx"

    def __init__(self, *, model_rate: int = 16000) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise SpeechEngineUnavailable("pocketsphinx", _HINT) from exc
        self._model_rate = model_rate
        self._decoder = Decoder(samprate=float(model_rate), loglevel="FATAL")
        self._searches: dict[tuple[str, ...], str] = {}
        # One decoder, one utterance at a time (executor threads may overlap).
        self._lock = threading.Lock()

    @staticmethod
    def _check_language(language: str) -> None:
        if not language.lower().startswith("en"):
            raise SpeechConfigError(
                f"pocketsphinx has an English model only; use the template or vosk engine for {language!r}"
            )

    def _grammar_search(self, phrases: Sequence[str]) -> tuple[str, dict[str, str]]:
        """Name of the JSGF search for ``phrases`` and normalised text -> phrase."""
        normal: dict[str, str] = {}
        for phrase in phrases:
            words = [w for w in _words(phrase) if self._decoder.lookup_word(w) is not None]
            if words:
                normal.setdefault(" ".join(words), phrase)
        if not normal:
            raise SpeechConfigError("none of the grammar's words is in the pocketsphinx dictionary")
        key = tuple(sorted(normal))
        name = self._searches.get(key)
        if name is None:
            name = f"grammar{len(self._searches)}"
            alts = " | ".join(f"( {text} )" for text in key)
            jsgf = f"#JSGF V1.0;\ngrammar menu;\npublic <menu> = {alts};\n"
            self._decoder.add_jsgf_string(name, jsgf)
            self._searches[key] = name
        return name, normal

    def _decode(self, audio: bytes, sample_rate: int, search: str | None) -> tuple[str, float]:
        pcm = resample(pcm16_to_float(audio), sample_rate, self._model_rate)
        raw = np.clip(np.round(pcm * 32768.0), -32768, 32767).astype("<i2").tobytes()
        with self._lock:
            if search is None:
                self._decoder.activate_search("_default")
            else:
                self._decoder.activate_search(search)
            self._decoder.start_utt()
            self._decoder.process_raw(raw, full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
            if hyp is None:
                return "", 0.0
            prob = self._decoder.get_prob()
            posterior = float(self._decoder.logmath.exp(prob)) if prob else 1.0
        return hyp.hypstr.strip(), float(np.clip(posterior, 0.0, 1.0))

    def recognize(
        self,
        audio: bytes,
        *,
        sample_rate: int = 8000,
        language: str = "en",
        phrases: Sequence[str] | None = None,
    ) -> SpeechResult:
        """English recognition; with ``phrases`` a JSGF grammar search."""
        self._check_language(language)
        if not phrases:
            text, conf = self._decode(audio, sample_rate, None)
            if not text:
                return SpeechResult.no_match(self.name)
            return SpeechResult(text=text, confidence=conf, phrase=None, engine=self.name)
        search, normal = self._grammar_search(phrases)
        text, conf = self._decode(audio, sample_rate, search)
        phrase = normal.get(" ".join(_words(text)))
        if phrase is None:
            return SpeechResult.no_match(self.name)
        others = tuple(SpeechAlternative(p, 0.0) for p in normal.values() if p != phrase)
        return SpeechResult(
            text=phrase, confidence=conf, phrase=phrase, alternatives=others, engine=self.name
        )

    def recognize_digits(
        self,
        audio: bytes,
        *,
        sample_rate: int = 8000,
        language: str = "en",
        min_digits: int = 1,
        max_digits: int | None = None,
    ) -> SpeechResult:
        """English spoken digits through a digit-loop grammar."""
        self._check_language(language)
        name = "digits"
        if ("#digits",) not in self._searches:
            alts = " | ".join(_DIGIT_WORDS + ("oh",))
            jsgf = f"#JSGF V1.0;\ngrammar digits;\npublic <digits> = ( {alts} )+;\n"
            self._decoder.add_jsgf_string(name, jsgf)
            self._searches[("#digits",)] = name
        text, conf = self._decode(audio, sample_rate, name)
        mapping = {w: str(i) for i, w in enumerate(_DIGIT_WORDS)} | {"oh": "0"}
        digits = "".join(mapping[w] for w in _words(text) if w in mapping)
        return SpeechResult.digit_string(digits, conf, self.name, min_digits=min_digits,
                                         max_digits=max_digits or None)
