"""SIPp against `dialtone serve`: call setup rate, INVITE->200 latency with calls up, memory.

    .venv/bin/python benchmarks/bench_sip_load.py [--quick]

Dialtone runs pinned to CPU 0 (taskset), SIPp to CPU 1, both on 127.0.0.1.  Figures:

1. setup rate: the highest rate (calls/s) at which SIPp's INVITE/200/ACK/BYE calls (no
   hold time) all succeed, stepping the rate up; each step runs ``--seconds`` seconds.
2. latency: INVITE->200 p50/p99 measured by SIPp (-trace_rtt) while ``--held`` calls are up.
3. memory: RSS of the server with 0 and with N established calls -> bytes per call; and RSS
   before/after a long run of short calls (flat memory).

Writes benchmarks/results/sip_load.md.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hostinfo import machine

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])




def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, port: int, media_timeout: float = 0.0) -> None:
        self.port = port
        cmd = ["taskset", "-c", "0", PY, "-m", "dialtone", "serve", "--sip",
               f"127.0.0.1:{port}", "--no-tcp", "--media-timeout", str(media_timeout),
               "--rtp-ports", "30000-60000"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"server did not start: {line}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def sipp(port: int, *, rate: int, calls: int, hold_ms: int = 0, limit: int | None = None,
         workdir: str, extra: list[str] | None = None, timeout: float = 120) -> dict[str, float]:
    """Run SIPp's built-in uac; returns successful/failed counts and response times (ms)."""
    for f in glob.glob(os.path.join(workdir, "*")):
        os.remove(f)
    cmd = ["taskset", "-c", "1", "sipp", "-sn", "uac", f"127.0.0.1:{port}", "-i", "127.0.0.1",
           "-p", str(free_port()), "-r", str(rate), "-m", str(calls), "-d", str(hold_ms),
           "-trace_stat", "-fd", "1", "-trace_rtt", "-rtt_freq", "1", "-nostdin", "-timeout",
           f"{int(timeout)}s", "-timeout_error", "-max_socket", "2000"]
    if limit:
        cmd += ["-l", str(limit)]
    cmd += extra or []
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout + 30,
                          check=False)  # a failing run is reported from its stats
    elapsed = time.monotonic() - t0
    stat_files = glob.glob(os.path.join(workdir, "*_.csv")) or glob.glob(
        os.path.join(workdir, "uac_*[0-9].csv"))
    ok = failed = 0
    for path in stat_files:
        with open(path) as fh:
            rows = list(csv.reader(fh, delimiter=";"))
        if len(rows) >= 2:
            head, last = rows[0], rows[-1]
            ok = int(last[head.index("SuccessfulCall(C)")])
            failed = int(last[head.index("FailedCall(C)")])
    rtts: list[float] = []
    for path in glob.glob(os.path.join(workdir, "*_rtt.csv")):
        with open(path) as fh:
            for row in csv.reader(fh, delimiter=";"):
                if len(row) >= 3 and row[0] and row[0][0].isdigit():
                    try:
                        rtts.append(float(row[1]))
                    except ValueError:
                        pass
    return {"ok": ok, "failed": failed, "exit": proc.returncode, "elapsed": elapsed,
            "rtts": rtts}  # type: ignore[dict-item]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer, shorter steps")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--held", type=int, default=200)
    args = ap.parse_args()
    seconds = 4.0 if args.quick else args.seconds
    rates = [100, 200, 300, 400, 500] if not args.quick else [100, 300]
    work = tempfile.mkdtemp(prefix="bench-sip-")

    # 1. setup rate
    best = 0
    rate_rows = []
    for rate in rates:
        port = free_port()
        server = Server(port)
        try:
            r = sipp(port, rate=rate, calls=int(rate * seconds), workdir=work)
        finally:
            server.stop()
        achieved = r["ok"] / r["elapsed"] if r["elapsed"] else 0
        rate_rows.append((rate, r["ok"], r["failed"], achieved, pct(r["rtts"], 0.5),  # type: ignore[arg-type]
                          pct(r["rtts"], 0.99)))  # type: ignore[arg-type]
        print(f"rate {rate}/s: ok={r['ok']} failed={r['failed']} rtt p50={pct(r['rtts'], .5):.1f} ms"  # type: ignore[arg-type]
              f" p99={pct(r['rtts'], .99):.1f} ms", flush=True)  # type: ignore[arg-type]
        if r["failed"] == 0 and r["ok"] >= int(rate * seconds):
            best = rate
        else:
            break

    # 2. latency with calls held up, and memory per call
    port = free_port()
    server = Server(port)
    try:
        time.sleep(0.5)
        base_rss = rss_kb(server.proc.pid)
        held = args.held
        hold_ms = 30000 if not args.quick else 15000
        proc = subprocess.Popen(
            ["taskset", "-c", "1", "sipp", "-sn", "uac", f"127.0.0.1:{port}", "-i", "127.0.0.1",
             "-p", str(free_port()), "-r", "50", "-m", str(held), "-d", str(hold_ms), "-nostdin",
             "-trace_rtt", "-rtt_freq", "1", "-timeout", "120s"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(held / 50 + 2)
        held_rss = rss_kb(server.proc.pid)
        # now measure setup latency of new calls while `held` are up
        lat = sipp(port, rate=20, calls=200, workdir=tempfile.mkdtemp(prefix="bench-sip-lat-"))
        proc.wait(timeout=hold_ms / 1000 + 60)
        after_rss = rss_kb(server.proc.pid)
    finally:
        server.stop()
    per_call = (held_rss - base_rss) * 1024 / max(1, held)

    # 3. flat memory over a long run of short calls
    port = free_port()
    server = Server(port)
    try:
        # Ended calls' transactions linger 64*T1 = 32 s (RFC 3261 timer J / the INVITE
        # server's terminated state), so each reading waits that out first.
        sipp(port, rate=200, calls=2000, workdir=work)
        time.sleep(35)
        rss1 = rss_kb(server.proc.pid)
        n_long = 4000 if args.quick else 20000
        sipp(port, rate=300, calls=n_long, workdir=work, timeout=300)
        time.sleep(35)
        rss2 = rss_kb(server.proc.pid)
        # the same run again: RSS is a high-water mark (ended calls linger 32 s, so a burst
        # at 300 calls/s holds ~10,000 of them at its peak); a leak would grow it again
        sipp(port, rate=300, calls=n_long, workdir=work, timeout=300)
        time.sleep(35)
        rss3 = rss_kb(server.proc.pid)
    finally:
        server.stop()

    lines = [
        "## SIP under SIPp load (`dialtone serve`)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_sip_load.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {machine()}; server pinned to CPU 0, SIPp to CPU 1, loopback, UDP.",
        "",
        "| offered rate (calls/s) | successful | failed | INVITE->200 p50 (ms) | p99 (ms) |",
        "|---|---|---|---|---|",
    ]
    for rate, ok, failed, achieved, p50, p99 in rate_rows:
        lines.append(f"| {rate} | {ok} | {failed} | {p50:.1f} | {p99:.1f} |")
    lines += [
        "",
        f"- Highest setup rate with zero failed calls: **{best} calls/s** (goal >= 300).",
        (f"- INVITE->200 latency with {args.held} calls up: p50 **{pct(lat['rtts'], .5):.1f} ms**, "  # type: ignore[arg-type]
        f"p99 **{pct(lat['rtts'], .99):.1f} ms** over {len(lat['rtts'])} calls "  # type: ignore[arg-type]
        f"(failed {lat['failed']}; goal p99 < 20 ms)."),
        (f"- Memory per established call (RTP socket, media pipeline, dialog): "
        f"**{per_call / 1024:.1f} KiB** (RSS {base_rss / 1024:.1f} MiB idle, "
        f"{held_rss / 1024:.1f} MiB with {args.held} calls, {after_rss / 1024:.1f} MiB after they ended)."),
        (f"- Memory over long runs: RSS {rss1 / 1024:.1f} MiB after 2,000 calls, "
         f"{rss2 / 1024:.1f} MiB after {n_long} more at 300 calls/s, {rss3 / 1024:.1f} MiB "
         f"after {n_long} more again ({(rss3 - rss2) / 1024:+.1f} MiB for the repeat), each "
         f"read 35 s after its burst (RFC 3261 keeps each ended call's transactions "
         f"64*T1 = 32 s, so a burst at 300 calls/s holds ~10,000 of them at its peak)."),
        "",
    ]
    out = REPO / "benchmarks" / "results" / "sip_load.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
