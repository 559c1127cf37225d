"""The reference router's decisions, on a fake clock (Unix times in a fixed time zone)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from routing.contract import AgentState, CallEventMessage, HandoffOffer
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter
from telephony.errors import ConfigError

TZ = ZoneInfo("America/New_York")
REPO = Path(__file__).resolve().parents[2]


def at(text: str) -> float:
    """Unix time of a local New York time: at("2026-01-05 10:00") is a Monday morning."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


MONDAY_10 = at("2026-01-05 10:00")

CONFIG: dict[str, Any] = {
    "timezone": "America/New_York",
    "default_queue": "general",
    "average_handle_s": 120,
    "intents": {"billing": "billing", "sales": "sales"},
    "queues": {
        "general": {"skills": ["general"], "max_wait_s": 300, "max_waiting": 3},
        "billing": {
            "skills": ["billing"],
            "hours": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                       "from": "08:00", "to": "18:00"}],
            "closed": {"kind": "callback", "reason": "billing closed"},
        },
        "sales": {
            "skills": ["sales"],
            "hours": [
                {"days": ["mon"], "from": "09:00", "to": "17:00"},
                {"days": ["mon"], "from": "17:00", "to": "21:00",
                 "target": "sip:overflow@127.0.0.1:5095"},
            ],
            "closed": {"kind": "reject", "reason": "sales closed"},
        },
    },
    "agents": [],
}


def agent(agent_id: str, *, skills: list[str], langs: list[str] | None = None,
          state: str = "available", since: float | None = None) -> AgentState:
    return AgentState.model_validate({
        "agent_id": agent_id, "state": state, "uri": f"sip:{agent_id}@127.0.0.1:5091",
        "skills": skills, "languages": langs or [], "since": since})


def offer(call_id: str, *, intent: str | None = None, tier: str = "standard",
          language: str = "en", skills: list[str] | None = None) -> HandoffOffer:
    return HandoffOffer(call_id=call_id, node_id="node-a", caller="+15550001", called="+15550002",
                        intent=intent, customer_tier=tier, language=language, skills=skills or [])


def make_router(**overrides: Any) -> ReferenceRouter:
    return ReferenceRouter(RouterConfig.from_dict(CONFIG | overrides), now=MONDAY_10)


def test_longest_idle_agent_gets_the_call() -> None:
    r = make_router()
    r.on_agent_state(agent("recent", skills=["general"], since=MONDAY_10 - 10), now=MONDAY_10)
    r.on_agent_state(agent("oldest", skills=["general"], since=MONDAY_10 - 600), now=MONDAY_10)
    r.on_agent_state(agent("middle", skills=["general"], since=MONDAY_10 - 60), now=MONDAY_10)
    order = [r.route(offer(f"c{i}"), now=MONDAY_10).agent_id for i in range(3)]
    assert order == ["oldest", "middle", "recent"]
    fourth = r.route(offer("c3"), now=MONDAY_10)
    assert fourth.kind == "queue" and fourth.position == 1
    assert fourth.estimated_wait_s == pytest.approx(120 / 3, abs=0.1)
    reserved = r.states_to_publish()
    assert [(s.agent_id, s.state, s.call_id) for s in reserved] == [
        ("oldest", "busy", "c0"), ("middle", "busy", "c1"), ("recent", "busy", "c2")]


def test_skills_and_language_must_match() -> None:
    r = make_router()
    r.on_agent_state(agent("en_only", skills=["general"], langs=["en"], since=1.0), now=MONDAY_10)
    r.on_agent_state(agent("es_nosk", skills=["other"], langs=["es"], since=1.0), now=MONDAY_10)
    r.on_agent_state(agent("es_gen", skills=["general"], langs=["es"], since=5.0), now=MONDAY_10)
    d = r.route(offer("c1", language="es"), now=MONDAY_10)
    assert (d.kind, d.agent_id, d.target) == ("transfer", "es_gen", "sip:es_gen@127.0.0.1:5091")
    assert r.route(offer("c2", language="en-US"), now=MONDAY_10).agent_id == "en_only"
    # An extra skill asked by the flow: nobody has it, so the call waits.
    assert r.route(offer("c3", skills=["vip-desk"]), now=MONDAY_10).kind == "queue"


