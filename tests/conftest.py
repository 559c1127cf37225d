"""Shared test helpers: tools on PATH, free ports, CI behaviour."""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, package: str | None = None) -> str:
    """The path of a Debian tool the test talks to; skip (fail in CI) when it is missing."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        msg = f"{name} not installed (Debian package {package or name}; `make test` installs it as root)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


_HANDED_OUT: set[int] = set()
PEER_PORTS = range(10000, 20000, 2)
"""Ports for peers that must be told theirs (SIPp, baresip, Kamailio): even, below both the
kernel's ephemeral range (32768-60999), where bind(0) and outgoing sockets take theirs, and
Dialtone's default RTP range (20000-30000), so nothing else is handed the same port between
our check and the peer's bind.  Dialtone itself binds port 0 and holds what it gets."""


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` (and the next one, for a peer's RTCP or
    media), never handed out twice in this test run."""
    rng = random.Random()
    for _ in range(200):
        port = rng.choice(PEER_PORTS)
        if port in _HANDED_OUT:
            continue
        try:
            for family_kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                for p in (port, port + 1):
                    with socket.socket(socket.AF_INET, family_kind) as s:
                        s.bind((host, p))
        except OSError:
            continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port")


@pytest.fixture
def repo() -> Path:
    return REPO


# --- every event the suite emits matches the event log's schema (dialtone events schema) ------

_EVENT_PROBLEMS: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _validate_emitted_events() -> Iterator[None]:
    """Wrap the event sinks of telephony.eventlog so each emitted event is checked against
    :mod:`dialtone.events`; a test that emits an undocumented event or field fails."""
    from dialtone.events import validate_event
    from telephony import eventlog

    def checked(cls: type) -> Callable[..., None]:
        original = cls.emit

        def emit(self: object, event: dict[str, Any]) -> None:
            problem = validate_event(event)
            if problem is not None:
                _EVENT_PROBLEMS.append(f"{problem} in {event!r}"[:600])
            original(self, event)

        return emit

    from ivr_flows.engine import FlowRunner

    flow_log = FlowRunner._log

    def checked_flow_log(self: FlowRunner, type_: str, **data: Any) -> None:
        """The flow engine's events (the harness keeps them without an event sink)."""
        flow_log(self, type_, **data)
        event = self._out[-1].event  # type: ignore[attr-defined]
        problem = validate_event(event)
        if problem is not None:
            _EVENT_PROBLEMS.append(f"{problem} in {event!r}"[:600])

    with pytest.MonkeyPatch.context() as mp:
        for cls in (eventlog.JsonLinesEventLog, eventlog.MemoryEventLog, eventlog.NullEventLog):
            mp.setattr(cls, "emit", checked(cls))
        mp.setattr(FlowRunner, "_log", checked_flow_log)
        yield


@pytest.fixture(autouse=True)
def _no_undocumented_events() -> Iterator[None]:
    start = len(_EVENT_PROBLEMS)
    yield
    problems = _EVENT_PROBLEMS[start:]
    assert not problems, "events outside the schema (dialtone/events.py):\n" + "\n".join(problems)
