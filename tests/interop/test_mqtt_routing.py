"""The routing contract through a real Mosquitto that each test starts on a free port."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from routing.bus import wait_event
from routing.cli import add_parsers, collect_agent_states
from routing.contract import (
    NODES_FILTER,
    CallEventMessage,
    HandoffOffer,
    RouteDecision,
    agent_topic,
    decision_topic,
    decode_node_status,
    events_topic,
    node_status_topic,
    offer_topic,
)
from routing.mqtt import MqttRouterService, MqttRoutingBus
from routing.mqtt_link import MqttSettings
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter
from tests.mosquitto_helper import MosquittoBroker, free_port

pytestmark = pytest.mark.interop

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.3, "operation_timeout_s": 3.0}


def config(n_agents: int, languages: list[str] | None = None) -> RouterConfig:
    return RouterConfig.from_dict({
        "timezone": "UTC",
        "queues": {"general": {"skills": ["general"]}},
        "agents": [
            {"agent_id": f"agent{i:03d}", "uri": f"sip:agent{i:03d}@127.0.0.1:{6000 + i}",
             "skills": ["general"], "languages": languages or [], "since": float(i)}
            for i in range(n_agents)
        ],
    })


def offer(call_id: str, node_id: str, **kw: Any) -> HandoffOffer:
    return HandoffOffer(call_id=call_id, node_id=node_id, caller="+15550001",
                        called="+15550002", **kw)


class Running:
    """Starts buses and routers and closes every one of them, whatever happens."""

    def __init__(self) -> None:
        self.items: list[MqttRoutingBus | MqttRouterService] = []

    async def add(self, item: Any) -> Any:
        self.items.append(item)
        await item.start()
        assert await item.wait_connected(5.0), "did not connect to the test broker"
        return item

    async def close(self) -> None:
        for item in reversed(self.items):
            await item.close()


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        await r.close()


async def test_round_trip_carries_mqtt5_response_topic_and_correlation(
    broker: MosquittoBroker, running: Running,
) -> None:
    seen: list[aiomqtt.Message] = []
    async with asyncio.timeout(15), aiomqtt.Client(
        "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as spy:
        await spy.subscribe(offer_topic(), qos=1)
        router = await running.add(MqttRouterService(
            broker.url, ReferenceRouter(config(2), now=time.time()), **FAST))
        node = await running.add(MqttRoutingBus(broker.url, "node-a", **FAST))
        o = offer("call-1", "node-a", intent="support", customer_tier="vip")
        decision = await node.request_route(o, timeout=5.0)
        assert decision is not None and decision.kind == "transfer"
        assert (decision.agent_id, decision.target) == ("agent000", "sip:agent000@127.0.0.1:6000")
        assert decision.offer_id == o.message_id
        async with asyncio.timeout(3):
            async for message in spy.messages:
                seen.append(message)
                break
    props = seen[0].properties
    assert props is not None
    assert props.ResponseTopic == decision_topic("node-a")
    assert bytes(props.CorrelationData) == o.message_id.bytes
    assert 1 <= props.MessageExpiryInterval <= 5
    assert router.router.routed_calls == 1
    # The router's reservation reached the node (the dialer's view of agents).
    assert await _until(lambda: node.agent_states().get("agent000") is not None)
    assert node.agent_states()["agent000"].state == "busy"


async def test_two_nodes_one_router(broker: MosquittoBroker, running: Running) -> None:
    async with asyncio.timeout(20):
        router = await running.add(MqttRouterService(
            broker.url, ReferenceRouter(config(6), now=time.time()), **FAST))
        nodes = [await running.add(MqttRoutingBus(broker.url, n, **FAST))
                 for n in ("node-a", "node-b")]
        calls = [(nodes[i % 2], f"call-{i}") for i in range(8)]
        decisions = await asyncio.gather(*(
            n.request_route(offer(c, n.node_id), timeout=5.0) for n, c in calls))
        assert all(d is not None for d in decisions)
        by_kind = Counter(d.kind for d in decisions if d is not None)
        assert by_kind == {"transfer": 6, "queue": 2}
        agents = [d.agent_id for d in decisions if d is not None and d.kind == "transfer"]
        assert len(set(agents)) == 6, "an agent was given two calls"
        for (node, call_id), d in zip(calls, decisions):
            assert d is not None and d.call_id == call_id  # each node got its own answers
        # A call handled by node-a ends: its agent takes a call queued on either node.
        done = next(c for (n, c), d in zip(calls, decisions)
                    if d is not None and d.kind == "transfer" and n is nodes[0])
        queued = [(n, c) for (n, c), d in zip(calls, decisions) if d and d.kind == "queue"]
        await nodes[0].publish_event(CallEventMessage(kind="ended", call_id=done,
                                                      node_id="node-a", at=time.time()))
        first_q_node, first_q_call = queued[0]
        later = await first_q_node.next_decision(first_q_call, timeout=5.0)
        assert later is not None and later.kind == "transfer"
        assert later.agent_id == next(d.agent_id for (n, c), d in zip(calls, decisions)
                                      if c == done and d is not None)
        assert router.router.routed_calls == 8


async def test_broker_restart_mid_burst_loses_and_duplicates_nothing(
    broker: MosquittoBroker, running: Running, tmp_path: Path,
) -> None:
    n_calls = 40
    db = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    async with asyncio.timeout(40):
        router = await running.add(MqttRouterService(
            broker.url, ReferenceRouter(config(n_calls), now=time.time()),
            db_url=f"sqlite:///{tmp_path / 'router-outbox.sqlite3'}", **FAST))
        cdr = await running.add(MqttRoutingBus(broker.url, "cdr", follow_agents=False,
                                               follow_events=True, **FAST))
        events: list[CallEventMessage] = []
        cdr.add_event_listener(events.append)
        node = await running.add(MqttRoutingBus(broker.url, "node-a", db_url=db, **FAST))

        async def one_call(i: int) -> RouteDecision | None:
            await asyncio.sleep(0.01 * i)  # a burst spread over ~0.4 s
            call_id = f"call-{i}"
            d = await node.request_route(offer(call_id, "node-a"), timeout=15.0)
            await node.publish_event(CallEventMessage(kind="handed_off", call_id=call_id,
                                                      node_id="node-a", at=time.time()))
            return d

        tasks = [asyncio.create_task(one_call(i)) for i in range(n_calls)]
        await asyncio.sleep(0.12)
        await asyncio.to_thread(broker.restart)
        decisions = await asyncio.gather(*tasks)
        assert node.link.connections >= 2 and router.link.connections >= 2, "no restart seen"
        assert all(d is not None for d in decisions), "a call got no decision"
        assert [d.call_id for d in decisions if d] == [f"call-{i}" for i in range(n_calls)]
        assert all(d.kind == "transfer" for d in decisions if d)
        assert len({d.agent_id for d in decisions if d}) == n_calls, "an agent got two calls"
        assert router.router.routed_calls == n_calls, "an offer was routed twice"
        assert await _until(lambda: len(events) >= n_calls, timeout=10.0)
        await asyncio.sleep(0.2)
        ids = Counter(e.call_id for e in events)
        assert ids == Counter({f"call-{i}": 1 for i in range(n_calls)})
        assert node.link.outbox.count() == 0


async def test_broker_gone_for_good_calls_take_fallback_within_timeout(
    broker: MosquittoBroker, running: Running,
) -> None:
    async with asyncio.timeout(15):
        await running.add(MqttRouterService(
            broker.url, ReferenceRouter(config(2), now=time.time()), **FAST))
        node = await running.add(MqttRoutingBus(broker.url, "node-a", **FAST))
        assert await node.request_route(offer("warm", "node-a"), timeout=5.0) is not None
        broker.stop()
        t0 = time.monotonic()
        results = await asyncio.gather(*(
            node.request_route(offer(f"c{i}", "node-a"), timeout=0.5 + 0.1 * i)
            for i in range(5)))
        elapsed = time.monotonic() - t0
        assert results == [None] * 5
        assert 0.9 <= elapsed < 1.5
        # Offers whose calls gave up are not sent when the broker returns.
        assert node.link.outbox.count() == 0


async def test_node_without_any_broker_falls_back(running: Running) -> None:
    node = MqttRoutingBus(f"mqtt://127.0.0.1:{free_port()}", "lonely", **FAST)
    running.items.append(node)
    await node.start()
    t0 = time.monotonic()
    assert await node.request_route(offer("c1", "lonely"), timeout=0.3) is None
    assert time.monotonic() - t0 < 1.0
    assert not node.link.connected.is_set()


async def test_malformed_messages_are_dropped_and_nodes_keep_working(
    broker: MosquittoBroker, running: Running,
) -> None:
    async with asyncio.timeout(15):
        router = await running.add(MqttRouterService(
            broker.url, ReferenceRouter(config(2), now=time.time()), **FAST))
        node = await running.add(MqttRoutingBus(broker.url, "node-a", follow_events=True,
                                                **FAST))
        async with aiomqtt.Client("127.0.0.1", broker.port,
                                  protocol=aiomqtt.ProtocolVersion.V5) as evil:
            for topic in (offer_topic(), decision_topic("node-a"), agent_topic("mallory"),
                          events_topic("node-x")):
                for payload in (b"\xff\x00garbage", b"{}", b'{"schema_version":"v9"}',
                                b"[1,2,3]", b'{"call_id":' + b"1" * 5000 + b"}"):
                    await evil.publish(topic, payload, qos=1)
            # A decision that names an offer nobody made: dropped, not a crash.
            stray = RouteDecision(call_id="nope", offer_id=offer("x", "n").message_id,
                                  kind="reject", reason="x")
            await evil.publish(decision_topic("node-a"), stray.encode(), qos=1)
        assert await _until(lambda: router.link.dropped_malformed >= 15
                            and node.link.dropped_malformed >= 15)
        assert node._inbox.dropped >= 1
        assert router.link.connected.is_set() and node.link.connected.is_set()
        d = await node.request_route(offer("after", "node-a"), timeout=5.0)
        assert d is not None and d.kind == "transfer"
        await evil_agents_clear(broker)


async def evil_agents_clear(broker: MosquittoBroker) -> None:
    # Retained garbage would outlive the test broker's run otherwise (persistence).
    async with aiomqtt.Client("127.0.0.1", broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.publish(agent_topic("mallory"), b"", qos=1, retain=True)


async def test_node_liveness_online_and_last_will(
    broker: MosquittoBroker, running: Running,
) -> None:
    statuses: list[tuple[str, str]] = []
    async with asyncio.timeout(15), aiomqtt.Client(
        "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as watcher:
        await watcher.subscribe(NODES_FILTER, qos=1)
        node = await running.add(MqttRoutingBus(broker.url, "node-a", **FAST))

        async def collect(n: int) -> None:
            async for message in watcher.messages:
                status = decode_node_status(message.payload)  # type: ignore[arg-type]
                statuses.append((status.node_id, status.status))
                if len(statuses) >= n:
                    return

        await asyncio.wait_for(collect(1), 5)
        assert statuses == [("node-a", "online")]
        # Kill the TCP connection without DISCONNECT, as a crash would: the broker sends
        # the will ("offline"), then the link reconnects and says "online" again.
        paho = node.link._client._client  # type: ignore[union-attr]
        paho.socket().shutdown(2)
        await asyncio.wait_for(collect(3), 10)
        assert statuses == [("node-a", "online"), ("node-a", "offline"), ("node-a", "online")]
        await node.close()
        await asyncio.wait_for(collect(4), 5)
        assert statuses[-1] == ("node-a", "offline")
    assert node_status_topic("node-a") == "dialtone/v1/nodes/node-a/status"


async def test_shared_subscription_spreads_offers_over_routers(
    broker: MosquittoBroker, running: Running,
) -> None:
    async with asyncio.timeout(20):
        routers = [await running.add(MqttRouterService(
            broker.url, ReferenceRouter(config(0), now=time.time(), router_id=f"r{i}"),
            router_id=f"r{i}", **FAST)) for i in range(2)]
        node = await running.add(MqttRoutingBus(broker.url, "node-a", **FAST))
        decisions = await asyncio.gather(*(
            node.request_route(offer(f"c{i}", "node-a"), timeout=5.0) for i in range(20)))
        assert all(d is not None and d.kind == "queue" for d in decisions)
        per_router = Counter(d.router_id for d in decisions if d)
        assert set(per_router) == {"r0", "r1"}, per_router
        assert sum(r.offers_received for r in routers) == 20


async def test_cli_agent_set_reaches_router_and_dialer(
    broker: MosquittoBroker, running: Running,
) -> None:
    parser = argparse.ArgumentParser(prog="dialtone")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    async with asyncio.timeout(20):
        router = await running.add(MqttRouterService(
            broker.url, ReferenceRouter(config(0), now=time.time()), **FAST))
        dialer = await running.add(MqttRoutingBus(broker.url, "dialer-1", **FAST))
        args = parser.parse_args([
            "agent", "set", "zoe", "--state", "available", "--skills", "general,billing",
            "--languages", "en,es", "--uri", "sip:zoe@127.0.0.1:5099", "--mqtt", broker.url])
        assert await asyncio.to_thread(args.func, args) == 0
        assert await _until(lambda: "zoe" in dialer.agent_states())
        assert dialer.agent_states()["zoe"].languages == ["en", "es"]
        assert await _until(lambda: "zoe" in router.router.agents())
        d = await dialer.request_route(offer("c1", "dialer-1", language="es"), timeout=5.0)
        assert d is not None and (d.kind, d.target) == ("transfer", "sip:zoe@127.0.0.1:5099")
        states = await collect_agent_states(
            MqttSettings.from_url(broker.url, client_id="t"), 0.3)
        assert states["zoe"].state == "busy"  # the router's reservation, retained
        bad = parser.parse_args(["agent", "set", "zoe", "--state", "available",
                                 "--uri", "http://no", "--mqtt", broker.url])
        assert await asyncio.to_thread(bad.func, bad) == 2


async def _until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


def test_wait_event_helper_is_used() -> None:
    assert asyncio.run(wait_event(asyncio.Event(), 0.01)) is False


ROUTER_MAIN = (
    "import argparse, sys\n"
    "from routing.cli import add_parsers\n"
    "p = argparse.ArgumentParser(prog='dialtone')\n"
    "add_parsers(p.add_subparsers(dest='command', required=True))\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "sys.exit(a.func(a))\n"
)


async def test_router_runs_as_its_own_process(
    broker: MosquittoBroker, running: Running, tmp_path: Path,
) -> None:
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    log_path = tmp_path / "router.log"
    with log_path.open("wb") as log:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-c", ROUTER_MAIN, "router", "--mqtt", broker.url,
             "--router-id", "proc-router", "--announce-agents"],
            cwd=repo, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
    try:
        async with asyncio.timeout(20):
            node = await running.add(MqttRoutingBus(broker.url, "node-a", **FAST))
            assert await _until(lambda: "alice" in node.agent_states(), timeout=10.0)
            d = await node.request_route(offer("c1", "node-a", intent="billing"), timeout=5.0)
            # routing/examples/router.yaml: billing has hours; either way a real decision.
            assert d is not None and d.router_id == "proc-router"
            assert d.kind in ("transfer", "callback")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 5)
            raise
    assert rc == 0, log_path.read_text(errors="replace")
    states = []
    async with asyncio.timeout(5), aiomqtt.Client(
        "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as c:
        await c.subscribe(node_status_topic("proc-router"), qos=1)
        async for message in c.messages:
            states.append(decode_node_status(message.payload).status)  # type: ignore[arg-type]
            break
    assert states == ["offline"]
