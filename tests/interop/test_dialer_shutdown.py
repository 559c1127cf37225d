"""SIGTERM stops ``dialtone campaign run`` within a bound (the hang of a benchmark on a
starved machine: calls the pacer still counted, SIGTERM ignored, SIGKILL needed).

A trunk that rings and never answers anything more (not even our CANCEL) and a store that
does not take the outcome (another process holds SQLite's write lock): the first SIGTERM
hangs the call up at once, the process exits by ``SHUTDOWN_EXIT_S``, and the restart's
recovery closes the attempt it left open as ``failed``.  Without a stuck store the
shutdown is clean: the outcome is written, the report printed, status 0."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from dialer.engine import CampaignEngine, EngineConfig
from dialer.run_cli import SHUTDOWN_EXIT_S
from dialer.store import DialerStore
from telephony.media import MediaConfig

pytestmark = [pytest.mark.interop]


class RingingTrunk:
    """Answers an INVITE with 180 Ringing, then nothing: no 200, no answer to CANCEL."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.methods: list[str] = []
        self.invited = threading.Event()
        self.cancelled = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            text = data.decode(errors="replace")
            method = text.split(" ", 1)[0]
            self.methods.append(method)
            if method == "INVITE":
                self.sock.sendto(ringing(text), addr)
                self.invited.set()
            elif method == "CANCEL":
                self.cancelled.set()

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


def ringing(request: str) -> bytes:
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    keep = []
    for line in head:
        name = line.split(":", 1)[0].strip().lower()
        if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            keep.append(line)
        elif name in ("to", "t"):
            keep.append(line + ";tag=ring1")
    return ("SIP/2.0 180 Ringing\r\n" + "\r\n".join(keep)
            + "\r\nContent-Length: 0\r\n\r\n").encode()


def campaign(tmp: Path) -> Path:
    (tmp / "c.csv").write_text("phone\n+442079460001\n")
    path = tmp / "c.yaml"
    path.write_text('name: shut\nkind: agents\nlist: c.csv\nregion: GB\n'
                    'caller_id: "+442079460999"\npacing: "ratio:1"\nagents: [sip:a@127.0.0.1:9]\n'
                    'window: always\nring_timeout: 30\nmax_attempts: 2\n')
    return path


def start(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dialtone", "campaign", "run", str(campaign(tmp)),
         "--trunk", f"sip:127.0.0.1:{port}", "--db", f"sqlite:///{tmp / 'd.db'}",
         "--owner", "shut-test", "--json", "--rtp-ports", "47100-47200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigterm_with_a_stuck_store_exits_in_time_and_the_restart_recovers(
        tmp_path: Path) -> None:
    trunk = RingingTrunk()
    proc = start(tmp_path, trunk.port)
    lock: sqlite3.Connection | None = None
    try:
        assert trunk.invited.wait(15.0), proc.stderr.read().decode() if proc.stderr else ""
        lock = sqlite3.connect(tmp_path / "d.db", isolation_level=None, timeout=10)
        lock.execute("BEGIN IMMEDIATE")  # the outcome cannot be written now
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert trunk.cancelled.wait(2.0)  # the ringing call is cancelled at once
        rc = proc.wait(SHUTDOWN_EXIT_S + 2.0)
        took = time.monotonic() - t0
        assert rc == 128 + signal.SIGTERM  # cut short: the store never answered
        assert took < SHUTDOWN_EXIT_S + 1.0
    finally:
        if lock is not None:
            lock.rollback()
            lock.close()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        trunk.close()
    store = DialerStore(f"sqlite:///{tmp_path / 'd.db'}")
    assert [(r["attempt"], r["outcome"]) for r in store.ledger("shut", since=0)] == [(1, None)]
    # The restart's recovery (CampaignEngine.run's first step) closes it as failed.
    ua = SimpleNamespace(config=SimpleNamespace(media_defaults=MediaConfig()))
    engine = CampaignEngine(store, "shut", ua,  # type: ignore[arg-type]
                            EngineConfig(trunk="sip:127.0.0.1:9", owner="shut-test"))
    assert asyncio.run(engine.recover()) == 1
    assert [(r["attempt"], r["outcome"]) for r in store.ledger("shut", since=0)] == [
        (1, "failed")]


def test_sigterm_hangs_up_writes_the_outcome_and_reports(tmp_path: Path) -> None:
    trunk = RingingTrunk()
    proc = start(tmp_path, trunk.port)
    try:
        assert trunk.invited.wait(15.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=SHUTDOWN_EXIT_S + 2.0)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        trunk.close()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert took < 2.0
    assert "CANCEL" in trunk.methods
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["summary"]["dispositions"] == {"failed": 1}


SECOND_SIGNAL = """
import asyncio, os, signal, sys, time
from dialer.run_cli import _Shutdown

class Engine:
    def shutdown(self):
        print("shutdown", flush=True)

async def main():
    stop = _Shutdown(asyncio.get_running_loop(), exit_s=30.0)
    stop.install(Engine())
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.2)
    print("stuck", flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)  # the loop blocked: the second signal still ends the process at once

asyncio.run(main())
"""


def test_a_second_signal_exits_at_once() -> None:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SECOND_SIGNAL], capture_output=True, check=False,
                          timeout=20)
    assert done.returncode == 128 + signal.SIGINT, done.stderr.decode()[-2000:]
    assert done.stdout.decode().split() == ["shutdown", "stuck"]
    assert time.monotonic() - t0 < 10.0
