"""Dialer pacing figures: talk minutes per agent-hour and abandonment per strategy.

    .venv/bin/python benchmarks/bench_dialer_pacing.py [--seeds 5] [--jobs 1] [--quick]

Runs the simulator (dialer.simulate, the same pacer objects as the engine) on the
reference population of issue 13 and on varied ones, for progressive, Vicidial's adaptive
modes and predictive, with the same seeds (so the same dial outcomes, dial by dial) for
every strategy.  Quotes medians over seeds, the worst abandonment of any run, and the
wall time of a simulated 8-hour 20-agent day.  Writes
benchmarks/results/dialer_pacing_tables.md (the section's commentary, with the headline
figures, is benchmarks/results/dialer_pacing.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hostinfo import machine

from dialer.population import ModelledPopulation, PopulationModel
from dialer.simulate import SimConfig, simulate

RESULTS = REPO / "benchmarks" / "results" / "dialer_pacing_tables.md"
STRATEGIES = ("progressive", "adaptive:HARD_LIMIT", "adaptive:AVERAGE", "adaptive:TAPERED",
              "predictive")

# name -> (team/rules overrides, population overrides, description)
POPULATIONS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "reference": ({}, {}, ("20 agents, wrap 10 s, 8 h; 25% human, 20% machine, 6% busy, "
                  "4% failed; talk log-normal mean 120 s sigma 0.8; AMD fp 1.5%, fn 5%")),
    "team-5": ({"agents": 5}, {}, "reference, 5 agents"),
    "team-50": ({"agents": 50}, {}, "reference, 50 agents"),
    "team-200": ({"agents": 200}, {}, "reference, 200 agents"),
    "talk-30s": ({}, {"talk_mean": 30.0, "talk_sigma": 1.0},
                 "reference, talk mean 30 s sigma 1.0"),
    "talk-10min": ({}, {"talk_mean": 600.0, "talk_sigma": 1.2},
                   "reference, talk mean 600 s sigma 1.2 (heavy tail)"),
    "answer-5%": ({}, {"answer_rate": 0.05}, "reference, 5% human"),
    "answer-50%": ({}, {"answer_rate": 0.50}, "reference, 50% human"),
    "list-worsening": ({}, {"answer_rate": 0.35, "answer_rate_end": 0.10},
                       "reference, human share 35% falling to 10% over the day"),
}


def run_one(job: tuple[str, str, int, float]) -> dict[str, Any]:
    name, pacing, seed, hours = job
    team, pop, _ = POPULATIONS[name]
    config = SimConfig(pacing=pacing, hours=hours, **team)
    model = PopulationModel(hours=hours, **pop)
    t0 = time.perf_counter()
    summary = simulate(config, ModelledPopulation(model, seed=seed)).summary()
    summary["wall_s"] = time.perf_counter() - t0
    summary["population"] = name
    summary["seed"] = seed
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds for the reference (5)")
    ap.add_argument("--other-seeds", type=int, default=3, help="seeds elsewhere (3)")
    ap.add_argument("--jobs", type=int, default=1, help="processes (1: the machine is shared)")
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--quick", action="store_true", help="reference only")
    args = ap.parse_args()

    names = ["reference"] if args.quick else list(POPULATIONS)
    jobs = [(name, pacing, seed, args.hours) for name in names for pacing in STRATEGIES
            for seed in range(1, 1 + (args.seeds if name == "reference" else args.other_seeds))]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with Pool(args.jobs) as pool:
            results = pool.map(run_one, jobs)
    else:
        results = [run_one(j) for j in jobs]
    total = time.perf_counter() - t0

    def pick(name: str, pacing: str) -> list[dict[str, Any]]:
        return sorted((r for r in results if r["population"] == name and r["pacing"] == pacing),
                      key=lambda r: r["seed"])

    lines = [f"Machine: {machine()}; 2 vCPU shared with other work during this session.",
             (f"Command: `.venv/bin/python benchmarks/bench_dialer_pacing.py --seeds {args.seeds}"
             f" --other-seeds {args.other_seeds} --jobs {args.jobs}` ({total:.0f} s in all)."),
             ("Medians over seeds; the same seeds (the same outcome for the k-th dial) for "
             "every strategy. Abandonment = abandoned humans (AMD false positives included) / "
             "humans answered; cap 3%."), ""]
    verdicts: list[str] = []
    for name in names:
        _, _, desc = POPULATIONS[name]
        lines += [f"### {name}: {desc}", "",
                  ("| strategy | talk min / agent-h | abandon % (median, max) | occupancy % "
                  "| agent wait s | calls placed |"),
                  "|---|---:|---:|---:|---:|---:|"]
        med: dict[str, float] = {}
        for pacing in STRATEGIES:
            rs = pick(name, pacing)
            tpm = statistics.median(r["talk_min_per_agent_hour"] for r in rs)
            med[pacing] = tpm
            ab = [100 * r["abandon_rate"] for r in rs]
            lines.append(
                f"| {pacing} | {tpm:.1f} | {statistics.median(ab):.2f}, {max(ab):.2f} | "
                f"{100 * statistics.median(r['occupancy'] for r in rs):.1f} | "
                f"{statistics.median(r['agent_wait_s_mean'] for r in rs):.1f} | "
                f"{statistics.median(r['calls_placed'] for r in rs):,.0f} |")
        best_adaptive = max(v for k, v in med.items() if k.startswith("adaptive"))
        pred, prog = med["predictive"], med["progressive"]
        paired = all(p["talk_min_per_agent_hour"] >= q["talk_min_per_agent_hour"]
                     for p, q in zip(pick(name, "predictive"), pick(name, "progressive"),
                                     strict=True))
        worst = max(100 * r["abandon_rate"] for r in pick(name, "predictive"))
        worst24 = max(100 * r["abandon_rate_max_24h"] for r in pick(name, "predictive"))
        prog24 = max(100 * r["abandon_rate_max_24h"] for r in pick(name, "progressive"))
        lines += ["", (f"predictive vs best adaptive: {100 * (pred / best_adaptive - 1):+.1f}%; "
                  f"vs progressive: {100 * (pred / prog - 1):+.1f}%; predictive >= progressive "
                  f"in every seed: {'yes' if paired else 'NO'}; worst predictive abandonment "
                  f"{worst:.2f}%"), ""]
        verdicts.append(f"| {name} | {pred:.1f} | {prog:.1f} | {best_adaptive:.1f} | "
                        f"{100 * (pred / best_adaptive - 1):+.1f}% | "
                        f"{100 * (pred / prog - 1):+.1f}% | {worst:.2f}% | "
                        f"{worst24:.2f}% ({prog24:.2f}%) | "
                        f"{'yes' if paired else 'NO'} |")
    day = [r["wall_s"] for r in results if r["population"] == "reference"
           and r["pacing"] == "predictive"]
    summary = [("| population | predictive | progressive | best adaptive | vs adaptive "
               "| vs progressive | worst abandon (predictive) | worst rolling 24 h, hourly "
               "(progressive) | predictive >= progressive every seed |"),
               "|---|---:|---:|---:|---:|---:|---:|---:|---|", *verdicts, "",
               (f"Simulator speed: an {args.hours:g}-hour 20-agent day with predictive pacing "
               f"takes {statistics.median(day):.2f} s wall (median of {len(day)}; "
               f"max {max(day):.2f} s) on this shared machine."), ""]
    text = "\n".join(["### Dialer pacing: every population (written by bench_dialer_pacing.py)", "", *lines[:4],
                      *summary, *lines[4:]])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
