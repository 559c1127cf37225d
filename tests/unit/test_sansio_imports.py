"""The sans-IO cores never import asyncio, socket, threading, time (or select, selectors,
subprocess) and never call time.time()/time.monotonic() (STYLE.md 1-2): the SIP, RTP, codec
and DSP packages, the per-call media pipeline, the flow engine, the routing decisions and the
dialer's pacer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "telephony"
PACKAGES = ("sip", "rtp", "codecs", "dsp")
SINGLE_MODULES = (ROOT / "media.py", REPO / "ivr_flows" / "engine.py",
                  REPO / "ivr_flows" / "actions.py", REPO / "routing" / "router_core.py")
FORBIDDEN = {"asyncio", "socket", "threading", "time", "select", "selectors", "subprocess"}
FORBIDDEN_CALLS = {("time", "time"), ("time", "monotonic"), ("time", "perf_counter"),
                   ("time", "sleep")}


EXTRA_PACKAGES = (REPO / "dialer" / "pacing",)


def modules() -> list[Path]:
    return (sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
            + list(SINGLE_MODULES)
            + sorted(p for pkg in EXTRA_PACKAGES for p in pkg.rglob("*.py")))


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN:
                    found.append(f"{path.name}:{node.lineno} import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in FORBIDDEN:
                found.append(f"{path.name}:{node.lineno} from {node.module} import")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            if isinstance(base, ast.Name) and (base.id, node.func.attr) in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno} {base.id}.{node.func.attr}()")
    return found


def test_there_are_modules_to_check() -> None:
    names = {p.name for p in modules()}
    assert {"endpoint.py", "transaction.py", "message.py", "jitter.py", "dtmf.py", "media.py",
            "engine.py", "router_core.py", "predictive.py", "adaptive.py"} <= names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_io_or_clock(path: Path) -> None:
    assert violations(path) == []


def test_checker_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom socket import socket\nimport time\nx = time.monotonic()\n")
    assert len(violations(bad)) == 4
