"""The long SIP fuzz run: the CI fuzz and loss tests with large example counts.

    .venv/bin/python benchmarks/fuzz_sip.py [--fuzz-examples 20000] [--loss-examples 3000]
                                            [--minutes 10] [--chunk-fuzz 5000] [--seed 1]

CI runs tests/unit/test_sip_message_fuzz.py (parser on random and mutated bytes, a fresh
endpoint and an endpoint in the middle of a call: only typed errors leave the parser, nothing
leaves the endpoint) and tests/unit/test_sip_loss.py (a call completes over a lossy,
reordering, duplicating link) with a few hundred examples.  This script runs the same tests
through pytest with ``SIP_FUZZ_EXAMPLES`` / ``SIP_LOSS_EXAMPLES`` raised, in chunks with
distinct ``--hypothesis-seed`` values so that the ``--minutes`` budget is honoured between
chunks, and stops at the first failure.  It prints examples/s and the outcome and writes
benchmarks/results/fuzz.md (command, machine, counts, wall time, failures found).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hostinfo import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fuzz.md"

_COUNTS = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid test cases")
_TEST = re.compile(r"^(tests/\S+::\S+):$")
_PHASE = re.compile(r"during \w+ phase \(([\d.]+) seconds\)")
_STOP = re.compile(r"^\s*- Stopped because (.+)$")


@dataclass(frozen=True, slots=True)
class Target:
    """One test file and the environment variable that sets its examples per test."""

    name: str
    path: str
    env: str


TARGETS = (
    Target("parser + endpoint fuzz", "tests/unit/test_sip_message_fuzz.py", "SIP_FUZZ_EXAMPLES"),
    Target("call under loss", "tests/unit/test_sip_loss.py", "SIP_LOSS_EXAMPLES"),
)


@dataclass(slots=True)
class TestTally:
    """Examples hypothesis ran for one test, summed over chunks."""

    passing: int = 0
    failing: int = 0
    invalid: int = 0
    seconds: float = 0.0
    """Time hypothesis reports for its phases (pytest start-up excluded)."""
    stopped: set[str] = field(default_factory=set)


@dataclass(slots=True)
class TargetRun:
    """The outcome of one target over all its chunks."""

    target: Target
    requested: int
    done_per_test: int = 0
    wall: float = 0.0
    seeds: list[int] = field(default_factory=list)
    tests: dict[str, TestTally] = field(default_factory=dict)
    failure: str | None = None
    budget_hit: bool = False

    @property
    def examples(self) -> int:
        return sum(t.passing + t.failing for t in self.tests.values())




def parse_statistics(output: str, run: TargetRun) -> None:
    """Add hypothesis's ``--hypothesis-show-statistics`` counts to ``run``."""
    current: TestTally | None = None
    for line in output.splitlines():
        if m := _TEST.match(line.strip()):
            current = run.tests.setdefault(m.group(1), TestTally())
        elif current is not None and (m := _COUNTS.search(line)):
            current.passing += int(m.group(1))
            current.failing += int(m.group(2))
            current.invalid += int(m.group(3))
        elif current is not None and (m := _PHASE.search(line)):
            current.seconds += float(m.group(1))
        elif current is not None and (m := _STOP.match(line)):
            current.stopped.add(re.sub(r"=\d+", "", m.group(1).strip()))


def failure_excerpt(output: str) -> str:
    """The falsifying example and the error from a failing pytest run (or its tail)."""
    lines = output.splitlines()
    keep = [i for i, line in enumerate(lines)
            if "Falsifying example" in line or line.startswith("E ")]
    if keep:
        start = max(0, keep[0] - 2)
        return "\n".join(lines[start:keep[-1] + 6])
    return "\n".join(lines[-40:])


