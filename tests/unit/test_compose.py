"""docker/compose.yaml: valid by the Compose specification's JSON Schema, and every service's
command and ports agree with Dialtone's options (no container engine runs here: the same
topology runs without containers in tests/interop/test_kamailio_dispatch.py)."""

from __future__ import annotations

import importlib.resources
import json
import os
import re
from typing import Any

import pytest
import yaml

from dialtone.cli import build_parser, config_from_args
from dialtone.config import NodeConfig
from tests.conftest import REPO

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("check_jsonschema")  # the test extra: it ships the Compose schema

DOCKER = REPO / "docker"
COMPOSE: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DIALTONE_SERVICES = [name for name, s in SERVICES.items() if s.get("image") == "dialtone:latest"]
PUBLIC_IP = "192.0.2.10"


def _expand(text: str) -> str:
    """Compose's ${VAR:-default} with PUBLIC_IP set, as an operator would."""
    return re.sub(r"\$\{PUBLIC_IP(:-[^}]*)?\}", PUBLIC_IP, text)


def _node_config(name: str, monkeypatch: pytest.MonkeyPatch) -> NodeConfig:
    service = SERVICES[name]
    for key in [k for k in os.environ if k.startswith("DIALTONE_")]:
        monkeypatch.delenv(key)
    for key, value in (service.get("environment") or {}).items():
        monkeypatch.setenv(key, _expand(str(value)))
    args = build_parser().parse_args(service["command"])
    return config_from_args(args)


def test_compose_file_is_valid_by_the_compose_specification() -> None:
    text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json").read_text()
    schema = json.loads(text)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(COMPOSE)]
    assert errors == []


def test_the_topology_is_the_issue_s() -> None:
    assert {"kamailio", "postgres", "mosquitto", "router"} <= set(SERVICES)
    nodes = [n for n in DIALTONE_SERVICES if SERVICES[n]["command"][0] == "serve"]
    assert len(nodes) == 2


@pytest.mark.parametrize("name", DIALTONE_SERVICES)
def test_every_dialtone_command_parses(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    command = SERVICES[name]["command"]
    if command[0] == "serve":
        _node_config(name, monkeypatch)  # valid: no unknown flag, no option that cannot apply
    else:
        build_parser().parse_args(command)


def test_nodes_agree_with_kamailio_postgres_and_mosquitto(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ds = [line.split() for line in (DOCKER / "kamailio" / "dispatcher.list").read_text()
          .splitlines() if line.strip() and not line.startswith("#")]
    destinations = {d for _set, d in ds}
    pg = SERVICES["postgres"]["environment"]
    pg_url = (f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/"
              f"{pg['POSTGRES_DB']}")
    ranges = []
    for name in (n for n in DIALTONE_SERVICES if SERVICES[n]["command"][0] == "serve"):
        config = _node_config(name, monkeypatch)
        # Kamailio reaches each node by service name at its SIP port
        assert f"sip:{name}:{config.sip.port}" in destinations
        assert config.sip.host == "0.0.0.0" and config.sip.advertise == PUBLIC_IP
        assert config.db == pg_url and config.routing.mqtt == "mqtt://mosquitto:1883"
        # the RTP range the node uses is the one it publishes, and no other node's
        lo, hi = config.media.port_range
        assert SERVICES[name]["ports"] == [f"{lo}-{hi}:{lo}-{hi}/udp"]
        ranges.append((lo, hi))
        # the flow is the package's example, at its path inside the image's virtualenv
        assert config.flow.path is not None
        inside = config.flow.path.split("site-packages/", 1)[1]
        assert (REPO / inside).is_file()
        assert config.node_id == name
    (_, a_hi), (b_lo, _) = sorted(ranges)
    assert a_hi < b_lo
    assert len(destinations) == 2
    migrate = build_parser().parse_args(SERVICES["migrate"]["command"])
    assert migrate.db == pg_url
    router = build_parser().parse_args(SERVICES["router"]["command"])
    assert router.mqtt == "mqtt://mosquitto:1883" and router.db == pg_url


def test_kamailio_command_sets_only_defines_the_config_knows() -> None:
    cfg = (DOCKER / "kamailio" / "kamailio.cfg").read_text()
    known = set(re.findall(r"^#!trydef (\w+)", cfg, re.MULTILINE)) | set(
        re.findall(r"^#!ifdef (\w+)", cfg, re.MULTILINE))
    command = SERVICES["kamailio"]["command"]
    defines = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "-A")
    assert set(defines) <= known, set(defines) - known
    port = int(defines["LISTEN"].rsplit(":", 1)[1])
    assert SERVICES["kamailio"]["ports"] == [f"{port}:{port}/udp"]
    assert 1 <= int(defines["DS_PROBE_INTERVAL"]) <= 2
