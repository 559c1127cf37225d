"""Kamailio's dispatcher (docker/kamailio/kamailio.cfg, as shipped) in front of two
``dialtone serve`` nodes on loopback: calls are spread over both by Call-ID; when one node is
killed, new calls go to the other within the probe interval, the survivor's calls are
untouched and nothing hangs."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, require_tool
from tests.interop.peers import SCENARIOS, DialtoneProcess, Proc, rtp_range, sipp, wait_until

pytestmark = pytest.mark.interop

KAMAILIO_CFG = REPO / "docker" / "kamailio" / "kamailio.cfg"
PROBE_INTERVAL = 1  # s (the shipped default)
NODE_TIMEOUT_MS = 1000


class Dispatcher:
    """Debian's kamailio running the shipped configuration, pointed at ``nodes``."""

    def __init__(self, workdir: Path, nodes: list[str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        ds_list = workdir / "dispatcher.list"
        ds_list.write_text("".join(f"1 sip:{addr}\n" for addr in nodes))
        self.proc = Proc(["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-w", str(workdir),
                          "-m", "64", "-M", "8",
                          "-A", f"LISTEN=udp:127.0.0.1:{self.port}",
                          "-A", f'DS_LIST="{ds_list}"',
                          "-A", f"DS_PROBE_INTERVAL={PROBE_INTERVAL}",
                          "-A", f"NODE_TIMEOUT_MS={NODE_TIMEOUT_MS}"],
                         log=workdir / "kamailio.log", limit=150, cwd=workdir)
        if not wait_until(lambda: "SO_RCVBUF is finally" in self.proc.output()
                          or not self.proc.running, 10) or not self.proc.running:
            out = self.proc.output()
            self.proc.stop()
            raise RuntimeError(f"kamailio did not start: {out[-3000:]}")

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.stop()


def _options_seen(node: DialtoneProcess) -> int:
    return sum(1 for r in node.trace() if r.direction == "recv" and r.method == "OPTIONS")


def _calls(node: DialtoneProcess) -> list[dict[str, object]]:
    return node.of_type("call_started")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Dispatcher, DialtoneProcess, DialtoneProcess]]:
    require_tool("kamailio")
    require_tool("sipp", "sip-tester")
    # no flow: each call is held until the caller's BYE, so its length is SIPp's -d
    a = DialtoneProcess(tmp_path / "a", name="a", media_timeout=0, limit=150)
    b = DialtoneProcess(tmp_path / "b", name="b", media_timeout=0, limit=150)
    k: Dispatcher | None = None
    try:
        k = Dispatcher(tmp_path / "kamailio", [a.addr, b.addr])
        # both nodes probed (and answering) before the first call
        assert wait_until(lambda: _options_seen(a) and _options_seen(b), 10), \
            k.proc.output()[-3000:]
        yield k, a, b
    finally:
        for p in (k, a, b):
            if p is not None:
                p.stop()


