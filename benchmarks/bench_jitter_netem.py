"""The jitter buffer on a real UDP path under ``netem delay 60ms 30ms loss 5%``, in its own netns.

Run (root):  .venv/bin/python benchmarks/bench_jitter_netem.py [--seconds 40] [--runs 5]
             [--distribution uniform,normal]

The benchmark creates a network namespace ``dialtone-bench-<pid>``, brings ``lo`` up in it
and applies the issue's impairment to ``lo``:

* ``uniform`` (the default, the issue's command): ``tc qdisc add dev lo root netem delay
  60ms 30ms loss 5%``.  Without a ``distribution`` keyword netem draws each packet's delay
  uniformly in ``[60 - 30, 60 + 30)`` ms (sch_netem.c ``tabledist()``: "default uniform
  distribution", ``rnd % (2 * sigma) + mu - sigma``), independently per packet; its tfifo
  releases packets in time-to-send order, so they reorder.  Loss is i.i.d. 5 %.
* ``normal``: the same line with ``distribution normal``; netem's normal table is a
  standard normal scaled by the jitter parameter, so the delay is N(60 ms, 30 ms); a
  negative draw gives a time-to-send in the past, i.e. no delay.

When the kernel has no netem (VM kernels without qdiscs: "Specified qdisc kind is
unknown") a user-space relay on ``lo`` inside the namespace applies the same model: each
packet is dropped with probability 5 %, else sent on at its send time (netem's enqueue)
plus a delay drawn as above, from a heap in deadline order (the order netem's tfifo
releases them).  The relay and the sender share one single-threaded SCHED_FIFO process
(it stands in for netem's kernel timer) that sleeps in ``select()`` until just before the
next absolute deadline (a send or a relayed packet), or an incoming packet, and spins the
last 0.5 ms (this VM wakes 0.1-0.4 ms late).  It logs every packet's intended and actual
send time; the report gives that scheduling error and the receiver's timestamp lag
(arrival timestamp minus the relay's send), which a real netem path would have too: the
receiver is an ordinary process that timestamps a packet when ``select()`` wakes it, as
the media glue does.

Each run starts a sender (PCMU speech, 50 pps, packet ``k`` due at ``t0 + k * 20 ms``)
and a receiver in separate processes of the namespace.  The receiver feeds every packet,
with its arrival time, to several :class:`telephony.media.CallMedia` whose jitter buffers
differ only in :class:`telephony.rtp.jitter.JitterConfig` parameters, and ticks them at
``t0 + phase + k * 20 ms``.  The phase between the sender's packet clock and the
receiver's tick decides how much of the 0-20 ms tick wait each packet adds, so the runs
use different phases (``i * 20 ms / runs``) and seeds.  Per buffer and run: the RFC 3550
jitter J (the buffer's estimate, mean over the measured ticks), the added delay (the tick
that plays a packet minus its arrival; median and p95 over packets), late loss (packets
that came after their slot was played, over packets received, whole run) and concealed
frames.  The first 5 s of each run are not measured (delay, J).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import select
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DELAY_MS, JITTER_MS, LOSS = 60, 30, 0.05
SEND_PORT, RELAY_PORT, RECV_PORT = 41000, 41002, 41004
LOCAL = "127.0.0.1"
TICK = 0.020
WARM_UP = 5.0
TAIL_TICKS = 30
"""Receiver ticks after the last packet was due (600 ms: more than any delay plus target)."""
LEAD = 0.2
"""Seconds between telling both processes the start time and ``t0``."""
SPIN = 0.0005
"""The sender/relay busy-waits the last 0.5 ms before a deadline (about 5 % of a core)."""
clock = time.monotonic

VARIANTS: dict[str, dict[str, Any]] = {
    "default (quantile 0.99, margin 3 ms)": {},
    "quantile 0.99, margin 0": {"margin": 0.0},
    "quantile 0.99, margin 2 ms": {"margin": 0.002},
    "quantile 0.99, margin 5 ms (the default before)": {"margin": 0.005},
    "quantile 0.98, margin 0": {"quantile": 0.98, "margin": 0.0},
    "quantile 0.99, window 512": {"window": 512},
    "quantile 0.99, margin 3 ms, align 0.5": {"playout_align": 0.5},
    "jitter k=2": {"estimator": "jitter", "jitter_factor": 2.0},
    "jitter k=2.5": {"estimator": "jitter"},
    "jitter k=3": {"estimator": "jitter", "jitter_factor": 3.0},
}


def netem_args(distribution: str) -> list[str]:
    """The netem qdisc arguments of one impairment (as ``tc qdisc add dev lo root ...`` takes)."""
    dist = [] if distribution == "uniform" else ["distribution", distribution]
    return ["netem", "delay", f"{DELAY_MS}ms", f"{JITTER_MS}ms", *dist, "loss", f"{LOSS:.0%}"]


class NetemModel:
    """What netem does to one packet, for the user-space relay: loss, then a delay."""

    def __init__(self, distribution: str, rng: random.Random) -> None:
        if distribution not in ("uniform", "normal"):
            raise ValueError(f"unknown distribution {distribution!r}")
        self.uniform = distribution == "uniform"
        self.rng = rng

    def dropped(self) -> bool:
        return self.rng.random() < LOSS

    def delay(self) -> float:
        """Seconds: U[mu - sigma, mu + sigma) (netem's default) or max(0, N(mu, sigma))."""
        mu, sigma = DELAY_MS / 1000, JITTER_MS / 1000
        if self.uniform:
            return mu - sigma + 2 * sigma * self.rng.random()
        return max(0.0, self.rng.gauss(mu, sigma))


def realtime_priority() -> bool:
    """SCHED_FIFO for the sender/relay (it stands in for netem's kernel timer); root only."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (OSError, AttributeError):
        return False
    return True


def speech_frames() -> bytes:
    from telephony.codecs.base import get_codec
    from telephony.dsp.wavio import read_wav_8k

    sounds = Path("/usr/share/asterisk/sounds/en")
    parts = [read_wav_8k(sounds / f"{n}.wav") for n in ("vm-intro", "hello-world", "tt-monkeys")
             if (sounds / f"{n}.wav").exists()]
    x = np.concatenate(parts) if parts else np.zeros(8000, np.int16)
    return get_codec("PCMU").encode(x[: len(x) // 160 * 160])


def udp(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOCAL, port))
    s.setblocking(False)
    return s


def start_time() -> float:
    """Say we are ready (stdout), read the common start time ``t0`` (stdin)."""
    print("ready", flush=True)
    t0 = float(sys.stdin.readline())
    if clock() > t0 - 0.01:
        raise SystemExit(f"start time received {clock() - t0:.3f} s late")
    return t0


# -- the sender (and the relay) ---------------------------------------------------------------


def run_net(seconds: float, seed: int, relay: str | None, spin: float) -> dict[str, Any]:
    """Send ``seconds`` of PCMU at 50 pps; with ``relay`` (a distribution), impair it too.

    One thread, one heap of absolute deadlines: it sleeps in ``select()`` until ``spin``
    seconds before the next deadline, then spins (the VM's wake-up latency is 0.1-0.4 ms).
    A relayed packet's delay counts from its sender's ``sendto`` (netem's enqueue on
    ``lo``), not from when the relay read it.
    """
    from telephony.rtp.stream import RtpSender

    fifo = realtime_priority()
    frames = speech_frames()
    sender = RtpSender(0, rng=random.Random(seed))
    model = NetemModel(relay, random.Random(seed + 1000)) if relay else None
    tx = udp(SEND_PORT)
    rs = udp(RELAY_PORT) if relay else None
    first_hop = (LOCAL, RELAY_PORT if relay else RECV_PORT)
    dest = (LOCAL, RECV_PORT)
    n = int(seconds / TICK)
    heap: list[tuple[float, int, bytes]] = []
    sent: dict[int, tuple[float, float]] = {}
    """Timestamp -> (due, actual send time), per packet sent."""
    relayed: dict[int, tuple[float, float, float]] = {}
    """Timestamp -> (drawn delay, intended, actual send time), per packet relayed."""
    dropped: list[int] = []
    inf = float("inf")
    t0 = start_time()
    end = t0 + n * TICK + 0.1  # the relay keeps reading until the last packet reached it
    k = 0
    while True:
        listening = rs is not None and clock() < end
        if not (k < n or heap or listening):
            break
        next_send = t0 + k * TICK if k < n else inf
        next_out = heap[0][0] if heap else inf
        due = min(next_send, next_out)
        wake = min(due - spin, end) if listening else due - spin
        if (wait := wake - clock()) > 0:
            if rs is None:
                time.sleep(wait)
            elif select.select([rs], [], [], wait)[0]:
                while True:
                    try:
                        data = rs.recv(2048)
                    except BlockingIOError:
                        break
                    ts = int.from_bytes(data[4:8], "big")
                    assert model is not None
                    if model.dropped():
                        dropped.append(ts)
                        continue
                    delay = model.delay()
                    heapq.heappush(heap, (sent[ts][1] + delay, ts, data))
                    relayed[ts] = (delay, sent[ts][1] + delay, 0.0)
            continue
        if clock() < due - spin:  # woke for ``end``, not for a deadline
            continue
        while clock() < due:
            pass
        if next_send <= next_out:
            off = (k * 160) % len(frames)
            pkt = sender.packetize(frames[off:off + 160], timestamp_advance=160)
            now = clock()
            tx.sendto(pkt, first_hop)
            sent[int.from_bytes(pkt[4:8], "big")] = (next_send, now)
            k += 1
        else:
            when, ts, data = heapq.heappop(heap)
            now = clock()
            assert rs is not None
            rs.sendto(data, dest)
            relayed[ts] = (relayed[ts][0], when, now)
    tx.close()
    if rs is not None:
        rs.close()
    return {"sent": [(ts, *v) for ts, v in sent.items()],
            "relayed": [(ts, *v) for ts, v in relayed.items()], "dropped": dropped,
            "sched_fifo": fifo}


# -- the receiver -----------------------------------------------------------------------------


def run_recv(seconds: float, phase: float) -> dict[str, Any]:
    """Receive, feed every JitterConfig variant, tick at ``t0 + phase + k * 20 ms``."""
    from telephony.codecs.base import get_codec
    from telephony.media import CallMedia, MediaConfig
    from telephony.rtp.jitter import FrameKind, JitterBuffer, JitterConfig

    codec = get_codec("PCMU")
    src = (LOCAL, SEND_PORT)
    medias: dict[str, CallMedia] = {}
    for name, params in VARIANTS.items():
        m = CallMedia(MediaConfig(media_timeout=0.0), now=clock(), remote=src)
        m.jitter = JitterBuffer(JitterConfig(min_delay=0.020, max_delay=0.200,
                                             payload_types={0: codec}, **params))
        medias[name] = m
    first = next(iter(medias.values()))
    sock = udp(RECV_PORT)
    arrivals: dict[int, float] = {}
    delays: dict[str, list[float]] = {name: [] for name in medias}
    jitters: list[float] = []
    n_ticks = int(seconds / TICK) + TAIL_TICKS
    warm = int(WARM_UP / TICK)
    t0 = start_time()
    k = 0
    while k < n_ticks:
        due = t0 + phase + k * TICK
        wait = due - clock()
        if wait > 0:
            if select.select([sock], [], [], wait)[0]:
                while True:
                    try:
                        data = sock.recv(2048)
                    except BlockingIOError:
                        break
                    now = clock()
                    arrivals.setdefault(int.from_bytes(data[4:8], "big"), now)
                    for m in medias.values():
                        m.receive_rtp(data, src, now=now)
            continue
        # Packets ready when the process wakes are put before the tick runs (asyncio too
        # runs I/O callbacks before timers); the tick plays at its due time.
        if k >= warm:
            jitters.append(first.jitter.jitter)
        for name, m in medias.items():
            # what CallMedia.rx_frame does, keeping the Frame to see which packet played
            frame = m.jitter.get(now=due)
            if k >= warm and frame.kind is FrameKind.AUDIO and frame.timestamp in arrivals:
                delays[name].append(due - arrivals[frame.timestamp])
        k += 1
    sock.close()
    buffers: dict[str, Any] = {}
    for name, m in medias.items():
        js = m.jitter.stats
        d = np.array(delays[name]) * 1000
        buffers[name] = {
            "added_median_ms": float(np.median(d)) if len(d) else float("nan"),
            "added_p95_ms": float(np.percentile(d, 95)) if len(d) else float("nan"),
            "late_loss": js.late / max(1, js.received),
            "late": js.late, "received": js.received, "concealed": js.concealed,
        }
    return {"jitter_ms": float(np.mean(jitters)) * 1000, "arrivals": list(arrivals.items()),
            "buffers": buffers}


# -- one run, seen from outside ---------------------------------------------------------------


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def pct(x: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(x), q)) if len(x) else float("nan")


def one_run(ns: str, seconds: float, seed: int, phase: float,
            relay: str | None) -> dict[str, Any]:
    base = ["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).resolve()),
            "--seconds", str(seconds), "--seed", str(seed)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
             "text": True}
    recv = subprocess.Popen([*base, "--role", "recv", "--phase", repr(phase)], **pipes)
    net = subprocess.Popen([*base, "--role", "net", *(["--relay", relay] if relay else [])],
                           **pipes)
    procs = (recv, net)
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()  # "ready" (or nothing if it failed: communicate() shows why)
    t0 = clock() + LEAD
    for p in procs:
        assert p.stdin is not None
        try:
            p.stdin.write(f"{t0!r}\n")
            p.stdin.flush()
        except BrokenPipeError:
            pass
    out_recv, err_recv = recv.communicate()
    out_net, err_net = net.communicate()
    if net.returncode or recv.returncode:
        raise RuntimeError(f"run failed: net {net.returncode} {err_net.strip()[-500:]}; "
                           f"recv {recv.returncode} {err_recv.strip()[-500:]}")
    tx, rx = json.loads(out_net), json.loads(out_recv)
    arrival = {int(ts): t for ts, t in rx["arrivals"]}
    sent = {int(ts): (due, t) for ts, due, t in tx["sent"]}
    one_way = [arrival[ts] - due for ts, (due, _) in sent.items() if ts in arrival]
    order = sorted((t, sent[ts][0]) for ts, t in arrival.items() if ts in sent)
    latest, reordered = -1.0, 0
    for _, due in order:  # arrived after a packet sent later
        reordered += due < latest
        latest = max(latest, due)
    res: dict[str, Any] = {
        "seed": seed, "phase_ms": phase * 1000, "sent": len(sent), "received": len(arrival),
        "jitter_ms": rx["jitter_ms"], "buffers": rx["buffers"],
        "one_way_ms": [pct(one_way, q) * 1000 for q in (1, 50, 99)],
        "reordered": reordered / max(1, len(order)), "sched_fifo": tx["sched_fifo"],
        "send_error_ms": [pct([t - due for due, t in sent.values()], q) * 1000
                          for q in (50, 99, 100)],
    }
    if relay:
        rel = [r for r in tx["relayed"] if r[3]]  # (ts, delay, intended, actual send)
        res["relay_error_ms"] = [pct([r[3] - r[2] for r in rel], q) * 1000
                                 for q in (50, 99, 100)]
        res["receive_lag_ms"] = [pct([arrival[r[0]] - r[3] for r in rel if r[0] in arrival], q)
                                 * 1000 for q in (50, 99, 100)]
        res["relay_loss"] = len(tx["dropped"]) / max(1, len(sent))
    return res


def fmt3(v: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in v)


def report(distribution: str, how: str, runs: list[dict[str, Any]]) -> tuple[list[str], str]:
    """Print one distribution's figures; return its markdown tables and its verdict."""
    relay = "relay_error_ms" in runs[0]
    lines = [
        f"### `netem {' '.join(netem_args(distribution)[1:])}` ({distribution} delay)",
        "",
        f"Impairment: {how}"
        + (f"; sender/relay process SCHED_FIFO: "
           f"{'yes' if all(r['sched_fifo'] for r in runs) else 'no'}." if relay else "."),
        "",
        ("| run | seed | receiver tick phase ms | sent | received | reordered | one-way delay "
         "p1 / p50 / p99 ms | RFC 3550 J ms | sender error p50 / p99 / max ms"
         + (" | relay error p50 / p99 / max ms | receiver timestamp lag p50 / p99 / max ms |"
            if relay else " |")),
        "|---:|---:|---:|---:|---:|---:|---|---:|---" + ("|---|---|" if relay else "|"),
    ]
    for i, r in enumerate(runs, 1):
        row = (f"| {i} | {r['seed']} | {r['phase_ms']:.0f} | {r['sent']} | {r['received']} | "
               f"{r['reordered']:.1%} | {fmt3(r['one_way_ms'])} | {r['jitter_ms']:.1f} | "
               f"{fmt3(r['send_error_ms'])} |")
        if relay:
            row += f" {fmt3(r['relay_error_ms'])} | {fmt3(r['receive_lag_ms'])} |"
        lines.append(row)
        print(f"  run {i}: seed {r['seed']} phase {r['phase_ms']:4.1f} ms  sent {r['sent']} "
              f"received {r['received']}  reordered {r['reordered']:.1%}  one-way "
              f"{fmt3(r['one_way_ms'])} ms  J {r['jitter_ms']:.1f} ms  sender err "
              f"{fmt3(r['send_error_ms'])} ms"
              + (f"  relay err {fmt3(r['relay_error_ms'])} ms  receive lag "
                 f"{fmt3(r['receive_lag_ms'])} ms" if relay else ""), flush=True)
    lines += [
        "",
        ("| JitterConfig | added delay median ms, per run | median / J, per run | "
         "late loss %, per run | median over runs: added ms (p95) | / J | late loss | "
         "runs meeting goal | goal (<= 2 J, < 1 %) on the medians |"),
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    verdicts: dict[str, tuple[bool, float, float, float, int, float]] = {}
    for name in runs[0]["buffers"]:
        b = [r["buffers"][name] for r in runs]
        added = [x["added_median_ms"] for x in b]
        ratio = [x["added_median_ms"] / r["jitter_ms"] for x, r in zip(b, runs)]
        late = [x["late_loss"] for x in b]
        met = sum(q <= 2.0 and lo < 0.01 for q, lo in zip(ratio, late))
        m_added, m_ratio, m_late = (statistics.median(v) for v in (added, ratio, late))
        m_p95 = statistics.median(x["added_p95_ms"] for x in b)
        ok = m_ratio <= 2.0 and m_late < 0.01
        verdicts[name] = (ok, m_added, m_ratio, m_late, met, max(late))
        goal = ("not met" if not ok else "met" if max(late) < 0.01 else
                f"met on the medians, but a run {max(late):.2%} late")
        lines.append(
            f"| {name} | {' '.join(f'{v:.1f}' for v in added)} | "
            f"{' '.join(f'{v:.2f}' for v in ratio)} | "
            f"{' '.join(f'{100 * v:.2f}' for v in late)} | {m_added:.1f} ({m_p95:.1f}) | "
            f"{m_ratio:.2f} | {m_late:.2%} | {met}/{len(runs)} | {goal} |")
        print(f"  {name:40s} added median {m_added:5.1f} ms = {m_ratio:.2f} x J, late "
              f"{m_late:.2%} (per run x J: {' '.join(f'{v:.2f}' for v in ratio)}; late: "
              f"{' '.join(f'{v:.2%}' for v in late)}) -> {met}/{len(runs)} runs meet",
              flush=True)
    default = next(iter(verdicts))
    ok, m_added, m_ratio, m_late, met, worst = verdicts[default]
    j = statistics.median(r["jitter_ms"] for r in runs)
    verdict = (f"**{distribution} delay: goal {'met' if ok else 'not met'} by the default "
               f"JitterConfig** (median over {len(runs)} runs: J {j:.1f} ms, added "
               f"{m_added:.1f} ms = {m_ratio:.2f} x J, late loss {m_late:.2%}; {met}/{len(runs)} "
               f"runs meet it, worst run {worst:.2%} late)")
    if not ok:
        def describe(n: str) -> str:
            v = verdicts[n]
            return (f"{n} ({v[2]:.2f} x J, {v[3]:.2%} late; {v[4]}/{len(runs)} runs meet it, "
                    f"worst run {v[5]:.2%} late)")

        good = [n for n, v in verdicts.items() if v[0] and v[5] < 0.01]
        shaky = [n for n, v in verdicts.items() if v[0] and v[5] >= 0.01]
        verdict += ("; met by " + "; ".join(map(describe, good))) if good else \
            "; no variant meets it with every run under 1 % late"
        if shaky:
            verdict += ("; met on the medians only (a run over 1 % late): "
                        + "; ".join(map(describe, shaky)))
    lines.append("")
    print(verdict, flush=True)
    return lines, verdict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("bench", "net", "recv"), default="bench")
    ap.add_argument("--seconds", type=float, default=40.0, help="sending time per run")
    ap.add_argument("--runs", type=int, default=5, help="runs per distribution")
    ap.add_argument("--seed", type=int, default=1, help="seed of the first run")
    ap.add_argument("--distribution", default="uniform,normal",
                    help="comma-separated: uniform (netem's default), normal")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--phase", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--relay", help=argparse.SUPPRESS)
    ap.add_argument("--spin", type=float, default=SPIN, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "net":
        print(json.dumps(run_net(args.seconds, args.seed, args.relay, args.spin)))
        return
    if args.role == "recv":
        print(json.dumps(run_recv(args.seconds, args.phase)))
        return
    from hostinfo import machine

    distributions = [d.strip() for d in args.distribution.split(",") if d.strip()]
    for d in distributions:
        NetemModel(d, random.Random())  # reject unknown names before starting
    load_before = os.getloadavg()[0]
    ns = f"dialtone-bench-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    results: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    try:
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for dist in distributions:
            netem = netem_args(dist)
            tc = sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "lo", "root",
                    *netem, check=False)
            relay = None if tc.returncode == 0 else dist
            line = "tc qdisc add dev lo root " + " ".join(netem)
            how = (f"`{line}` (tc netem)" if relay is None else
                   f"user-space relay emulating `{line}` (tc netem unavailable: "
                   f"{tc.stderr.strip()})")
            print(f"{dist}: {how}", flush=True)
            runs = []
            for i in range(args.runs):
                phase = i * TICK / args.runs
                runs.append(one_run(ns, args.seconds, args.seed + i, phase, relay))
            results[dist] = (how, runs)
            if relay is None:
                sh("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "lo", "root",
                   check=False)
    finally:
        sh("ip", "netns", "del", ns, check=False)
    load_after = os.getloadavg()[0]
    opts = "".join([f" --seconds {args.seconds:g}" if args.seconds != 40 else "",
                    f" --runs {args.runs}" if args.runs != 5 else "",
                    f" --seed {args.seed}" if args.seed != 1 else "",
                    f" --distribution {args.distribution}"
                    if distributions != ["uniform", "normal"] else ""])
    lines = [
        "## Jitter buffer under ~30 ms jitter and 5 % loss",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_jitter_netem.py{opts}` (as root)  ",
        (f"Machine: {machine()}; 1-minute load average {load_before:.2f} before, "
         f"{load_after:.2f} after (2 cores shared with other work).  "),
        ("Goal (issue 3): under `netem delay <D>ms 30ms loss 5%` on loopback, added delay "
         "<= 2 x the measured jitter and late loss < 1 %."),
        "",
        (f"Namespace `dialtone-bench-<pid>`; netem `delay {DELAY_MS}ms {JITTER_MS}ms` and "
         f"{LOSS:.0%} loss on its `lo`; PCMU speech at 50 pps for {args.seconds:g} s per run "
         f"(sender and receiver in separate processes), {args.runs} runs per delay "
         f"distribution, run i with seed {args.seed} + i and the receiver's 20 ms tick "
         f"i x {TICK * 1000 / args.runs:g} ms after the sender's packet clock.  The first "
         f"{WARM_UP:g} s of a run are not measured (J, added delay).  All buffers of a run saw "
         "the same packets at the same times (one receiver feeds them all).  "
         "*J* is the RFC 3550 interarrival jitter the buffer measured on those arrivals, "
         "mean over the run.  *Added delay* runs from a packet's arrival to the tick that "
         "plays it (median over packets; it includes the 0-20 ms wait for the tick).  "
         "*Late loss* is packets that came after their slot was played over packets "
         "received (whole run).  *One-way delay* is arrival minus the packet's due send time; "
         "*reordered* is packets that arrived after one sent later.  *Sender error* is actual "
         "minus due send time; with the relay, *relay error* is its actual minus intended "
         "(send time + drawn delay) send time, what the emulation adds to netem's delay, and "
         "*receiver timestamp lag* the receiver's arrival timestamp minus the relay's send "
         "(wake-up of the receiving process; a real netem path has it too)."),
        "",
    ]
    parts, verdicts = [], []
    for dist, (how, runs) in results.items():
        print(f"== {dist}", flush=True)
        part, verdict = report(dist, how, runs)
        parts += part
        verdicts.append(verdict)
    lines += ["Verdicts (the first is the issue's command):", "",
              *(f"* {v}." for v in verdicts), "", *parts]
    if args.no_write:
        return
    from bench_media_capacity import write_section

    write_section(ROOT / "benchmarks" / "results" / "media.md", "## Jitter buffer under", lines)


if __name__ == "__main__":
    main()
