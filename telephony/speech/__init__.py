"""telephony.speech: speech recognition, text-to-speech and voice verification.

Engines load lazily (``create_recognizer("template" | "pocketsphinx" | "vosk")``);
see :mod:`telephony.speech.base`, :mod:`telephony.speech.tts` and
:mod:`telephony.speech.voice`.
"""

from telephony.speech.base import (
    Recognizer,
    SpeechAlternative,
    SpeechResult,
    available_recognizers,
    create_recognizer,
    register_recognizer,
)

__all__ = [
    "Recognizer",
    "SpeechAlternative",
    "SpeechResult",
    "available_recognizers",
    "create_recognizer",
    "register_recognizer",
]
