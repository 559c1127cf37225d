"""The call event log's schema: one model per event ``type``.

``dialtone serve --events PATH`` appends one JSON object per line (see
:mod:`telephony.eventlog`).  Tools outside the project read these lines, so this schema changes
by additions only: a new type or a new optional field, never a rename.  ``dialtone events
schema`` prints it as JSON Schema; ``dialtone events check FILE`` validates a log.

Every line has ``ts`` (UTC, ISO 8601 with milliseconds) and ``type``; call events have
``call_id``.  The models forbid unknown fields, so that the test suite, which validates every
event it emits, catches a field that is emitted but not documented here.  Consumers should
ignore fields they do not know: a later version may add some.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: str | None = None
    """UTC time the line was written (ISO 8601, milliseconds, ``Z``); absent in memory."""


class _CallEvent(_Event):
    call_id: str
    """The node's reference of the call (stable for the call's life; not the SIP Call-ID)."""


# --- the SIP/RTP leg (telephony.aio.useragent) -----------------------------------------------


class CallStarted(_CallEvent):
    type: Literal["call_started"]
    direction: Literal["inbound", "outbound"]
    caller: str
    called: str
    sip_call_id: str
    remote: str | None = None
    """``host:port`` the INVITE came from (inbound)."""
    target: str | None = None
    """The URI dialled (outbound)."""


class CallAnswered(_CallEvent):
    type: Literal["call_answered"]


class RtpSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    received: int
    lost: int
    jitter_ms: float
    sent: int


class CallEnded(_CallEvent):
    type: Literal["call_ended"]
    cause: str
    """normal, remote_bye, local_hangup, cancelled, rejected, media_timeout, failed, busy, ..."""
    status: int | None = None
    """The SIP status that ended the call, when one did."""
    by_remote: bool
    """True when the peer ended the call (BYE, CANCEL, a failure response)."""
    duration_s: float
    rtp: RtpSummary


class CallFailed(_CallEvent):
    type: Literal["call_failed"]
    status: int
    reason: str


class CallRejected(_Event):
    type: Literal["call_rejected"]
    sip_call_id: str
    status: int
    reason: str


class CallProgress(_CallEvent):
    type: Literal["call_progress"]
    status: int
    reason: str


class Dtmf(_CallEvent):
    type: Literal["dtmf"]
    digit: str
    duration_ms: int
    source: Literal["rfc4733", "info", "inband"]


class PromptStarted(_CallEvent):
    type: Literal["prompt_started"]
    prompt: str
    language: str | None = None


class PromptFinished(_CallEvent):
    type: Literal["prompt_finished"]
    prompt: str
    interrupted: bool
    language: str | None = None


class Registration(_Event):
    type: Literal["registration"]
    reg: str
    registered: bool
    status: int | None = None
    expires: int | None = None


class Hold(_CallEvent):
    type: Literal["hold", "unhold"]


class Transferred(_CallEvent):
    type: Literal["transferred"]
    to: str
    new_call_id: str


class TransferRefused(_Event):
    """A transfer target outside the node's transfer policy (issue 12): an inbound REFER
    answered 403, or a transfer the flow or the Call API asked for, refused before dialling."""

    type: Literal["transfer_refused"]
    call_id: str | None = None
    target: str
    reason: str
    refer: bool
    """True for an inbound REFER."""


class Bridged(_CallEvent):
    type: Literal["bridged"]
    other_call_id: str


# --- the node (dialtone) ---------------------------------------------------------------------


class NodeStarted(_Event):
    type: Literal["node_started"]
    node_id: str
    sip: str
    """``host:port`` the node listens on."""
    flow: str | None = None
    http: str | None = None
    """``host:port`` of the campaign console, when it serves one (``--http``)."""


class NodeStopped(_Event):
    type: Literal["node_stopped"]
    node_id: str


class Survey(_CallEvent):
    type: Literal["survey"]
    answers: dict[str, int]


class CdrRecord(_CallEvent):
    """One per call that ran a flow: the flow's CDR plus the SIP leg's fields."""

    type: Literal["cdr"]
    caller: str
    called: str
    flow: str
    started_at: float
    ended_at: float
    wall_start: float
    language: str
    disposition: str
    """completed, caller_hangup, transferred, handed_off, voicemail, error, ..."""
    end_node: str | None = None
    path: list[str]
    intent: str | None = None
    handoff_target: str | None = None
    voice_verified: bool | None = None
    survey: dict[str, int]
    callback_slot: str | None = None
    duration_s: float
    sip_call_id: str | None = None
    direction: str | None = None
    end_cause: str | None = None


# --- the flow engine (ivr_flows) -------------------------------------------------------------


class _FlowEvent(_CallEvent):
    t: float
    """Seconds since the call started."""
    node: str | None = None
    """The flow node the call is in (None before the first)."""


class FlowStarted(_FlowEvent):
    type: Literal["flow_started"]
    caller: str
    called: str
    flow: str
    wall_time: float | None = None


class FlowEnded(_FlowEvent):
    type: Literal["flow_ended"]
    disposition: str
    cdr: dict[str, Any]


class RemoteHangupEvent(_FlowEvent):
    type: Literal["remote_hangup"]
    reason: str


class FlowAction(_FlowEvent):
    """An action the engine asked for; besides ``action`` (its class name in
    :mod:`ivr_flows.actions`) it carries that action's fields (bytes as ``<name>_bytes``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: Literal["action"]
    action: str


