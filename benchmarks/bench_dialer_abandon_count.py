"""What counting the abandonment ledger costs as a campaign's attempts pile up.

``DialerStore.abandonment`` counts the campaign's attempts (all, its 30-day period, the last
24 h).  The engine used to run it every second; it now counts afresh every
``EngineConfig.abandon_recount_s`` (60 s) and adds its own outcomes in between.

    .venv/bin/python benchmarks/bench_dialer_abandon_count.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from dialer.db import make_engine
from dialer.store import DialerStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        store = DialerStore(make_engine(f"sqlite:///{path}"))
        now = time.time()
        store.create_campaign("c", now=now)
        con = sqlite3.connect(path)
        cid = con.execute("select id from dialer_campaigns").fetchone()[0]
        print("| attempts in the ledger | CPU per count (median) | wall | share of a core counted every 1 s | every 60 s |")
        print("|---|---|---|---|---|")
        for n in (int(s) for s in args.sizes.split(",")):
            have = con.execute("select count(*) from dialer_attempts").fetchone()[0]
            # 100 attempts/s over the day: a person in one attempt in four, 1 % abandoned
            con.executemany(
                "insert into dialer_attempts (campaign_id, contact_id, e164, owner, dialled_at,"
                " callback, ended_at, disposition, live_answer, abandoned)"
                " values (?, ?, '+441632960000', 'bench', ?, 0, ?, ?, ?, ?)",
                ((cid, i, now - n / 100 + i / 100, now - n / 100 + i / 100 + 30,
                  "abandoned" if i % 400 == 0 else "connected" if i % 4 == 0 else "machine",
                  i % 4 == 0, i % 400 == 0) for i in range(have, n)))
            con.commit()
            cpu, wall = [], []
            for _ in range(args.repeat):
                c0, w0 = time.process_time(), time.perf_counter()
                store.abandonment("c", now=now)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            c, w = statistics.median(cpu), statistics.median(wall)
            print(f"| {n:,} | {c * 1e3:.1f} ms | {w * 1e3:.1f} ms | {c:.1%} | {c / 60:.2%} |")


if __name__ == "__main__":
    main()
