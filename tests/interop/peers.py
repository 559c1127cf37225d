"""Helpers for the interop tests: real peers (sipp, baresip, kamailio, ``dialtone serve``)
started on loopback, each in its own process group under ``timeout``, and stopped by
process-group id.

Captures: with ``DIALTONE_UPDATE_CAPTURES=1`` the tests write the messages the peers sent
(taken verbatim from Dialtone's SIP trace) to ``tests/fixtures/sip/interop/``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialtone.events import validate_event
from tests.conftest import REPO, free_port

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CONFIGS = Path(__file__).resolve().parent / "configs"
CAPTURE_DIR = REPO / "tests" / "fixtures" / "sip" / "interop"
UPDATE_CAPTURES = os.environ.get("DIALTONE_UPDATE_CAPTURES", "") == "1"
DIALTONE = REPO / ".venv" / "bin" / "dialtone"
SIPP_PCAPS = Path("/usr/share/sip-tester")


def rtp_range(size: int = 200) -> tuple[int, int]:
    """A random even RTP port range on loopback (tests running side by side rarely meet)."""
    lo = random.randrange(30000, 60000 - size, 2)
    return lo, lo + size


# --- processes ---------------------------------------------------------------------------------


class Proc:
    """A child process in its own session (so its process group id is its pid), run under
    coreutils ``timeout`` so it cannot outlive a crashed test run by much."""

    def __init__(self, cmd: Sequence[str], *, log: Path, limit: float, cwd: Path | None = None,
                 env: dict[str, str] | None = None, stdin: int | None = subprocess.DEVNULL
                 ) -> None:
        self.cmd = list(cmd)
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            ["timeout", "-k", "2", str(int(limit)), *self.cmd], stdout=self._log,
            stderr=subprocess.STDOUT, stdin=stdin, cwd=cwd, env=env, start_new_session=True)
        self.pgid = self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def main_pid(self) -> int | None:
        """The pid of the real program (the child of ``timeout``)."""
        try:
            text = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text()
        except OSError:
            return None
        pids = text.split()
        return int(pids[0]) if pids else None

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
        """Signal the whole process group, then SIGKILL it if it lingers."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)  # stragglers of the group, if any
        except ProcessLookupError:
            pass
        if self.popen.poll() is None:
            self.popen.wait(5)
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        self._log.close()


