"""The v1 contract: round trips on real bytes, malformed payloads, topics, schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.contract import (
    SCHEMA_MODELS,
    AgentState,
    CallEventMessage,
    HandoffOffer,
    NodeStatus,
    RouteDecision,
    agent_topic,
    decision_topic,
    decode,
    decode_agent_state,
    decode_decision,
    decode_event,
    decode_node_status,
    decode_offer,
    events_topic,
    export_schemas,
    node_status_topic,
    offer_topic,
    shared_offer_subscription,
)
from routing.errors import RoutingError

REPO = Path(__file__).resolve().parents[2]

# A payload as another implementation (the contact centre's routing core) would write it.
OFFER_BYTES = (
    b'{"schema_version":"v1","message_id":"6f1c1c5e-8a61-4a4b-9c43-2d7f0f7e3b11",'
    b'"call_id":"a84b4c76e66710@127.0.0.1","node_id":"node-a","caller":"+34911234567",'
    b'"called":"+34900100200","language":"es","intent":"billing",'
    b'"menu_path":["welcome","main","billing"],"collected":{"account":"12345678"},'
    b'"customer_id":"C-991","customer_tier":"vip","voice_verified":true,"voice_score":0.93,'
    b'"ivr_seconds":41.5,"skills":["spanish"],"sent_at":1767225600.0,"timeout_s":8.0}'
)


def test_offer_parses_foreign_bytes_and_round_trips() -> None:
    offer = decode_offer(OFFER_BYTES)
    assert offer.message_id == UUID("6f1c1c5e-8a61-4a4b-9c43-2d7f0f7e3b11")
    assert offer.customer_tier == "vip" and offer.voice_verified is True
    assert offer.collected == {"account": "12345678"}
    assert offer.deadline == pytest.approx(1767225608.0)
    again = decode_offer(offer.encode())
    assert again == offer
    assert json.loads(offer.encode()) == json.loads(OFFER_BYTES)


@pytest.mark.parametrize(
    "message",
    [
        RouteDecision(call_id="c1", offer_id=UUID(int=1), kind="transfer",
                      target="sip:alice@127.0.0.1:5091", agent_id="alice"),
        RouteDecision(call_id="c1", offer_id=UUID(int=1), kind="queue", queue="billing",
                      position=3, estimated_wait_s=90.0),
        RouteDecision(call_id="c1", offer_id=UUID(int=1), kind="callback",
                      callback_number="+34911234567", callback_after_s=600.0),
        RouteDecision(call_id="c1", offer_id=UUID(int=1), kind="reject", reason="closed"),
        AgentState(agent_id="alice", state="wrap_up", uri="sip:alice@127.0.0.1:5091",
                   skills=["billing"], languages=["en", "es"], since=1767225600.0),
        CallEventMessage(kind="abandoned", call_id="c1", node_id="node-a", at=1767225600.5,
                         queue="billing", detail={"waited_s": "31.0"}),
        NodeStatus(node_id="node-a", status="offline", role="ivr"),
    ],
)
def test_every_message_round_trips(message: RouteDecision | AgentState) -> None:
    data = message.encode()
    assert isinstance(data, bytes)
    assert decode(type(message), data) == message
    assert json.loads(data)["schema_version"] == "v1"


def test_message_ids_are_unique_and_survive_copies() -> None:
    a = HandoffOffer(call_id="c", node_id="n", caller="1", called="2")
    b = HandoffOffer(call_id="c", node_id="n", caller="1", called="2")
    assert a.message_id != b.message_id
    assert a.model_copy(update={"sent_at": 5.0}).message_id == a.message_id


@pytest.mark.parametrize(
    ("decoder", "payload", "needle"),
    [
        (decode_offer, b"", "HandoffOffer"),
        (decode_offer, b"not json", "HandoffOffer"),
        (decode_offer, b"\xff\xfe\x00", "HandoffOffer"),
        (decode_offer, b"[]", "HandoffOffer"),
        (decode_offer, OFFER_BYTES.replace(b'"node-a"', b'"node/a"'), "node_id"),
        (decode_offer, OFFER_BYTES.replace(b'"v1"', b'"v2"'), "schema_version"),
        (decode_offer, OFFER_BYTES.replace(b'"timeout_s":8.0', b'"timeout_s":-1'), "timeout_s"),
        (decode_decision, b'{"call_id":"c","offer_id":"x","kind":"queue"}', "offer_id"),
        (decode_decision, b'{"call_id":"c","offer_id":"' + str(UUID(int=1)).encode()
         + b'","kind":"transfer"}', "target"),
        (decode_decision, b'{"call_id":"c","offer_id":"' + str(UUID(int=1)).encode()
         + b'","kind":"transfer","target":"http://x"}', "target"),
        (decode_decision, b'{"call_id":"c","offer_id":"' + str(UUID(int=1)).encode()
         + b'","kind":"reject"}', "reason"),
        (decode_agent_state, b'{"agent_id":"a","state":"asleep","uri":"sip:a@h"}', "state"),
        (decode_agent_state, b'{"agent_id":"+","state":"busy","uri":"sip:a@h"}', "agent_id"),
        (decode_event, b'{"kind":"answered","call_id":"c","node_id":"n"}', "at"),
        (decode_node_status, b'{"node_id":"n","status":"maybe"}', "status"),
        (decode_offer, b'{"x":"' + b"a" * 70_000 + b'"}', "too large"),
    ],
)
def test_malformed_payloads_raise_routing_error(
    decoder: Callable[[bytes], object], payload: bytes, needle: str,
) -> None:
    with pytest.raises(RoutingError) as info:
        decoder(payload)
    assert needle in str(info.value)


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_only_ever_raise_routing_error(payload: bytes) -> None:
    for model in SCHEMA_MODELS.values():
        try:
            decode(model, payload)
        except RoutingError:
            pass


def test_topics() -> None:
    assert offer_topic() == "dialtone/v1/handoff/offer"
    assert decision_topic("node-a") == "dialtone/v1/handoff/decision/node-a"
    assert agent_topic("alice") == "dialtone/v1/agents/alice"
    assert events_topic("node-a") == "dialtone/v1/events/node-a"
    assert node_status_topic("node-a") == "dialtone/v1/nodes/node-a/status"
    assert shared_offer_subscription() == "$share/dialtone-routers/dialtone/v1/handoff/offer"
    for bad in ("a/b", "+", "#", "", "x" * 200):
        with pytest.raises(RoutingError):
            decision_topic(bad)


def test_exported_schemas_match_the_committed_ones(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)
    assert len(written) == len(SCHEMA_MODELS)
    for path in written:
        schema = json.loads(path.read_text())
        assert schema["type"] == "object"
        assert "message_id" in schema["properties"]
        committed = REPO / "docs" / "schemas" / path.name
        assert committed.exists(), f"run export_schemas('docs/schemas'): {path.name} missing"
        assert json.loads(committed.read_text()) == schema, f"{path.name} is out of date"
    offer_schema = json.loads((tmp_path / "handoff-offer.v1.schema.json").read_text())
    assert set(offer_schema["required"]) == {"call_id", "node_id", "caller", "called"}
