"""``dialtone serve --workers N``: one node process per core on one host, behind a dispatcher.

A SIP trunk sends every call from one address and port, so SO_REUSEPORT (which spreads by the
sender's address) would pin them all on one process: each worker is instead a whole node on its
own SIP port (consecutive from ``--sip``'s) with its own slice of the RTP range, and Kamailio's
dispatcher (docker/kamailio/kamailio.cfg) spreads calls over them by Call-ID.  The supervisor
prints the dispatcher list, upgrades the database once before any worker starts, restarts a
worker that dies, and stops them all on SIGTERM or SIGINT.

Each worker is ``python -m dialtone`` with the supervisor's own arguments plus its overrides
appended (argparse keeps an option's last value), so file, environment and flags mean the same
to every worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from dialtone.config import NodeConfig
from dialtone_errors import ConfigError

__all__ = ["WorkerPlan", "dispatcher_list", "plan_workers", "supervise"]

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
"""Waits before restarting a worker that died soon after starting (a crash loop)."""


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What one worker overrides: its index, SIP port, RTP range, node id and files."""

    index: int
    host: str
    port: int
    rtp_ports: tuple[int, int]
    node_id: str
    events: str | None
    sip_trace: str | None

    def overrides(self) -> list[str]:
        out = ["--sip", f"{_bracket(self.host)}:{self.port}",
               "--rtp-ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
               "--node-id", self.node_id, "--workers", "1"]
        if self.events:
            out += ["--events", self.events]
        if self.sip_trace:
            out += ["--sip-trace", self.sip_trace]
        return out


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _suffixed(path: str | None, index: int) -> str | None:
    """``events.jsonl`` -> ``events.w1.jsonl``: one writer per file."""
    if path is None:
        return None
    root, ext = os.path.splitext(path)
    return f"{root}.w{index}{ext}"


def plan_workers(config: NodeConfig) -> list[WorkerPlan]:
    """Consecutive SIP ports from ``sip.listen``; the RTP range cut in N even-aligned slices."""
    n = config.workers
    host, port = config.sip.host, config.sip.port
    if port == 0:
        raise ConfigError("--workers needs a fixed --sip port (the workers take PORT, PORT+1, "
                          "...; the dispatcher list names them)")
    if port + n - 1 > 65535:
        raise ConfigError(f"--workers {n} from port {port} runs past 65535")
    lo, hi = config.media.port_range
    size = ((hi - lo + 1) // n) & ~1
    if size < 2:
        raise ConfigError(f"--rtp-ports {lo}-{hi} is too small for {n} workers")
    base_id = config.effective_node_id
    return [WorkerPlan(index=i, host=host, port=port + i,
                       rtp_ports=(lo + i * size, lo + (i + 1) * size - 1),
                       node_id=f"{base_id}-w{i}", events=_suffixed(config.events, i),
                       sip_trace=_suffixed(config.sip.trace, i))
            for i in range(n)]


def dispatcher_list(config: NodeConfig, plans: Sequence[WorkerPlan], setid: int = 1) -> str:
    """Kamailio's dispatcher.list for the workers (the advertised host when one is set)."""
    host = config.sip.advertise or config.sip.host
    lines = ["# Kamailio dispatcher.list (docker/kamailio/kamailio.cfg): set, destination"]
    lines += [f"{setid} sip:{_bracket(host)}:{p.port}" for p in plans]
    return "\n".join(lines) + "\n"


class _Worker:
    def __init__(self, plan: WorkerPlan, argv: Sequence[str]) -> None:
        self.plan = plan
        self.cmd = [sys.executable, "-m", "dialtone", *argv, *plan.overrides()]
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.quick_deaths = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd)
        self.started_at = time.monotonic()


def supervise(config: NodeConfig, argv: Sequence[str], *, poll_s: float = 0.2) -> int:
    """Run the workers until SIGTERM/SIGINT; returns 0 (or 1 if a worker could not start)."""
    from dialtone.migrations import ensure_schema

    plans = plan_workers(config)
    ensure_schema(config.db)  # once, before N processes would race to it
    sys.stdout.write(dispatcher_list(config, plans))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workers = [_Worker(p, argv) for p in plans]
    for w in workers:
        w.start()
        assert w.proc is not None
        print(f"dialtone: worker {w.plan.index} (pid {w.proc.pid}) on "
              f"sip:{_bracket(w.plan.host)}:{w.plan.port}, rtp {w.plan.rtp_ports[0]}-"
              f"{w.plan.rtp_ports[1]}", flush=True)
    restart_at: dict[int, float] = {}
    try:
        while not stop.wait(poll_s):
            now = time.monotonic()
            for w in workers:
                assert w.proc is not None
                if w.proc.poll() is None:
                    if now - w.started_at > 30:
                        w.quick_deaths = 0
                    continue
                if w.plan.index not in restart_at:
                    quick = now - w.started_at < 10
                    w.quick_deaths = w.quick_deaths + 1 if quick else 0
                    wait = RESTART_BACKOFF_S[min(w.quick_deaths, len(RESTART_BACKOFF_S) - 1)]
                    print(f"dialtone: worker {w.plan.index} (pid {w.proc.pid}) exited with "
                          f"{w.proc.returncode}: restarting in {wait:g} s", flush=True)
                    restart_at[w.plan.index] = now + wait
                elif now >= restart_at[w.plan.index]:
                    del restart_at[w.plan.index]
                    w.start()
                    print(f"dialtone: worker {w.plan.index} restarted (pid {w.proc.pid})",
                          flush=True)
    finally:
        _stop_all(workers)
    return 0


def _stop_all(workers: Sequence[_Worker], grace_s: float = 10.0) -> None:
    """SIGTERM to every worker (each hangs its calls up and tears down), SIGKILL after
    ``grace_s`` to any still running."""
    running = [w.proc for w in workers if w.proc is not None and w.proc.poll() is None]
    for p in running:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in running:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
