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
            # the SIP endpoint's and the mixer's own counters, read when scraped: an OPTIONS
            # the node answers shows up in them, and the defences' gauges are there
            await _options(node.sip_address)
            metrics = (await c.get("/metrics")).text
            assert 'dialtone_sip_total{counter="responded_200"}' in metrics
            assert "dialtone_calls_up 0.0" in metrics
            assert "dialtone_media_tick_lateness_seconds 0.0" in metrics
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    started = next(e for e in lines if e["type"] == "node_started")
    assert started["http"] == "{}:{}".format(*node.http_address)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=url) as c:
            await asyncio.wait_for(c.get("/health"), 5)


async def _options(address: tuple[str, int]) -> None:
    """One OPTIONS to the node over UDP; returns when its 200 arrives."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes] = loop.create_future()

    class _Peer(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not answered.done():
                answered.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(_Peer, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        host, sip_port = address
        transport.sendto((
            f"OPTIONS sip:{host}:{sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-metrics-1\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\n"
            f"To: <sip:{host}:{sip_port}>\r\nCall-ID: metrics-probe-1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), address)
        reply = await asyncio.wait_for(answered, 5)
        assert reply.startswith(b"SIP/2.0 200 ")
    finally:
        transport.close()


def test_console_options_need_http() -> None:
    with pytest.raises(ConfigError, match=r"http.secure_cookies .*applies only with the "
                                          r"console \(--http\)"):
        load_config(env={}, flags={"http.secure_cookies": True})
    cfg = load_config(env={"DIALTONE_HTTP__LISTEN": "127.0.0.1:8080"})
    assert cfg.http.listen == "127.0.0.1:8080"
    with pytest.raises(ConfigError, match="--http"):
        load_config(env={}, flags={"http.listen": "127.0.0.1:99999"})
