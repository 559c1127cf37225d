"""Call events: what the media path and the signalling tell a call's owner.

Frozen dataclasses with slots, one base class (``CallEvent``), in the manner of
aioquic's ``events.py``.  They cross the sans-IO / asyncio boundary unchanged and
are what the flow engine consumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DtmfSource = Literal["rfc4733", "info", "inband"]


@dataclass(frozen=True, slots=True)
class CallEvent:
    """Base class of every call event."""


@dataclass(frozen=True, slots=True)
class DtmfReceived(CallEvent):
    """A DTMF digit, reported once, whatever path it came by."""

    digit: str
    """One of ``0123456789*#ABCD``."""
    duration_ms: int
    """How long the key was held (0 if the source does not say)."""
    source: DtmfSource
    """``rfc4733`` (RTP telephone-event), ``info`` (SIP INFO) or ``inband`` (tones in the audio)."""
    at: float = 0.0
    """Monotonic time the digit started (its onset), seconds."""


@dataclass(frozen=True, slots=True)
class SpeechStarted(CallEvent):
    """The endpointer heard the start of an utterance."""

    at: float = 0.0


@dataclass(frozen=True, slots=True)
class SpeechEnded(CallEvent):
    """The endpointer heard the end of an utterance; ``audio`` is 8 kHz int16 PCM bytes."""

    at: float = 0.0
    duration_ms: int = 0
    audio: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class PromptStarted(CallEvent):
    prompt: str
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class PromptFinished(CallEvent):
    prompt: str
    interrupted: bool = False
    """True if barge-in (a digit or speech) stopped it."""
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class MediaTimeout(CallEvent):
    """No RTP arrived for the configured number of seconds."""

    seconds: float


@dataclass(frozen=True, slots=True)
class MediaFailed(CallEvent):
    """The call's media raised an unexpected error; the mixer took it out (the other calls
    go on) and the call must end."""

    cause: str
    """What failed, for the log (the exception's type and message)."""


@dataclass(frozen=True, slots=True)
class RemoteHangup(CallEvent):
    """The peer ended the call (BYE, or CANCEL before answer)."""

    reason: str = "bye"


@dataclass(frozen=True, slots=True)
class CallAnswered(CallEvent):
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class HoldChanged(CallEvent):
    """The peer put the call on hold or took it off (re-INVITE direction attribute)."""

    on_hold: bool
