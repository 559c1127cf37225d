"""Memory of `dialtone serve` over repeated bursts of short SIPp calls (is it flat?).

    .venv/bin/python benchmarks/bench_sip_memory.py [--bursts 4] [--calls 10000]

The server runs pinned to CPU 0 and SIPp to CPU 1 (as in bench_sip_load.py).  After a warm-up
of 2,000 calls, each burst places ``--calls`` calls at 300 calls/s; RSS is read 35 s after each
burst, once RFC 3261's 64*T1 linger of the ended calls' transactions is over.  The first burst
sets the high-water mark (about 10,000 lingering calls at 300 calls/s); flat memory means the
following bursts add (next to) nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sip_load import Server, free_port, rss_kb, sipp
from hostinfo import machine


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bursts", type=int, default=4)
    ap.add_argument("--calls", type=int, default=10000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-sip-mem-")
    port = free_port()
    server = Server(port)
    readings: list[tuple[str, float]] = []
    try:
        sipp(port, rate=200, calls=2000, workdir=work)
        time.sleep(35)
        readings.append(("after 2,000 calls (warm-up)", rss_kb(server.proc.pid) / 1024))
        for i in range(args.bursts):
            sipp(port, rate=300, calls=args.calls, workdir=work, timeout=300)
            time.sleep(35)
            readings.append((f"after burst {i + 1} of {args.calls:,}", rss_kb(server.proc.pid) / 1024))
            print(readings[-1], flush=True)
    finally:
        server.stop()
    lines = ["## SIP server memory over repeated bursts", "",
             (f"Command: `.venv/bin/python benchmarks/bench_sip_memory.py --bursts {args.bursts} "
             f"--calls {args.calls}`  "), f"Machine: {machine()}", "",
             "| reading | RSS MiB | change MiB |", "|---|---:|---:|"]
    prev = None
    for label, mib in readings:
        lines.append(f"| {label} | {mib:.1f} | {'' if prev is None else f'{mib - prev:+.1f}'} |")
        prev = mib
    lines.append("")
    out = Path(__file__).resolve().parent / "results" / "sip_memory.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
