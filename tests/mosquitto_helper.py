"""A private Mosquitto for tests: free 127.0.0.1 port, temp config and persistence dir.

Never touches a broker already running on the machine (port 1883 or any other).
``restart()`` stops the broker gracefully (SIGTERM: it writes its persistence
file) and starts it again on the same port with the same data, as a broker
restart in production would.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists()


class MosquittoBroker:
    """Start with :meth:`start` (or ``with MosquittoBroker() as broker``); always :meth:`stop`."""

    def __init__(
        self, port: int | None = None, *, persistence: bool = True, tcp_nodelay: bool = True,
    ) -> None:
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="dialtone-mosquitto-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self._dir / "mosquitto.log"
        conf = [
            f"listener {self.port} 127.0.0.1",
            # As root, mosquitto would drop to user "mosquitto", who cannot write our dir.
            f"user {getpass.getuser()}",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self._dir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            "max_inflight_messages 0",
            # Off by default in Mosquitto: Nagle then delays small replies by ~40 ms.
            f"set_tcp_nodelay {'true' if tcp_nodelay else 'false'}",
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        self.config_path = self._dir / "mosquitto.conf"
        self.config_path.write_text("\n".join(conf) + "\n", encoding="utf-8")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 5.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_path.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop (persistence saved); kill if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
