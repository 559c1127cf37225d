"""Speech recognition: the result type, the recogniser interface and its registry.

A :class:`Recognizer` turns one endpointed caller utterance (16-bit signed
little-endian linear PCM, as the media path delivers after G.711 decoding and
VAD) into a :class:`SpeechResult`.  Recognition is synchronous and CPU-bound; the
asyncio glue runs it in an executor.  Engines are swappable strategies chosen by
name through :func:`create_recognizer` (compare aioquic's
``register_congestion_control``).

Built-in engines:

``template``
    Offline small-vocabulary recogniser for grammar menus (MFCC + DTW against
    espeak-ng renderings of the grammar phrases); any espeak-ng language.
``pocketsphinx``
    Open-vocabulary English fallback (PocketSphinx default en-US model).
``vosk``
    Kaldi models through Vosk; needs ``model_path``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from telephony.speech.errors import SpeechConfigError, SpeechError

__all__ = [
    "NO_MATCH_ENGINE_TEXT",
    "Recognizer",
    "RecognizerFactory",
    "SpeechAlternative",
    "SpeechResult",
    "available_recognizers",
    "create_recognizer",
    "pcm16_to_float",
    "register_recognizer",
]

#: Text of a no-match result.
NO_MATCH_ENGINE_TEXT = ""


@dataclass(frozen=True, slots=True)
class SpeechAlternative:
    """One candidate of the recogniser's n-best list."""

    text: str
    """Candidate text (the grammar phrase when a grammar was given)."""
    confidence: float
    """Confidence of this candidate, 0..1."""


@dataclass(frozen=True, slots=True)
class SpeechResult:
    """What the caller said, as far as the recogniser can tell."""

    text: str
    """Recognised text; ``""`` for no-match."""
    confidence: float
    """Confidence 0..1; 0 for no-match."""
    phrase: str | None
    """The matched grammar phrase (or digit string), ``None`` for no-match or free text."""
    alternatives: tuple[SpeechAlternative, ...] = ()
    """Next best candidates, best first (the winner excluded)."""
    engine: str = ""
    """Name of the engine that produced the result."""
    input_mode: str = "voice"
    """``"voice"`` for recognised speech (the flow engine uses ``"dtmf"`` for keypad input)."""

    @property
    def is_match(self) -> bool:
        """True when the recogniser matched something (text not empty)."""
        return self.text != NO_MATCH_ENGINE_TEXT

    @classmethod
    def no_match(
        cls, engine: str, alternatives: tuple[SpeechAlternative, ...] = ()
    ) -> SpeechResult:
        """A no-match result (text ``""``, confidence 0)."""
        return cls(text="", confidence=0.0, phrase=None, alternatives=alternatives, engine=engine)

    @classmethod
    def digit_string(
        cls, digits: str, confidence: float, engine: str, *, min_digits: int,
        max_digits: int | None,
    ) -> SpeechResult:
        """The result of :meth:`Recognizer.recognize_digits` for the recognised ``digits``: a
        match (text and phrase = the digits) when there are at least ``min_digits`` and at
        most ``max_digits`` (None: no limit) of them, otherwise a no-match."""
        too_long = max_digits is not None and len(digits) > max_digits
        if not digits or len(digits) < min_digits or too_long:
            return cls.no_match(engine)
        return cls(text=digits, confidence=confidence, phrase=digits, engine=engine)


def pcm16_to_float(audio: bytes) -> npt.NDArray[np.float64]:
    """16-bit signed little-endian PCM bytes to float samples in -1..1.

    Raises :class:`SpeechError` when the byte count is odd (not 16-bit PCM).
    """
    if len(audio) % 2:
        raise SpeechError(f"audio is not 16-bit PCM: odd byte count {len(audio)}")
    return np.frombuffer(audio, dtype="<i2").astype(np.float64) / 32768.0


class Recognizer(abc.ABC):
    """A speech recogniser.  Implementations are synchronous and CPU-bound."""

    #: Registry name of the engine, copied into :attr:`SpeechResult.engine`.
    name: str = ""

    @abc.abstractmethod
    def recognize(
        self,
        audio: bytes,
        *,
        sample_rate: int = 8000,
        language: str,
        phrases: Sequence[str] | None = None,
    ) -> SpeechResult:
        """Recognise one utterance.

        ``audio`` is 16-bit signed little-endian mono PCM at ``sample_rate``;
        ``language`` an ISO 639-1 code (``"en"``, ``"es"``...) or an espeak-style
        tag (``"en-us"``).  With ``phrases`` (the menu grammar) the result's
        ``phrase`` is the best matching phrase with its confidence, or the result
        is a no-match (text ``""``, confidence 0).  Without, the engine returns
        free text if it can (otherwise it raises :class:`SpeechConfigError`).
        """

    @abc.abstractmethod
    def recognize_digits(
        self,
        audio: bytes,
        *,
        sample_rate: int = 8000,
        language: str,
        min_digits: int = 1,
        max_digits: int | None = None,
    ) -> SpeechResult:
        """Recognise a spoken digit string ("four eight two one" -> ``"4821"``).

        The result's ``text`` and ``phrase`` are the digits (``"0"``-``"9"`` only);
        a string shorter than ``min_digits`` or longer than ``max_digits`` is a
        no-match.
        """


RecognizerFactory = Callable[..., Recognizer]


@dataclass(slots=True)
class _Registry:
    factories: dict[str, RecognizerFactory] = field(default_factory=dict)


def _template_factory(**options: object) -> Recognizer:
    from telephony.speech.template import TemplateRecognizer

    return TemplateRecognizer(**options)  # type: ignore[arg-type]


def _pocketsphinx_factory(**options: object) -> Recognizer:
    from telephony.speech.sphinx import PocketSphinxRecognizer

    return PocketSphinxRecognizer(**options)  # type: ignore[arg-type]


def _vosk_factory(**options: object) -> Recognizer:
    from telephony.speech.vosk_engine import VoskRecognizer

    return VoskRecognizer(**options)  # type: ignore[arg-type]


# Engines are imported lazily by their factories so that a missing optional
# dependency (vosk, pocketsphinx) only matters when that engine is asked for.
_REGISTRY = _Registry(
    {
        "template": _template_factory,
        "pocketsphinx": _pocketsphinx_factory,
        "vosk": _vosk_factory,
    }
)


def register_recognizer(name: str, factory: RecognizerFactory) -> None:
    """Make an engine available to :func:`create_recognizer` under ``name`` (replaces)."""
    _REGISTRY.factories[name] = factory


def available_recognizers() -> tuple[str, ...]:
    """Names of the registered engines, sorted."""
    return tuple(sorted(_REGISTRY.factories))


def create_recognizer(name: str, **options: object) -> Recognizer:
    """Build the engine registered as ``name`` with its keyword ``options``.

    Raises :class:`SpeechConfigError` for an unknown name.
    """
    try:
        factory = _REGISTRY.factories[name]
    except KeyError:
        known = ", ".join(available_recognizers())
        raise SpeechConfigError(f"unknown speech recogniser {name!r} (known: {known})") from None
    return factory(**options)
