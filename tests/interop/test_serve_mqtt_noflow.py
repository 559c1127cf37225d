"""``dialtone serve --mqtt`` without a flow still reports to the routing core: a retained
"online" status under dialtone/v1/nodes/ (and "offline" as its last will when the process is
killed), and its call events (answered, ended) for a SIPp call."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from routing.contract import NODES_FILTER, TOPIC_ROOT, CallEventMessage, decode_node_status
from tests.conftest import require_tool
from tests.interop.peers import DialtoneProcess, sipp
from tests.mosquitto_helper import MosquittoBroker

pytestmark = [pytest.mark.interop, pytest.mark.asyncio]




async def test_node_without_flow_publishes_status_and_call_events(
    broker: MosquittoBroker, tmp_path: Path,
) -> None:
    require_tool("sipp", "sip-tester")
    node = DialtoneProcess(tmp_path, extra=["--mqtt", broker.url, "--node-id", "bare-node"])
    try:
        async with asyncio.timeout(30), aiomqtt.Client(
            "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as watcher:
            await watcher.subscribe(NODES_FILTER, qos=1)
            await watcher.subscribe(f"{TOPIC_ROOT}/events/#", qos=1)
            statuses: list[tuple[str, bool]] = []
            call_events: list[CallEventMessage] = []

            async def collect(until: Callable[[], bool]) -> None:
                async for message in watcher.messages:
                    topic = str(message.topic)
                    payload = bytes(message.payload)  # type: ignore[arg-type]
                    if "/nodes/" in topic:
                        statuses.append((decode_node_status(payload).status, message.retain))
                    else:
                        call_events.append(CallEventMessage.model_validate_json(payload))
                    if until():
                        return

            # retained: a subscriber that comes after the node still sees it online
            await asyncio.wait_for(collect(lambda: bool(statuses)), 10)
            assert statuses[0][0] == "online"

            rc, out = await asyncio.to_thread(sipp, tmp_path, node.addr, builtin="uac",
                                              calls=1, duration_ms=500)
            assert rc == 0, out
            await asyncio.wait_for(
                collect(lambda: {e.kind for e in call_events} >= {"answered", "ended"}), 10)
            assert {e.node_id for e in call_events} == {"bare-node"}
            assert len({e.call_id for e in call_events}) == 1

            node.proc.stop(signal.SIGKILL)  # no clean disconnect: the broker sends the will
            await asyncio.wait_for(collect(lambda: statuses[-1][0] == "offline"), 10)
    finally:
        node.stop()
