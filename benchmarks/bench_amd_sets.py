"""AMD decision rules on the labelled sets (issues 14 and 17): accuracy and how soon a live
answer is called human, for AmdConfig variants side by side.

    .venv/bin/python benchmarks/bench_amd_sets.py [--config NAME=JSON ...]

Sets: issue 17's (``audio_fixtures/gen_detector_set.py``, seed 17, 40 live answers and 40
machines, a third of them "Hello. ... You've reached ..."), and ``gen_dsp.py``'s tuning
(320) and held-out (200) sets, as ``bench_detectors.py`` and ``bench_dsp.py`` build them.
Each file goes through ``classify_recording`` (the streaming detector, a late machine
revising a human verdict).  Figures per set: correct final verdicts, live answers called
machine, machines called live, human verdicts revised by the late-machine watch, and the
first human verdict's time after the end of the live greeting (median, p90).

Default configurations: ``before`` (no short-utterance rule: 600 ms of silence after any
opening) and ``after`` (AmdConfig's defaults).  Writes benchmarks/results/amd_sets.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks"), str(REPO / "audio_fixtures")]

from hostinfo import machine

from telephony.dsp.amd import AmdConfig, classify_recording


def load_sets() -> dict[str, list[tuple[np.ndarray, dict[str, Any]]]]:
    import bench_dsp
    import gen_detector_set
    import gen_dsp
    tuned, held = bench_dsp.load_set(gen_dsp, False)
    return {"issue 17 (seed 17)": gen_detector_set.amd_set(17, 40),
            "gen_dsp tuning": tuned, "gen_dsp held-out": held}


def evaluate(cfg: AmdConfig, items: list[tuple[np.ndarray, dict[str, Any]]]) -> dict[str, Any]:
    ok = h2m = m2h = late = 0
    delays: list[int] = []
    for x, meta in items:
        r = classify_recording(x, cfg)
        label = meta["label"]
        ok += r.result == label
        first = r.first_result or r.result
        late += first != r.result
        if label == "human":
            h2m += r.result == "machine"
            if first == "human":
                delays.append((r.first_decision_ms or r.decision_ms) - int(meta["speech_end_ms"]))
        else:
            m2h += r.result == "human"
    return {"n": len(items), "correct": ok, "live_called_machine": h2m,
            "machine_called_live": m2h, "late_machine": late,
            "live_p50_ms": float(np.median(delays)) if delays else None,
            "live_p90_ms": float(np.percentile(delays, 90)) if delays else None}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", action="append", default=[],
                    help='NAME=JSON of AmdConfig fields, e.g. s300=\'{"short_greeting_silence_ms": 300}\'')
    args = ap.parse_args()
    configs = {"before": AmdConfig(short_greeting_ms=0), "after": AmdConfig()}
    for spec in args.config:
        name, _, js = spec.partition("=")
        configs[name] = AmdConfig(**json.loads(js))
    sets = load_sets()
    res: dict[str, Any] = {"machine": machine(), "results": {}}
    lines = ["# AMD decision rules on the labelled sets", "",
             "`" + " ".join([".venv/bin/python", "benchmarks/bench_amd_sets.py",
                             *sys.argv[1:]]) + "`",
             "", f"Machine: {res['machine']}.", "",
             ("| set | config | correct | live called machine | machine called live | "
             "late machine | live decision p50 / p90 (ms after the greeting) |"),
             "|---|---|---|---|---|---|---|"]
    for set_name, items in sets.items():
        for name, cfg in configs.items():
            r = evaluate(cfg, items)
            res["results"][f"{set_name} / {name}"] = r
            print(set_name, name, json.dumps(r), flush=True)
            lines.append(f"| {set_name} | {name} | {r['correct']} / {r['n']} | "
                         f"{r['live_called_machine']} | {r['machine_called_live']} | "
                         f"{r['late_machine']} | {r['live_p50_ms']} / {r['live_p90_ms']} |")
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "amd_sets.json").write_text(json.dumps(res, indent=2))
    (out / "amd_sets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
