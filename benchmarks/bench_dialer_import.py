"""List import: 1,000,000 generated rows into a SQLite campaign, time and peak RSS.

    .venv/bin/python benchmarks/bench_dialer_import.py [--rows 1000000] [--runs 3]
        [--dup 0.02] [--bad 0.01] [--verify N]

The file is generated first (not timed): three phone columns (mobile, home, work; home and
work often empty), a name, an email, a city, a language and a priority; numbers in a mix of
formats (national with spaces, E.164, US with brackets) over GB, US and FR, ``--dup`` of the
rows repeating an earlier number (merged), ``--bad`` of them broken (letters, too short, a
byte that is not UTF-8).  The import runs in a child process pinned to one core (taskset)
and its wall time, CPU time and peak RSS (getrusage in the child) are reported: medians over
``--runs`` (peak RSS: the largest).

``--verify N`` also checks the import's fast path (dialer.e164) against phonenumbers itself on
N varied strings (tests/unit/e164_samples.py: every example number of every region and
format, mutated, random digit strings; 25 default regions) and on every number of the
generated file, and prints the mismatches (there must be none).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hostinfo import machine

RESULTS = REPO / "benchmarks" / "results" / "dialer_import.md"


def gb_mobile(r: random.Random) -> str:
    n = f"{r.randrange(10**6):06d}"
    return r.choice([f"07{r.choice('45789')}{r.randrange(10):d}{r.randrange(10)} {n}",
                     f"+447{r.choice('45789')}{r.randrange(10)}{r.randrange(10)}{n}"])


def gb_land(r: random.Random) -> str:
    return r.choice([f"020 7{r.randrange(10**3):03d} {r.randrange(10**4):04d}",
                     f"0161 {r.randrange(2, 10)}{r.randrange(10**2):02d} {r.randrange(10**4):04d}",
                     (f"+44 113 {r.randrange(2, 10)}{r.randrange(10**2):02d} "
                     f"{r.randrange(10**4):04d}")])


def us(r: random.Random) -> str:
    area = r.choice(["212", "310", "312", "415", "617", "713", "206", "305", "404", "702"])
    ex = f"{r.randrange(2, 10)}{r.randrange(10**2):02d}"
    line = f"{r.randrange(10**4):04d}"
    return r.choice([f"+1 ({area}) {ex}-{line}", f"+1{area}{ex}{line}"])


def fr(r: random.Random) -> str:
    return f"+33 6 {r.randrange(10**8):08d}"


def generate(path: Path, rows: int, dup: float, bad: float, seed: int = 7) -> None:
    r = random.Random(seed)
    makers = [gb_mobile, gb_mobile, gb_land, us, us, fr]
    earlier: list[str] = []
    with open(path, "wb") as f:
        f.write(b"name,email,city,mobile,home,work,lang,prio\n")
        for i in range(rows):
            x = r.random()
            if x < bad:
                kind = r.randrange(3)
                if kind == 0:
                    mobile = "call me maybe"
                elif kind == 1:
                    mobile = "0123"
                else:
                    f.write(b"Ren\xe9e,x@example.org,Paris,+33 6 12345678,,,fr,1\n")
                    continue
            elif x < bad + dup and earlier:
                mobile = r.choice(earlier)
            else:
                mobile = r.choice(makers)(r)
                if len(earlier) < 5000:
                    earlier.append(mobile)
            home = gb_land(r) if r.random() < 0.3 else ""
            work = us(r) if r.random() < 0.1 else ""
            line = (f"Person {i},p{i}@example.org,City {i % 977},{mobile},{home},{work},"
                    f"{r.choice(['en', 'fr', 'es'])},{r.randrange(3)}\n")
            f.write(line.encode())


def child(db: str, csv_path: str) -> None:
    from dialer.lists import ColumnMapping
    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore
    store = DialerStore(f"sqlite:///{db}")
    store.create_campaign("bench", CampaignSettings(region="GB"), now=0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    rep = store.import_contacts(
        "bench", csv_path, ColumnMapping(("mobile", "home", "work"), language="lang",
                                         priority="prio"), now=0.0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out = rep.to_dict()
    out.pop("problems")
    out.pop("unknown_zone_rows")
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, **out}))


def verify(n: int, csv_path: Path) -> int:
    """Mismatches between the fast path and phonenumbers (see the module docstring)."""
    import csv

    from dialer.lists import NumberParser
    from tests.unit.e164_samples import DEFAULT_REGIONS, samples

    fast = {r: NumberParser(r) for r in (*DEFAULT_REGIONS, "GB")}
    slow = {r: NumberParser(r, fast=False) for r in fast}

    def pairs() -> Iterator[tuple[str, str]]:
        yield from samples(n)
        with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
            for rec in csv.DictReader(f):
                for col in ("mobile", "home", "work"):
                    if rec.get(col):
                        yield "GB", rec[col]

    bad = total = 0
    for region, raw in pairs():
        total += 1
        a, b = fast[region].parse(raw), slow[region].parse(raw)
        if a != b:
            bad += 1
            if bad <= 20:
                print(f"MISMATCH {region} {raw!r}: fast {a}, phonenumbers {b}")
    print(f"verify: {total:,} numbers, {bad} mismatches", flush=True)
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dup", type=float, default=0.02)
    ap.add_argument("--bad", type=float, default=0.01)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--verify", type=int, default=0, metavar="N",
                    help="also compare the fast path with phonenumbers on N strings")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "list.csv"
        t = time.perf_counter()
        generate(csv_path, args.rows, args.dup, args.bad)
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t:.1f} s", flush=True)
        if args.verify and verify(args.verify, csv_path):
            raise SystemExit(1)
        results = []
        for run in range(args.runs):
            db = Path(tmp) / f"bench{run}.db"
            cmd = [sys.executable, __file__, "--child", str(db), str(csv_path)]
            if os.path.exists("/usr/bin/taskset"):
                cmd = ["taskset", "-c", "1", *cmd]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["db_mb"] = db.stat().st_size / 1e6
            results.append(res)
            print(json.dumps(res), flush=True)
    med = {k: statistics.median(r[k] for r in results)
           for k in ("wall_s", "cpu_s", "imported", "merged", "bad_rows")}
    peak = max(r["peak_rss_mb"] for r in results)
    runs = ", ".join(f"{r['wall_s']:.1f}/{r['cpu_s']:.1f}" for r in results)
    lines = [
        "## Contact list import (dialer)",
        "",
        (f"Command: `.venv/bin/python benchmarks/bench_dialer_import.py --rows {args.rows}"
        f" --runs {args.runs}`"),
        (f"Machine: {machine()} (2 vCPU shared with other engineers' work during this session;"
        " the import pinned to one core with taskset)."),
        "",
        ("| | rows | wall s (median) | CPU s (median) | rows/s (CPU) | peak RSS MB | imported |"
         " merged | bad | goal |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ("| before (0c718ae, 1 run) | 1,000,000 | 183.0 | 129.9 | 7,698 | 122 | 945,231 |"
         " 24,172 | 30,597 | < 60 s, < 500 MB |"),
        (f"| after (median of {len(results)}) | {args.rows:,} | {med['wall_s']:.1f} | "
         f"{med['cpu_s']:.1f} | {args.rows / med['cpu_s']:,.0f} | {peak:.0f} | "
         f"{med['imported']:,.0f} | {med['merged']:,.0f} | {med['bad_rows']:,.0f} | "
         "< 60 s, < 500 MB |"),
        "",
        f"Runs (wall/CPU s): {runs}.",
        "",
        (f"Numbers: GB mobiles and landlines, US and FR, mixed formats; {args.dup:.0%} repeat an"
        f" earlier number (merged), {args.bad:.0%} broken (reported by row). Three phone"
        " columns, SQLite in WAL mode, batches of 20,000 rows, a commit every 100,000."),
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