class FlowError(_FlowEvent):
    type: Literal["error"]
    message: str


class NodeEntered(_FlowEvent):
    type: Literal["node_entered"]
    kind: str
    """The node's type in the flow format (menu, collect, handoff, ...)."""
    edge: str
    from_: str | None = Field(default=None, alias="from")


class Input(_FlowEvent):
    type: Literal["input"]
    mode: Literal["dtmf", "voice"]
    value: str | None = None
    source: str | None = None
    duration_ms: int | None = None
    audio_bytes: int | None = None


class InputIgnored(_FlowEvent):
    type: Literal["input_ignored"]
    reason: str
    value: str | None = None


class Recognition(_FlowEvent):
    type: Literal["recognition"]
    text: str
    confidence: float
    phrase: str | None = None


class Result(_FlowEvent):
    type: Literal["result"]
    value: str
    mode: str
    confidence: float


class Retry(_FlowEvent):
    type: Literal["no_input", "no_match", "max_no_input", "max_no_match"]
    count: int


class NoMatchReason(_FlowEvent):
    type: Literal["no_match_reason"]
    reason: str


class Choice(_FlowEvent):
    type: Literal["choice"]
    value: str
    mode: str
    confidence: float
    utterance: str | None = None
    set: dict[str, Any]


class LanguageChosen(_FlowEvent):
    type: Literal["language"]
    language: str
    mode: str


class Collect(_FlowEvent):
    type: Literal["collect"]
    var: str
    valid: bool
    mode: str
    length: int


class Branch(_FlowEvent):
    type: Literal["branch"]
    case: int | Literal["default"]


class HookResultEvent(_FlowEvent):
    type: Literal["hook_result"]
    hook: str
    value: Any = None


class Voice(_FlowEvent):
    type: Literal["voice"]
    outcome: str
    reason: str | None = None
    score: float | None = None


class Handoff(_FlowEvent):
    type: Literal["handoff"]
    offer: dict[str, Any]


class HandoffFallback(_FlowEvent):
    type: Literal["handoff_fallback"]
    reason: str


class RouteDecision(_FlowEvent):
    type: Literal["route_decision"]
    kind: str
    target: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    reason: str | None = None


class TransferResult(_FlowEvent):
    type: Literal["transfer_result"]
    ok: bool
    returned: bool
    uri: str | None = None


class Voicemail(_FlowEvent):
    type: Literal["voicemail"]
    path: str | None = None
    duration_s: float
    reason: str | None = None


class ServiceError(_CallEvent):
    type: Literal["service_error"]
    action: str
    error: str


# --- the dialer and the campaign console (dialtone.http) -------------------------------------


class CampaignStatus(_Event):
    """A campaign started, paused, resumed or archived (from the console or the API)."""

    type: Literal["campaign_status"]
    campaign: str
    status: str
    previous: str
    by: str
    """The user (or API token's user) who did it."""


class ListImported(_Event):
    """A list upload finished importing (or failed)."""

    type: Literal["list_imported"]
    campaign: str
    import_id: str
    state: Literal["done", "failed"]
    imported: int
    bad_rows: int
    error: str | None = None


class DialerCall(_Event):
    """An outbound call of a campaign changed state (the dialer engine, issue 14)."""

    type: Literal["dialer_call"]
    campaign: str
    call_id: str
    state: Literal["dialling", "ringing", "waiting", "connected", "ended"]


