"""The campaign's agents (dialer/agents.py): the routing core's presence into the dialer's
table and the pacer's events, the per-contact choice (language, skills, longest idle), and
what the dialer publishes back on the contract (its own messages not taken for news)."""

from __future__ import annotations

import asyncio
from typing import Any

from dialer.agents import (
    AgentBook,
    AgentsSpec,
    AgentWants,
    RoutingAgents,
    contact_offer,
    parse_agents,
)
from dialer.pacing import AgentLoggedIn, AgentLoggedOut, AgentReady
from dialer.pacing.events import PacerEvent
from routing.bus import InMemoryBus
from routing.contract import AgentState, CallEventMessage
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter


def state(agent_id: str, st: str = "available", *, skills: tuple[str, ...] = ("sales",),
          langs: tuple[str, ...] = (), since: float | None = None, **kw: Any) -> AgentState:
    return AgentState(agent_id=agent_id, state=st,  # type: ignore[arg-type]
                      uri=kw.pop("uri", f"sip:{agent_id}@127.0.0.1:5091"),
                      skills=list(skills), languages=list(langs), since=since, **kw)


def book(spec: AgentsSpec | None = None) -> tuple[AgentBook, list[PacerEvent]]:
    events: list[PacerEvent] = []
    return AgentBook(spec or AgentsSpec("routing"), events.append), events


def test_parse_agents_keeps_the_list_form() -> None:
    assert parse_agents(["sip:a@h"]) == AgentsSpec("list", uris=("sip:a@h",))
    assert parse_agents({"from": "routing", "skills": ["x"], "languages": ["en"]}) == \
        AgentsSpec("routing", skills=frozenset({"x"}), languages=("en",))
    assert parse_agents(None) == AgentsSpec()


def test_presence_joins_and_leaves_the_pool_and_the_pacer_sees_it() -> None:
    b, ev = book(AgentsSpec("routing", skills=frozenset({"sales"}), languages=("en",)))
    b.presence(state("alice", langs=("en", "fr")), now=10.0)
    b.presence(state("nosk", skills=("billing",)), now=10.0)       # lacks the skill
    b.presence(state("fr", langs=("fr",)), now=10.0)               # no campaign language
    b.presence(state("away", "offline"), now=10.0)                 # not available
    assert list(b.agents) == ["sip:alice@127.0.0.1:5091"]
    assert ev == [AgentLoggedIn("sip:alice@127.0.0.1:5091"), AgentReady("sip:alice@127.0.0.1:5091")]
    ev.clear()
    b.presence(state("alice", "offline", langs=("en",)), now=11.0)  # goes away mid-campaign
    assert b.agents["sip:alice@127.0.0.1:5091"].state == "off"
    assert ev == [AgentLoggedOut("sip:alice@127.0.0.1:5091")]
    assert b.free(set()) is None
    b.presence(state("alice", langs=("en",)), now=12.0)              # and comes back
    assert b.free(set()) is not None and len(ev) == 3
    b.removed("alice", now=13.0)                                   # retained state cleared
    assert b.free(set()) is None and ev[-1] == AgentLoggedOut("sip:alice@127.0.0.1:5091")


def test_the_longest_idle_agent_who_fits_the_contact_is_chosen() -> None:
    b, _ = book()
    b.presence(state("en_new", langs=("en",), since=50.0), now=60.0)
    b.presence(state("en_old", langs=("en",), since=10.0), now=60.0)
    b.presence(state("es", langs=("es",), since=1.0), now=60.0)
    b.presence(state("any", since=30.0, skills=("sales", "vip")), now=60.0)
    pick = b.free(set(), AgentWants("en-GB"))
    assert pick is not None and pick.agent_id == "en_old"
    es = b.free(set(), AgentWants("es"))
    assert es is not None and es.agent_id == "es"
    vip = b.free(set(), AgentWants.for_contact({"skills": "vip, sales"}, "fr"))
    assert vip is not None and vip.agent_id == "any"
    assert b.free({"sip:any@127.0.0.1:5091"}, AgentWants("de")) is None


def test_presence_during_our_call_waits_for_its_end() -> None:
    b, ev = book()
    b.presence(state("bob"), now=1.0)
    bob = b.agents["sip:bob@127.0.0.1:5091"]
    bob.state = "busy"  # the engine took him
    ev.clear()
    b.presence(state("bob", "offline"), now=2.0)
    assert bob.state == "busy" and ev == []
    bob.state = "ready"  # the engine frees him after wrap-up: he has logged off meanwhile
    assert b.back_to_ready(bob, now=3.0) is False
    assert bob.state == "off" and ev == [AgentLoggedOut(bob.uri)]


async def test_the_dialer_publishes_its_use_and_ignores_its_own_echo() -> None:
    bus = InMemoryBus(ReferenceRouter(RouterConfig.from_dict({"agents": []}), now=0.0),
                      node_id="dialer-1")
    await bus.start()
    try:
        b, ev = book()
        woken: list[int] = []
        ra = RoutingAgents(bus, b, campaign="c", clock=lambda: 100.0,
                           wake=lambda: woken.append(1))
        await bus.publish_agent_state(state("carol"))
        ra.start()  # the agents known now
        carol = b.agents["sip:carol@127.0.0.1:5091"]
        assert woken == [1]
        woken.clear()
        seen: list[AgentState] = []
        events: list[CallEventMessage] = []
        bus.add_agent_listener(seen.append)
        bus.add_event_listener(events.append)
        carol.state = "busy"
        ra.local_state(carol, "busy", "c-1")
        ra.offer(carol, call_id="c-1", phone="+442079460001", called="+442079460999",
                 fields={"name": "Ann", "customer_id": "42"}, language="en")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        carol.state = "wrap"
        ra.local_state(carol, "wrap", None)
        carol.state = "ready"
        ra.local_state(carol, "ready", None)
        for _ in range(5):
            await asyncio.sleep(0)  # the publications and the offer's decision
        assert [(s.state, s.call_id) for s in seen] == [
            ("busy", "c-1"), ("wrap_up", None), ("available", None)]
        # the reference router gave the offer the agent the dialer had connected
        assert [(d.kind, d.agent_id) for d in ra.offers if d is not None] == [
            ("transfer", "carol")]
        assert [(e.kind, e.call_id) for e in events] == [("ended", "c-1")]
        # our own messages came back through the bus and changed nothing
        assert carol.state == "ready" and len(woken) == 0
        # a change by someone else does
        await bus.publish_agent_state(state("carol", "busy", call_id="inbound-9"))
        assert carol.state == "off" and woken == [1]
        assert ev[-1] == AgentLoggedOut(carol.uri)
        await ra.close()
    finally:
        await bus.close()


def test_the_contact_offer_carries_the_fields() -> None:
    o = contact_offer(node_id="n1", call_id="c-3", phone="+15550001", called="+15550002",
                      fields={"name": "Ann", "customer_id": "7", "tier": "gold", "n": 3},
                      language="es", campaign="parcels", skills=["sales"])
    assert o.collected == {"name": "Ann", "customer_id": "7", "tier": "gold", "n": "3",
                           "phone": "+15550001"}
    assert (o.customer_id, o.customer_tier, o.language, o.skills, o.menu_path) == (
        "7", "gold", "es", ["sales"], ["campaign:parcels"])
