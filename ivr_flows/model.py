"""The flow format: pydantic models of a flow file (YAML or JSON).

A flow is a set of named nodes; each node names the nodes it can lead to (its *edges*).
The semantics of input handling are borrowed from VoiceXML 2.0 (W3C REC 2004):
per-node no-input and no-match counters with escalating prompts (VoiceXML 5.2.2),
reprompt, and its timer model: ``timeout`` (initial no-input), ``interdigittimeout``,
``termchar``, and for speech ``completetimeout`` / ``incompletetimeout`` (VoiceXML 6.3).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", max_length=128)]
Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
Digit = Annotated[str, Field(pattern=r"^[0-9*#A-D]$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- prompts ---------------------------------------------------------------------------------


class PromptItemSpec(_Model):
    """One piece of a prompt: a catalogue key, an audio file, or text for TTS.

    ``language`` pins the item to one language (a language-selection prompt says each
    option in its own language); otherwise the call's current language is used.
    """

    key: str | None = None
    file: str | None = None
    text: str | None = None
    language: Language | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PromptItemSpec:
        given = [n for n in ("key", "file", "text") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a prompt item needs exactly one of key, file, text")
        return self


def _coerce_items(value: Any) -> Any:
    """Accept ``"key"``, ``["k1", {"text": ...}]`` or a single mapping."""
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        value = [value]
    if isinstance(value, list):
        return [{"key": v} if isinstance(v, str) else v for v in value]
    return value


PromptList = list[PromptItemSpec]


class _Says(_Model):
    say: PromptList = Field(default_factory=list, description="Prompt items played on entry")

    @field_validator("say", mode="before")
    @classmethod
    def _items(cls, v: Any) -> Any:
        return _coerce_items(v)


class InputSettings(_Model):
    """VoiceXML-style timers and counters (seconds); node values override flow defaults."""

    timeout: float | None = Field(default=None, gt=0, description="Initial no-input timeout")
    inter_digit_timeout: float | None = Field(default=None, gt=0)
    term_char: str | None = Field(default=None, pattern=r"^[*#]?$")
    complete_timeout: float | None = Field(default=None, gt=0, description="Speech: silence "
                                           "after a complete utterance")
    incomplete_timeout: float | None = Field(default=None, gt=0)
    max_speech_timeout: float | None = Field(default=None, gt=0)
    max_no_input: int | None = Field(default=None, ge=1)
    max_no_match: int | None = Field(default=None, ge=1)
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    barge_in: bool | None = None


class _Asks(_Says, InputSettings):
    no_input: list[PromptList] = Field(default_factory=list, description="Escalating no-input "
                                       "prompts: the n-th no-input plays item n (last repeats)")
    no_match: list[PromptList] = Field(default_factory=list)
    reprompt: bool = Field(default=True, description="Replay ``say`` after a no-input/no-match")
    on_fail: NodeId | None = Field(default=None, description="Where to go when the counters "
                                   "run out (default: the flow's settings.on_fail)")

    @field_validator("no_input", "no_match", mode="before")
    @classmethod
    def _escalating(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, (str, dict)):
            v = [v]
        return [_coerce_items(x) for x in v]


# --- nodes -----------------------------------------------------------------------------------


class PromptNode(_Says):
    """Play prompts, then go on."""

    type: Literal["prompt"]
    barge_in: bool = True
    next: NodeId


Phrases = list[str] | dict[str, list[str]]
"""Spoken phrases: one list for every language, or a list per language."""


def phrases_for(speech: Phrases, language: str) -> list[str]:
    """The phrases of ``speech`` that apply in ``language``."""
    return speech.get(language, []) if isinstance(speech, dict) else list(speech)


def all_phrases(speech: Phrases) -> list[str]:
    return [p for v in speech.values() for p in v] if isinstance(speech, dict) else list(speech)


class Choice(_Model):
    """A menu choice: a DTMF key and/or spoken phrases."""

    dtmf: Digit | None = None
    speech: Phrases = Field(default_factory=list)
    next: NodeId
    set: dict[str, str] = Field(default_factory=dict, description="Variables set on choosing")

    @model_validator(mode="after")
    def _some_input(self) -> Choice:
        if self.dtmf is None and not self.speech:
            raise ValueError("a choice needs a dtmf key or speech phrases")
        return self


class MenuNode(_Asks):
    """Choose by DTMF or speech."""

    type: Literal["menu"]
    choices: list[Choice] = Field(min_length=1)


class DigitsValidation(_Model):
    pattern: str | None = None
    luhn: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"pattern does not compile: {e}") from e
        return v


class CollectNode(_Asks):
    """Collect a digit string by DTMF and/or as a spoken digit string."""

    type: Literal["collect"]
    var: str = Field(min_length=1, description="Variable that receives the value")
    mode: Literal["dtmf", "speech", "both"] = "dtmf"
    min_length: int = Field(default=1, ge=1)
    max_length: int = Field(default=32, ge=1)
    validate_: DigitsValidation = Field(default_factory=DigitsValidation, alias="validate")
    next: NodeId

    @model_validator(mode="after")
    def _lengths(self) -> CollectNode:
        if self.min_length > self.max_length:
            raise ValueError("min_length exceeds max_length")
        return self


class LanguageChoice(_Model):
    dtmf: Digit | None = None
    speech: Phrases = Field(default_factory=list)
    language: Language


class LanguageNode(_Asks):
    """Set the call's language; later prompt keys resolve in it."""

    type: Literal["language"]
    choices: list[LanguageChoice] = Field(min_length=1)
    next: NodeId


