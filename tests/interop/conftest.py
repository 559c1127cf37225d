"""Fixtures for the interop tests (real peers on loopback); helpers live in peers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_tool
from tests.interop.peers import DialtoneProcess
from tests.mosquitto_helper import MosquittoBroker


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    """A private Mosquitto on a free loopback port (skips, or fails in CI, without it)."""
    require_tool("mosquitto")
    b = MosquittoBroker()
    b.start()
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def dialtone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DialtoneProcess]:
    """One ``dialtone serve`` (no flow: answers and holds calls) shared by a test module."""
    require_tool("sipp", "sip-tester")
    proc = DialtoneProcess(tmp_path_factory.mktemp("dialtone"))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def dialtone_ringing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DialtoneProcess]:
    """``dialtone serve --answer-delay 3``: rings (180) for 3 s before answering."""
    require_tool("sipp", "sip-tester")
    proc = DialtoneProcess(tmp_path_factory.mktemp("dialtone-ringing"),
                           extra=("--answer-delay", "3"), name="ringing")
    try:
        yield proc
    finally:
        proc.stop()
