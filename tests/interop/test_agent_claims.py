"""Two dialers, one routing core, a real Mosquitto: an agent is granted to one dialer only,
however close together their claims are (dialer/agents.py, routing/router_core.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from dialer.agents import AgentBook, AgentsSpec, DialerAgent, RoutingAgents
from routing.mqtt import MqttRouterService, MqttRoutingBus
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter
from tests.mosquitto_helper import MosquittoBroker

pytestmark = pytest.mark.interop

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.3, "operation_timeout_s": 3.0}
N = 6


async def _until(ok: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ok():
            return True
        await asyncio.sleep(0.01)
    return ok()


async def test_two_dialers_claiming_the_same_agents_get_each_one_once(
        broker: MosquittoBroker) -> None:
    config = RouterConfig.from_dict({"agents": [
        {"agent_id": f"ag{i}", "uri": f"sip:ag{i}@127.0.0.1:{6100 + i}", "skills": ["sales"],
         "since": float(i)} for i in range(N)]})
    router = MqttRouterService(broker.url, ReferenceRouter(config, now=time.time()), **FAST)
    buses = [MqttRoutingBus(broker.url, f"dialer-{x}", **FAST) for x in "ab"]
    cores: list[tuple[AgentBook, RoutingAgents]] = []
    try:
        async with asyncio.timeout(15):
            await router.start()
            assert await router.wait_connected(5.0)
            for agent in config.agents:  # the agents log in (retained presence)
                await router.publish_agent_state(agent)
            for bus in buses:
                await bus.start()
                assert await bus.wait_connected(5.0)
                b = AgentBook(AgentsSpec("routing"), lambda _e: None)
                ra = RoutingAgents(bus, b, campaign=bus.node_id, clock=time.time,
                                   wake=lambda: None, claim_timeout_s=1.0)
                ra.start()
                cores.append((b, ra))
            assert await _until(lambda: all(
                len(b.agents) == N and ra.claims_in_use() for b, ra in cores))

            async def take(core: tuple[AgentBook, RoutingAgents], i: int
                           ) -> tuple[DialerAgent, bool]:
                b, ra = core
                agent = b.agents[f"sip:ag{i}@127.0.0.1:{6100 + i}"]
                agent.state = "reserved"  # each dialer reserved her locally, same instant
                ra.local_state(agent, "reserved", f"{ra.campaign}-{i}")
                return agent, await ra.claim(agent, f"{ra.campaign}-{i}")

            results = await asyncio.gather(*(take(core, i) for i in range(N) for core in cores))
            for i in range(N):
                pair = results[2 * i: 2 * i + 2]
                assert sorted(ok for _, ok in pair) == [False, True], f"ag{i}: {pair}"
            assert router.router.claims_granted == N and router.router.claims_refused == N
            # every loser heard who has the agent: out of its pool, dialling nobody
            assert await _until(lambda: all(
                agent.state == ("reserved" if ok else "off") for agent, ok in results))
            waits = sorted(w for _, ra in cores for w in ra.claim_wait_s)
            assert len(waits) == 2 * N and waits[-1] < 1.0
            # the winners release their agents: both dialers see them ready again
            for agent, ok in results:
                if ok:
                    agent.state = "ready"
                    owner = next(ra for b, ra in cores if agent in b.agents.values())
                    owner.local_state(agent, "ready", None)
            assert await _until(lambda: all(a.state == "ready" for a, _ in results))
            assert all(s.state == "available" for s in router.router.agents().values())
    finally:
        for _, ra in cores:
            await ra.close()
        for bus in buses:
            await bus.close()
        await router.close()
