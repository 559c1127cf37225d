"""Hand-off figures: round trip p50/p99 through Mosquitto on loopback, and router throughput.

    .venv/bin/python benchmarks/bench_routing.py [--calls 400] [--burst 3000]

Starts its own Mosquitto on a free 127.0.0.1 port (never the machine's 1883).
Round trip = ``request_route`` until the decision is in hand: offer encoded, put in
the outbox, published at QoS 1, routed, decision published back, decoded.  Each
call then publishes an "ended" event, which frees the agent, as in real traffic.
Throughput runs the router in its own process and loads it from two nodes with
many hand-offs in flight; it also reports the router's CPU time per hand-off.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hostinfo import machine

from routing.bus import InMemoryBus, RoutingBus
from routing.contract import CallEventMessage, HandoffOffer
from routing.mqtt import MqttRouterService, MqttRoutingBus
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter
from tests.mosquitto_helper import MosquittoBroker

RESULTS = REPO / "benchmarks" / "results" / "routing.md"


def router_config(n_agents: int = 200) -> RouterConfig:
    return RouterConfig.from_dict({
        "timezone": "Europe/Madrid",
        "intents": {"billing": "billing"},
        "queues": {"general": {"skills": ["general"]},
                   "billing": {"skills": ["billing"]}},
        "agents": [
            {"agent_id": f"a{i:04d}", "uri": f"sip:a{i:04d}@127.0.0.1:{7000 + i}",
             "skills": ["general", "billing"] if i % 2 else ["general"],
             "languages": ["en", "es"] if i % 3 else ["en"], "since": float(i)}
            for i in range(n_agents)
        ],
    })


def make_offer(node: str, i: int, prefix: str = "") -> HandoffOffer:
    return HandoffOffer(
        call_id=f"{prefix}{node}-call-{i}", node_id=node,
        caller="+34911234567", called="+34900100200",
        language="es" if i % 4 == 0 else "en", intent="billing" if i % 2 else "support",
        menu_path=["welcome", "main"], collected={"account": f"{i:08d}"},
        customer_tier="vip" if i % 10 == 0 else "standard", ivr_seconds=30.0,
    )


async def one_handoff(bus: RoutingBus, offer: HandoffOffer) -> float:
    t0 = time.perf_counter()
    decision = await bus.request_route(offer, timeout=10.0)
    elapsed = time.perf_counter() - t0
    if decision is None:
        raise RuntimeError(f"no decision for {offer.call_id}")
    await bus.publish_event(CallEventMessage(kind="ended", call_id=offer.call_id,
                                             node_id=offer.node_id, at=time.time()))
    return elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def round_trips(url: str | None, calls: int, db_url: str | None) -> list[float]:
    router = ReferenceRouter(router_config(), now=time.time())
    service: MqttRouterService | None = None
    bus: RoutingBus
    if url is None:
        bus = InMemoryBus(router, node_id="bench")
    else:
        service = MqttRouterService(url, router)
        await service.start()
        bus = MqttRoutingBus(url, "bench", db_url=db_url, follow_agents=False)
    await bus.start()
    try:
        if isinstance(bus, MqttRoutingBus):
            assert service is not None and await service.wait_connected(5)
            assert await bus.wait_connected(5)
        for i in range(30):  # warm-up
            await one_handoff(bus, make_offer("bench", i, "warm-"))
        return [await one_handoff(bus, make_offer("bench", i)) for i in range(calls)]
    finally:
        await bus.close()
        if service is not None:
            await service.close()


def _router_process(url: str, ready: Any) -> None:
    async def main() -> None:
        service = MqttRouterService(url, ReferenceRouter(router_config(), now=time.time()))
        await service.start()
        await service.wait_connected(5)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(url: str, total: int, in_flight: int, pid: int) -> dict[str, float]:
    nodes = [MqttRoutingBus(url, f"load{i}", follow_agents=False) for i in range(2)]
    for n in nodes:
        await n.start()
        assert await n.wait_connected(5)
    try:
        sem = asyncio.Semaphore(in_flight)

        async def run(node: MqttRoutingBus, i: int) -> float:
            async with sem:
                return await one_handoff(node, make_offer(node.node_id, i))

        for i in range(50):  # warm-up
            await one_handoff(nodes[i % 2], make_offer(nodes[i % 2].node_id, i, "warm-"))
        cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
        latencies = await asyncio.gather(*(run(nodes[i % 2], i) for i in range(total)))
        wall, cpu = time.perf_counter() - t0, _cpu_seconds(pid) - cpu0
        return {"rate": total / wall, "wall": wall, "router_cpu_ms": 1000 * cpu / total,
                "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99)}
    finally:
        for n in nodes:
            await n.close()




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=400, help="sequential hand-offs per setup")
    ap.add_argument("--burst", type=int, default=3000, help="hand-offs in the throughput run")
    ap.add_argument("--in-flight", type=int, default=64)
    args = ap.parse_args()

    rows: list[tuple[str, float, float]] = []
    with MosquittoBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        setups: list[tuple[str, str | None, str | None]] = [
            ("in-memory bus (embedded default)", None, None),
            ("MQTT, outbox in memory", broker.url, None),
            ("MQTT, outbox in SQLite file (WAL)", broker.url, f"sqlite:///{tmp}/outbox.db"),
        ]
        for label, url, db in setups:
            lat = asyncio.run(round_trips(url, args.calls, db))
            rows.append((label, statistics.median(lat) * 1000, pct(lat, 0.99) * 1000))
            print(f"{label:40} p50 {rows[-1][1]:7.3f} ms  p99 {rows[-1][2]:7.3f} ms")
        with MosquittoBroker(tcp_nodelay=False) as nagle:
            # Mosquitto's default: small replies wait for the delayed ACK (fewer calls: slow).
            label = "MQTT, Mosquitto default (set_tcp_nodelay false)"
            lat = asyncio.run(round_trips(nagle.url, min(args.calls, 100), None))
            rows.append((label, statistics.median(lat) * 1000, pct(lat, 0.99) * 1000))
            print(f"{label:40} p50 {rows[-1][1]:7.3f} ms  p99 {rows[-1][2]:7.3f} ms")

        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        proc = ctx.Process(target=_router_process, args=(broker.url, ready), daemon=True)
        proc.start()
        try:
            if not ready.wait(20):
                raise RuntimeError("router process did not start")
            assert proc.pid is not None
            tp = asyncio.run(throughput(broker.url, args.burst, args.in_flight, proc.pid))
        finally:
            proc.terminate()
            proc.join(5)
    print(f"throughput: {tp['rate']:.0f} hand-offs/s ({args.burst} in {tp['wall']:.2f} s, "
          f"{args.in_flight} in flight), router CPU {tp['router_cpu_ms']:.3f} ms/hand-off, "
          f"latency under load p50 {tp['p50'] * 1000:.1f} ms p99 {tp['p99'] * 1000:.1f} ms")

    mqtt_p50 = rows[1][1]
    command = (f"`.venv/bin/python benchmarks/bench_routing.py --calls {args.calls} "
               f"--burst {args.burst} --in-flight {args.in_flight}`")
    setting = (f"Machine: {machine()}; Mosquitto {_mosquitto_version()} on 127.0.0.1 "
               "(`set_tcp_nodelay true`), started by the script; router, broker and load "
               "generator share the cores.")
    lines = [
        "## Routing hand-off (routing/)",
        "",
        f"Command: {command}  ",
        setting,
        "",
        ("Round trip of one hand-off (`request_route` until the decision is in hand), "
         f"{args.calls} sequential calls (100 for the last row) after 30 warm-up, each "
         "followed by an `ended` event:"),
        "",
        "| setup | p50 (ms) | p99 (ms) | p50 vs MQTT in-memory outbox |",
        "|---|---:|---:|---:|",
    ]
    for label, p50, p99 in rows:
        lines.append(f"| {label} | {p50:.3f} | {p99:.3f} | {p50 / mqtt_p50:.2f}x |")
    capacity = 1000 / tp["router_cpu_ms"]
    lines += [
        "",
        (f"One router (its own process) under load from two nodes, {args.burst} hand-offs, "
         f"{args.in_flight} in flight: **{tp['rate']:.0f} hand-offs/s** sustained "
         f"(plus one `ended` event each); router CPU {tp['router_cpu_ms']:.3f} ms per "
         f"hand-off (about {capacity:.0f}/s per core if the router had one to itself); "
         f"latency under that load p50 {tp['p50'] * 1000:.1f} ms, "
         f"p99 {tp['p99'] * 1000:.1f} ms."),
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(REPO)}")


def _mosquitto_version() -> str:
    from tests.mosquitto_helper import MOSQUITTO

    out = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else ""
    return first.replace("mosquitto version ", "") or "?"


if __name__ == "__main__":
    main()
