"""The v1 routing contract: message models, topics, encoding and JSON Schema export.

Every message is a JSON object (UTF-8) with ``schema_version`` ("v1") and a
``message_id`` (a UUID chosen by the sender).  Delivery is at-least-once (MQTT QoS 1
plus an outbox that re-sends after a broker restart), so consumers drop duplicates
by ``message_id``.  See docs/routing-contract.md for the prose description.

Topics (all under ``dialtone/v1/``):

=======================================  ===========================  ========
topic                                    payload                      retained
=======================================  ===========================  ========
``handoff/offer``                        :class:`HandoffOffer`        no
``handoff/decision/<node_id>``           :class:`RouteDecision`       no
``agents/<agent_id>``                    :class:`AgentState`          yes
``events/<node_id>``                     :class:`CallEventMessage`    no
``nodes/<node_id>/status``               :class:`NodeStatus`          yes
``claims/request``                       :class:`AgentClaim`          no
``claims/reply/<node_id>``               :class:`ClaimReply`          no
=======================================  ===========================  ========
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from routing.errors import RoutingError

SCHEMA_VERSION = "v1"
TOPIC_ROOT = "dialtone/v1"
SHARED_GROUP = "dialtone-routers"
MAX_PAYLOAD_BYTES = 64 * 1024
"""Payloads above this size are refused before parsing (a malformed or hostile sender)."""

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
_ID_RE = re.compile(_ID_PATTERN)
_SIP_URI_PATTERN = r"^sips?:[^\s]+$"

TopicId = Annotated[str, Field(pattern=_ID_PATTERN, description="Usable as one MQTT topic level")]
SipUri = Annotated[str, Field(pattern=_SIP_URI_PATTERN, description="A SIP or SIPS URI")]

AgentStatus = Literal["available", "busy", "wrap_up", "offline"]
DecisionKind = Literal["transfer", "queue", "callback", "reject"]
CallEventKind = Literal["answered", "handed_off", "transferred", "abandoned", "ended"]


class ContractMessage(BaseModel):
    """Fields common to every v1 message."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_max_length=4096)

    schema_version: Literal["v1"] = "v1"
    """Contract version; a v2 consumer can refuse or translate v1 payloads."""
    message_id: UUID = Field(default_factory=uuid4)
    """Chosen by the sender, kept across re-sends: consumers de-duplicate on it."""

    def encode(self) -> bytes:
        """The JSON payload as sent on the wire."""
        return self.model_dump_json(exclude_none=False).encode("utf-8")


class HandoffOffer(ContractMessage):
    """A call the IVR hands to the routing core, with everything it learnt."""

    call_id: str = Field(min_length=1, max_length=256)
    node_id: TopicId
    """The Dialtone node that owns the call (decisions go to its decision topic)."""
    caller: str = Field(max_length=256)
    called: str = Field(max_length=256)
    language: str = Field(default="en", max_length=16)
    """BCP 47 tag of the language the caller used ("en", "es")."""
    intent: str | None = None
    """What the IVR understood the caller wants ("billing"), if anything."""
    menu_path: list[str] = Field(default_factory=list)
    """The flow nodes the caller went through, in order."""
    collected: dict[str, str] = Field(default_factory=dict)
    """Values the flow collected (account number, date of birth...)."""
    customer_id: str | None = None
    customer_tier: str = "standard"
    """"vip", "gold", "standard"...; the router's config ranks tiers."""
    voice_verified: bool | None = None
    """Result of voice verification; None if not attempted."""
    voice_score: float | None = None
    ivr_seconds: float = Field(default=0.0, ge=0.0)
    """Time the caller spent in the IVR before the hand-off."""
    skills: list[str] = Field(default_factory=list)
    """Skills the flow asks for, on top of those of the intent's queue."""
    sent_at: float = Field(default=0.0, ge=0.0)
    """Unix time the offer was made."""
    timeout_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    """The IVR runs its fallback if no decision arrives within this many seconds."""

    @property
    def deadline(self) -> float:
        """Unix time after which nobody waits for a decision any more."""
        return self.sent_at + self.timeout_s


