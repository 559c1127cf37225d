"""What the flow engine emits (actions) and the results it is fed back (flow events).

Raw media events (DTMF, speech start/end, prompt start/finish, hang-up) come from
:mod:`telephony.events`; the events here carry the answers to the engine's own
requests (recognition, hooks, routing, voice biometrics, recording, transfer) and are
matched to them by ``request_id``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """Base class of every engine action."""


@dataclass(frozen=True, slots=True)
class PromptItem:
    """One resolved prompt item: exactly one of key, file, text, in ``language``."""

    language: str
    key: str | None = None
    file: str | None = None
    text: str | None = None

    def label(self) -> str:
        return self.key or self.file or f"tts:{(self.text or '')[:24]}"


@dataclass(frozen=True, slots=True)
class PlayPrompt(Action):
    prompt_id: str
    """Unique within the call; echoed by PromptStarted/PromptFinished."""
    items: tuple[PromptItem, ...]
    barge_in: bool = True


@dataclass(frozen=True, slots=True)
class StopPlayback(Action):
    pass


@dataclass(frozen=True, slots=True)
class StartListening(Action):
    """Turn on DTMF and/or speech endpointing (timeouts are hints for the endpointer)."""

    dtmf: bool = True
    speech: bool = False
    complete_timeout: float = 0.8
    incomplete_timeout: float = 1.5


@dataclass(frozen=True, slots=True)
class StopListening(Action):
    pass


@dataclass(frozen=True, slots=True)
class Recognize(Action):
    """Run the recogniser on an utterance; answer with :class:`RecognitionResult`."""

    request_id: str
    audio: bytes = field(repr=False)
    language: str
    phrases: tuple[str, ...]
    digits: bool = False
    """True: a spoken digit string (``Recognizer.recognize_digits``), not a phrase grammar."""
    min_digits: int = 1
    max_digits: int | None = None


@dataclass(frozen=True, slots=True)
class CallHook(Action):
    """Await the coroutine function at ``path`` with ``args``; answer with HookResult."""

    request_id: str
    path: str
    args: dict[str, str]
    timeout: float


@dataclass(frozen=True, slots=True)
class RequestRoute(Action):
    """Offer the call to the routing core (fields of routing.contract.HandoffOffer)."""

    request_id: str
    offer: dict[str, Any]
    timeout: float


@dataclass(frozen=True, slots=True)
class Transfer(Action):
    uri: str
    reason: str = "transfer"


@dataclass(frozen=True, slots=True)
class Record(Action):
    """Record the caller after the beep; answer with :class:`RecordingFinished`."""

    request_id: str
    path: str
    max_seconds: float
    stop_on_silence_s: float
    stop_digits: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hangup(Action):
    reason: str


@dataclass(frozen=True, slots=True)
class CreateCallback(Action):
    """A callback request for the dialer."""

    call_id: str
    number: str
    slot: str
    language: str
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoreSurvey(Action):
    call_id: str
    answers: dict[str, int]


@dataclass(frozen=True, slots=True)
class VerifyVoice(Action):
    request_id: str
    speaker: str
    audio: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class EnrollVoice(Action):
    request_id: str
    speaker: str
    audio: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Log(Action):
    """One event-log record: ``{"type": ..., "call_id": ..., "t": ..., ...}``."""

    event: dict[str, Any]


# --- flow events (answers to actions) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """Base class of the results fed back to the engine."""


@dataclass(frozen=True, slots=True)
class CallStarted(FlowEvent):
    call_id: str
    caller: str
    called: str
    wall_time: float = 0.0
    """Unix time at the start (business hours are evaluated on the wall clock)."""


@dataclass(frozen=True, slots=True)
class RecognitionResult(FlowEvent):
    """VoiceXML-style result: the value, its confidence; the input mode is speech."""

    request_id: str
    text: str
    confidence: float
    phrase: str | None = None


@dataclass(frozen=True, slots=True)
class HookResult(FlowEvent):
    request_id: str
    ok: bool
    value: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RouteResult(FlowEvent):
    """A routing decision (kind transfer/queue/callback/reject) or None when nothing came."""

    request_id: str
    kind: str | None
    target: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VoiceResult(FlowEvent):
    """outcome: verified, rejected, not_enrolled, enrolled, failed, error."""

    request_id: str
    outcome: str
    score: float | None = None


@dataclass(frozen=True, slots=True)
class RecordingFinished(FlowEvent):
    request_id: str
    path: str
    duration_s: float
    reason: str
    """max_length, silence, digit, hangup."""


@dataclass(frozen=True, slots=True)
class TransferResult(FlowEvent):
    ok: bool
    returned: bool = False
    """True when a bridged agent leg ended and the caller is back in the flow."""


# --- CDR ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Cdr:
    """Call detail record produced when the call ends."""

    call_id: str
    caller: str
    called: str
    flow: str
    started_at: float
    ended_at: float = 0.0
    wall_start: float = 0.0
    language: str = ""
    disposition: str = ""
    """completed, caller_hangup, transferred, handed_off, voicemail, error..."""
    end_node: str | None = None
    path: list[str] = field(default_factory=list)
    intent: str | None = None
    handoff_target: str | None = None
    voice_verified: bool | None = None
    survey: dict[str, int] = field(default_factory=dict)
    callback_slot: str | None = None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_s"] = round(self.duration_s, 3)
        return d
