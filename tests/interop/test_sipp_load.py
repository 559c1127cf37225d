"""A soak-style check that fits CI: 200 SIPp calls at 50 calls/s against ``dialtone serve``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.interop.peers import DialtoneProcess, sipp

pytestmark = pytest.mark.interop

RSS_GROWTH_LIMIT_KB = 4 * 1024
LINGER = 3.5


@pytest.fixture
def fresh_dialtone(tmp_path: Path) -> Iterator[DialtoneProcess]:
    require_tool("sipp", "sip-tester")
    # T1 = 50 ms: a finished call's state lingers 64*T1 = 3.2 s (RFC 3261 17.2.1 timer J
    # and friends), so what the calls leave behind is reaped within the test.
    proc = DialtoneProcess(tmp_path / "dialtone", name="load", extra=("--sip-t1", "0.05"))
    try:
        yield proc
    finally:
        proc.stop()


def test_200_calls_at_50_cps_no_failures_no_growth(fresh_dialtone: DialtoneProcess,
                                                    tmp_path: Path) -> None:
    dt = fresh_dialtone
    # Warm up (imports, codec tables, first sockets) before the baseline.
    rc, out = sipp(tmp_path, dt.addr, builtin="uac", calls=100, rate=50, duration_ms=200,
                   name="warmup")
    assert rc == 0, out
    dt.wait_for("call_ended", 100)
    time.sleep(LINGER)
    rss_before = dt.rss_kb()
    rc, out = sipp(tmp_path, dt.addr, builtin="uac", calls=200, rate=50, duration_ms=200,
                   limit=30, name="load")
    assert rc == 0, out  # sipp exits 0 only when no call failed
    ended = dt.wait_for("call_ended", 300, timeout=15)
    assert len(ended) == 300
    assert {e["cause"] for e in ended} == {"remote_bye"}
    assert len(dt.of_type("call_answered")) == 300
    assert len({e["call_id"] for e in ended}) == 300
    time.sleep(LINGER)
    rss_after = dt.rss_kb()
    print(f"RSS before {rss_before} kB, after {rss_after} kB")
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_KB, (rss_before, rss_after)
