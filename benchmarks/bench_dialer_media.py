"""The dialer's media per answered call per 20 ms tick, in process: AMD listening, nothing to play.

Run:  taskset -c 0 .venv/bin/python benchmarks/bench_dialer_media.py [--calls 300,480]
      [--modes silence+dtmf,suppress+dtmf,suppress] [--ticks 250] [--runs 3] [--profile]

What the dialer's media engine does for a call while AMD listens (issue 14): every tick each
call receives one PCMU packet of a recorded greeting (``receive_rtp``, as the engine's socket
callback does), the mixer ticks (batched receive, DTMF, a recording tap per call as the AMD
tap is) and what it returns is sent with one ``sendto`` per packet on the call's own UDP
socket (to a sink socket on 127.0.0.1 that nobody reads; the kernel drops what overflows).
The AMD bank itself is left out (bench_amd_bank.py measures it).  A mode is the
call's ``MediaConfig.idle_tx`` (``silence``: a packet every tick, what every call sent before
issue 14's media work; ``suppress``: the dialer's default now), ``+dtmf`` with in-band DTMF
detection on (before: on for every call; now only a message campaign's calls).  Thread CPU time per call per
tick, median of ``--runs`` runs; ``--profile`` prints a cProfile of one run instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

WARM_TICKS = 50



def run(n: int, ticks: int, mode: str) -> tuple[float, float, float, float]:
    """(receive, tick, send, packets sent per call per tick) for ``n`` calls, µs per call."""
    from bench_media_capacity import load_speech

    from telephony.codecs.base import get_codec
    from telephony.media import CallMedia, MediaConfig, MediaMixer, Recording

    class Tap(Recording):
        def add(self, rx: object, tx: object, speech: bool) -> None:
            self.frames = getattr(self, "frames", 0) + 1

    codec = get_codec("PCMU")
    coded = codec.encode(load_speech())
    frames = [coded[i:i + 160] for i in range(0, len(coded) - 160, 160)]
    mixer = MediaMixer()
    idle_tx, _, dtmf = mode.partition("+")
    cfg = MediaConfig(media_timeout=0.0, idle_tx=idle_tx, inband_dtmf=dtmf == "dtmf")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink_addr = sink.getsockname()
    legs, socks = [], []
    for i in range(n):
        m = CallMedia(cfg, now=0.0, rng=random.Random(i), remote=sink_addr)
        mixer.add(m)
        m.attach_recording(Tap(0.0))
        legs.append(m)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    by_media = dict(zip(legs, socks))
    header = struct.Struct("!BBHII")
    gc.collect()
    gc.freeze()
    rx_t: list[float] = []
    tick_t: list[float] = []
    tx_t: list[float] = []
    sent = 0
    for k in range(ticks + WARM_TICKS):
        now = k * 0.020
        packets = [header.pack(0x80, 0, k & 0xFFFF, (k * 160) & 0xFFFFFFFF, 0x1000 + i)
                   + frames[(i * 37 + k) % len(frames)] for i in range(n)]
        t0 = time.thread_time()
        for m, data in zip(legs, packets):
            m.receive_rtp(data, sink_addr, now=now + 0.003)
        t1 = time.thread_time()
        out = mixer.tick(now=now + 0.010)
        for m in legs:
            while m.next_event() is not None:
                pass
        t2 = time.thread_time()
        for m, data, addr in out:
            try:
                by_media[m].sendto(data, addr)
            except BlockingIOError:
                pass
        t3 = time.thread_time()
        if k >= WARM_TICKS:
            rx_t.append(t1 - t0)
            tick_t.append(t2 - t1)
            tx_t.append(t3 - t2)
            sent += len(out)
    gc.unfreeze()
    for s in socks:
        s.close()
    sink.close()
    scale = 1e6 / n
    return (statistics.median(rx_t) * scale, statistics.median(tick_t) * scale,
            statistics.median(tx_t) * scale, sent / n / ticks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", default="300,480")
    ap.add_argument("--modes", default="silence+dtmf,suppress+dtmf,suppress")
    ap.add_argument("--ticks", type=int, default=250)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("sort", nargs="?", default="tottime", choices=("tottime", "cumulative"))
    args = ap.parse_args()
    if args.profile:
        n = int(args.calls.split(",")[0])
        mode = args.modes.split(",")[0]
        prof = cProfile.Profile()
        prof.enable()
        run(n, args.ticks, mode)
        prof.disable()
        pstats.Stats(prof).sort_stats(sys.argv[-1] if sys.argv[-1] in ("tottime", "cumulative") else "tottime").print_stats(45)
        return
    print("| calls | mode | receive µs | tick µs | send µs | total µs per call per tick "
          "| packets out per call per tick |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.calls.split(",")):
        for mode in args.modes.split(","):
            runs = [run(n, args.ticks, mode) for _ in range(args.runs)]
            rx, tick, tx = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"| {n} | {mode} | {rx:.1f} | {tick:.1f} | {tx:.1f} | {rx + tick + tx:.1f} "
                  f"| {runs[0][3]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
