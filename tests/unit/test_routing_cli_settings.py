"""MQTT settings, backoff and the CLI's argument parsing (no broker needed)."""

from __future__ import annotations

import argparse

import pytest

from routing.cli import DEFAULT_CONFIG, add_parsers
from routing.mqtt_link import MqttSettings, backoff_delay
from telephony.errors import ConfigError


def test_mqtt_url_parsing() -> None:
    s = MqttSettings.from_url("mqtt://127.0.0.1:18830", client_id="c", backoff_max_s=1.0)
    assert (s.host, s.port, s.client_id, s.backoff_max_s) == ("127.0.0.1", 18830, "c", 1.0)
    assert MqttSettings.from_url("mqtt://localhost", client_id="c").port == 1883
    for bad in ("tcp://127.0.0.1:1883", "mqtt://", "127.0.0.1:1883", "mqtt://h:99999"):
        with pytest.raises(ConfigError):
            MqttSettings.from_url(bad, client_id="c")


def test_backoff_doubles_with_jitter_and_caps() -> None:
    assert backoff_delay(0, 0.05, 2.0, 1.0) == pytest.approx(0.05)
    assert backoff_delay(0, 0.05, 2.0, 0.0) == pytest.approx(0.025)
    assert backoff_delay(3, 0.05, 2.0, 1.0) == pytest.approx(0.4)
    assert backoff_delay(10, 0.05, 2.0, 1.0) == pytest.approx(2.0)
    assert backoff_delay(10_000, 0.05, 2.0, 0.5) == pytest.approx(1.5)


def test_cli_parsers() -> None:
    parser = argparse.ArgumentParser(prog="dialtone")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    r = parser.parse_args(["router", "--mqtt", "mqtt://127.0.0.1:1884"])
    assert (r.config, r.router_id, r.db, r.announce_agents) == (
        str(DEFAULT_CONFIG), "router-1", None, False)
    a = parser.parse_args(["agent", "set", "alice", "--state", "wrap_up", "--skills",
                           "billing, sales", "--mqtt", "mqtt://127.0.0.1:1884"])
    assert (a.agent_id, a.state, a.skills) == ("alice", "wrap_up", "billing, sales")
    assert callable(a.func) and callable(r.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["agent", "set", "alice", "--state", "asleep", "--mqtt", "x"])
    bad = parser.parse_args(["router", "--mqtt", "mqtt://127.0.0.1:1884",
                             "--config", "/nonexistent.yaml"])
    assert bad.func(bad) == 2
