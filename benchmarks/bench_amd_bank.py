"""AMD CPU per call per 20 ms frame: one AmdDetector per call against one AmdBank for all.

    taskset -c 0 .venv/bin/python benchmarks/bench_amd_bank.py [--frames 150] [--runs 3]

The calls play the machine greetings of the generated labelled set
(``audio_fixtures/gen_dsp.py``, built in memory), each starting at its own offset; the
bank is fed every call's frame, then runs one pass (what the dialer engine does once per
media tick).  Process CPU time, median of ``--runs``.  Writes
benchmarks/results/amd_bank.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from hostinfo import machine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from telephony.dsp.amd import FRAME, AmdDetector
from telephony.dsp.amdbank import AmdBank


def greetings(n: int) -> list[np.ndarray]:
    spec = importlib.util.spec_from_file_location("gen_dsp", REPO / "audio_fixtures" / "gen_dsp.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        x, _meta = gen.machine(rng)
        out.append(np.asarray(gen.through_mulaw(x + gen.line_noise(rng, len(x))), np.int16))
    return out


def per_frame_us(calls: list[np.ndarray], frames: int, *, bank: bool) -> float:
    n = len(calls)
    if bank:
        b = AmdBank()
        chs = [b.open() for _ in range(n)]
        t0 = time.process_time()
        for k in range(frames):
            for ch, x in zip(chs, calls):
                b.feed(ch, x[k * FRAME:(k + 1) * FRAME])
            b.process()
    else:
        dets = [AmdDetector() for _ in range(n)]
        t0 = time.process_time()
        for k in range(frames):
            for d, x in zip(dets, calls):
                d.process(x[k * FRAME:(k + 1) * FRAME])
    return (time.process_time() - t0) / frames / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    material = greetings(40)
    need = args.frames * FRAME
    rows = []
    for n in (1, 50, 150, 300, 500):
        # every call at its own offset into a greeting (calls answered at different times)
        calls = []
        for i in range(n):
            x = material[i % len(material)]
            x = np.concatenate([x, x])
            off = (i * 37 * FRAME) % max(FRAME, len(x) - need)
            calls.append(x[off:off + need])
        det = statistics.median(per_frame_us(calls, args.frames, bank=False)
                                for _ in range(args.runs)) if n <= 150 else None
        bnk = statistics.median(per_frame_us(calls, args.frames, bank=True)
                                for _ in range(args.runs))
        rows.append((n, det, bnk))
        print(n, det, bnk, flush=True)
    lines = ["# AMD CPU per call per 20 ms frame", "",
             f"`taskset -c 0 .venv/bin/python benchmarks/bench_amd_bank.py {' '.join(sys.argv[1:])}`",
             "", f"Machine: {machine()} (shared with other work during the run).", "",
             "| calls | one AmdDetector per call (us) | AmdBank (us) | bank, ms per tick | bank, share of a core |",
             "|---|---|---|---|---|"]
    for n, det, bnk in rows:
        lines.append(f"| {n} | {'-' if det is None else f'{det:.1f}'} | {bnk:.1f} | "
                     f"{bnk * n / 1000:.2f} | {bnk * n / 20000:.1%} |")
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "amd_bank.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
