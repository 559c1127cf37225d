"""``dialtone serve --workers 2``: two nodes on consecutive ports with disjoint RTP ranges,
the dispatcher list printed, a killed worker restarted, SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from dialtone.config import load_config
from dialtone.workers import dispatcher_list, plan_workers
from dialtone_errors import ConfigError
from tests.conftest import free_port
from tests.interop.peers import DIALTONE, Proc, UdpPeer, wait_until
from tests.layer.test_overload import options

pytestmark = pytest.mark.interop


def _answers_options(peer: UdpPeer, port: int, n: int) -> bool:
    peer.send(options(n, peer.port, port), port)
    return any(d.startswith(b"SIP/2.0 200") for d in peer.recv_all(0.5))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_plan_ports_ranges_and_list() -> None:
    config = load_config(env={}, flags={"sip.listen": "127.0.0.1:5080", "workers": 3,
                                        "media.rtp_ports": "20000-30000", "node_id": "edge",
                                        "events": "var/events.jsonl"})
    plans = plan_workers(config)
    assert [p.port for p in plans] == [5080, 5081, 5082]
    assert [p.rtp_ports for p in plans] == [(20000, 23331), (23332, 26663), (26664, 29995)]
    assert [p.node_id for p in plans] == ["edge-w0", "edge-w1", "edge-w2"]
    assert plans[1].events == "var/events.w1.jsonl"
    assert dispatcher_list(config, plans).splitlines()[1:] == [
        "1 sip:127.0.0.1:5080", "1 sip:127.0.0.1:5081", "1 sip:127.0.0.1:5082"]
    with pytest.raises(ConfigError, match="fixed --sip port"):
        plan_workers(load_config(env={}, flags={"sip.listen": "127.0.0.1:0", "workers": 2}))


def test_workers_serve_restart_and_stop(tmp_path: Path) -> None:
    port = free_port()  # port and port + 1 are free
    proc = Proc([str(DIALTONE), "serve", "--workers", "2", "--sip", f"127.0.0.1:{port}",
                 "--no-tcp", "--rtp-ports", "46000-46399", "--node-id", "wk",
                 "--db", f"sqlite:///{tmp_path / 'n.db'}",
                 "--events", str(tmp_path / "events.jsonl")],
                log=tmp_path / "sup.log", limit=90, cwd=tmp_path)
    peer = UdpPeer()
    try:
        assert wait_until(lambda: proc.output().count("listening on") >= 2
                          or not proc.running, 30), proc.output()
        out = proc.output()
        assert f"1 sip:127.0.0.1:{port}\n1 sip:127.0.0.1:{port + 1}\n" in out
        assert "rtp 46000-46199" in out and "rtp 46200-46399" in out
        pids = {int(i): int(p) for i, p in re.findall(r"worker (\d) \(pid (\d+)\) on", out)}
        assert set(pids) == {0, 1}
        assert _answers_options(peer, port, 1) and _answers_options(peer, port + 1, 2)
        assert (tmp_path / "events.w0.jsonl").exists() and (tmp_path / "events.w1.jsonl").exists()

        os.kill(pids[1], signal.SIGKILL)
        assert wait_until(lambda: "worker 1 restarted" in proc.output(), 15), proc.output()
        new_pid = int(re.findall(r"worker 1 restarted \(pid (\d+)\)", proc.output())[0])
        assert new_pid != pids[1]
        assert wait_until(lambda: _answers_options(peer, port + 1, 3), 20)
        assert _alive(pids[0])  # the other worker was never touched

        os.kill(proc.main_pid() or proc.popen.pid, signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not _alive(pids[0]) and not _alive(new_pid)
    finally:
        peer.close()
        proc.stop()
