"""RTP media building blocks: parse/serialize rate, batched G.711, jitter buffer quality.

Run:  .venv/bin/python benchmarks/bench_rtp.py  [--quick]
Prints the figures and writes benchmarks/results/rtp.md.  Everything runs on a
virtual clock in one process (about a minute); the netem variant (real UDP on
loopback with ``tc qdisc ... netem delay 40ms 30ms loss 5%``) is for the lead.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostinfo import machine

from telephony.codecs.base import get_codec
from telephony.rtp.cn import ComfortNoise
from telephony.rtp.jitter import FrameKind, JitterBuffer, JitterConfig
from telephony.rtp.packet import RtpPacket
from telephony.rtp.stream import RtpReceiveStats, RtpSender

RESULTS = Path(__file__).resolve().parent / "results" / "rtp.md"




def median_rate(fn, n: int, runs: int) -> float:
    """Median over ``runs`` of n / seconds for ``fn(n)``."""
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(n)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


# -- 1. packets -------------------------------------------------------------------------------


def bench_packets(runs: int, n: int) -> dict[str, float]:
    payload = bytes(range(160))
    data = RtpPacket(
        payload_type=0, sequence_number=1, timestamp=160, ssrc=0x1234, payload=payload
    ).serialize()
    assert len(data) == 172
    parse = RtpPacket.parse
    pkt = parse(data)
    serialize = pkt.serialize

    def do_parse(k: int) -> None:
        for _ in range(k):
            parse(data)

    def do_serialize(k: int) -> None:
        for _ in range(k):
            serialize()

    sender = RtpSender(0, rng=random.Random(1))
    packetize = sender.packetize

    def do_packetize(k: int) -> None:
        for _ in range(k):
            packetize(payload, timestamp_advance=160)

    return {
        "parse": median_rate(do_parse, n, runs),
        "serialize": median_rate(do_serialize, n, runs),
        "packetize": median_rate(do_packetize, n, runs),
    }


# -- 2. G.711 ---------------------------------------------------------------------------------


def bench_g711(runs: int) -> list[tuple[str, int, float, float]]:
    rng = np.random.default_rng(1)
    rows = []
    for name in ("PCMU", "PCMA"):
        codec = get_codec(name)
        for calls in (1, 100, 1000):
            pcm = rng.integers(-20000, 20000, size=(calls, 160), dtype=np.int16)
            ticks = max(20, 20000 // calls)

            def batched(k: int, pcm=pcm, codec=codec) -> None:
                for _ in range(k):
                    codec.decode_batch(codec.encode_batch(pcm))

            def looped(k: int, pcm=pcm, codec=codec) -> None:
                for _ in range(k):
                    for row in pcm:
                        codec.decode(codec.encode(row))

            b = median_rate(batched, ticks, runs) * calls
            loop = median_rate(looped, max(2, ticks // 10), runs) * calls
            rows.append((name, calls, b, loop))
    return rows


# -- 3. jitter buffer -------------------------------------------------------------------------


@dataclass
class JitterResult:
    name: str
    estimator: str
    jitter_ms: float
    added_ms: float
    late_pct: float
    loss_pct: float
    concealed_pct: float
    adjustments: int
    us_per_frame: float


def _speech(n_frames: int) -> list[bytes]:
    """G.711 frames of a tone that talks for 1.6 s then is quiet for 0.4 s."""
    codec = get_codec("PCMU")
    t = np.arange(n_frames * 160) / 8000
    talking = (t % 2.0) < 1.6
    sig = np.where(talking, 6000 * np.sin(2 * np.pi * 220 * t), 30 * np.sin(2 * np.pi * 50 * t))
    pcm = sig.astype(np.int16)
    return [codec.encode(pcm[i * 160 : (i + 1) * 160]) for i in range(n_frames)]


def simulate(
    name: str,
    delay_fn,
    *,
    estimator: str,
    dtx: bool,
    seconds: float = 60.0,
    loss: float = 0.05,
    seed: int = 1,
) -> JitterResult:
    rng = random.Random(seed)
    n = int(seconds / 0.02)
    frames = _speech(n)
    sender = RtpSender(0, rng=random.Random(seed))
    arrivals: list[tuple[float, int, bytes]] = []
    sent = 0
    was_quiet = False
    for k in range(n):
        quiet = (k * 0.02) % 2.0 >= 1.6
        if dtx and quiet:
            if not was_quiet:  # one CN packet starts the silence (RFC 3389)
                data = sender.packetize(
                    ComfortNoise(60).serialize(), timestamp_advance=160, payload_type=13
                )
            else:
                sender.advance(160)
                was_quiet = quiet
                continue
        else:
            data = sender.packetize(
                frames[k], timestamp_advance=160, marker=dtx and was_quiet and not quiet
            )
        was_quiet = quiet
        sent += 1
        if rng.random() < loss:
            continue
        arrivals.append((k * 0.02 + delay_fn(rng), k, data))
    arrivals.sort()
    jb = JitterBuffer(JitterConfig(estimator=estimator, seed=seed))
    stats = RtpReceiveStats(probation=0)
    arrival_of: dict[int, float] = {}
    waits: list[float] = []
    jitter_samples: list[float] = []
    i = 0
    work = 0.0
    for tick in range(n + 25):
        now = 0.0037 + 0.02 * tick
        t0 = time.perf_counter()
        while i < len(arrivals) and arrivals[i][0] <= now:
            at, _, data = arrivals[i]
            pkt = RtpPacket.parse(data)
            stats.update(pkt, now=at)
            jitter_samples.append(stats.jitter_ms)
            jb.put(pkt, now=at)
            arrival_of[pkt.timestamp] = at
            i += 1
        frame = jb.get(now=now)
        work += time.perf_counter() - t0
        if frame.kind is FrameKind.AUDIO and frame.timestamp in arrival_of:
            waits.append(now - arrival_of[frame.timestamp])
    s = jb.stats
    audio_sent = sum(1 for a in arrivals if a[2][1] & 0x7F == 0)
    return JitterResult(
        name=name,
        estimator=estimator,
        jitter_ms=statistics.fmean(jitter_samples),
        added_ms=1000 * statistics.fmean(waits),
        late_pct=100 * s.late / max(1, audio_sent),
        loss_pct=100 * (sent - len(arrivals)) / sent,
        concealed_pct=100 * s.concealed / max(1, s.played + s.concealed),
        adjustments=s.dropped_frames + s.inserted_frames,
        us_per_frame=1e6 * work / (n + 25),
    )


def bench_jitter(seconds: float) -> list[JitterResult]:
    scenarios = {
        "normal: 80 ms + N(0, 30 ms)": lambda r: max(0.005, 0.08 + r.gauss(0, 0.03)),
        "exponential: 40 ms + Exp(mean 30 ms)": lambda r: 0.04 + r.expovariate(1 / 0.03),
        "uniform: 40 ms + U(0, 60 ms)": lambda r: 0.04 + r.uniform(0, 0.06),
    }
    out = []
    for name, fn in scenarios.items():
        for estimator in ("quantile", "jitter"):
            out.append(simulate(name, fn, estimator=estimator, dtx=False, seconds=seconds))
        out.append(simulate(name + ", DTX+CN", fn, estimator="quantile", dtx=True, seconds=seconds))
    return out


# -- report -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = ap.parse_args()
    runs = 3 if args.quick else 5
    n = 100_000 if args.quick else 300_000
    seconds = 20.0 if args.quick else 60.0
    host = machine()
    print(f"machine: {host}")

    pk = bench_packets(runs, n)
    print(
        f"RTP 172-byte packet: parse {pk['parse'] / 1e6:.2f} M/s, serialize "
        f"{pk['serialize'] / 1e6:.2f} M/s, RtpSender.packetize {pk['packetize'] / 1e6:.2f} M/s"
    )
    g = bench_g711(runs)
    for name, calls, b, loop in g:
        print(
            f"{name} encode+decode, {calls:4d} calls: batched {b / 1e3:8.1f} k frames/s, "
            f"per-call loop {loop / 1e3:8.1f} k frames/s (x{b / loop:.1f})"
        )
    jr = bench_jitter(seconds)
    for r in jr:
        print(
            f"{r.name:45s} {r.estimator:8s} J={r.jitter_ms:5.1f} ms added={r.added_ms:5.1f} ms "
            f"(x{r.added_ms / r.jitter_ms:.2f}) late={r.late_pct:.2f}% "
            f"concealed={r.concealed_pct:.1f}% adj={r.adjustments} {r.us_per_frame:.1f} us/frame"
        )

    lines = [
        "## RTP media path (telephony.rtp, telephony.codecs)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_rtp.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {host} (shared with other jobs; figures are medians of {runs} runs)",
        "",
        "### Packets (one core, 172-byte G.711 packet)",
        "",
        "| operation | rate | goal |",
        "|---|---|---|",
        f"| `RtpPacket.parse` | {pk['parse'] / 1e6:.2f} M/s | >= 3 M/s |",
        f"| `RtpPacket.serialize` | {pk['serialize'] / 1e6:.2f} M/s | |",
        f"| `RtpSender.packetize` | {pk['packetize'] / 1e6:.2f} M/s | |",
        "",
        "### G.711 encode + decode of 20 ms frames (160 samples)",
        "",
        "| codec | calls per batch | batched frames/s | per-call loop frames/s | ratio |",
        "|---|---|---|---|---|",
    ]
    for name, calls, b, loop in g:
        lines.append(f"| {name} | {calls} | {b:,.0f} | {loop:,.0f} | x{b / loop:.1f} |")
    lines += [
        "",
        (
            "### Jitter buffer on a virtual clock (5 % random loss, 20 ms ticks, "
            f"{seconds:.0f} s of talk 1.6 s / quiet 0.4 s)"
        ),
        "",
        (
            "J is the RFC 3550 interarrival jitter measured on the same arrivals (RtpReceiveStats, "
            "averaged over the run); *added* is the "
            "mean time a played packet waited in the buffer (playout minus arrival, so it includes "
            "up to one 20 ms tick of phase); *late* is packets that arrived after their slot "
            "was played, as a share of audio packets received; *adj* is frames dropped or "
            "inserted in quiet moments to follow the target."
        ),
        "",
        (
            "| delay distribution | estimator | J ms | added ms | added / J | late % | concealed % "
            "| adj | us per frame |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in jr:
        lines.append(
            f"| {r.name} | {r.estimator} | {r.jitter_ms:.1f} | {r.added_ms:.1f} | "
            f"{r.added_ms / r.jitter_ms:.2f} | {r.late_pct:.2f} | {r.concealed_pct:.1f} | "
            f"{r.adjustments} | {r.us_per_frame:.1f} |"
        )
    lines += [
        "",
        (
            "Goal: added delay <= 2 x J with late loss < 1 %.  `quantile` (the default) targets the "
            "99th percentile of the last 256 transit times; `jitter` targets 2.5 x J above the "
            "mean transit.  *us per frame* is parse + stats + put + get per call per 20 ms."
        ),
        "",
        (
            "Reading: with a light-tailed delay (uniform) the default estimator meets the goal "
            "(added about 1.6 x J, no late loss).  With Gaussian delay, 1 % late loss needs the "
            "99th percentile, 2.33 sigma above the mean, while J is about 1.13 sigma (less when "
            "packets reorder), so added >= 2.1 x J before the tick phase; with exponential delay "
            "the 99th percentile is 4.6 x the mean above the minimum while J is about the mean.  "
            "There the 2 x J goal and < 1 % late loss cannot both hold: `quantile` keeps late "
            "loss under 1 % at 2.4-3.8 x J, `jitter` (k = 2.5) keeps the delay lower at up to "
            "~3 % late loss.  `JitterConfig(estimator=..., quantile=..., jitter_factor=...)` "
            "chooses."
        ),
        "",
        (
            "Packet rates vary by about +-30 % between runs on this shared 2-core machine "
            "(other jobs running); the parse rate measured 2.0-3.1 M/s over three full runs."
        ),
        "",
        (
            "The netem variant (real sockets on loopback under "
            "`tc qdisc add dev lo root netem delay 40ms 30ms distribution normal loss 5%`) "
            "needs root and the asyncio glue, so it is left to the lead."
        ),
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