class RouteDecision(ContractMessage):
    """The routing core's answer to one offer (a queued call may get several)."""

    call_id: str = Field(min_length=1, max_length=256)
    offer_id: UUID
    """``message_id`` of the offer answered (also sent as MQTT 5 correlation data)."""
    kind: DecisionKind
    router_id: str = ""
    target: SipUri | None = None
    """transfer: where to send the call (REFER or bridge)."""
    agent_id: str | None = None
    queue: str | None = None
    position: int | None = Field(default=None, ge=1)
    """queue: 1 is next."""
    estimated_wait_s: float | None = Field(default=None, ge=0.0)
    callback_number: str | None = None
    """callback: number to call back (defaults to the caller)."""
    callback_after_s: float | None = Field(default=None, ge=0.0)
    reason: str | None = None
    """reject (required), and optionally any kind."""

    @model_validator(mode="after")
    def _fields_match_kind(self) -> RouteDecision:
        if self.kind == "transfer" and self.target is None:
            raise ValueError("a transfer decision needs a target SIP URI")
        if self.kind == "queue" and (self.queue is None or self.position is None):
            raise ValueError("a queue decision needs queue and position")
        if self.kind == "reject" and not self.reason:
            raise ValueError("a reject decision needs a reason")
        return self


class AgentState(ContractMessage):
    """An agent's presence; retained on ``agents/<agent_id>`` (the dialer follows it)."""

    agent_id: TopicId
    state: AgentStatus
    uri: SipUri
    """Where transfers to this agent go."""
    skills: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    """Languages spoken; empty means any."""
    since: float | None = Field(default=None, ge=0.0)
    """Unix time the agent entered ``state`` (longest-idle ordering); None: on receipt."""
    call_id: str | None = None
    """busy: the call the agent is on, when the router reserved the agent."""


class CallEventMessage(ContractMessage):
    """A call's life after the IVR, for CDRs and workforce tools."""

    kind: CallEventKind
    call_id: str = Field(min_length=1, max_length=256)
    node_id: TopicId
    at: float = Field(ge=0.0)
    """Unix time of the event."""
    agent_id: str | None = None
    queue: str | None = None
    target: str | None = None
    detail: dict[str, str] = Field(default_factory=dict)


class AgentClaim(ContractMessage):
    """A dialer asks the routing core for one agent before it dials them.

    The routing core is the one authority on agents: it grants the claim when the agent is
    ``available`` and reserved for no call (it then publishes them ``busy`` with
    ``call_id``), and refuses it otherwise, so two dialers never dial the same agent."""

    call_id: str = Field(min_length=1, max_length=256)
    """The call the agent is wanted for (the dialer's ``CAMPAIGN-ATTEMPT``)."""
    node_id: TopicId
    """The dialer's node: the reply goes to its reply topic."""
    agent_id: TopicId
    campaign: str | None = Field(default=None, max_length=256)
    sent_at: float = Field(default=0.0, ge=0.0)
    """Unix time the claim was made."""
    timeout_s: float = Field(default=1.0, gt=0.0, le=60.0)
    """The dialer stops waiting (and the claim is void) after this many seconds."""

    @property
    def deadline(self) -> float:
        return self.sent_at + self.timeout_s


class ClaimReply(ContractMessage):
    """The routing core's answer to an :class:`AgentClaim`."""

    claim_id: UUID
    """``message_id`` of the claim answered."""
    call_id: str = Field(min_length=1, max_length=256)
    agent_id: TopicId
    granted: bool
    router_id: str = ""
    reason: str | None = None
    """Refused: why (``agent busy``, ``agent reserved``, ``unknown agent``...)."""
    held_for: str | None = Field(default=None, max_length=256)
    """Refused because the agent is reserved: the call they are reserved for (a dialer that
    finds one of its own ended calls there releases the agent: its release was lost or
    overtaken)."""


class NodeStatus(ContractMessage):
    """Liveness of a Dialtone node or router, retained; "offline" is also its last will."""

    node_id: TopicId
    status: Literal["online", "offline"]
    role: Literal["ivr", "router"] = "ivr"
    at: float | None = None


