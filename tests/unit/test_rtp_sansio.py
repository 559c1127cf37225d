"""The RTP and codec modules stay sans-IO: no asyncio, sockets, threads or clocks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "telephony"
MODULES = sorted((ROOT / "rtp").glob("*.py")) + sorted((ROOT / "codecs").glob("*.py"))
FORBIDDEN = {"asyncio", "socket", "threading", "time", "selectors"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            continue
        assert not FORBIDDEN.intersection(names), f"{path.name} imports {names}"
