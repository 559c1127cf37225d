"""Shared set-up of the console tests: an app on a SQLite file with one user per role."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from dialer.store import DialerStore
from dialtone.config import HttpSection
from dialtone.events import validate_event
from dialtone.http.app import create_app
from dialtone.http.hub import EventHub
from dialtone.http.live import AgentView, StaticAgents
from dialtone.http.users import UserStore

PASSWORDS = {"ada": "admin-pass-1", "max": "manager-pass-1", "vic": "viewer-pass-1"}
ROLES = {"ada": "admin", "max": "manager", "vic": "viewer"}


@dataclass
class Console:
    app: Any
    store: DialerStore
    hub: EventHub
    agents: StaticAgents
    events: list[dict[str, Any]]
    events_path: Path


def make_console(tmp_path: Path, *, dialer_trunk: Any = None, **http: Any) -> Console:
    store = DialerStore(f"sqlite:///{tmp_path / 'console.db'}")
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # fast, for tests
    users = UserStore(store.engine, hasher=hasher)
    for name, pw in PASSWORDS.items():
        users.add_user(name, pw, ROLES[name], now=time.time())
    hub = EventHub()
    agents = StaticAgents()
    emitted: list[dict[str, Any]] = []

    def emit(event: dict[str, Any]) -> None:
        # the console's own events go to the node's log: they must match its schema
        problem = validate_event(event)
        assert problem is None, problem
        emitted.append(event)
        hub.emit(event)

    events_path = tmp_path / "events.jsonl"
    app = create_app(HttpSection(**http), store, hub=hub, agents=agents, emit=emit,
                     events_path=str(events_path), live_interval=0.2, hasher=hasher,
                     dialer_trunk=dialer_trunk)
    return Console(app, store, hub, agents, emitted, events_path)


@contextmanager
def logged_in(console: Console, name: str) -> Iterator[TestClient]:
    """A client with ``name``'s session; its X-CSRF-Token header is set."""
    with TestClient(console.app) as client:
        r = client.post("/api/auth/login", json={"name": name, "password": PASSWORDS[name]})
        assert r.status_code == 200, r.text
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        yield client


def add_agent(console: Console, agent_id: str = "a1", state: str = "available") -> None:
    console.agents.set(AgentView(agent_id, state, time.time() - 5))


GOOD_CSV = (b"name,phone,tz\n"
            b"Ann,+1 212 555 0100,America/New_York\n"
            b"Bob,not a number,America/New_York\n"
            b"Cy,+1 415 555 0101,Mars/Olympus\n"
            b"Di,+1 312 555 0102,America/Chicago\n")
"""Four rows: two good, one bad number (row 3), one unknown zone (row 4)."""


def wait_import(client: TestClient, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/lists/{job_id}").json()
        if job["state"] != "running":
            return dict(job)
        time.sleep(0.02)
    raise AssertionError(f"import {job_id} still running")