def test_vip_is_served_before_earlier_standard_callers() -> None:
    r = make_router()
    first = r.route(offer("std1"), now=MONDAY_10)
    second = r.route(offer("std2"), now=MONDAY_10 + 1)
    vip = r.route(offer("vip1", tier="vip"), now=MONDAY_10 + 2)
    assert (first.position, second.position, vip.position) == (1, 2, 1)
    assert r.waiting_calls() == ["vip1", "std1", "std2"]
    r.on_agent_state(agent("alice", skills=["general"]), now=MONDAY_10 + 3)
    later = r.decisions_to_send()
    assert [(d.call_id, d.kind, d.agent_id) for d in later] == [("vip1", "transfer", "alice")]
    assert later[0].offer_id == vip.offer_id
    assert r.waiting_calls() == ["std1", "std2"]


def test_ended_call_frees_its_agent_for_the_next_caller() -> None:
    r = make_router()
    r.on_agent_state(agent("alice", skills=["general"]), now=MONDAY_10)
    assert r.route(offer("c1"), now=MONDAY_10).agent_id == "alice"
    assert r.route(offer("c2"), now=MONDAY_10).kind == "queue"
    r.on_call_event(CallEventMessage(kind="ended", call_id="c1", node_id="node-a",
                                     at=MONDAY_10 + 60), now=MONDAY_10 + 60)
    later = r.decisions_to_send()
    assert [(d.call_id, d.agent_id) for d in later] == [("c2", "alice")]
    states = r.states_to_publish()
    assert [(s.state, s.call_id) for s in states] == [("busy", "c1"), ("available", None),
                                                      ("busy", "c2")]


def test_abandoned_call_leaves_the_queue() -> None:
    r = make_router()
    r.route(offer("c1"), now=MONDAY_10)
    r.route(offer("c2"), now=MONDAY_10)
    r.on_call_event(CallEventMessage(kind="abandoned", call_id="c1", node_id="node-a",
                                     at=MONDAY_10 + 5), now=MONDAY_10 + 5)
    assert r.waiting_calls() == ["c2"]
    assert r.route(offer("c3"), now=MONDAY_10 + 6).position == 2


def test_max_wait_turns_into_a_callback_and_full_queue_too() -> None:
    r = make_router()
    for i in range(3):
        assert r.route(offer(f"c{i}"), now=MONDAY_10 + i).kind == "queue"
    full = r.route(offer("c3"), now=MONDAY_10 + 3)
    assert (full.kind, full.reason) == ("callback", "queue full")
    assert r.get_timer() == pytest.approx(MONDAY_10 + 300)
    r.handle_timer(now=MONDAY_10 + 300.5)
    later = r.decisions_to_send()
    assert [(d.call_id, d.kind, d.callback_number) for d in later] == [
        ("c0", "callback", "+15550001")]
    assert r.waiting_calls() == ["c1", "c2"]


def test_time_of_day_by_weekday_in_the_configured_zone() -> None:
    r = make_router()
    r.on_agent_state(agent("bea", skills=["billing", "sales"]), now=MONDAY_10)
    # 07:59 local on a Monday is 12:59 UTC: billing is still closed.
    early = r.route(offer("b1", intent="billing"), now=at("2026-01-05 07:59"))
    assert (early.kind, early.reason) == ("callback", "billing closed")
    open_ = r.route(offer("b2", intent="billing"), now=at("2026-01-05 08:00"))
    assert (open_.kind, open_.agent_id) == ("transfer", "bea")
    saturday = r.route(offer("b3", intent="billing"), now=at("2026-01-10 10:00"))
    assert saturday.kind == "callback"
    evening = r.route(offer("s1", intent="sales"), now=at("2026-01-05 18:30"))
    assert (evening.kind, evening.target) == ("transfer", "sip:overflow@127.0.0.1:5095")
    tuesday = r.route(offer("s2", intent="sales"), now=at("2026-01-06 10:00"))
    assert (tuesday.kind, tuesday.reason) == ("reject", "sales closed")


