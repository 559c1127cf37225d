"""Several nodes behind Kamailio against one node directly, on this machine (issue 16).

    .venv/bin/python benchmarks/bench_multinode.py [--rates 200,400,600,800] [--seconds 5]
        [--offered 600] [--hold-rate 100]

Topologies (all on 127.0.0.1, UDP):

- ``direct``: one ``dialtone serve`` pinned to CPU 0; SIPp sends to it.
- ``kamailio``: Kamailio (docker/kamailio/kamailio.cfg as shipped, 4 children, unpinned) in
  front of two nodes, one pinned to each core; SIPp sends to Kamailio.

SIPp runs unpinned in both (the machine has two cores: with two nodes, SIPp and Kamailio share
them with the nodes; that is what a second core buys on this machine, not on a bigger one).
Nodes: no flow (answer and hold until BYE, sending RTP), admission's CPS and call caps lifted;
the tick-lateness guard (a loaded node answers 503) off for the setup rate (raw SIP
throughput) and on, at its default 10 ms, for concurrent calls (what a node admits).

1. Call setups per second: SIPp calls of INVITE/200/ACK/BYE, no hold, ``--seconds`` per rate;
   the highest rate with no failed call, and calls/s achieved.
2. Concurrent calls with media: ``--offered`` calls at ``--hold-rate`` calls/s held for minutes,
   SIPp echoing each call's RTP back (-rtp_echo), so every call carries RTP both ways; the
   calls up once every INVITE was answered or refused (503 when the tick runs late).
3. One node's cost per call: CPU share and RSS of the direct node over 10 s with its calls up,
   against idle.

Writes benchmarks/results/multinode.md.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hostinfo import machine

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
SCENARIO = REPO / "tests" / "interop" / "scenarios" / "uac_routed.xml"
CFG = REPO / "docker" / "kamailio" / "kamailio.cfg"
NODE_YAML = """sip:
  max_cps: 100000
  max_calls: 100000
  max_tick_lateness: {lateness}
media:
  timeout: 0
