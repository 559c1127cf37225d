"""The node serves the console (``dialtone serve --http``), built last and stopped first."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx2 as httpx
import pytest

from dialtone.config import load_config
from dialtone.node import Node
from dialtone_errors import ConfigError


async def test_node_serves_the_console_and_stops_it(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALTONE_ADMIN_PASSWORD", "first-run-admin")
    events = tmp_path / "events.jsonl"
    config = load_config(env={}, flags={"sip.listen": "127.0.0.1:0",
                                        "http.listen": "127.0.0.1:0",
                                        "db": f"sqlite:///{tmp_path / 'n.db'}",
                                        "events": str(events)})
    async with Node.running(config) as node:
        assert node.http_address is not None
        url = "http://{}:{}".format(*node.http_address)
        async with httpx.AsyncClient(base_url=url) as c:
            assert (await c.get("/health")).json() == {"status": "ok"}
            assert (await c.get("/ready")).json() == {"status": "ready"}
            assert (await c.get("/api/campaigns")).status_code == 401
            r = await c.post("/api/auth/login", json={"name": "admin",
                                                      "password": "first-run-admin"})
            assert r.status_code == 200
            csrf = r.json()["csrf_token"]
            r = await c.post("/api/campaigns", json={"name": "n1"},
                             headers={"X-CSRF-Token": csrf})
            assert r.status_code == 201
            # the node's own events reach the console's hub (and /metrics)
            metrics = (await c.get("/metrics")).text
            assert 'dialtone_console_events_total{type="node_started"} 1.0' in metrics
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    started = next(e for e in lines if e["type"] == "node_started")
    assert started["http"] == "{}:{}".format(*node.http_address)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=url) as c:
            await asyncio.wait_for(c.get("/health"), 5)


def test_console_options_need_http() -> None:
    with pytest.raises(ConfigError, match=r"http.secure_cookies .*applies only with the "
                                          r"console \(--http\)"):
        load_config(env={}, flags={"http.secure_cookies": True})
    cfg = load_config(env={"DIALTONE_HTTP__LISTEN": "127.0.0.1:8080"})
    assert cfg.http.listen == "127.0.0.1:8080"
    with pytest.raises(ConfigError, match="--http"):
        load_config(env={}, flags={"http.listen": "127.0.0.1:99999"})
