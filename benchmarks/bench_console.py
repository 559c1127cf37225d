"""Console figures (issue 15): API latency under 100 concurrent clients, and the live view
with 50 campaigns and 500 agents streaming (server CPU per second of updates, page render
time in Chromium).

    .venv/bin/python benchmarks/bench_console.py [--seconds 20] [--clients 100]

The console runs in a child process (uvicorn, one worker, as the node runs it) on loopback,
on a SQLite file seeded with 50 running campaigns of 200 contacts, 40 finished attempts each,
and 500 agents (a fixed list).  Clients authenticate with an API token.  Results go to
benchmarks/results/console.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "console.md"
CAMPAIGNS, CONTACTS, AGENTS = 50, 200, 500


def seed(db: str) -> str:
    """The database; returns an admin API token."""
    from dialer.policy import CampaignSettings, Disposition
    from dialer.store import DialerStore
    from dialtone.http.users import Role, UserStore

    store = DialerStore(db)
    users = UserStore(store.engine)
    uid = users.add_user("bench", "bench-password", Role.ADMIN, now=time.time())
    _, token = users.create_token(uid, "bench", now=time.time())
    rng = random.Random(1)
    now = time.time()
    outcomes = [Disposition.CONNECTED, Disposition.NO_ANSWER, Disposition.MACHINE,
                Disposition.BUSY, Disposition.ABANDONED]
    for c in range(CAMPAIGNS):
        name = f"camp-{c:02d}"
        store.create_campaign(name, CampaignSettings(window=CampaignSettings().window.parse(
            "always"), caller_id="+12125550199"), now=now - 3600)
        rows = "phone\n" + "".join(f"+1212{c:03d}{i:04d}\n" for i in range(CONTACTS))
        path = Path(tempfile.mkstemp(suffix=".csv")[1])
        path.write_text(rows)
        store.import_contacts(name, str(path), now=now - 3600)
        path.unlink()
        for lease in store.lease(name, now=now - 1800, count=40, owner="bench"):
            store.record_outcome(lease, rng.choice(outcomes), now=now - 1700,
                                 time_to_agent_s=rng.uniform(0.5, 3), amd="human")
        store.set_status(name, "running")
    return token


def serve(db: str, port: int) -> None:
    """The child: the console with 500 agents, until killed."""
    from dialer.store import DialerStore
    from dialtone.config import HttpSection
    from dialtone.http.app import create_app
    from dialtone.http.live import AgentView, StaticAgents
    from dialtone.http.server import ConsoleServer

    states = ["available", "busy", "busy", "wrap_up"]
    agents = StaticAgents([AgentView(f"agent-{i:03d}", states[i % 4], time.time() - i)
                           for i in range(AGENTS)])
    app = create_app(HttpSection(), DialerStore(db), agents=agents)

    async def main() -> None:
        server = ConsoleServer(app, "127.0.0.1", port)
        await server.start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def latency(url: str, token: str, clients: int, seconds: float) -> dict[str, float]:
    import httpx2 as httpx

    paths = ["/api/campaigns", "/api/agents", "/api/campaigns/camp-07",
             "/api/campaigns/camp-07/reports/dispositions", "/health"]
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as c:
        end = time.perf_counter() + seconds

        async def one(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                r = await c.get(paths[i % len(paths)])
                lat.append(time.perf_counter() - t0)
                errors += r.status_code >= 400
                i += 1

        await asyncio.gather(*(one(k) for k in range(clients)))
    lat.sort()
    return {"requests": len(lat), "rps": len(lat) / seconds, "errors": errors,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)]}


async def streams(url: str, token: str, seconds: float, pid: int) -> dict[str, float]:
    import httpx2 as httpx

    got = 0
    async with httpx.AsyncClient(base_url=url, timeout=None,
                                 headers={"Authorization": f"Bearer {token}"}) as c:
        async def read(path: str) -> None:
            nonlocal got
            async with c.stream("GET", path) as r:
                async for line in r.aiter_lines():
                    if line.startswith(("event: figures", "event: node_f")):
                        got += 1

        tasks = [asyncio.create_task(read(f"/api/campaigns/camp-{i:02d}/stream"))
                 for i in range(CAMPAIGNS)] + [asyncio.create_task(read("/api/stream"))]
        await asyncio.sleep(3)  # connected, first figures sent
        c0, g0, t0 = cpu_s(pid), got, time.perf_counter()
        await asyncio.sleep(seconds)
        c1, g1, t1 = cpu_s(pid), got, time.perf_counter()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"cpu_per_s": (c1 - c0) / (t1 - t0), "events_per_s": (g1 - g0) / (t1 - t0)}


def render_time(url: str, seconds: float) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url + "/")
        page.get_by_label("Name", exact=True).fill("bench")
        page.get_by_label("Password", exact=True).fill("bench-password")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("button", name="Open").first.click()
        page.wait_for_timeout(1000 * seconds)
        times = page.evaluate("window.dialtoneRenderTimes")
        rows = page.locator("#agent-rows tr").count()
        browser.close()
    times = sorted(times[2:])  # the first paints load fonts
    return {"updates": len(times), "median_ms": statistics.median(times),
            "p99_ms": times[int(len(times) * 0.99)], "agent_rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--serve", nargs=2, metavar=("DB", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    from benchmarks.hostinfo import machine

    tmp = tempfile.mkdtemp()
    db = f"sqlite:///{tmp}/console.db"
    token = seed(db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child = subprocess.Popen([sys.executable, __file__, "--serve", db, str(port)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        lat = asyncio.run(latency(url, token, args.clients, args.seconds))
        live = asyncio.run(streams(url, token, args.seconds, child.pid))
        rend = render_time(url, min(args.seconds, 15))
    finally:
        child.terminate()
        child.wait(10)
    text = (f"## Console ({time.strftime('%Y-%m-%d')})\n\n"
            f"Machine: {machine()}; shared with other work during the run.\n"
            f"Command: `.venv/bin/python benchmarks/bench_console.py --seconds {args.seconds:g}"
            f" --clients {args.clients}`\n\n"
            f"| figure | value |\n|---|---|\n"
            f"| API, {args.clients} concurrent clients: requests/s | {lat['rps']:.0f} |\n"
            f"| API latency p50 / p99 | {lat['p50_ms']:.1f} ms / {lat['p99_ms']:.1f} ms |\n"
            f"| API errors | {lat['errors']} of {lat['requests']} |\n"
            f"| live: {CAMPAIGNS} campaign streams + node stream, {AGENTS} agents: server CPU "
            f"per second of updates | {live['cpu_per_s']:.2f} CPU s |\n"
            f"| live: figures events delivered per second | {live['events_per_s']:.1f} |\n"
            f"| page render per update, {rend['agent_rows']} agent rows: median / p99 | "
            f"{rend['median_ms']:.1f} ms / {rend['p99_ms']:.1f} ms ({rend['updates']} "
            f"updates) |\n")
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
