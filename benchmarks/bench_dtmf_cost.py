"""What the DTMF bank costs the mixer per channel, this tree against another (issue 17).

    .venv/bin/python benchmarks/bench_dtmf_cost.py --before DIR [--rounds 7]

``DIR`` holds another Dialtone tree (``git archive COMMIT | tar -x -C DIR``).  Each round
runs benchmarks/bench_dsp.py's streaming throughput (20 ms frames of recorded prompts and
music, 1, 100 and 1000 channels, process CPU time, single-threaded numpy) once for each
tree, each in a fresh process, alternating, so the two see the same load on a shared
machine; prints the medians and the after/before ratio of each round's pair.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import os, sys, json
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + "/benchmarks")
import numpy as np
import bench_dsp as B
speech, music = B.corpus()
audio = np.concatenate([B.load(f) for f in speech[:200]] + [B.load(music[0])])
print(json.dumps({{n: B.throughput(n, frames, audio)
                  for n, frames in ((1, 1500), (100, 300), (1000, 100))}}))
"""


def run(tree: Path) -> dict[str, float]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(tree))], env=env,
                         capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        b, a = run(args.before), run(ROOT)
        for n in b:
            r = rows.setdefault(n, {"before": [], "after": [], "ratio": []})
            r["before"].append(b[n])
            r["after"].append(a[n])
            r["ratio"].append(a[n] / b[n])
    print("| channels | before x real time | after x real time | after / before (median of pairs) |")
    print("|---|---|---|---|")
    for n, r in rows.items():
        print(f"| {n} | {statistics.median(r['before']):,.0f} | {statistics.median(r['after']):,.0f}"
              f" | {statistics.median(r['ratio']):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
