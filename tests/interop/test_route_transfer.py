"""Issue 6 end to end: a real SIPp caller presses 1, the IVR hands the call off over a real
Mosquitto to the reference router (its own process), and the route is executed: the call
reaches a SIPp agent.  The caller refuses REFER (405), so Dialtone bridges a second leg."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import free_port, require_tool
from tests.interop.peers import DIALTONE, DialtoneProcess, Proc, rtp_range, sipp, wait_until
from tests.mosquitto_helper import MosquittoBroker

pytestmark = pytest.mark.interop


class EventsListener:
    """Subscribes to every node's call events (dialtone/v1/events/+) with paho."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[dict[str, object]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.messages.append(json.loads(m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("dialtone/v1/events/+", qos=1)
        self.client.loop_start()

    def kinds(self, call_id: str) -> list[str]:
        return [str(m["kind"]) for m in list(self.messages) if m.get("call_id") == call_id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

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
        seen = EventsListener(broker.port)
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
        # the call events reached the broker for CDR and workforce tools, the end last
        call_id = handoff["offer"]["call_id"]
        assert wait_until(lambda: "ended" in seen.kinds(call_id), 10)
        kinds = seen.kinds(call_id)
        assert kinds[0] == "answered" and kinds[-1] == "ended"
        assert {"handed_off", "transferred"} <= set(kinds)
        seen.close()
    finally:
        if dialtone is not None:
            dialtone.stop()
        for p in procs:
            p.stop()
        broker.stop()
