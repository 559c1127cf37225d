"""The console's HTTP API against the real app and a SQLite store (issue 15)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dialer.policy import Disposition
from tests.layer.console_helpers import (
    GOOD_CSV,
    Console,
    add_agent,
    logged_in,
    make_console,
    wait_import,
)

ALWAYS = {"window": "always", "caller_id": "+12125550199"}


@pytest.fixture
def console(tmp_path: Path) -> Console:
    return make_console(tmp_path, max_upload_bytes=64 * 1024)


def contacts(console: Console, name: str) -> int:
    return int(console.store.summary(name, now=time.time())["contacts"])


def test_campaign_create_edit_and_bad_settings(console: Console) -> None:
    with logged_in(console, "max") as c:
        r = c.post("/api/campaigns", json={"name": "spring", "settings": ALWAYS})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "created"
        assert r.json()["settings"]["caller_id"] == "+12125550199"
        assert c.post("/api/campaigns", json={"name": "spring"}).status_code == 409
        bad = c.post("/api/campaigns", json={"name": "x", "settings": {"ring_timeout": 5}})
        assert bad.status_code == 422 and "ring_timeout" in bad.json()["detail"]
        assert c.post("/api/campaigns", json={"name": "../etc"}).status_code == 422
        r = c.patch("/api/campaigns/spring", json={"settings": {"max_attempts": 5}})
        assert r.status_code == 200 and r.json()["settings"]["max_attempts"] == 5
        assert r.json()["settings"]["caller_id"] == "+12125550199"  # the rest kept
        assert c.patch("/api/campaigns/spring",
                       json={"settings": {"max_attempts": 0}}).status_code == 422
        r = c.patch("/api/campaigns/spring",
                    json={"settings": {"retries": {"busy": 60, "machine": None}}})
        retries = r.json()["settings"]["retries"]
        assert retries["busy"] == 60 and "machine" not in retries
        assert retries["abandoned"] == 72 * 3600  # the others kept
        assert c.patch("/api/campaigns/spring", json={"settings": {
            "retries": {"busy": -1}}}).status_code == 422
        assert c.patch("/api/campaigns/nope", json={"settings": {}}).status_code == 404
        names = [x["name"] for x in c.get("/api/campaigns").json()]
        assert names == ["spring"]
        assert c.get("/api/campaigns/spring").json()["settings"]["max_attempts"] == 5


def test_upload_with_bad_rows_then_start_pause_resume_archive(console: Console) -> None:
    with logged_in(console, "max") as c:
        c.post("/api/campaigns", json={"name": "spring", "settings": {"window": "always"}})
        r = c.post("/api/campaigns/spring/start")
        assert r.status_code == 409
        reasons = " ".join(r.json()["reasons"])
        assert "caller ID" in reasons and "no contacts" in reasons and "no agents" in reasons

        prev = c.post("/api/lists/preview", files={"file": ("l.csv", GOOD_CSV)}).json()
        assert prev["columns"] == ["name", "phone", "tz"] and prev["rows"][0][0] == "Ann"
        r = c.post("/api/campaigns/spring/lists", files={"file": ("l.csv", GOOD_CSV)},
                   data={"mapping": "phone=phone;timezone=tz"})
        assert r.status_code == 202, r.text
        job = wait_import(c, r.json()["id"])
        assert job["state"] == "done" and job["imported"] == 2 and job["bad_rows"] == 2
        bad = c.get(f"/api/lists/{job['id']}/bad-rows").json()
        assert [(b["row"], b["column"]) for b in bad] == [(3, "phone"), (4, "tz")]
        assert "zone" in bad[1]["reason"]
        listed = c.get("/api/lists", params={"campaign": "spring"}).json()
        assert [(x["id"], x["filename"], x["imported"]) for x in listed] == [
            (job["id"], "l.csv", 2)]
        assert c.get("/api/lists", params={"campaign": "other"}).json() == []
        text = c.get(f"/api/lists/{job['id']}/bad-rows.csv").text
        assert text.splitlines()[0] == "row,column,reason,value" and "Mars/Olympus" in text
        deadline = time.monotonic() + 10  # emitted on the loop after the worker finishes
        while not any(e["type"] == "list_imported" for e in console.events):
            assert time.monotonic() < deadline, "no list_imported event"
            time.sleep(0.01)
        done = next(e for e in console.events if e["type"] == "list_imported")
        assert (done["state"], done["imported"], done["bad_rows"]) == ("done", 2, 2)

        c.patch("/api/campaigns/spring", json={"settings": {"caller_id": "+12125550199"}})
        r = c.post("/api/campaigns/spring/start")
        assert r.status_code == 409 and r.json()["reasons"] == ["no agents logged in"]
        add_agent(console)
        r = c.post("/api/campaigns/spring/start")
        assert r.status_code == 200 and r.json()["status"] == "running"
        assert console.store.campaign("spring").status == "running"  # the engine follows it
        assert c.post("/api/campaigns/spring/start").status_code == 409
        assert c.post("/api/campaigns/spring/archive").status_code == 409
        assert c.post("/api/campaigns/spring/pause").json()["status"] == "paused"
        assert c.post("/api/campaigns/spring/resume").json()["status"] == "running"
        c.post("/api/campaigns/spring/pause")
        assert c.post("/api/campaigns/spring/archive").json()["status"] == "archived"
        assert c.patch("/api/campaigns/spring",
                       json={"settings": {"max_attempts": 2}}).status_code == 409
        log = c.get("/api/audit", params={"target": "spring"}).json()
        actions = [e["action"] for e in reversed(log)]
        assert actions[:2] == ["campaign_create", "list_upload"]
        assert actions[-5:] == ["campaign_start", "campaign_pause", "campaign_resume",
                                "campaign_pause", "campaign_archive"]
        assert all(e["user"] == "max" for e in log)
        statuses = [e for e in console.events if e["type"] == "campaign_status"]
        assert [e["status"] for e in statuses] == ["running", "paused", "running", "paused",
                                                    "archived"]
        assert statuses[0] == {"type": "campaign_status", "campaign": "spring",
                               "status": "running", "previous": "created", "by": "max"}


def test_start_outside_the_window_says_so(console: Console) -> None:
    add_agent(console)
    closed = {"days": ["mon"], "start": "00:00", "end": "00:01"}
    with logged_in(console, "max") as c:
        c.post("/api/campaigns", json={"name": "w", "settings": {
            "caller_id": "+12125550199", "window": closed}})
        r = c.post("/api/campaigns/w/lists", files={"file": ("l.csv", GOOD_CSV)},
                   data={"mapping": "phone=phone"})
        wait_import(c, r.json()["id"])
        r = c.post("/api/campaigns/w/start")
        now = time.gmtime()
        if now.tm_wday == 0 and now.tm_hour == 0 and now.tm_min == 0:
            pytest.skip("the one minute the window is open somewhere")
        assert r.status_code == 409
        assert any("outside every calling window" in x for x in r.json()["reasons"])


@pytest.mark.parametrize(("payload", "mapping", "code", "words"), [
    (b"\x00\x01\x02PK\x03\x04" * 100, "phone=phone", 422, "binary"),
    (b"\xff\xfe\xfa\xfb,phone\n1,2\n", "phone=phone", 422, "UTF-8"),
    (b"", "phone=phone", 422, "empty"),
    (GOOD_CSV, "phone=mobile", 422, "'mobile'"),
    (GOOD_CSV, "phone=phone;colour=tz", 422, "unknown mapping key"),
    (b"phone\n" + b"+12125550100\n" * 7000, "phone=phone", 413, "larger than the limit"),
])
def test_bad_uploads_are_refused_and_nothing_is_imported(
        console: Console, payload: bytes, mapping: str, code: int, words: str) -> None:
    with logged_in(console, "max") as c:
        c.post("/api/campaigns", json={"name": "s", "settings": ALWAYS})
        r = c.post("/api/campaigns/s/lists", files={"file": ("x.csv", payload)},
                   data={"mapping": mapping})
        assert r.status_code == code, r.text
        assert words in r.json()["detail"]
    assert contacts(console, "s") == 0


def test_upload_to_a_missing_campaign_and_missing_import(console: Console) -> None:
    with logged_in(console, "max") as c:
        r = c.post("/api/campaigns/none/lists", files={"file": ("l.csv", GOOD_CSV)})
        assert r.status_code == 404
        assert c.get("/api/lists/list-99").status_code == 404
        assert c.get("/api/lists/list-99/bad-rows.csv").status_code == 404
        assert c.post("/api/lists/preview",
                      files={"file": ("x.bin", b"\x00" * 10)}).status_code == 422


def test_dnc_add_check_import_remove(console: Console) -> None:
    with logged_in(console, "max") as c:
        c.post("/api/campaigns", json={"name": "s", "settings": ALWAYS})
        r = c.post("/api/dnc", json={"number": "+1 212 555 0100"})
        assert r.status_code == 201 and r.json()["blocked"] and r.json()["lists"] == ["global"]
        r = c.post("/api/dnc", json={"number": "+1 212 555 0101", "campaign": "s"})
        assert r.json()["lists"] == ["s"]
        assert c.get("/api/dnc/+12125550101").json()["blocked"] is False  # global only
        assert c.get("/api/dnc/+12125550101", params={"campaign": "s"}).json()["blocked"]
        assert c.post("/api/dnc", json={"number": "banana"}).status_code == 422
        assert c.post("/api/dnc", json={"number": "+12125550100",
                                        "campaign": "nope"}).status_code == 404
        r = c.post("/api/dnc/import", files={"file": ("d.csv", b"name,phone\nA,+12125550102\nB,xx\n")})
        assert r.status_code == 200
        assert r.json()["added"] == 1 and r.json()["problems"][0]["value"] == "xx"
        assert c.post("/api/dnc/import",
                      files={"file": ("d.bin", b"\x00\x00")}).status_code == 422
        assert c.delete("/api/dnc/+12125550100").status_code == 204
        assert c.delete("/api/dnc/+12125550100").status_code == 404
        assert c.get("/api/dnc/+12125550100").json()["blocked"] is False


def _dial_and_record(console: Console, name: str, outcomes: list[tuple[str, dict[str, Any]]]
                     ) -> None:
    now = time.time()
    leases = console.store.lease(name, now=now, count=len(outcomes), owner="test")
    assert len(leases) == len(outcomes)
    for lease, (disp, kw) in zip(leases, outcomes, strict=True):
        console.store.record_outcome(lease, disp, now=now + 30, **kw)


def _campaign_with_calls(console: Console, c: TestClient) -> None:
    rows = b"phone\n" + b"".join(b"+1212555%04d\n" % i for i in range(200, 210))
    c.post("/api/campaigns", json={"name": "s", "settings": ALWAYS})
    wait_import(c, c.post("/api/campaigns/s/lists", files={"file": ("l.csv", rows)}).json()["id"])
    _dial_and_record(console, "s", [
        (Disposition.CONNECTED, {"time_to_agent_s": 1.0, "agent": "a1", "amd": "human"}),
        (Disposition.CONNECTED, {"time_to_agent_s": 3.0, "agent": "a1", "amd": "human"}),
        (Disposition.ABANDONED, {"amd": "human"}),
        (Disposition.MACHINE, {"amd": "machine"}),
        (Disposition.NO_ANSWER, {}),
        (Disposition.BUSY, {}),
    ])


def test_reports_dispositions_compliance_and_csv(console: Console) -> None:
    with logged_in(console, "vic") as v, logged_in(console, "max") as c:
        _campaign_with_calls(console, c)
        rep = v.get("/api/campaigns/s/reports/dispositions").json()
        assert rep["total"] == {"abandoned": 1, "busy": 1, "connected": 2, "machine": 1,
                                "no_answer": 1}
        assert sum(sum(h["counts"].values()) for h in rep["per_hour"]) == 6
        text = v.get("/api/campaigns/s/reports/dispositions.csv").text
        assert text.splitlines()[0] == "hour,disposition,count" and ",connected,2" in text
        comp = v.get("/api/campaigns/s/reports/compliance").json()
        # live answers: 2 connected + 1 abandoned (machine, busy, no answer are not live)
        assert comp["last_24h"] == {"live": 3, "abandoned": 1, "rate": pytest.approx(1 / 3),
                                    "over_cap": True}
        assert [x["outcome"] for x in comp["abandoned_calls"]] == ["abandoned"]
        assert "abandoned" in v.get("/api/campaigns/s/reports/compliance.csv").text
        lines = v.get("/api/campaigns/s/reports/contacts.csv").text.splitlines()
        assert lines[0].startswith("phone,row,status") and len(lines) == 11
        assert v.get("/api/campaigns/s/reports/dispositions",
                     params={"since": 10, "until": 5}).status_code == 422
        assert v.get("/api/campaigns/x/reports/compliance").status_code == 404
        live = v.get("/api/campaigns/s/live").json()
        assert live["abandonment"]["1h"]["rate"] == pytest.approx(1 / 3)
        assert live["amd_share"] == pytest.approx(1 / 4)
        assert live["avg_wait_s"] == pytest.approx(2.0)
        assert live["contacts"] == {"total": 10, "dialled": 6, "left": 8}


def test_simulator_side_by_side(console: Console) -> None:
    with logged_in(console, "max") as c:
        r = c.post("/api/simulate", json={"agents": 5, "hours": 0.5, "pacing_a": "progressive",
                                          "pacing_b": "ratio:2"})
        assert r.status_code == 200, r.text
        a, b = r.json()["a"], r.json()["b"]
        assert a["pacing"] == "progressive" and b["pacing"] == "ratio:2"
        assert b["calls_placed"] > a["calls_placed"] > 0
        assert c.post("/api/simulate", json={"pacing_b": "warp"}).status_code == 422
        assert c.post("/api/simulate", json={"agents": 0}).status_code == 422
        assert c.post("/api/simulate", json={"population": "recorded"}).status_code == 422
        _campaign_with_calls(console, c)
        r = c.post("/api/simulate", json={"population": "recorded", "campaign": "s",
                                          "agents": 2, "hours": 0.2})
        assert r.status_code == 200 and r.json()["rows"] == 6
        assert r.json()["a"]["calls_placed"] <= 6


def _log(path: Path, events: list[dict[str, Any]]) -> None:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps({"ts": ts, **e}) + "\n" for e in events)
        f.write("{torn line\n")


def test_ivr_stats_edges_and_hangups_from_the_event_log(console: Console) -> None:
    calls = []
    for i, (path, hang) in enumerate([(["lang", "menu", "billing"], False),
                                       (["lang", "menu"], True), (["lang"], True)]):
        cid = f"c{i}"
        calls.append({"type": "flow_started", "call_id": cid, "t": 0, "caller": "1",
                      "called": "2", "flow": "f"})
        prev = None
        for node in path:
            calls.append({"type": "node_entered", "call_id": cid, "t": 1, "node": node,
                          "kind": "menu", "edge": "next" if prev else "start", "from": prev})
            prev = node
        if hang:
            calls.append({"type": "remote_hangup", "call_id": cid, "t": 2, "node": prev,
                          "reason": "bye"})
    _log(console.events_path, calls)
    console.hub.emit({"type": "flow_started", "call_id": "live1"})
    console.hub.emit({"type": "node_entered", "call_id": "live1", "node": "menu"})
    with logged_in(console, "vic") as v:
        st = v.get("/api/ivr/stats").json()
        assert st["calls"] == 3 and st["unreadable_lines"] == 1
        edges = {(e["from"], e["to"]): e["count"] for e in st["edges"]}
        assert edges == {("start", "lang"): 3, ("lang", "menu"): 2, ("menu", "billing"): 1}
        assert {h["node"]: h["count"] for h in st["hangups"]} == {"menu": 1, "lang": 1}
        assert st["now"] == {"in_ivr": 1, "by_node": {"menu": 1}}
        assert v.get("/api/ivr/now").json()["in_ivr"] == 1
        old = v.get("/api/ivr/stats", params={"since": 0, "until": 1000}).json()
        assert old["calls"] == 0


def test_agents_metrics_and_streams(console: Console) -> None:
    add_agent(console, "a1", "available")
    add_agent(console, "a2", "busy")
    with logged_in(console, "max") as c:
        c.post("/api/campaigns", json={"name": "s", "settings": ALWAYS})
        ag = c.get("/api/agents").json()
        assert [(a["id"], a["state"]) for a in ag] == [("a1", "available"), ("a2", "busy")]
        assert ag[0]["in_state_s"] >= 4.0
        console.hub.emit({"type": "call_started", "call_id": "x", "direction": "inbound"})
        console.hub.emit({"type": "call_answered", "call_id": "x"})
        console.hub.emit({"type": "dtmf", "call_id": "x", "source": "rfc4733"})
        console.hub.emit({"type": "call_ended", "call_id": "x", "cause": "remote_bye",
                          "rtp": {"received": 100, "lost": 3, "jitter_ms": 4.0, "sent": 100}})
        console.hub.emit({"type": "dialer_call", "campaign": "s", "call_id": "d1",
                          "state": "ringing"})
        console.hub.emit({"type": "dialer_status", "campaign": "s", "dial_level": 2.5})
        with c.stream("GET", "/api/campaigns/s/stream", params={"limit": 2}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            body = "".join(r.iter_text())
        datas = [json.loads(line[5:]) for line in body.splitlines()
                 if line.startswith("data:")]
        assert datas[0]["type"] == "figures" and datas[0]["calls"]["ringing"] == 1
        assert datas[0]["dial_level"] == 2.5
        assert datas[1]["type"] == "figures"  # the next second's
        text = c.get("/metrics").text
        for family in ("dialtone_calls_active", "dialtone_calls_total",
                       "dialtone_call_setup_seconds", "dialtone_rtp_lost_packets_total",
                       "dialtone_rtp_jitter_ms", "dialtone_dtmf_total",
                       "dialtone_flow_nodes_entered_total", "dialtone_handoff_seconds",
                       "dialtone_dialer_dial_level", "dialtone_dialer_calls",
                       "dialtone_agents", "dialtone_abandon_rate",
                       "dialtone_broker_connected"):
            assert f"# TYPE {family}" in text, family
        assert 'dialtone_calls_total{direction="inbound",outcome="remote_bye"} 1.0' in text
        assert "dialtone_rtp_lost_packets_total 3.0" in text
        assert 'dialtone_dialer_dial_level{campaign="s"} 2.5' in text
        assert 'dialtone_agents{state="busy"} 1.0' in text
        with c.stream("GET", "/api/stream", params={"limit": 1}) as r:
            node = [json.loads(x[5:]) for x in "".join(r.iter_text()).splitlines()
                    if x.startswith("data:")]
        assert node[0]["type"] == "node_figures"
        assert [a["id"] for a in node[0]["agents"]] == ["a1", "a2"]


def test_health_ready_and_page(console: Console) -> None:
    with TestClient(console.app) as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/ready").json() == {"status": "ready"}
        page = c.get("/")
        assert page.status_code == 200 and "Dialtone" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/openapi.json").json()["info"]["title"] == "Dialtone console API"


def test_oversized_bodies_are_cut_off_while_they_arrive(console: Console) -> None:
    limit = 64 * 1024 + 64 * 1024  # the file's limit and the form's allowance

    def chunks() -> Any:
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\n\r\n"
        for _ in range(limit // 8192 + 8):
            yield b"phone\n" * 1365

    with logged_in(console, "max") as c:
        c.post("/api/campaigns", json={"name": "s", "settings": ALWAYS})
        r = c.post("/api/campaigns/s/lists", content=chunks(),
                   headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = c.post("/api/campaigns/s/lists", content=b"x",
                   headers={"Content-Type": "multipart/form-data; boundary=b",
                            "Content-Length": str(10 * limit)})
        assert r.status_code == 413
    assert contacts(console, "s") == 0


def test_calls_in_flight_without_an_engine_are_the_live_leases(console: Console) -> None:
    add_agent(console, "a1")
    add_agent(console, "a2")
    with logged_in(console, "max") as c:
        rows = b"phone\n" + b"".join(b"+1212555%04d\n" % i for i in range(300, 306))
        c.post("/api/campaigns", json={"name": "s", "settings": ALWAYS})
        wait_import(c, c.post("/api/campaigns/s/lists",
                              files={"file": ("l.csv", rows)}).json()["id"])
        now = time.time()
        console.store.lease("s", now=now, count=3, owner="e", lease_s=600)
        console.store.lease("s", now=now - 700, count=2, owner="e", lease_s=600)  # ran out
        live = c.get("/api/campaigns/s/live").json()
        assert live["calls"] == {"dialling": 3, "ringing": 0, "waiting": 0, "connected": 0}
        assert live["dial_level"] == pytest.approx(1.5)  # 3 lines, 2 agents logged in


def test_live_figures_follow_a_running_engine_snapshot() -> None:
    """The dialer engine (another process) writes its snapshot to the store every second;
    the live view shows its calls by phase, dial level and agents while it is fresh."""
    import time

    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore
    from dialtone.http.hub import EventHub
    from dialtone.http.live import LiveFigures, StaticAgents
    from dialtone.http.metrics import NodeMetrics

    store = DialerStore("sqlite://")
    store.create_campaign("snap", CampaignSettings(caller_id="+15550100"), now=time.time())
    figures = LiveFigures(store, EventHub(), StaticAgents(), NodeMetrics())
    store.write_engine_status("snap", "host:snap", {
        "dial_level": 2.5, "dialling": 4, "waiting": 1, "connected": 2, "talk_s_mean": 90.0,
        "agents": [{"uri": "sip:a@127.0.0.1", "state": "busy", "since_s": 12.0},
                   {"uri": "sip:b@127.0.0.1", "state": "wrap", "since_s": 3.0}]},
        now=time.time())
    live = figures.campaign("snap")
    assert live["calls"]["dialling"] == 4 and live["calls"]["connected"] == 2
    assert live["dial_level"] == 2.5 and live["avg_talk_s"] == 90.0
    assert live["agents"]["by_state"] == {"busy": 1, "wrap_up": 1}
    # a stale snapshot (the engine stopped) is not shown as live
    store.write_engine_status("snap", "host:snap", {"dial_level": 9.0},
                              now=time.time() - 60)
    assert figures.campaign("snap")["dial_level"] != 9.0


def test_the_live_view_carries_the_dialers_pbx_registration(console: Console) -> None:
    """The engine's snapshot carries its PBX registration (state, the registrar's answer,
    expiry, last failure): the API's live figures pass it on; a trunk or no engine: null."""
    with logged_in(console, "max") as c:
        c.post("/api/campaigns", json={"name": "s", "settings": ALWAYS})
        assert c.get("/api/campaigns/s/live").json()["registration"] is None  # no engine
        reg = {"state": "retrying", "registered": False, "aor": "sip:1001@pbx:5060",
               "registrar": "sip:pbx:5060", "auth_user": "1001", "status": 503,
               "reason": "Service Unavailable", "expires": None, "expires_in": None,
               "registered_at": time.time() - 400,
               "last_failure": {"at": time.time() - 3, "ago_s": 3.0, "status": 503,
                                "reason": "Service Unavailable"}, "message": None}
        console.store.write_engine_status("s", "host:s", {"dial_level": 0.0,
                                                          "registration": reg}, now=time.time())
        assert c.get("/api/campaigns/s/live").json()["registration"] == reg
        console.store.write_engine_status("s", "host:s", {"dial_level": 0.0,
                                                          "registration": None}, now=time.time())
        assert c.get("/api/campaigns/s/live").json()["registration"] is None  # a trunk


def test_start_needs_a_node_that_dials_and_counts_listed_agents(tmp_path: Path) -> None:
    """On a node without --trunk nothing would dial a started campaign: Start says so.  Agents
    listed in the campaign (SIP URIs the engine dials) count as agents."""
    console = make_console(tmp_path, dialer_trunk=lambda: None)
    with logged_in(console, "max") as c:
        c.post("/api/campaigns", json={"name": "spring", "settings": {
            "window": "always", "caller_id": "+12125550199",
            "extra": {"agents": ["sip:agent1@127.0.0.1:5090"]}}})
        r = c.post("/api/campaigns/spring/lists", files={"file": ("l.csv", GOOD_CSV)},
                   data={"mapping": "phone=phone;timezone=tz"})
        wait_import(c, r.json()["id"])
        reasons = c.post("/api/campaigns/spring/start").json()["reasons"]
        assert len(reasons) == 1 and "--trunk" in reasons[0]