def run_target(target: Target, total: int, chunk: int, seed: int, deadline: float) -> TargetRun:
    """Run ``target`` for ``total`` examples per test in chunks until ``deadline``."""
    run = TargetRun(target, total)
    last_chunk_s = 0.0
    while run.done_per_test < total:
        left = deadline - time.monotonic()
        if left <= 0 or last_chunk_s > left:
            run.budget_hit = True
            break
        n = min(chunk, total - run.done_per_test)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--hypothesis-show-statistics", f"--hypothesis-seed={seed}", target.path]
        env = dict(os.environ, **{target.env: str(n)})
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=max(left, 1.0), check=False)
        except subprocess.TimeoutExpired:
            run.wall += time.monotonic() - t0
            run.budget_hit = True  # the unfinished chunk's examples are not counted
            break
        last_chunk_s = time.monotonic() - t0
        run.wall += last_chunk_s
        run.seeds.append(seed)
        parse_statistics(proc.stdout, run)
        if proc.returncode != 0:
            run.failure = (f"seed {seed}, {target.env}={n}: "
                           f"`{shlex.join(cmd[1:])}`\n\n" + failure_excerpt(proc.stdout))
            break
        run.done_per_test += n
        print(f"  {target.name}: {run.done_per_test}/{total} per test "
              f"({run.examples / max(run.wall, 1e-9):,.0f} examples/s)", flush=True)
        seed += 1
    return run


def report(runs: list[TargetRun], command: str, wall: float, minutes: float) -> str:
    lines = ["## SIP fuzz: long run of the CI fuzz and loss tests", "",
             f"Command: `{command}`", "",
             f"Machine: {machine()}", "",
             (f"Budget: {minutes:g} min; wall time {wall:.1f} s (each chunk is one pytest run: "
              "the wall rate includes its start-up, the hypothesis rate does not)."), "",
             ("| tests | requested per test | run per test | examples run | invalid | wall s "
              "| examples/s (wall) | examples/s (in hypothesis) | seeds | failures |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        invalid = sum(t.invalid for t in r.tests.values())
        rate = r.examples / r.wall if r.wall else 0.0
        in_hyp = sum(t.seconds for t in r.tests.values())
        hyp_rate = r.examples / in_hyp if in_hyp else 0.0
        seeds = (f"{r.seeds[0]}-{r.seeds[-1]}" if len(r.seeds) > 1
                 else str(r.seeds[0]) if r.seeds else "-")
        lines.append(f"| {r.target.path} | {r.requested:,} | {r.done_per_test:,}"
                     f"{' (budget reached)' if r.budget_hit else ''} | {r.examples:,} | "
                     f"{invalid:,} | {r.wall:.1f} | {rate:,.0f} | {hyp_rate:,.0f} | {seeds} | "
                     f"{1 if r.failure else 0} |")
    lines += ["", "Per test (hypothesis statistics, summed over chunks):", "",
              "| test | passing | failing | invalid | stopped because |", "|---|---|---|---|---|"]
    for r in runs:
        for name, t in r.tests.items():
            lines.append(f"| {name} | {t.passing:,} | {t.failing} | {t.invalid:,} | "
                         f"{'; '.join(sorted(t.stopped))} |")
    failures = [r for r in runs if r.failure]
    lines += ["", f"Failures found: {len(failures)}.", ""]
    for r in failures:
        lines += [f"### Failing example: {r.target.path}", "", "```", r.failure or "", "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--fuzz-examples", type=int, default=20_000,
                    help="examples per fuzz test (SIP_FUZZ_EXAMPLES), default 20000")
    ap.add_argument("--loss-examples", type=int, default=3_000,
                    help="examples of the lossy call test (SIP_LOSS_EXAMPLES), default 3000")
    ap.add_argument("--chunk-fuzz", type=int, default=5_000, help="fuzz examples per pytest run")
    ap.add_argument("--chunk-loss", type=int, default=1_000, help="loss examples per pytest run")
    ap.add_argument("--minutes", type=float, default=30.0,
                    help="wall-clock budget; no new chunk starts once it would be exceeded")
    ap.add_argument("--seed", type=int, default=1, help="first --hypothesis-seed (one per chunk)")
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results")
    args = ap.parse_args(argv)

    command = shlex.join([".venv/bin/python", "benchmarks/fuzz_sip.py",
                          *(argv if argv is not None else sys.argv[1:])])
    t0 = time.monotonic()
    deadline = t0 + args.minutes * 60
    plan = ((TARGETS[0], args.fuzz_examples, args.chunk_fuzz),
            (TARGETS[1], args.loss_examples, args.chunk_loss))
    runs: list[TargetRun] = []
    seed = args.seed
    for target, total, chunk in plan:
        print(f"{target.name} ({target.path}): {total:,} examples per test", flush=True)
        run = run_target(target, total, max(1, chunk), seed, deadline)
        seed += max(1, len(run.seeds))
        runs.append(run)
        if run.failure:
            break
    wall = time.monotonic() - t0
    text = report(runs, command, wall, args.minutes)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + "\n", encoding="utf-8")
    failed = any(r.failure for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