# --- topics ------------------------------------------------------------------------------------


def check_topic_id(value: str) -> str:
    """Return ``value`` if usable as one topic level (no ``/``, ``+``, ``#``), else raise."""
    if not _ID_RE.match(value):
        raise RoutingError(f"not a valid node or agent id for a topic level: {value!r}")
    return value


def offer_topic() -> str:
    """Where IVR nodes publish offers."""
    return f"{TOPIC_ROOT}/handoff/offer"


def shared_offer_subscription(group: str = SHARED_GROUP) -> str:
    """MQTT 5 shared subscription (section 4.8.2): each offer reaches one router of ``group``."""
    return f"$share/{check_topic_id(group)}/{offer_topic()}"


def decision_topic(node_id: str) -> str:
    """Where decisions for calls owned by ``node_id`` go (the offers' response topic)."""
    return f"{TOPIC_ROOT}/handoff/decision/{check_topic_id(node_id)}"


def agent_topic(agent_id: str) -> str:
    return f"{TOPIC_ROOT}/agents/{check_topic_id(agent_id)}"


def events_topic(node_id: str) -> str:
    return f"{TOPIC_ROOT}/events/{check_topic_id(node_id)}"


def node_status_topic(node_id: str) -> str:
    return f"{TOPIC_ROOT}/nodes/{check_topic_id(node_id)}/status"


def claim_topic() -> str:
    """Where dialers publish agent claims (routers take them by shared subscription)."""
    return f"{TOPIC_ROOT}/claims/request"


def shared_claim_subscription(group: str = SHARED_GROUP) -> str:
    """As :func:`shared_offer_subscription`, for claims."""
    return f"$share/{check_topic_id(group)}/{claim_topic()}"


def claim_reply_topic(node_id: str) -> str:
    """Where the answers to ``node_id``'s claims go."""
    return f"{TOPIC_ROOT}/claims/reply/{check_topic_id(node_id)}"


AGENTS_FILTER = f"{TOPIC_ROOT}/agents/+"
EVENTS_FILTER = f"{TOPIC_ROOT}/events/+"
NODES_FILTER = f"{TOPIC_ROOT}/nodes/+/status"


# --- decoding ----------------------------------------------------------------------------------

M = TypeVar("M", bound=ContractMessage)


def decode(model: type[M], payload: bytes | bytearray | str) -> M:
    """Parse a payload into ``model``; any problem raises :class:`RoutingError`."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RoutingError(f"{model.__name__}: payload of {len(payload)} bytes is too large")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise RoutingError(f"malformed {model.__name__}: {where}: {first.get('msg')}") from exc


def decode_offer(payload: bytes | bytearray | str) -> HandoffOffer:
    return decode(HandoffOffer, payload)


def decode_decision(payload: bytes | bytearray | str) -> RouteDecision:
    return decode(RouteDecision, payload)


def decode_agent_state(payload: bytes | bytearray | str) -> AgentState:
    return decode(AgentState, payload)


def decode_event(payload: bytes | bytearray | str) -> CallEventMessage:
    return decode(CallEventMessage, payload)


def decode_node_status(payload: bytes | bytearray | str) -> NodeStatus:
    return decode(NodeStatus, payload)


def decode_claim(payload: bytes | bytearray | str) -> AgentClaim:
    return decode(AgentClaim, payload)


def decode_claim_reply(payload: bytes | bytearray | str) -> ClaimReply:
    return decode(ClaimReply, payload)


SCHEMA_MODELS: dict[str, type[ContractMessage]] = {
    "handoff-offer": HandoffOffer,
    "route-decision": RouteDecision,
    "agent-state": AgentState,
    "call-event": CallEventMessage,
    "node-status": NodeStatus,
    "agent-claim": AgentClaim,
    "claim-reply": ClaimReply,
}


def export_schemas(directory: str | Path) -> list[Path]:
    """Write one JSON Schema per message (``<name>.v1.schema.json``); returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://dialtone.invalid/schemas/{name}.{SCHEMA_VERSION}.schema.json"
        path = out / f"{name}.{SCHEMA_VERSION}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
