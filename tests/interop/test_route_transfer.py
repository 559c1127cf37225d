"""Issue 6 end to end: a real SIPp caller presses 1, the IVR hands the call off over a real
Mosquitto to the reference router (its own process), and the route is executed: the call
reaches a SIPp agent.  The caller refuses REFER (405), so Dialtone bridges a second leg."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port, require_tool
from tests.interop.peers import DIALTONE, DialtoneProcess, Proc, rtp_range, sipp, wait_until
from tests.mosquitto_helper import MosquittoBroker

pytestmark = pytest.mark.interop

FLOW = Path(__file__).resolve().parents[1] / "fixtures" / "flows" / "route_on_digit" / "flow.yaml"


def test_sipp_call_is_routed_over_mqtt_to_a_sipp_agent(tmp_path: Path) -> None:
    require_tool("sipp", "sip-tester")
    require_tool("mosquitto")
    agent_port = free_port()
    agent_uri = f"sip:agent@127.0.0.1:{agent_port}"
    config = tmp_path / "router.yaml"
    config.write_text(
        "timezone: UTC\n"
        "queues: {general: {skills: [general]}}\n"
        "agents:\n"
        f"  - {{agent_id: agent1, uri: '{agent_uri}', skills: [general], languages: []}}\n")
    broker = MosquittoBroker()
    broker.start()
    procs: list[Proc] = []
    dialtone = None
    try:
        router = Proc([str(DIALTONE), "router", "--mqtt", broker.url, "--config", str(config),
                       "--announce-agents", "--db", f"sqlite:///{tmp_path / 'router.db'}"],
                      log=tmp_path / "router.log", limit=60)
        procs.append(router)
        media = rtp_range(4)[0]
        agent = Proc(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-m", "1",
                      "-mi", "127.0.0.1", "-mp", str(media), "-nostdin", "-timeout", "40s",
                      "-timeout_error"], log=tmp_path / "agent.log", limit=45, cwd=tmp_path)
        procs.append(agent)
        dialtone = DialtoneProcess(tmp_path, extra=["--flow", str(FLOW), "--mqtt", broker.url])
        # the node has seen the router's agent (retained state) before the call
        rc, out = sipp(tmp_path, dialtone.addr, scenario="uac_press1_refuse_refer.xml",
                       limit=30, name="caller")
        assert rc == 0, out
        assert agent.wait(15) == 0, agent.output()[-2000:]

        handoff = dialtone.wait_for("handoff")[0]
        assert handoff["offer"]["intent"] == "billing"
        assert handoff["offer"]["caller"] == "+34600111222"
        decision = dialtone.wait_for("route_decision")[0]
        assert decision["kind"] == "transfer" and decision["target"] == agent_uri
        bridged = dialtone.wait_for("bridged")
        assert len(bridged) == 1
        # both legs ended: the caller's BYE took the agent's leg down with it
        assert wait_until(lambda: len(dialtone.of_type("call_ended")) == 2, 10)
    finally:
        if dialtone is not None:
            dialtone.stop()
        for p in procs:
            p.stop()
        broker.stop()