class DialerStatus(_Event):
    """The pacer's figures for a campaign (the dialer engine, issue 14)."""

    type: Literal["dialer_status"]
    campaign: str
    dial_level: float
    """Lines being dialled or up per agent ready or talking."""


# --- the dialer engine (dialer.engine) ----------------------------------------------------------


class CampaignCall(_CallEvent):
    """One outbound campaign call ended with its disposition (issue 14's names)."""

    type: Literal["campaign_call"]
    campaign: str
    number: str
    disposition: str
    attempt: int
    amd: str | None = None
    """``human`` or ``machine`` (what AMD decided; a late machine counts as machine)."""
    amd_ms: int | None = None
    """AMD's decision time, stream milliseconds from the answer."""
    agent: str | None = None
    wait_s: float | None = None
    """AMD's human verdict to the agent's leg bridged."""
    greeting_to_bridge_s: float | None = None
    """The end of the person's greeting (the verdict less the silence that made it) to
    the agent's leg bridged."""
    sip_status: int | None = None
    language: str | None = None
    """The language of the message played (safe harbour, machine message), when one was."""


class CampaignPaused(_Event):
    type: Literal["campaign_paused"]
    campaign: str
    reason: str


class CampaignResumed(_Event):
    type: Literal["campaign_resumed"]
    campaign: str


EVENT_MODELS: tuple[type[_Event], ...] = (
    CallStarted, CallAnswered, CallEnded, CallFailed, CallRejected, CallProgress, Dtmf,
    PromptStarted, PromptFinished, Registration, Hold, Transferred, TransferRefused, Bridged,
    NodeStarted, NodeStopped, Survey, CdrRecord,
    FlowStarted, FlowEnded, RemoteHangupEvent, FlowAction, FlowError, NodeEntered, Input,
    InputIgnored, Recognition, Result, Retry, NoMatchReason, Choice, LanguageChosen, Collect,
    Branch, HookResultEvent, Voice, Handoff, HandoffFallback, RouteDecision, TransferResult,
    Voicemail, ServiceError, CampaignStatus, ListImported, DialerCall, DialerStatus,
    CampaignCall, CampaignPaused, CampaignResumed,
)

_BY_TYPE: dict[str, type[_Event]] = {}
for _model in EVENT_MODELS:
    for _name in _model.model_fields["type"].annotation.__args__:  # type: ignore[union-attr]
        _BY_TYPE[_name] = _model

EventLine = Annotated[
    CallStarted | CallAnswered | CallEnded | CallFailed | CallRejected | CallProgress | Dtmf
    | PromptStarted | PromptFinished | Registration | Hold | Transferred | TransferRefused
    | Bridged
    | NodeStarted | NodeStopped | Survey | CdrRecord
    | FlowStarted | FlowEnded | RemoteHangupEvent | FlowAction | FlowError | NodeEntered | Input
    | InputIgnored | Recognition | Result | Retry | NoMatchReason | Choice | LanguageChosen
    | Collect | Branch | HookResultEvent | Voice | Handoff | HandoffFallback | RouteDecision
    | TransferResult | Voicemail | ServiceError | CampaignStatus | ListImported | DialerCall
    | DialerStatus | CampaignCall | CampaignPaused | CampaignResumed,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(EventLine)


def event_types() -> set[str]:
    return set(_BY_TYPE)


def validate_event(event: dict[str, Any]) -> str | None:
    """None when ``event`` matches its type's model, else what is wrong (one line)."""
    kind = event.get("type")
    model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if model is None:
        return f"unknown event type {kind!r}"
    try:
        model.model_validate(event)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '-'}: {e['msg']}"
                            for e in exc.errors())
        return f"{kind}: {details}"
    return None


def event_log_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one line of the event log."""
    schema = _ADAPTER.json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Dialtone call event (one line of --events)"
    return schema


def check_event_log(path: str | os.PathLike[str]) -> list[str]:
    """Every problem in a JSON-lines event log, as ``path:line: problem``."""
    problems = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{number}: not JSON: {exc.msg}")
                continue
            if not isinstance(event, dict):
                problems.append(f"{path}:{number}: not an object")
                continue
            problem = validate_event(event)
            if problem is not None:
                problems.append(f"{path}:{number}: {problem}")
    return problems
