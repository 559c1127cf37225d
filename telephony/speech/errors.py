"""Typed errors of the speech layer (recognisers, TTS, voice verification).

They derive from :class:`telephony.errors.DialtoneError` (configuration problems
also from :class:`telephony.errors.ConfigError`) so callers can catch them at the
layer boundary.
"""

from __future__ import annotations

from telephony.errors import ConfigError, DialtoneError


class SpeechError(DialtoneError):
    """Anything that went wrong in speech recognition, synthesis or verification."""


class SpeechConfigError(SpeechError, ConfigError):
    """Bad speech configuration: unknown engine, unsupported language, bad option."""


class SpeechModelMissing(SpeechConfigError):
    """A recogniser needs a model that was not given or does not exist (names the path)."""

    def __init__(self, engine: str, path: str | None, hint: str) -> None:
        where = "no model path given" if path is None else f"model not found at {path!r}"
        super().__init__(f"{engine}: {where}; {hint}")
        self.engine = engine
        self.path = path
        self.hint = hint


class SpeechEngineUnavailable(SpeechError):
    """A speech engine's program or library is not installed; carries the install hint."""

    def __init__(self, engine: str, hint: str) -> None:
        super().__init__(f"{engine} is not available: {hint}")
        self.engine = engine
        self.hint = hint


class TtsError(SpeechError):
    """Text-to-speech rendering failed (the engine ran but produced no usable audio)."""


class TtsEngineMissing(SpeechEngineUnavailable, TtsError):
    """The TTS program (espeak-ng) is not installed."""


class VoiceVerificationError(SpeechError):
    """The voice verifier could not give a decision (engine failure, corrupt voiceprint)."""