def run(cmd: Sequence[str], *, log: Path, limit: float, cwd: Path | None = None) -> tuple[int, str]:
    """Run ``cmd`` to completion (or ``limit`` seconds), killed by group either way."""
    proc = Proc(cmd, log=log, limit=limit, cwd=cwd)
    try:
        rc = proc.wait(limit + 5)
    finally:
        proc.stop()
    return rc, log.read_text(errors="replace")


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``pred`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- Dialtone's SIP trace ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceRecord:
    direction: str
    """``recv`` or ``send``."""
    transport: str
    addr: tuple[str, int]
    data: bytes

    @property
    def first_line(self) -> str:
        return self.data.split(b"\r\n", 1)[0].decode("latin-1")

    def header(self, name: str) -> str | None:
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def body(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.data else b""

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        line = self.first_line
        return None if line.startswith("SIP/") else line.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        line = self.first_line
        return int(line.split(" ")[1]) if line.startswith("SIP/2.0 ") else None


def read_trace(path: Path) -> list[TraceRecord]:
    """Parse a ``dialtone serve --sip-trace`` file (a header line, then exactly N bytes)."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    out: list[TraceRecord] = []
    pos = 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        direction, transport, hostport, length = raw[pos:nl].decode().split(" ")
        host, _, port = hostport.rpartition(":")
        n = int(length)
        data = raw[nl + 1 : nl + 1 + n]
        if len(data) < n:
            break  # being written
        out.append(TraceRecord(direction, transport, (host, int(port)), data))
        pos = nl + 1 + n + 1
    return out


class TraceCollector:
    """A ``sip_trace`` callback for in-process UserAgents (same records as the file)."""

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def __call__(self, direction: str, data: bytes, addr: tuple[str, int], transport: str) -> None:
        self.records.append(TraceRecord(direction, transport, (addr[0], addr[1]), bytes(data)))


def save_captures(records: Iterable[TraceRecord], peer: str,
                  wanted: Iterable[str] = ("INVITE", "ACK", "BYE", "REGISTER")) -> list[Path]:
    """Write the first received message of each wanted kind (a method, or ``200-INVITE``
    for a response) to ``tests/fixtures/sip/interop/<peer>_<kind>.sip``, verbatim.
    Only with ``DIALTONE_UPDATE_CAPTURES=1``; returns the paths written."""
    if not UPDATE_CAPTURES:
        return []
    CAPTURE_DIR.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    recs = [r for r in records if r.direction == "recv"]
    for kind in wanted:
        for rec in recs:
            if rec.method is not None:
                match = rec.method == kind
            else:
                cseq = (rec.header("CSeq") or "").split()
                match = f"{rec.status}-{cseq[-1] if cseq else ''}" == kind
            if match:
                path = CAPTURE_DIR / f"{peer}_{kind.lower()}.sip"
                path.write_bytes(rec.data)
                written.append(path)
                break
    return written


# --- dialtone serve ---------------------------------------------------------------------------------


class DialtoneProcess:
    """``dialtone serve`` as a subprocess on a free loopback port, with its event log and
    SIP trace in ``workdir``."""

    def __init__(self, workdir: Path, *, extra: Sequence[str] = (), media_timeout: float = 10.0,
                 limit: float = 120.0, name: str = "dialtone") -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0  # the node binds a port the OS picks and holds it: read from node_started
        self.rtp = rtp_range()
        self.events_path = workdir / f"{name}-events.jsonl"
        self.trace_path = workdir / f"{name}-sip.trace"
        cmd = [str(DIALTONE), "serve", "--sip", "127.0.0.1:0",
               "--events", str(self.events_path), "--rtp-ports", f"{self.rtp[0]}-{self.rtp[1]}",
               "--sip-trace", str(self.trace_path), "--media-timeout", str(media_timeout),
               "--db", f"sqlite:///{workdir / (name + '.db')}", "--no-tcp", *extra]
        self.proc = Proc(cmd, log=workdir / f"{name}.log", limit=limit, cwd=workdir)
        started = wait_until(lambda: self.of_type("node_started") or not self.proc.running, 20)
        if not self.proc.running or not started:
            out = self.proc.output()
            self.proc.stop()
            raise RuntimeError(f"dialtone serve did not start: {out[-2000:]}")
        self.port = int(self.of_type("node_started")[0]["sip"].rsplit(":", 1)[1])

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                # every event the node writes matches the schema tools outside read
                problem = validate_event(event)
                assert problem is None, f"{self.events_path}: {problem}"
                out.append(event)
        return out

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("type") == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.of_type(kind)) >= count, timeout)
        return self.of_type(kind)

    def trace(self) -> list[TraceRecord]:
        return read_trace(self.trace_path)

    def rss_kb(self) -> int:
        pid = self.proc.main_pid()
        assert pid is not None, "dialtone serve is not running"
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.proc.stop(signal.SIGTERM, grace=5.0)


# --- sipp --------------------------------------------------------------------------------------------


def sipp(workdir: Path, remote: str, *, scenario: str | None = None, builtin: str | None = None,
         calls: int = 1, rate: float | None = None, duration_ms: int | None = None,
         limit: float = 20.0, extra: Sequence[str] = (), name: str = "sipp") -> tuple[int, str]:
    """Run sipp as a UAC against ``remote`` to completion; returns (exit code, output).
    Exit code 0 means every call of the scenario succeeded.  A port taken between our pick
    and sipp's bind (other tests run on this machine too) is retried with new ports."""
    for _ in range(3):
        rc, out = _sipp_once(workdir, remote, scenario=scenario, builtin=builtin, calls=calls,
                             rate=rate, duration_ms=duration_ms, limit=limit, extra=extra,
                             name=name)
        if not (rc == 254 and "Unable to bind" in out):
            break
    return rc, out


def _sipp_once(workdir: Path, remote: str, *, scenario: str | None, builtin: str | None,
               calls: int, rate: float | None, duration_ms: int | None, limit: float,
               extra: Sequence[str], name: str) -> tuple[int, str]:
    local_port = free_port()
    media_port = rtp_range(4)[0]
    for stale in (workdir / f"{name}.log", workdir / f"{name}-errors.log"):
        stale.unlink(missing_ok=True)
    cmd = ["sipp", remote, "-i", "127.0.0.1", "-p", str(local_port), "-mi", "127.0.0.1",
           "-mp", str(media_port), "-m", str(calls), "-nostdin", "-timeout", f"{int(limit)}s",
           "-timeout_error", "-trace_err", "-error_file", str(workdir / f"{name}-errors.log")]
    if scenario is not None:
        cmd += ["-sf", str(SCENARIOS / scenario)]
    else:
        cmd += ["-sn", builtin or "uac"]
    if rate is not None:
        cmd += ["-r", str(rate)]
    if duration_ms is not None:
        cmd += ["-d", str(duration_ms)]
    cmd += list(extra)
    rc, out = run(cmd, log=workdir / f"{name}.log", limit=limit + 5, cwd=workdir)
    err = workdir / f"{name}-errors.log"
    if rc != 0 and err.exists():
        out += "\n--- errors ---\n" + err.read_text(errors="replace")[-3000:]
    return rc, out


# --- raw UDP ------------------------------------------------------------------------------------------


class UdpPeer:
    """A bare UDP socket on loopback for hand-made (and malformed) requests."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def recv_all(self, timeout: float = 1.0) -> list[bytes]:
        """Every datagram arriving within ``timeout`` seconds."""
        out = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            out.append(data)
        return out

    def close(self) -> None:
        self.sock.close()


class UdpRecorder:
    """A loopback UDP relay that records what a client sends to ``upstream_port``.

    The client talks to :attr:`port`; each datagram is recorded verbatim and forwarded to
    the upstream from one relay socket; what comes back on that socket goes to the client
    that spoke last.  A background thread, stopped by :meth:`close`."""

    def __init__(self, upstream_port: int) -> None:
        import selectors
        import threading

        self.upstream = ("127.0.0.1", upstream_port)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.sent: list[bytes] = []
        self._client: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.front, selectors.EVENT_READ)
        self._sel.register(self.back, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="udp-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data, addr = sock.recvfrom(65535)
                if sock is self.front:
                    self._client = (addr[0], addr[1])
                    self.sent.append(data)
                    self.back.sendto(data, self.upstream)
                elif self._client is not None:
                    self.front.sendto(data, self._client)

    def records(self) -> list[TraceRecord]:
        """What the client sent, as trace records (direction ``recv``, as Dialtone would)."""
        return [TraceRecord("recv", "udp", self.upstream, d) for d in list(self.sent)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sel.close()
        self.front.close()
        self.back.close()