def test_duplicate_offer_gets_the_same_decision_and_no_second_agent() -> None:
    r = make_router()
    r.on_agent_state(agent("a1", skills=["general"], since=1.0), now=MONDAY_10)
    r.on_agent_state(agent("a2", skills=["general"], since=2.0), now=MONDAY_10)
    o = offer("c1")
    first = r.route(o, now=MONDAY_10)
    again = r.route(o, now=MONDAY_10 + 1)
    assert again == first and r.routed_calls == 1
    assert r.agents()["a2"].state == "available"


def test_expired_offer_is_rejected_without_taking_an_agent() -> None:
    r = make_router()
    r.on_agent_state(agent("a1", skills=["general"]), now=MONDAY_10)
    o = offer("c1").model_copy(update={"sent_at": MONDAY_10 - 20, "timeout_s": 5.0})
    d = r.route(o, now=MONDAY_10)
    assert (d.kind, d.reason) == ("reject", "offer expired")
    assert r.agents()["a1"].state == "available"


def test_presence_redelivery_keeps_idle_order() -> None:
    r = make_router()
    a = agent("a1", skills=["general"])
    r.on_agent_state(a, now=MONDAY_10)
    r.on_agent_state(agent("a2", skills=["general"]), now=MONDAY_10 + 5)
    r.on_agent_state(a, now=MONDAY_10 + 10)  # the same message again (QoS 1 re-delivery)
    assert r.route(offer("c1"), now=MONDAY_10 + 11).agent_id == "a1"


def test_example_config_loads() -> None:
    config = RouterConfig.from_yaml(REPO / "routing" / "examples" / "router.yaml")
    assert {a.agent_id for a in config.agents} >= {"alice", "bob"}
    assert all(a.uri.startswith("sip:") and "127.0.0.1" in a.uri for a in config.agents)
    assert config.queue_for("billing").name == "billing"
    assert config.queue_for("unknown").name == config.default_queue


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"intents": {"x": "nowhere"}}, "intents.x"),
        ({"queues": {"q": {"hours": [{"days": ["funday"]}]}}}, "funday"),
        ({"queues": {"q": {"hours": [{"from": "18:00", "to": "08:00"}]}}}, "after"),
        ({"queues": {"q": {"hours": [{"from": "25:00"}]}}}, "bad time"),
        ({"queues": {"q": {"closed": {"kind": "transfer"}}}}, "SIP URI"),
        ({"agents": [{"agent_id": "a", "uri": "http://x"}]}, "agents[0]"),
    ],
)
def test_config_errors_name_the_key(patch: dict[str, Any], needle: str) -> None:
    base = {"timezone": "UTC", "queues": {}, "intents": {}, "agents": []}
    with pytest.raises(ConfigError) as info:
        RouterConfig.from_dict(base | patch)
    assert needle in str(info.value)


def test_router_core_is_sans_io() -> None:
    for name in ("router_core.py", "router_config.py", "contract.py"):
        text = (REPO / "routing" / name).read_text()
        for forbidden in ("import asyncio", "import socket", "import threading", "time.time(",
                          "time.monotonic("):
            assert forbidden not in text, f"{name} uses {forbidden}"


def test_an_offer_for_a_call_an_agent_is_reserved_for_gets_that_agent() -> None:
    # A dialer connected a person to "dialled" and published it busy on the call; its
    # offer (the contact's data) must not take a second agent.
    r = make_router()
    r.on_agent_state(agent("idle", skills=["general"], since=1.0), now=MONDAY_10)
    busy = agent("dialled", skills=["general"], state="busy").model_copy(
        update={"call_id": "camp-7"})
    r.on_agent_state(busy, now=MONDAY_10)
    d = r.route(offer("camp-7", intent="billing"), now=at("2026-01-05 22:00"))
    assert (d.kind, d.agent_id, d.target) == ("transfer", "dialled", busy.uri)
    assert r.states_to_publish() == [] and r.waiting_calls() == []
    # wrap_up from the dialer ends the reservation: a later offer is routed as usual
    r.on_agent_state(agent("dialled", skills=["general"], state="wrap_up"), now=MONDAY_10)
    assert r.route(offer("camp-7b"), now=MONDAY_10).agent_id == "idle"


# --- claims: a dialer asks for an agent before dialling them --------------------------------


