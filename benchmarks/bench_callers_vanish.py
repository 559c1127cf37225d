"""Callers that vanish at once (issue 12, finding 3): do all calls end, and free everything?

    .venv/bin/python benchmarks/bench_callers_vanish.py [--calls 500] [--two-way 500] [--runs 3]

In one process on loopback: Dialtone's UserAgent (the node) and ``--calls`` callers (one
SIP endpoint, one RTP socket as every call's SDP address, sending each call a packet every
100 ms; the node streams RTP back to ``--two-way`` of them).  When every call is up, the
callers' RTP stops at once with no BYE (a trunk outage); the node's media timeout (1 s) must
end every call.  Reported per run: setup time, seconds from the vanishing until the last
call ended (and the median call), descriptors (baseline, with calls, after), calls left
over, RTP datagrams received from the node in the second after everything ended.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostinfo import machine

from tests.conftest import free_port
from tests.vanish import VanishResult, VanishRig


async def one_run(calls: int, two_way: int, media_timeout: float) -> VanishResult:
    rig = VanishRig(calls, media_timeout=media_timeout, sip_port=free_port(),
                    caller_port=free_port(), rtp_base=32000, two_way=two_way)
    await rig.start()
    try:
        return await rig.run()
    finally:
        await rig.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--two-way", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--media-timeout", type=float, default=1.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"
                                         / "callers_vanish.md"))
    args = ap.parse_args()
    results = []
    for i in range(args.runs):
        r = asyncio.run(one_run(args.calls, args.two_way, args.media_timeout))
        results.append(r)
        print(f"run {i + 1}: {r.calls} calls up in {r.setup_s:.1f} s; ended {r.ended}, "
              f"left {r.left}; last end {max(r.end_after_vanish_s, default=0):.2f} s after "
              f"the vanishing; fds {r.fds_baseline} -> {r.fds_with_calls} -> {r.fds_after}; "
              f"RTP after end {r.rtp_after_end}; causes {r.causes}", flush=True)
    lines = ["## Defences: media: callers that vanish at once", "",
             (f"Command: `.venv/bin/python benchmarks/bench_callers_vanish.py --calls {args.calls} "
              f"--two-way {args.two_way} --runs {args.runs}`  "),
             f"Machine: {machine()} (shared with other work during this session)", "",
             (f"Media timeout {args.media_timeout} s; the node streams RTP to {args.two_way} of "
              f"the {args.calls} calls."), "",
             ("| run | calls up | setup s | median end s | last end s | ended | left | "
              "fds baseline | fds with calls | fds after | RTP after end |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(results, 1):
        ends = r.end_after_vanish_s or [float("nan")]
        lines.append(f"| {i} | {r.calls} | {r.setup_s:.1f} | {statistics.median(ends):.2f} | "
                     f"{max(ends):.2f} | {r.ended} | {r.left} | {r.fds_baseline} | "
                     f"{r.fds_with_calls} | {r.fds_after} | {r.rtp_after_end} |")
    lines.append("")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
