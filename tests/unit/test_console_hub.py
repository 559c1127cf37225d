"""The console's event hub and metrics listener, without I/O."""

from __future__ import annotations

import asyncio

from prometheus_client import generate_latest

from dialtone.http.hub import EventHub
from dialtone.http.metrics import NodeMetrics


def test_a_malformed_event_does_not_break_the_stream() -> None:
    hub = EventHub()
    metrics = NodeMetrics()
    seen: list[str] = []
    hub.add_listener(metrics.observe)
    hub.add_listener(lambda e: seen.append(str(e.get("type"))))
    hub.emit({"type": "call_started", "call_id": "a", "direction": "inbound"})
    hub.emit({"type": "call_ended", "call_id": "a", "cause": "bye",
              "rtp": {"lost": "many", "received": 1}})
    assert hub.listener_errors == 1
    assert seen == ["call_started", "call_ended"]  # the next listener still saw it
    # an end whose start the console never saw does not push the gauge below zero
    hub.emit({"type": "call_ended", "call_id": "zz", "cause": "bye", "rtp": {}})
    text = generate_latest(metrics.registry).decode()
    assert 'dialtone_calls_active{direction="inbound"} 0.0' in text


def test_slow_reader_keeps_the_latest_messages() -> None:
    async def main() -> None:
        hub = EventHub(queue_size=3)
        hub.bind(asyncio.get_running_loop())
        sub = hub.subscribe("campaign:x")
        for i in range(5):
            hub.emit({"type": "figures", "campaign": "x", "n": i})
        hub.emit({"type": "figures", "campaign": "other", "n": 99})
        got = [sub.queue.get_nowait()["n"] for _ in range(sub.queue.qsize())]
        assert got == [2, 3, 4] and sub.dropped == 2
        assert hub.subscribers("campaign:x") == 1
        sub.close()
        assert hub.subscribers("campaign:x") == 0

    asyncio.run(main())
