"""The jitter buffer on a real UDP path with ~30 ms jitter and 5 % loss, in its own netns.

Run (root):  .venv/bin/python benchmarks/bench_jitter_netem.py [--seconds 40]

The benchmark creates a network namespace ``dialtone-bench-<pid>``, brings ``lo`` up in it
and tries ``tc qdisc add dev lo root netem delay 60ms 27ms distribution normal loss 5%``
(i.i.d. normal delay: RFC 3550 jitter about 2 sigma / sqrt(pi) in theory; with the
reordering it causes, sigma 24 ms gives a measured J of about 30 ms here).  When the kernel has no netem (some VM kernels ship without qdiscs), the same
impairment is applied by a user-space relay on ``lo`` inside the namespace: each packet
is dropped with probability 5 %, else delivered after max(0, N(60 ms, 27 ms)) (reordering
as netem does).  The report says which one ran.  The namespace is deleted in a finally.

Inside: a sender paces 50 pps of PCMU speech (absolute deadlines); the receiver feeds every
packet, with its arrival time, to several :class:`telephony.media.CallMedia` whose jitter
buffers differ only in :class:`telephony.rtp.jitter.JitterConfig` parameters, and ticks
them every 20 ms.  Per buffer: the RFC 3550 jitter it measured, the added delay (playout
tick minus arrival, per packet; median and p95), late loss (packets that came after their
slot was played, over packets received) and concealed frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEAN_MS, SIGMA_MS, LOSS = 60.0, 24.0, 0.05
NETEM = ["netem", "delay", f"{MEAN_MS:g}ms", f"{SIGMA_MS:g}ms", "distribution", "normal",
         "loss", f"{LOSS * 100:g}%"]
SEND_PORT, RELAY_PORT, RECV_PORT = 41000, 41002, 41004
TICK = 0.020

VARIANTS: dict[str, dict[str, object]] = {
    "default (quantile 0.99, margin 5 ms)": {},
    "quantile 0.99, margin 0": {"margin": 0.0},
    "quantile 0.98, margin 0": {"quantile": 0.98, "margin": 0.0},
    "quantile 0.995, margin 0": {"quantile": 0.995, "margin": 0.0},
    "quantile 0.99, window 512": {"window": 512, "margin": 0.0},
    "jitter k=2": {"estimator": "jitter", "jitter_factor": 2.0},
    "jitter k=3": {"estimator": "jitter", "jitter_factor": 3.0},
    "jitter k=4": {"estimator": "jitter", "jitter_factor": 4.0},
}


def speech() -> np.ndarray:
    from telephony.dsp.wavio import read_wav_8k

    sounds = Path("/usr/share/asterisk/sounds/en")
    parts = [read_wav_8k(sounds / f"{n}.wav") for n in ("vm-intro", "hello-world", "tt-monkeys")
             if (sounds / f"{n}.wav").exists()]
    x = np.concatenate(parts) if parts else np.zeros(8000, np.int16)
    return x[: len(x) // 160 * 160]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, handler: object) -> None:
        self.handler = handler

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.handler(data, addr)  # type: ignore[operator]


async def inner(seconds: float, relay: bool, seed: int) -> dict[str, object]:
    from telephony.codecs.base import get_codec
    from telephony.media import CallMedia, MediaConfig
    from telephony.rtp.jitter import FrameKind, JitterBuffer, JitterConfig
    from telephony.rtp.stream import RtpSender

    loop = asyncio.get_running_loop()
    clock = time.monotonic
    rng = random.Random(seed)
    codec = get_codec("PCMU")
    frames = codec.encode(speech())
    medias: dict[str, CallMedia] = {}
    for name, params in VARIANTS.items():
        m = CallMedia(MediaConfig(media_timeout=0.0), now=clock(), remote=("127.0.0.1", SEND_PORT))
        m.jitter = JitterBuffer(JitterConfig(min_delay=0.020, max_delay=0.200,
                                             payload_types={0: codec}, **params))  # type: ignore[arg-type]
        medias[name] = m
    arrivals: dict[int, float] = {}
    delays: dict[str, list[float]] = {n: [] for n in medias}
    jitters: list[float] = []
    counts = {"sent": 0, "received": 0, "dropped_by_relay": 0}

    def on_receive(data: bytes, addr: tuple[str, int]) -> None:
        now = clock()
        counts["received"] += 1
        ts = int.from_bytes(data[4:8], "big")
        arrivals.setdefault(ts, now)
        for m in medias.values():
            m.receive_rtp(data, ("127.0.0.1", SEND_PORT), now=now)

    recv_t, _ = await loop.create_datagram_endpoint(lambda: _Udp(on_receive),
                                                    local_addr=("127.0.0.1", RECV_PORT))
    send_t, _ = await loop.create_datagram_endpoint(lambda: _Udp(lambda d, a: None),
                                                    local_addr=("127.0.0.1", SEND_PORT))
    relay_t = None
    dest = ("127.0.0.1", RECV_PORT)
    if relay:
        out_t, _ = await loop.create_datagram_endpoint(lambda: _Udp(lambda d, a: None),
                                                       local_addr=("127.0.0.1", 0))

        def on_relay(data: bytes, addr: tuple[str, int]) -> None:
            if rng.random() < LOSS:
                counts["dropped_by_relay"] += 1
                return
            delay = max(0.0, rng.gauss(MEAN_MS, SIGMA_MS) / 1000)
            loop.call_later(delay, out_t.sendto, data, dest)

        relay_t, _ = await loop.create_datagram_endpoint(lambda: _Udp(on_relay),
                                                         local_addr=("127.0.0.1", RELAY_PORT))
        dest_first = ("127.0.0.1", RELAY_PORT)
    else:
        dest_first = dest
    sender = RtpSender(0, rng=random.Random(seed))
    start = clock() + 0.05
    n_ticks = int(seconds / TICK)
    warm = int(5.0 / TICK)
    for k in range(n_ticks + 30):
        due = start + k * TICK
        while (d := due - clock()) > 0:
            await asyncio.sleep(d)
        now = due
        if k < n_ticks:
            off = (k * 160) % len(frames)
            send_t.sendto(sender.packetize(frames[off:off + 160], timestamp_advance=160),
                          dest_first)
            counts["sent"] += 1
        if k >= warm:
            jitters.append(next(iter(medias.values())).jitter.jitter)
        for name, m in medias.items():
            # what CallMedia.rx_frame does, keeping the Frame to see which packet played
            frame = m.jitter.get(now=now)
            if (k >= warm and frame.kind is FrameKind.AUDIO and frame.timestamp in arrivals):
                delays[name].append(now - arrivals[frame.timestamp])
    stats: dict[str, object] = {}
    for name, m in medias.items():
        js = m.jitter.stats
        d = np.array(delays[name]) * 1000
        stats[name] = {
            "jitter_ms": float(np.mean(jitters)) * 1000,
            "jitter_end_ms": m.jitter.jitter * 1000,
            "added_delay_median_ms": float(np.median(d)) if len(d) else float("nan"),
            "added_delay_p95_ms": float(np.percentile(d, 95)) if len(d) else float("nan"),
            "late_loss": js.late / max(1, js.received),
            "late": js.late, "received": js.received, "concealed": js.concealed,
            "target_ms": m.jitter.target_delay * 1000,
        }
    for t in (recv_t, send_t, relay_t):
        if t is not None:
            t.close()
    return {"counts": counts, "buffers": stats}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("bench", "inner"), default="bench")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--relay", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.role == "inner":
        print(json.dumps(asyncio.run(inner(args.seconds, args.relay, args.seed))))
        return
    ns = f"dialtone-bench-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        tc = sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", *NETEM,
                check=False)
        relay = tc.returncode != 0
        how = ("user-space relay (tc netem unavailable: " + tc.stderr.strip() + ")") if relay \
            else "tc " + " ".join(NETEM)
        print(f"impairment: {how}", flush=True)
        cmd = ["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).resolve()),
               "--role", "inner", "--seconds", str(args.seconds), "--seed", str(args.seed)]
        if relay:
            cmd.append("--relay")
        res = json.loads(sh(*cmd).stdout)
    finally:
        sh("ip", "netns", "del", ns, check=False)
    c = res["counts"]
    print(f"sent {c['sent']} received {c['received']} (network loss "
          f"{1 - c['received'] / max(1, c['sent']):.1%})")
    rows = []
    for name, s in res["buffers"].items():
        ratio = s["added_delay_median_ms"] / s["jitter_ms"]
        rows.append((name, s, ratio))
        print(f"{name:38s} J {s['jitter_ms']:5.1f} ms  added delay median "
              f"{s['added_delay_median_ms']:5.1f} ms (p95 {s['added_delay_p95_ms']:5.1f}) "
              f"= {ratio:.2f} x J  late loss {s['late_loss']:.2%}  concealed {s['concealed']}")
    if args.no_write:
        return
    load = os.getloadavg()[0]
    lines = [
        "## Jitter buffer under ~30 ms jitter and 5 % loss",
        "",
        (f"Command: `.venv/bin/python benchmarks/bench_jitter_netem.py --seconds {args.seconds:g}` "
        f"(as root; 1-minute load {load:.2f})  "),
        (f"Namespace `dialtone-bench-<pid>`, impairment: {how}; delay N({MEAN_MS:g} ms, "
        f"{SIGMA_MS:g} ms) clipped at 0, {LOSS:.0%} loss, PCMU 50 pps for {args.seconds:g} s "
        f"(first 5 s not measured).  Sent {c['sent']}, received {c['received']}.  All buffers "
        "saw the same packets at the same times (one receiver feeds them all).  Added delay "
        "runs from a packet's arrival to the tick that plays it, so it includes the wait for "
        "the 20 ms tick (10 ms on average)."),
        "",
        ("| JitterConfig | RFC 3550 J ms (mean over the run) | added delay median ms | p95 ms | median / J "
        "| late loss | concealed frames | goal (<= 2 J, < 1 %) |"),
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, s, ratio in rows:
        ok = ratio <= 2.0 and s["late_loss"] < 0.01
        lines.append(f"| {name} | {s['jitter_ms']:.1f} | {s['added_delay_median_ms']:.1f} | "
                     f"{s['added_delay_p95_ms']:.1f} | {ratio:.2f} | {s['late_loss']:.2%} | "
                     f"{s['concealed']} | {'met' if ok else 'not met'} |")
    lines.append("")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_media_capacity import write_section

    write_section(ROOT / "benchmarks" / "results" / "media.md", "## Jitter buffer under", lines)


if __name__ == "__main__":
    main()
