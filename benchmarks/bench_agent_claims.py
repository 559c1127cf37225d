"""Agent claims: what asking the routing core before dialling an agent costs (issue 14).

    .venv/bin/python benchmarks/bench_agent_claims.py [--rounds 300] [--runs 5]

Starts its own Mosquitto on a free 127.0.0.1 port.  The reference router runs in its own
process pinned to CPU 1 (``MqttRouterService``); two dialers' agent cores
(``RoutingAgents`` on their own ``MqttRoutingBus``) run in this process, pinned to CPU 0.
Each round both dialers reserve the same agent in the same instant and claim her at once:
one grant, one refusal; the winner then releases her (``available``).  Reported per run:
claim round trip (claim made -> reply in hand: encode, outbox, QoS 1 publish, the router's
decision and its ``busy`` publication, the reply, decode) p50 / p99 / max for grants and
refusals, the dialers' CPU per claim (both cores, this process) and the router's CPU per
claim; then the medians over runs.  Results: ``benchmarks/results/agent_claims.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hostinfo import machine

from dialer.agents import AgentBook, AgentsSpec, RoutingAgents
from routing.mqtt import MqttRouterService, MqttRoutingBus
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter
from tests.mosquitto_helper import MosquittoBroker

RESULTS = REPO / "benchmarks" / "results" / "agent_claims.md"
N_AGENTS = 50


def config() -> RouterConfig:
    return RouterConfig.from_dict({"agents": [
        {"agent_id": f"ag{i}", "uri": f"sip:ag{i}@127.0.0.1:{7000 + i}", "skills": ["sales"],
         "since": float(i)} for i in range(N_AGENTS)]})


def _router_process(url: str, ready: Any) -> None:
    os.sched_setaffinity(0, {1})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s router %(name)s %(message)s")

    async def main() -> None:
        service = MqttRouterService(url, ReferenceRouter(config(), now=time.time()))
        await service.start()
        await service.wait_connected(5)
        for agent in config().agents:
            await service.publish_agent_state(agent)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_run(url: str, rounds: int, router_pid: int) -> dict[str, float]:
    buses = [MqttRoutingBus(url, f"dialer-{x}") for x in "ab"]
    cores: list[RoutingAgents] = []
    try:
        for bus in buses:
            await bus.start()
            assert await bus.wait_connected(5)
            book = AgentBook(AgentsSpec("routing"), lambda _e: None)
            ra = RoutingAgents(bus, book, campaign=bus.node_id, clock=time.time,
                               wake=lambda: None, claim_timeout_s=2.0)
            ra.start()
            cores.append(ra)
        end = time.monotonic() + 10
        while not all(len(ra.book.agents) == N_AGENTS and ra.claims_in_use() for ra in cores):
            if time.monotonic() > end:
                raise RuntimeError("the dialers did not see the agents and the router")
            await asyncio.sleep(0.01)
        grants: list[float] = []
        fallbacks = 0
        refusals: list[float] = []
        cpu0, rcpu0 = time.process_time(), _cpu_seconds(router_pid)
        for r in range(-20, rounds):  # 20 rounds of warm-up
            uri = f"sip:ag{r % N_AGENTS}@127.0.0.1:{7000 + r % N_AGENTS}"
            agents = [ra.book.agents[uri] for ra in cores]
            while not all(a.state == "ready" for a in agents):
                await asyncio.sleep(0.001)  # the last release has not reached both yet
            for ra, a in zip(cores, agents):
                a.state = "reserved"
                ra.local_state(a, "reserved", f"{ra.campaign}-{r}")

            async def claim(ra: RoutingAgents, a: Any, call: str) -> tuple[bool, float]:
                t0 = time.perf_counter()
                ok = await ra.claim(a, call)
                return ok, time.perf_counter() - t0

            got = await asyncio.gather(*(claim(ra, a, f"{ra.campaign}-{r}")
                                         for ra, a in zip(cores, agents)))
            unanswered = sum(ra.claims["unanswered"] for ra in cores)
            if unanswered:
                # The router did not answer in time (both fell back to their own
                # reservation): counted, and the claims go back on for the next round.
                fallbacks += 1
                print(f"  {time.strftime('%H:%M:%S')} round {r}: no answer: {got}",
                      flush=True)
                for ra in cores:
                    ra.claims["unanswered"] = 0
                    ra._claims_down_until = 0.0
            elif sorted(ok for ok, _ in got) != [False, True]:
                raise RuntimeError(f"round {r}: {got}")
            if r >= 0 and not unanswered:
                for ok, dt in got:
                    (grants if ok else refusals).append(dt)
            for (ok, _), ra, a in zip(got, cores, agents):
                if ok or unanswered:
                    a.state = "ready"
                    ra.local_state(a, "ready", None)
        cpu, rcpu = time.process_time() - cpu0, _cpu_seconds(router_pid) - rcpu0
        n = 2 * (rounds + 20)
        return {"grant_p50": pct(grants, 0.5), "grant_p99": pct(grants, 0.99),
                "grant_max": max(grants), "refuse_p50": pct(refusals, 0.5),
                "refuse_p99": pct(refusals, 0.99), "dialer_cpu_us": 1e6 * cpu / n,
                "router_cpu_us": 1e6 * rcpu / n, "unanswered_rounds": fallbacks}
    finally:
        for ra in cores:
            await ra.close()
        for bus in buses:
            await bus.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    where = machine()
    os.sched_setaffinity(0, {0})
    broker = MosquittoBroker()
    broker.start()
    ready = mp.get_context("spawn").Event()
    proc = mp.get_context("spawn").Process(target=_router_process, args=(broker.url, ready))
    proc.start()
    try:
        if not ready.wait(15):
            raise RuntimeError("the router did not start")
        runs = []
        for i in range(args.runs):
            res = asyncio.run(one_run(broker.url, args.rounds, proc.pid or 0))
            runs.append(res)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v * 1000 if 'p' in k[-3:] or 'max' in k else v:.2f}"
                                               for k, v in res.items()), flush=True)
    finally:
        proc.terminate()
        proc.join(5)
        broker.cleanup()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    lines = [
        "# Agent claims over Mosquitto (benchmarks/bench_agent_claims.py)", "",
        (f"`.venv/bin/python benchmarks/bench_agent_claims.py {' '.join(sys.argv[1:])}`; "
         f"{args.runs} runs of {args.rounds} rounds (two dialers claim the same agent at "
         f"once; {2 * args.rounds} claims a run).  Machine: {where}; dialers on CPU 0, "
         "router on CPU 1."), "",
        ("| run | grant p50 / p99 / max ms | refusal p50 / p99 ms | dialers' CPU per claim "
         "us | router's CPU per claim us | rounds unanswered (2 s) |"),
        "|---|---|---|---|---|---|"]
    for i, r in enumerate([*runs, med]):
        name = "median" if i == len(runs) else str(i + 1)
        lines.append(f"| {name} | {r['grant_p50'] * 1e3:.2f} / {r['grant_p99'] * 1e3:.2f} / "
                     f"{r['grant_max'] * 1e3:.2f} | {r['refuse_p50'] * 1e3:.2f} / "
                     f"{r['refuse_p99'] * 1e3:.2f} | {r['dialer_cpu_us']:.0f} | "
                     f"{r['router_cpu_us']:.0f} | {r['unanswered_rounds']:.0f} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