"""


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 60000:
            return port


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Node:
    def __init__(self, work: Path, name: str, cpu: int, rtp: str, *, guard: bool) -> None:
        self.events = work / f"{name}-events.jsonl"
        cfg = work / "node.yaml"
        cfg.write_text(NODE_YAML.format(lateness="0.010" if guard else "null"))
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), PY, "-m", "dialtone", "serve", "--config", str(cfg),
             "--sip", f"127.0.0.1:{self.port}", "--no-tcp", "--rtp-ports", rtp,
             "--events", str(self.events), "--db", f"sqlite:///{work / name}.db",
             "--node-id", name], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"node did not start: {line}")

    def count(self, kind: str) -> int:
        if not self.events.exists():
            return 0
        return sum(1 for line in self.events.read_text().splitlines()
                   if f'"type":"{kind}"' in line)

    def answered_up(self) -> int:
        return self.count("call_answered") - self.count("call_ended")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Kamailio:
    def __init__(self, work: Path, nodes: list[Node]) -> None:
        ds = work / "dispatcher.list"
        ds.write_text("".join(f"1 sip:127.0.0.1:{n.port}\n" for n in nodes))
        self.port = free_port()
        self.log = open(work / "kamailio.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["kamailio", "-f", str(CFG), "-DD", "-E", "-w", str(work), "-m", "256", "-M", "16",
             "-A", f"LISTEN=udp:127.0.0.1:{self.port}", "-A", f'DS_LIST="{ds}"'],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(2.5)  # two probe rounds: both nodes active

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)
        self.log.close()


def sipp_cmd(port: int, work: Path, *, rate: int, calls: int, hold_ms: int,
             extra: list[str]) -> list[str]:
    return ["sipp", f"127.0.0.1:{port}", "-sf", str(SCENARIO), "-i", "127.0.0.1",
            "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port()),
            "-r", str(rate), "-m", str(calls), "-d", str(hold_ms), "-trace_stat", "-fd", "1",
            "-nostdin", "-max_socket", "4000", *extra]


def sipp_counts(work: Path) -> tuple[int, int]:
    ok = failed = 0
    for path in glob.glob(str(work / "uac_routed_*_.csv")):
        with open(path) as fh:
            rows = list(csv.reader(fh, delimiter=";"))
        if len(rows) >= 2:
            head, last = rows[0], rows[-1]
            ok = int(last[head.index("SuccessfulCall(C)")])
            failed = int(last[head.index("FailedCall(C)")])
    return ok, failed


def topology(kind: str, work: Path, *, guard: bool
             ) -> tuple[list[Node], int, Kamailio | None]:
    if kind == "direct":
        nodes = [Node(work, "n0", 0, "20000-39999", guard=guard)]
        return nodes, nodes[0].port, None
    nodes = [Node(work, "n0", 0, "20000-29999", guard=guard),
             Node(work, "n1", 1, "30000-39999", guard=guard)]
    k = Kamailio(work, nodes)
    return nodes, k.port, k


def stop_all(nodes: list[Node], k: Kamailio | None) -> None:
    if k is not None:
        k.stop()
    for n in nodes:
        n.stop()


def setup_rate(kind: str, rate: int, seconds: float) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-mn-{kind}-"))
    nodes, port, k = topology(kind, work, guard=False)  # raw SIP throughput
    try:
        t0 = time.monotonic()
        subprocess.run(sipp_cmd(port, work, rate=rate, calls=int(rate * seconds), hold_ms=0,
                                extra=["-timeout", "60s"]),
                       cwd=work, capture_output=True, timeout=120, check=False)
        elapsed = time.monotonic() - t0
        ok, failed = sipp_counts(work)
        per_node = [n.count("call_started") for n in nodes]
    finally:
        stop_all(nodes, k)
    return {"rate": rate, "ok": ok, "failed": failed, "achieved": ok / elapsed,
            "per_node": per_node}  # type: ignore[dict-item]


def concurrent(kind: str, offered: int, rate: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-mn-cc-{kind}-"))
    nodes, port, k = topology(kind, work, guard=True)  # a loaded node refuses (503)
    sipp = None
    try:
        time.sleep(1.0)
        idle_rss = [rss_kb(n.proc.pid) for n in nodes]
        sipp = subprocess.Popen(sipp_cmd(port, work, rate=rate, calls=offered, hold_ms=600_000,
                                         extra=["-rtp_echo", "-l", str(offered)]),
                                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(offered / rate + 8)  # every INVITE answered or refused, calls settled
        up = [n.answered_up() for n in nodes]
        refused = sipp_counts(work)[1]  # failed calls: 503s from a loaded node
        c0 = [cpu_s(n.proc.pid) for n in nodes]
        t0 = time.monotonic()
        time.sleep(10)
        dt = time.monotonic() - t0
        cpu = [(cpu_s(n.proc.pid) - c) / dt for n, c in zip(nodes, c0, strict=True)]
        rss = [rss_kb(n.proc.pid) for n in nodes]
        up_after = [n.answered_up() for n in nodes]
    finally:
        if sipp is not None:
            os.killpg(sipp.pid, signal.SIGKILL)
            sipp.wait()
        stop_all(nodes, k)
    return {"up": sum(up), "up_after": sum(up_after), "per_node": up, "refused": refused,
            "cpu": cpu, "rss": rss, "idle_rss": idle_rss}  # type: ignore[dict-item]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="200,400,600,800")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--offered", type=int, default=600)
    ap.add_argument("--hold-rate", type=int, default=100)
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    load0 = os.getloadavg()[0]
    out: dict[str, object] = {}
    for kind in ("direct", "kamailio"):
        steps = [setup_rate(kind, r, args.seconds) for r in rates]
        cc = concurrent(kind, args.offered * (1 if kind == "direct" else 2), args.hold_rate)
        out[kind] = {"steps": steps, "concurrent": cc}
        print(kind, json.dumps(out[kind]), flush=True)
    load1 = os.getloadavg()[0]
    lines = [(f"Command: `.venv/bin/python benchmarks/bench_multinode.py --rates {args.rates} "
              f"--seconds {args.seconds:g} --offered {args.offered} --hold-rate "
              f"{args.hold_rate}`  "),
             (f"Machine: {machine()}; 1-minute load average {load0:.2f} before, {load1:.2f} "
              f"after (2 cores shared with other work during this session)."), ""]
    lines += [("| topology | offered calls/s | successful | failed | achieved calls/s | "
               "calls per node |"), "|---|---:|---:|---:|---:|---|"]
    best: dict[str, float] = {}
    for kind in ("direct", "kamailio"):
        for s in out[kind]["steps"]:  # type: ignore[index]
            lines.append(f"| {kind} | {s['rate']} | {s['ok']} | {s['failed']} | "
                         f"{s['achieved']:.0f} | {'/'.join(map(str, s['per_node']))} |")
            if s["failed"] == 0:
                best[kind] = max(best.get(kind, 0), s["achieved"])
    lines += ["", ("| topology | offered held calls | up (answered) | per node | refused (503) "
                   "| node CPU (share of a core) | node RSS MiB idle -> loaded |"),
              "|---|---:|---:|---|---:|---|---|"]
    for kind in ("direct", "kamailio"):
        c = out[kind]["concurrent"]  # type: ignore[index]
        lines.append(
            f"| {kind} | {args.offered * (1 if kind == 'direct' else 2)} | {c['up']} | "
            f"{'/'.join(map(str, c['per_node']))} | {c['refused']} | "
            f"{' / '.join(f'{x:.0%}' for x in c['cpu'])} | "
            f"{' / '.join(f'{a / 1024:.0f} -> {b / 1024:.0f}' for a, b in zip(c['idle_rss'], c['rss'], strict=True))} |")
    d = out["direct"]["concurrent"]  # type: ignore[index]
    kc = out["kamailio"]["concurrent"]  # type: ignore[index]
    lines += [""]
    if best.get("direct") and best.get("kamailio"):
        lines.append(f"- Setup rate with no failed call: direct **{best['direct']:.0f}/s**, "
                     f"through Kamailio to two nodes **{best['kamailio']:.0f}/s**: ratio "
                     f"**{best['kamailio'] / best['direct']:.2f}**.")
    if d["up"]:
        lines.append(f"- Concurrent calls with RTP both ways: direct **{d['up']}**, two nodes "
                     f"**{kc['up']}**: ratio **{kc['up'] / d['up']:.2f}**.")
        lines.append(f"- One node's cost per call (direct, {d['up']} calls up): CPU "
                     f"**{d['cpu'][0] / d['up'] * 100:.3f}% of a core**, memory "
                     f"**{(d['rss'][0] - d['idle_rss'][0]) / d['up']:.0f} KiB** "
                     f"(RSS {d['idle_rss'][0] / 1024:.0f} MiB idle).")
    text = "\n".join(lines) + "\n"
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "multinode.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
