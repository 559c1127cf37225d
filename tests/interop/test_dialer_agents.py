"""Agent campaigns with the routing core's agents (a real Mosquitto) and with REFER: the
dialer dials only the available agent who fits the contact, publishes its use on the
contract, and offers the contact's fields to the router; a ``connect: refer`` campaign
REFERs the called party (a Dialtone UA that honours REFER under its transfer policy) to
the agent, who receives the call from the called party, not from the dialer."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from dialer.engine import CampaignConfigError, CampaignEngine, EngineConfig
from dialer.run_cli import run_campaign
from dialtone.config import load_config
from dialtone.node import Node
from routing.contract import AgentState, HandoffOffer, RouteDecision
from routing.mqtt import MqttRouterService
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter
from telephony.aio.useragent import UserAgent
from telephony.sip.transfer_policy import TransferPolicy
from tests.interop.dialer_peers import Agents, Population
from tests.interop.test_dialer_engine import BASE, _sounds, make_store, until, world
from tests.mosquitto_helper import MosquittoBroker

pytestmark = [pytest.mark.interop]

__all__ = ["_sounds", "world"]  # fixtures, used by name

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.3, "operation_timeout_s": 3.0}
CALLER_ID = "+442079460999"

World = tuple[Population, Agents, UserAgent, int, int]


def presence(agent_id: str, uri: str, state: str = "available", **kw: object) -> AgentState:
    return AgentState.model_validate({"agent_id": agent_id, "state": state, "uri": uri,
                                      "skills": ["sales"], **kw})


async def test_the_node_dials_agents_from_the_routing_core_over_mqtt(
        world: World, broker: MosquittoBroker, tmp_path: Path) -> None:
    _pop, agents, _dialer, pport, aport = world
    router = MqttRouterService(broker.url, ReferenceRouter(RouterConfig.from_dict(
        {"timezone": "UTC", "queues": {"general": {"skills": []}}, "agents": []}),
        now=time.time()), **FAST)
    offers: list[HandoffOffer] = []  # what the routing core received (a desktop's view)
    route = router.router.route

    def spy(offer: HandoffOffer, *, now: float) -> RouteDecision:
        offers.append(offer)
        return route(offer, now=now)

    router.router.route = spy  # type: ignore[method-assign]
    await router.start()
    try:
        assert await router.wait_connected(5.0)
        uri = {a: f"sip:{a}@127.0.0.1:{aport}" for a in ("agent1", "agent2", "agent3")}
        # available and fit; away; available but speaks only French; no campaign skill
        await router.publish_agent_state(presence("ann", uri["agent1"], languages=["en"],
                                                  since=time.time() - 60))
        await router.publish_agent_state(presence("bea", uri["agent2"], "offline"))
        await router.publish_agent_state(presence("fra", uri["agent3"], languages=["fr"],
                                                  since=time.time() - 600))
        await router.publish_agent_state(AgentState(
            agent_id="ops", state="available", uri=uri["agent3"], skills=["ops"]))
        store = make_store(tmp_path, "routed", [], {"from": "routing", "skills": ["sales"]})
        csv = tmp_path / "fields.csv"
        csv.write_text(f"phone,name,customer_id\n{BASE}01,Ann Smith,C-42\n")
        store.import_contacts("routed", csv, now=0.0)
        # ``dialtone serve --trunk ... --mqtt URL``: the node's dialer on the node's bus
        config = load_config(env={}, flags={
            "sip.listen": "127.0.0.1:0", "sip.tcp": False, "media.rtp_ports": "47000-48000",
            "db": f"sqlite:///{tmp_path / 'd.db'}", "dialer.trunk": f"sip:127.0.0.1:{pport}",
            "routing.mqtt": broker.url, "node_id": "edge-1"})
        async with Node.running(config) as node:
            assert node.dialer is not None
            node.dialer.poll_s = 0.1
            store.set_status("routed", "running")
            await until(lambda: any(c["disposition"] != "pending"
                                    for c in store.contact_report("routed")), 20.0)
            engine = node.dialer.engines["routed"]
            assert engine.routing_agents is not None
            # the router saw ann busy on the call, so the offer was answered with her
            await until(lambda: len(engine.routing_agents.offers) == 1, 5.0)  # type: ignore[union-attr]
            (decision,) = engine.routing_agents.offers
            # ann was claimed at the routing core before her leg was dialled
            assert engine.routing_agents.claims["granted"] == 1  # type: ignore[union-attr]
            assert router.router.claims_granted == 1
            # and released when the call ended
            await until(lambda: router.router.agents()["ann"].state == "available", 5.0)
            # the pacer's staffing: ann and fra (in the campaign, though no contact of hers)
            assert engine.pacer.state.logged_in == 2
            # ann goes away: the pacer sees it at once
            await router.publish_agent_state(presence("ann", uri["agent1"], "offline"))
            await until(lambda: engine.pacer.state.logged_in == 1, 5.0)
            assert engine.agents[uri["agent1"]].state == "off"
        (contact,) = store.contact_report("routed")
        assert (contact["disposition"], contact["agent"]) == ("connected", uri["agent1"])
        assert dict(agents.answered) == {"agent1": 1}
        assert agents.invites["agent2"] == 0 and agents.invites["agent3"] == 0
        assert decision is not None
        assert (decision.kind, decision.agent_id, decision.target) == (
            "transfer", "ann", uri["agent1"])
        assert router.router.agents()["bea"].state == "offline"
        # the contact's fields reached the routing core with the call the agent is on
        assert {o.message_id for o in offers} == {offers[0].message_id}  # re-sends at most
        o = offers[0]
        assert o.collected == {"name": "Ann Smith", "customer_id": "C-42", "phone": BASE + "01"}
        assert (o.customer_id, o.caller, o.called, o.node_id, o.language) == (
            "C-42", BASE + "01", CALLER_ID, "edge-1", "en")
        assert o.call_id.startswith("routed-") and o.menu_path == ["campaign:routed"]
    finally:
        await router.close()


async def test_connect_by_refer_the_called_party_calls_the_agent(
        world: World, tmp_path: Path) -> None:
    pop, agents, dialer, pport, aport = world
    assert pop.ua is not None
    # The called party honours REFER to targets on loopback (its transfer policy).
    policy = TransferPolicy.from_patterns(["sip:127.0.0.1"], inbound_refer=True)
    pop.ua.config = dataclasses.replace(pop.ua.config, transfer_policy=policy)
    store = make_store(tmp_path, "refer", [BASE + "01"], [f"sip:agent1@127.0.0.1:{aport}"],
                       connect="refer")
    engine = CampaignEngine(store, "refer", dialer,
                            EngineConfig(trunk=f"sip:127.0.0.1:{pport}"))
    await asyncio.wait_for(engine.run(until_done=True), 20.0)
    (contact,) = store.contact_report("refer")
    assert (contact["disposition"], contact["agent"]) == (
        "connected", f"sip:agent1@127.0.0.1:{aport}")
    assert contact["wait_s"] is not None and contact["wait_s"] < 2.0
    await until(lambda: agents.answered["agent1"] == 1, 5.0)
    # the agent's INVITE came from the called party's UA, not from the dialer's caller ID
    assert CALLER_ID not in agents.from_["agent1"]
    assert engine.stats.connected == 1 and engine.stats.abandoned == 0


async def test_a_refer_the_agent_answers_after_the_2_s_is_connected_with_its_real_wait(
        world: World, tmp_path: Path) -> None:
    pop, agents, dialer, pport, aport = world
    assert pop.ua is not None
    policy = TransferPolicy.from_patterns(["sip:127.0.0.1"], inbound_refer=True)
    pop.ua.config = dataclasses.replace(pop.ua.config, transfer_policy=policy)
    slow = f"sip:slow1@127.0.0.1:{aport}"  # rings 2.3 s: the REFER is pending at the 2 s
    store = make_store(tmp_path, "late", [BASE + "01"], [slow], connect="refer")
    calls: list[dict[str, Any]] = []

    class Sink:
        def emit(self, event: dict[str, Any]) -> None:
            if event.get("type") == "campaign_call":
                calls.append(event)

    engine = CampaignEngine(store, "late", dialer, EngineConfig(trunk=f"sip:127.0.0.1:{pport}"),
                            events=Sink())
    await asyncio.wait_for(engine.run(until_done=True), 20.0)
    (contact,) = store.contact_report("late")
    # the person talks to the agent: connected, with the wait they had (over the 2 s)
    assert (contact["disposition"], contact["agent"]) == ("connected", slow)
    assert contact["wait_s"] is not None and contact["wait_s"] > 2.0
    (event,) = calls  # what the CDR row takes its outcome from
    assert (event["disposition"], event["agent"], event["wait_s"]) == (
        "connected", slow, contact["wait_s"])
    assert event["greeting_to_bridge_s"] > 2.0
    assert agents.answered["slow1"] == 1
    # no safe-harbour message, not counted abandoned anywhere
    assert (engine.stats.connected, engine.stats.connected_late, engine.stats.abandoned) == (
        1, 1, 0)
    ab = store.abandonment("late", now=time.time())
    assert (ab.live, ab.abandoned) == (1, 0)


async def test_campaign_run_takes_mqtt_and_refuses_a_routing_campaign_without_it(
        broker: MosquittoBroker, tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text(f"phone\n{BASE}01\n")
    camp = tmp_path / "routed.yaml"
    camp.write_text(f'name: routed\nlist: l.csv\ncaller_id: "{CALLER_ID}"\nwindow: always\n'
                    "agents: {from: routing, skills: [sales]}\n")
    db = f"sqlite:///{tmp_path / 'd.db'}"
    with pytest.raises(CampaignConfigError, match=r"needs a routing bus \(--mqtt\)"):
        await run_campaign(camp, trunk="sip:127.0.0.1:9", db=db, rtp_ports=(45000, 47000))
    # with --mqtt it follows the routing core; nobody is available: nothing is dialled
    report = await run_campaign(camp, trunk="sip:127.0.0.1:9", db=db, mqtt=broker.url,
                                until_done=False, max_seconds=0.3, rtp_ports=(45000, 47000))
    assert report["summary"]["run"]["placed"] == 0
    assert [c["disposition"] for c in report["contacts"]] == ["pending"]
