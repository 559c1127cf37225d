"""The campaign store's CPU per call attempt: lease, renew and outcome (issue 14).

    taskset -c 0 .venv/bin/python benchmarks/bench_dialer_store.py [--contacts 3000]
        [--batch 1 --batch 5 --batch 20] [--db URL] [--code DIR] [--repeat 3]

Each attempt is what the dialer engine does for one call: the contact leased (in rounds of
``--batch`` contacts), its lease renewed once, its outcome written (``machine``, final).
With the batch API (``DialerStore.record_outcomes``/``renew_many``, this branch) the
renewals and outcomes of a round go in one transaction each; code without it (``--code``
of an older tree) writes them one by one, as its engine did.  Figures: process CPU time
(``time.process_time``: Python, SQLAlchemy and SQLite in this process; a PostgreSQL
server's own CPU is not counted) per attempt, per phase; the median of ``--repeat`` runs,
each on a fresh database.  Results: benchmarks/results/dialer_store.md (and .json).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BASE = 442079000000  # +44 20 79xx xxxx


def one_run(code: Path, url: str, contacts: int, batch: int) -> dict[str, float]:
    sys.path.insert(0, str(code))
    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore
    from dialer.windows import ALWAYS

    store = DialerStore(url)
    name = f"bench{time.monotonic_ns()}"
    store.create_campaign(name, CampaignSettings(region="GB", window=ALWAYS, max_attempts=1),
                          now=0.0)
    csv = "phone\n" + "".join(f"+{BASE + i}\n" for i in range(contacts))
    store.import_contacts(name, io.BytesIO(csv.encode()), now=0.0)
    batched = hasattr(store, "record_outcomes")
    if batched:
        from dialer.store import Outcome
    cpu = {"lease": 0.0, "renew": 0.0, "outcome": 0.0}
    now, done = 1000.0, 0
    while done < contacts:
        t0 = time.process_time()
        leases = store.lease(name, now=now, count=batch, owner="bench", lease_s=60.0)
        t1 = time.process_time()
        if not leases:
            break
        if batched:
            leases = store.renew_many(leases, now=now + 1, lease_s=60.0)
        else:
            leases = [store.renew(le, now=now + 1, lease_s=60.0) for le in leases]
        t2 = time.process_time()
        if batched:
            errs = store.record_outcomes([Outcome(le, "machine", now + 4, amd="machine")
                                          for le in leases])
            assert not any(errs), errs
        else:
            for le in leases:
                store.record_outcome(le, "machine", now=now + 4, amd="machine")
        t3 = time.process_time()
        cpu["lease"] += t1 - t0
        cpu["renew"] += t2 - t1
        cpu["outcome"] += t3 - t2
        done += len(leases)
        now += 0.05
    assert done == contacts, (done, contacts)
    store.engine.dispose()
    ms = {k: 1000 * v / done for k, v in cpu.items()}
    ms["total"] = sum(ms.values())
    return ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=3000)
    ap.add_argument("--batch", type=int, action="append",
                    help="contacts per round (lease, renewals, outcomes); repeatable")
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: a fresh SQLite file)")
    ap.add_argument("--code", type=Path, default=REPO, help="source tree of the store")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--label", default=None)
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: imports, first compilations
        one_run(args.code, args.db or f"sqlite:///{Path(tmp) / 'warm.db'}", 50, 5)
    for batch in args.batch or [1, 5, 20]:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
                runs.append(one_run(args.code, url, args.contacts, batch))
        med = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        row = {"code": args.label or str(args.code), "db": (args.db or "sqlite").split(":")[0],
               "batch": batch, **med}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "dialer_store.json"
    old = json.loads(path.read_text()) if path.exists() else []
    old = [r for r in old if (r["code"], r["db"]) != (rows[0]["code"], rows[0]["db"])]
    allrows = old + rows
    path.write_text(json.dumps(allrows, indent=2))
    md = ["# The campaign store: CPU per call attempt (ms)", "",
          ("`taskset -c 1 .venv/bin/python benchmarks/bench_dialer_store.py "
           "[--code /tmp/store-before] [--contacts 1000 --db postgresql+psycopg://...]` "
           "(3000 contacts on SQLite, 1000 on PostgreSQL; median of 3 runs after a warm-up; "
           "process CPU time, ms per attempt; main writes renewals and outcomes one by one)"),
          "",
          "| code | db | batch | lease | renew | outcome | total |", "|---|---|---|---|---|---|---|"]
    md += [f"| {r['code']} | {r['db']} | {r['batch']} | {r['lease']} | {r['renew']} | "
           f"{r['outcome']} | {r['total']} |" for r in allrows]
    (out / "dialer_store.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