def test_a_claim_is_granted_once_and_the_grant_is_published() -> None:
    from routing.contract import AgentClaim

    r = ReferenceRouter(RouterConfig.from_dict(CONFIG), now=MONDAY_10)
    r.on_agent_state(agent("ann", skills=["sales"]), now=MONDAY_10)
    r.on_agent_state(agent("bob", skills=["sales"], state="offline"), now=MONDAY_10)
    a = AgentClaim(call_id="c-1", node_id="dialer-a", agent_id="ann")
    b = AgentClaim(call_id="c-2", node_id="dialer-b", agent_id="ann")
    ga = r.claim(a, now=MONDAY_10)
    gb = r.claim(b, now=MONDAY_10)
    assert (ga.granted, gb.granted, gb.reason) == (True, False, "agent reserved")
    assert ga.claim_id == a.message_id and gb.claim_id == b.message_id
    assert r.claim(a, now=MONDAY_10) is ga  # re-delivered: the same answer
    again = r.claim(AgentClaim(call_id="c-1", node_id="dialer-a", agent_id="ann"),
                    now=MONDAY_10)
    assert again.granted  # asked twice for the same call
    published = r.states_to_publish()
    assert [(s.agent_id, s.state, s.call_id) for s in published] == [("ann", "busy", "c-1")]
    # an offer for the claimed call gets the claimed agent (the dialer's hand-off)
    d = r.route(HandoffOffer(call_id="c-1", node_id="dialer-a", caller="+1", called="+2"),
                now=MONDAY_10)
    assert (d.kind, d.agent_id, d.reason) == ("transfer", "ann", "reserved")
    refused = {c: r.claim(AgentClaim(call_id="c-9", node_id="d", agent_id=c),
                          now=MONDAY_10).reason for c in ("bob", "zed")}
    assert refused == {"bob": "agent offline", "zed": "unknown agent"}
    late = AgentClaim(call_id="c-8", node_id="d", agent_id="bob", sent_at=MONDAY_10 - 5,
                      timeout_s=1.0)
    assert r.claim(late, now=MONDAY_10).reason == "claim expired"
    # the dialer releases ann (available): the next claim is granted
    r.on_agent_state(agent("ann", skills=["sales"]), now=MONDAY_10 + 60)
    assert r.claim(b.model_copy(update={"message_id": uuid4()}), now=MONDAY_10 + 60).granted
    assert (r.claims_granted, r.claims_refused) == (3, 4)


def test_a_dialers_next_claim_overtaking_its_release_moves_the_reservation() -> None:
    """One dialer asks only for agents it has free: a claim from it for an agent the router
    still has reserved for another of its calls means its release is on the way."""
    from routing.contract import AgentClaim

    r = ReferenceRouter(RouterConfig.from_dict(CONFIG), now=MONDAY_10)
    r.on_agent_state(agent("ivy", skills=["sales"]), now=MONDAY_10)
    assert r.claim(AgentClaim(call_id="a-1", node_id="d1", agent_id="ivy", campaign="c"),
                   now=MONDAY_10).granted
    later = r.claim(AgentClaim(call_id="a-2", node_id="d1", agent_id="ivy", campaign="c"),
                    now=MONDAY_10 + 5)
    assert later.granted and r.agents()["ivy"].call_id == "a-2"
    # another dialer (or another campaign of the same node) is refused, and told for what
    for node, campaign in (("d2", "c"), ("d1", "other")):
        no = r.claim(AgentClaim(call_id="b-1", node_id=node, agent_id="ivy",
                                campaign=campaign), now=MONDAY_10 + 6)
        assert (no.granted, no.reason, no.held_for) == (False, "agent reserved", "a-2")


def test_an_agent_given_to_a_queued_inbound_call_is_refused_to_a_dialer() -> None:
    from routing.contract import AgentClaim

    r = ReferenceRouter(RouterConfig.from_dict(CONFIG), now=MONDAY_10)
    d = r.route(HandoffOffer(call_id="in-1", node_id="ivr", caller="+1", called="+2"),
                now=MONDAY_10)
    assert d.kind == "queue"
    r.on_agent_state(agent("cid", skills=["general"]), now=MONDAY_10 + 1)  # takes in-1
    c = r.claim(AgentClaim(call_id="out-1", node_id="dialer", agent_id="cid"), now=MONDAY_10 + 1)
    assert (c.granted, c.reason) == (False, "agent reserved")