class Condition(_Model):
    """``{var: x, eq: y}`` (also ne, in, exists) or ``{open: calendar}`` (business hours)."""

    var: str | None = None
    eq: str | None = None
    ne: str | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    exists: bool | None = None
    open: str | None = Field(default=None, description="Calendar name: true inside its hours")

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        if (self.var is None) == (self.open is None):
            raise ValueError("a condition needs exactly one of var, open")
        if self.var is not None:
            ops = [x for x in (self.eq, self.ne, self.in_, self.exists) if x is not None]
            if len(ops) != 1:
                raise ValueError("a var condition needs exactly one of eq, ne, in, exists")
        return self


class Case(_Model):
    if_: list[Condition] = Field(alias="if", min_length=1)
    next: NodeId

    @field_validator("if_", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v


class BranchNode(_Model):
    """Go to the first case whose conditions all hold, else ``default``."""

    type: Literal["branch"]
    cases: list[Case] = Field(min_length=1)
    default: NodeId


class HookNode(_Model):
    """Await a Python coroutine function named by dotted path (``pkg.mod.func``)."""

    type: Literal["hook"]
    call: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
    args: dict[str, str] = Field(default_factory=dict, description="``${var}`` is substituted")
    timeout: float = Field(default=3.0, gt=0)
    store: str | None = Field(default=None, description="Prefix for the returned mapping's keys")
    next: NodeId
    on_error: NodeId | None = None


class VerifyVoiceNode(_Asks):
    """Voice biometrics: verify the caller against the enrolled voiceprint of ``speaker``."""

    type: Literal["verify_voice"]
    speaker: str = Field(default="customer.id", description="Variable holding the speaker id")
    threshold: float | None = Field(default=None, ge=0, le=1)
    verified: NodeId
    rejected: NodeId
    not_enrolled: NodeId
    on_error: NodeId | None = None


class EnrollVoiceNode(_Asks):
    """Record a voiceprint for ``speaker``."""

    type: Literal["enroll_voice"]
    speaker: str = "customer.id"
    enrolled: NodeId
    failed: NodeId


class HandoffNode(_Says):
    """Hand the call to the routing core with what the IVR learnt."""

    type: Literal["handoff"]
    intent_var: str = "intent"
    skills: list[str] = Field(default_factory=list)
    collected: list[str] = Field(default_factory=list, description="Variables sent along")
    timeout: float = Field(default=10.0, gt=0)
    hold: PromptList = Field(default_factory=list, description="Played while queued")
    fallback: NodeId = Field(description="No route in time, rejected, or transfer failed")
    after: NodeId | None = Field(default=None, description="Where a bridged caller goes when "
                                 "the agent leg ends (e.g. a survey); none: the call ends")

    @field_validator("hold", mode="before")
    @classmethod
    def _hold_items(cls, v: Any) -> Any:
        return _coerce_items(v)


class TransferNode(_Says):
    """Transfer to a SIP URI from the flow's allow-list (never a caller-typed number)."""

    type: Literal["transfer"]
    uri: str = Field(pattern=r"^sips?:[^\s$]+$")
    on_error: NodeId
    after: NodeId | None = None


class VoicemailNode(_Says):
    """Record a message after a beep; stored with metadata."""

    type: Literal["voicemail"]
    beep: bool = True
    max_seconds: float = Field(default=120.0, gt=0, le=3600)
    silence_seconds: float = Field(default=5.0, gt=0)
    stop_digits: str = Field(default="#", pattern=r"^[0-9*#]*$")
    mailbox: str = "default"
    next: NodeId


class CallbackSlot(_Model):
    dtmf: Digit
    slot: str = Field(min_length=1)
    say: PromptList = Field(default_factory=list)

    @field_validator("say", mode="before")
    @classmethod
    def _items(cls, v: Any) -> Any:
        return _coerce_items(v)


class CallbackNode(_Asks):
    """Offer a callback: confirm the number (or key in another), pick a slot."""

    type: Literal["callback"]
    confirm: PromptList = Field(description="'We will call you on ... press 1 to confirm, 2 "
                                "for another number'")
    other_number: PromptList = Field(default_factory=list)
    slots_prompt: PromptList = Field(default_factory=list)
    slots: list[CallbackSlot] = Field(min_length=1)
    done: PromptList = Field(default_factory=list)
    next: NodeId

    @field_validator("confirm", "other_number", "slots_prompt", "done", mode="before")
    @classmethod
    def _items2(cls, v: Any) -> Any:
        return _coerce_items(v)


class SurveyQuestion(_Model):
    id: str = Field(min_length=1)
    say: PromptList
    min: int = Field(default=1, ge=0, le=9)
    max: int = Field(default=5, ge=0, le=9)

    @field_validator("say", mode="before")
    @classmethod
    def _items(cls, v: Any) -> Any:
        return _coerce_items(v)


class SurveyNode(_Asks):
    """A post-call DTMF survey; answers go to the survey store."""

    type: Literal["survey"]
    questions: list[SurveyQuestion] = Field(min_length=1)
    next: NodeId


class HangupNode(_Says):
    type: Literal["hangup"]
    reason: str = "completed"


Node = Annotated[
    PromptNode | MenuNode | CollectNode | LanguageNode | BranchNode | HookNode | VerifyVoiceNode | EnrollVoiceNode | HandoffNode | TransferNode | VoicemailNode | CallbackNode | SurveyNode | HangupNode,
    Field(discriminator="type"),
]

NODE_KINDS = ("prompt", "menu", "collect", "language", "branch", "hook", "verify_voice",
              "enroll_voice", "handoff", "transfer", "voicemail", "callback", "survey", "hangup")


# --- flow ------------------------------------------------------------------------------------


class Calendar(_Model):
    """Business hours: ``hours: {mon-fri: ["09:00-18:00"], sat: ["10:00-14:00"]}``."""

    timezone: str = "UTC"
    hours: dict[str, list[str]]
    holidays: list[str] = Field(default_factory=list, description="ISO dates (YYYY-MM-DD)")

    @field_validator("hours", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: [x] if isinstance(x, str) else x for k, x in v.items()}
        return v


class FlowSettings(InputSettings):
    """Flow-wide defaults for every input node, and the default error branches."""

    language: Language = "en"
    on_fail: NodeId | None = None
    on_error: NodeId | None = Field(default=None, description="Hook errors and timeouts go here "
                                    "when the node has no on_error")
    hook_timeout: float = Field(default=3.0, gt=0)
    recordings_dir: str = "var/recordings"


class Flow(_Model):
    """A whole flow file."""

    flow: str = Field(min_length=1, description="Flow name")
    version: int = 1
    languages: list[Language] = Field(min_length=1)
    start: NodeId
    settings: FlowSettings = Field(default_factory=FlowSettings)
    prompts_dir: str | None = Field(default="prompts", description="Recordings: "
                                    "<prompts_dir>/<lang>/<key>.wav")
    catalogue: str | None = Field(default=None, description="Extra YAML: {key: {lang: text}}")
    prompts: dict[str, dict[str, str]] = Field(default_factory=dict, description="TTS text: "
                                               "{key: {lang: text}}")
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    transfer_allow_list: list[str] = Field(default_factory=list)
    nodes: dict[NodeId, Node]


DEFAULT_INPUT = InputSettings(
    timeout=5.0, inter_digit_timeout=3.0, term_char="#", complete_timeout=0.8,
    incomplete_timeout=1.5, max_speech_timeout=15.0, max_no_input=3, max_no_match=3,
    min_confidence=0.4, barge_in=True,
)
"""VoiceXML-like defaults, used when neither the node nor the flow sets a value."""


def choice_label(c: Choice) -> str:
    """The edge label of a menu choice: its key, else its first phrase."""
    return f"choice:{c.dtmf or all_phrases(c.speech)[0]}"


def edges(node_id: str, node: Any) -> list[tuple[str, str]]:
    """The (label, target) edges leaving ``node``: the flow graph used for validation,
    reachability and script coverage."""
    out: list[tuple[str, str]] = []
    if isinstance(node, MenuNode):
        for c in node.choices:
            out.append((choice_label(c), c.next))
    if isinstance(node, BranchNode):
        for i, case in enumerate(node.cases):
            out.append((f"case:{i}", case.next))
        out.append(("default", node.default))
    for label in ("next", "on_fail", "on_error", "fallback", "after", "verified", "rejected",
                  "not_enrolled", "enrolled", "failed"):
        target = getattr(node, label, None)
        if isinstance(target, str):
            out.append((label, target))
    return out
