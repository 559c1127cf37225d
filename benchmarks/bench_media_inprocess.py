"""CPU per call leg per 20 ms tick of the media pipeline, in process (no sockets, no loop).

Run:  .venv/bin/python benchmarks/bench_media_inprocess.py [--legs 100,300,500] [--ticks 300]

What bench_media_capacity.py's server does per leg, minus the kernel: N
:class:`telephony.media.CallMedia` in one :class:`telephony.media.MediaMixer`, each
listening (VAD), in-band DTMF on and a prompt playing; every tick each leg receives one
PCMU packet (Asterisk speech with a DTMF digit every 8 s, as the capacity benchmark's
load generator sends) through ``receive_rtp``, then the mixer ticks and the events are
drained.  In a mixer ``receive_rtp`` only latches and queues the datagram: its parsing,
statistics and jitter-buffer work is done at the tick (telephony/rtp/rxbank.py), so the
"receive" column is the queueing and the "tick" column holds the rest.  Thread CPU time (``time.thread_time``), so other processes on the machine
barely move it; the median of ``--runs`` runs.  It isolates the Python cost per leg that
the capacity benchmark measures together with the sockets, and is quick enough to compare
two versions of the code.  Writes a section of benchmarks/results/media.md.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

WARM_TICKS = 50


def run(n: int, ticks: int) -> tuple[float, float, float]:
    """(receive, tick, tick p99) CPU microseconds per leg per tick for ``n`` legs."""
    from bench_media_capacity import load_speech

    from telephony.codecs.base import get_codec
    from telephony.media import CallMedia, MediaConfig, MediaMixer

    codec = get_codec("PCMU")
    audio = load_speech()
    coded = codec.encode(audio)
    frames = [coded[i:i + 160] for i in range(0, len(coded), 160)]
    mixer = MediaMixer()
    cfg = MediaConfig(media_timeout=0.0)
    prompt = np.tile(audio, 20)
    legs = []
    for i in range(n):
        m = CallMedia(cfg, now=0.0, rng=random.Random(i), remote=("127.0.0.1", 30000 + 2 * i))
        mixer.add(m)
        m.set_listening(True, now=0.0)
        m.play("bench", prompt, barge_in=False, now=0.0)
        legs.append(m)
    header = struct.Struct("!BBHII")
    addrs = [("127.0.0.1", 30000 + 2 * i) for i in range(n)]
    gc.collect()
    gc.freeze()
    rx_t: list[float] = []
    tick_t: list[float] = []
    for k in range(ticks + WARM_TICKS):
        now = k * 0.020
        packets = [header.pack(0x80, 0, k & 0xFFFF, (k * 160) & 0xFFFFFFFF, 0x1000 + i)
                   + frames[(i * 37 + k) % len(frames)] for i in range(n)]
        t0 = time.thread_time()
        for m, data, addr in zip(legs, packets, addrs):
            m.receive_rtp(data, addr, now=now + 0.003)
        t1 = time.thread_time()
        mixer.tick(now=now + 0.010)
        for m in legs:
            while m.next_event() is not None:
                pass
        t2 = time.thread_time()
        if k >= WARM_TICKS:
            rx_t.append(t1 - t0)
            tick_t.append(t2 - t1)
    gc.unfreeze()
    scale = 1e6 / n
    return (statistics.median(rx_t) * scale, statistics.median(tick_t) * scale,
            float(np.percentile(tick_t, 99)) * scale)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--legs", default="100,300,500")
    ap.add_argument("--ticks", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from bench_media_capacity import machine, write_section

    rows = []
    for n in (int(x) for x in args.legs.split(",")):
        runs = [run(n, args.ticks) for _ in range(args.runs)]
        rx = statistics.median(r[0] for r in runs)
        tick = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        rows.append((n, rx, tick, p99))
        print(f"{n:5d} legs: receive {rx:5.1f} + tick {tick:5.1f} = {rx + tick:5.1f} us CPU "
              f"per leg per tick (tick p99 {p99:5.1f})", flush=True)
    if args.no_write:
        return
    lines = [
        "## Media pipeline in process: CPU per leg per tick (no sockets)",
        "",
        (f"Command: `.venv/bin/python benchmarks/bench_media_inprocess.py --legs {args.legs} "
         f"--ticks {args.ticks} --runs {args.runs}`  "),
        (f"Machine: {machine()}.  Thread CPU time, median of {args.runs} runs of {args.ticks} "
         "ticks.  Every leg listening (VAD), in-band DTMF on, a prompt playing, one PCMU "
         "packet received per tick (what bench_media_capacity.py's server does, minus sockets "
         "and the event loop)."),
        "",
        "| legs | receive us | tick us | total us per leg per tick | tick p99 us |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {rx:.1f} | {tick:.1f} | {rx + tick:.1f} | {p99:.1f} |"
              for n, rx, tick, p99 in rows]
    lines.append("")
    write_section(ROOT / "benchmarks" / "results" / "media.md",
                  "## Media pipeline in process", lines)


if __name__ == "__main__":
    main()
