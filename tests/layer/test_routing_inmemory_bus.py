"""InMemoryBus: the same contract in-process (the embedded default of ``make run``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from routing.bus import InMemoryBus
from routing.contract import AgentState, CallEventMessage, HandoffOffer
from routing.errors import RoutingError
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


CONFIG = {
    "timezone": "UTC",
    "queues": {"general": {"skills": ["general"], "max_wait_s": 0.2}},
    "agents": [{"agent_id": "alice", "uri": "sip:alice@127.0.0.1:5091", "skills": ["general"]}],
}


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    router = ReferenceRouter(RouterConfig.from_dict(CONFIG), now=1000.0)
    b = InMemoryBus(router, node_id="node-a")
    await b.start()
    try:
        yield b
    finally:
        await b.close()


def offer(call_id: str) -> HandoffOffer:
    return HandoffOffer(call_id=call_id, node_id="node-a", caller="+1", called="+2")


async def test_transfer_then_queue_then_transfer_when_agent_frees(bus: InMemoryBus) -> None:
    seen: list[AgentState] = []
    bus.add_agent_listener(seen.append)
    first = await bus.request_route(offer("c1"), timeout=1.0)
    assert first is not None and (first.kind, first.agent_id) == ("transfer", "alice")
    assert bus.agent_states()["alice"].state == "busy"
    queued = await bus.request_route(offer("c2"), timeout=1.0)
    assert queued is not None and (queued.kind, queued.position) == ("queue", 1)
    assert await bus.next_decision("c2", timeout=0.01) is None  # still waiting, not an error
    await bus.publish_event(CallEventMessage(kind="ended", call_id="c1", node_id="node-a", at=1.0))
    later = await bus.next_decision("c2", timeout=1.0)
    assert later is not None and (later.kind, later.agent_id) == ("transfer", "alice")
    assert later.offer_id == queued.offer_id
    assert [(s.state, s.call_id) for s in seen] == [("busy", "c1"), ("available", None),
                                                    ("busy", "c2")]
    with pytest.raises(RoutingError):
        await bus.next_decision("c2", timeout=0.01)  # final decision consumed


async def test_queued_call_gets_callback_from_the_timer(bus: InMemoryBus) -> None:
    await bus.request_route(offer("c1"), timeout=1.0)
    queued = await bus.request_route(offer("c2"), timeout=1.0)
    assert queued is not None and queued.kind == "queue"
    later = await asyncio.wait_for(bus.next_decision("c2", timeout=2.0), timeout=3.0)
    assert later is not None and (later.kind, later.reason) == ("callback", "max wait")


async def test_agent_presence_and_events_reach_listeners(bus: InMemoryBus) -> None:
    events: list[CallEventMessage] = []
    unsubscribe = bus.add_event_listener(events.append)
    await bus.publish_agent_state(AgentState(agent_id="bob", state="available",
                                             uri="sip:bob@127.0.0.1:5092", skills=["general"]))
    assert set(bus.agent_states()) == {"alice", "bob"}
    ev = CallEventMessage(kind="answered", call_id="c9", node_id="node-a", at=1.0)
    await bus.publish_event(ev)
    unsubscribe()
    await bus.publish_event(CallEventMessage(kind="ended", call_id="c9", node_id="node-a", at=2.0))
    assert events == [ev]


async def test_offer_from_another_node_is_refused(bus: InMemoryBus) -> None:
    with pytest.raises(RoutingError):
        await bus.request_route(HandoffOffer(call_id="c", node_id="node-b", caller="1",
                                             called="2"), timeout=1.0)


async def test_fake_clock_drives_time_of_day() -> None:
    clock = FakeClock(1000.0)
    router = ReferenceRouter(RouterConfig.from_dict(
        CONFIG | {"queues": {"general": {"skills": ["general"],
                                         "hours": [{"from": "09:00", "to": "17:00"}]}}}),
        now=clock())
    b = InMemoryBus(router, node_id="n", clock=clock)
    await b.start()
    try:
        d = await b.request_route(HandoffOffer(call_id="c", node_id="n", caller="1", called="2"),
                                  timeout=1.0)  # 1000 s after the epoch: 00:16 UTC, closed
        assert d is not None and (d.kind, d.reason) == ("reject", "closed")
    finally:
        await b.close()


async def test_open_bus_embedded_default_and_for_agents() -> None:
    from routing.factory import open_bus
    from routing.mqtt import MqttRoutingBus

    embedded = open_bus(None, node_id="node-a")
    assert isinstance(embedded, InMemoryBus)
    assert "alice" in embedded.agent_states()  # routing/examples/router.yaml
    bus = open_bus(None, node_id="node-a", router_config=RouterConfig.for_agents(
        {"sipp": "sip:agent@127.0.0.1:5070"}))
    await bus.start()
    try:
        d = await bus.request_route(offer("c1"), timeout=1.0)
        assert d is not None and (d.kind, d.target) == ("transfer", "sip:agent@127.0.0.1:5070")
    finally:
        await bus.close()
    assert isinstance(open_bus("mqtt://127.0.0.1:1", node_id="node-a"), MqttRoutingBus)