def test_calls_are_spread_and_a_dead_node_stops_getting_calls(
        cluster: tuple[Dispatcher, DialtoneProcess, DialtoneProcess], tmp_path: Path) -> None:
    k, a, b = cluster
    # 1. spread: 30 short calls through Kamailio, every one answered, on both nodes
    rc, out = sipp(tmp_path, k.addr, scenario="uac_routed.xml", calls=30, rate=30, duration_ms=300,
                   limit=30, name="spread")
    assert rc == 0, out[-2000:]
    on_a, on_b = len(_calls(a)), len(_calls(b))
    assert on_a + on_b == 30 and on_a >= 5 and on_b >= 5, (on_a, on_b)
    # every request of a call went to one node: each node's calls ended by the caller's BYE
    for node in (a, b):
        ended = node.wait_for("call_ended", len(_calls(node)), timeout=10)
        assert {e["cause"] for e in ended} == {"remote_bye"}

    # 2. long calls on both nodes, then node a is killed mid-call
    lo, _hi = rtp_range(4)
    long_calls = Proc(["sipp", k.addr, "-sf", str(SCENARIOS / "uac_routed.xml"), "-i", "127.0.0.1", "-p", str(free_port()),
                       "-mi", "127.0.0.1", "-mp", str(lo), "-m", "10", "-r", "20", "-d", "4000",
                       "-nostdin", "-timeout", "40s", "-timeout_error"],
                      log=tmp_path / "long.log", limit=45, cwd=tmp_path)
    base_a, base_b = len(_calls(a)), len(_calls(b))
    assert wait_until(lambda: len(_calls(a)) + len(_calls(b)) - base_a - base_b >= 10, 10)
    survivors = [e["call_id"] for e in _calls(b)[base_b:]]
    assert survivors and len(_calls(a)) > base_a, "the long calls did not reach both nodes"
    a.proc.stop(signal.SIGKILL)
    killed_at = time.monotonic()

    # 3. new calls right away: every one answered (by b; a call hashed to a before the probe
    # noticed is retried on b after NODE_TIMEOUT_MS), none lost, nothing hangs
    before_b = len(_calls(b))
    rc, out = sipp(tmp_path, k.addr, scenario="uac_routed.xml", calls=10, rate=10, duration_ms=200,
                   limit=30, name="after-kill")
    assert rc == 0, out[-2000:]
    assert len(_calls(b)) - before_b == 10
    # within the probe interval (+ one probe's timeout) a is inactive: calls then go straight
    # to b, with no failover delay
    time.sleep(max(0.0, killed_at + PROBE_INTERVAL + NODE_TIMEOUT_MS / 1000 + 0.5
                   - time.monotonic()))
    to_a = f"-> sip:{a.addr}"
    sent_to_a = k.proc.output().count(to_a)
    rc, out = sipp(tmp_path, k.addr, scenario="uac_routed.xml", calls=10, rate=50,
                   duration_ms=100, limit=30, name="settled")
    assert rc == 0, out[-2000:]
    assert len(_calls(b)) - before_b == 20
    assert k.proc.output().count(to_a) == sent_to_a, "a dead node was still sent calls"

    # 4. the survivor's long calls were untouched: each ended by its caller's BYE, at ~6 s
    long_calls.wait(45)
    ended = {e["call_id"]: e for e in b.of_type("call_ended")}
    for call_id in survivors:
        assert call_id in ended, f"{call_id} on b never ended"
        assert ended[call_id]["cause"] == "remote_bye"
        assert float(str(ended[call_id]["duration_s"])) >= 3.5
    long_calls.stop()
    assert k.proc.running


def test_a_loaded_node_s_503_sends_the_call_to_the_other_and_keeps_it_in_the_set(
        tmp_path: Path) -> None:
    """RFC 3261 21.5.4: a node at its call cap answers 503; Kamailio tries the next node and
    keeps the loaded one in the set (its OPTIONS still answer), so it gets calls again."""
    require_tool("kamailio")
    require_tool("sipp", "sip-tester")
    a = DialtoneProcess(tmp_path / "a", name="a", media_timeout=0, limit=90,
                        extra=["--max-calls", "1"])
    b = DialtoneProcess(tmp_path / "b", name="b", media_timeout=0, limit=90)
    k: Dispatcher | None = None
    try:
        k = Dispatcher(tmp_path / "kamailio", [a.addr, b.addr])
        assert wait_until(lambda: _options_seen(a) and _options_seen(b), 10)
        # 12 calls held 2 s: a takes one, every other call hashed to a gets 503 and goes to b
        rc, out = sipp(tmp_path, k.addr, scenario="uac_routed.xml", calls=12, rate=12,
                       duration_ms=2000, limit=30, name="loaded")
        assert rc == 0, out[-2000:]
        assert len(_calls(a)) == 1 and len(_calls(b)) == 11
        retried = k.proc.output().count(f"retried on sip:{b.addr}")
        assert retried >= 1, "no call hashed to the loaded node: nothing was tested"
        assert "did not answer" not in k.proc.output()  # loaded, not dead
        # a is still in the set: once its call ended, calls hashed to it reach it again
        a.wait_for("call_ended", 1, timeout=10)
        rc, out = sipp(tmp_path, k.addr, scenario="uac_routed.xml", calls=8, rate=20,
                       duration_ms=0, limit=30, name="again")
        assert rc == 0, out[-2000:]
        assert len(_calls(a)) > 1
    finally:
        for p in (k, a, b):
            if p is not None:
                p.stop()
