"""CDRs: a node writes one row per call when it ends, and `dialtone cdr export` reads them."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from dialer.db import make_engine
from dialtone.cdr import CDR_FIELDS, CdrRecorder, CdrWriter, iter_cdrs
from dialtone.cli import main
from dialtone.config import load_config
from dialtone.migrations import upgrade
from dialtone.node import Node
from dialtone_errors import ConfigError
from telephony.aio.useragent import UserAgent
from tests.conftest import REPO
from tests.layer.test_call_api import ua_config, wait_until
from tests.layer.test_dialer_postgres import pg_base, pg_url  # noqa: F401 - fixtures

FLOW = REPO / "tests/fixtures/flows/ok.json"  # says hello, hangs up


async def test_a_served_call_leaves_one_row(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    config = load_config(env={}, flags={"sip.listen": "127.0.0.1:0", "db": url,
                                        "flow.path": str(FLOW), "node_id": "cdr-node",
                                        "events": str(tmp_path / "events.jsonl"),
                                        "media.rtp_ports": "42000-42100",
                                        # the shared machine: admission is not under test
                                        "sip.max_tick_lateness": None})
    before = time.time()
    caller = UserAgent(ua_config(rtp_base=43000))
    await caller.start()
    try:
        async with Node.running(config) as node:
            assert node.sip_address is not None and node.cdr_writer is not None
            host, port = node.sip_address
            # one call the flow ends (hello, then hang-up) and one the caller abandons
            heard = await caller.dial(f"sip:ivr@{host}:{port}", caller="sip:alice@127.0.0.1")
            assert await heard.wait_ended(timeout=20) is not None
            left = await caller.dial(f"sip:ivr@{host}:{port}", caller="sip:bob@127.0.0.1")
            # hang up once the flow is playing to bob (not before it started: a loaded
            # machine may take a while)
            await wait_until(lambda: (tmp_path / "events.jsonl").read_text().count(
                '"type":"prompt_started"') >= 2, timeout=20)
            await left.hangup()
            writer = node.cdr_writer
            await wait_until(lambda: writer.written >= 3, timeout=20)  # 2 inserts + 1 update
    finally:
        await caller.close()

    engine = make_engine(url)
    rows = list(iter_cdrs(engine, since=before))
    engine.dispose()
    assert len(rows) == 2
    done, gone = sorted(rows, key=lambda r: r["started_at"])
    assert (done["node_id"], done["direction"], done["sip_call_id"]) == (
        "cdr-node", "inbound", heard.sip_call_id)
    assert "alice" in done["caller"] and done["by_remote"] is False
    assert done["flow"] == "tiny" and json.loads(done["flow_path"])[:1] == ["hi"]
    assert done["disposition"] and done["end_cause"]
    assert done["answered_at"] is not None
    assert before <= done["started_at"] <= done["answered_at"] <= done["ended_at"]
    assert done["duration_s"] > 0 and done["rtp_received"] > 0
    assert "bob" in gone["caller"] and gone["by_remote"] is True
    assert gone["disposition"] == "caller_hangup"

    # the export: CSV with a header, the path as a>b; JSON lines; the period filters
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before - 1))
    assert main(["cdr", "export", "--db", url, "--since", since, "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["call_id"] for r in table] == [done["call_id"], gone["call_id"]]
    assert tuple(table[0]) == CDR_FIELDS
    assert table[0]["flow_path"].startswith("hi") and table[0]["started_at"].endswith("Z")
    assert main(["cdr", "export", "--db", url, "--since", str(before - 1),
                 "--until", str(gone["started_at"]), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["call_id"] == done["call_id"]
    assert json.loads(lines[0])["flow_path"][0] == "hi"


def test_recorder_hand_off_agent_amd_and_failure(tmp_path: Path) -> None:
    """What the events say about the hand-off, the agent, AMD and a failed outbound call."""
    url = f"sqlite:///{tmp_path / 'cdr.db'}"
    upgrade(url)
    engine = make_engine(url)
    writer = CdrWriter(engine)
    clock = iter(float(t) for t in range(100, 200))
    rec = CdrRecorder(writer, "n1", wall_clock=lambda: next(clock))
    ended = {"by_remote": True, "duration_s": 4.0,
             "rtp": {"received": 200, "lost": 1, "jitter_ms": 0.5, "sent": 200}}
    rec.observe({"type": "call_started", "call_id": "c1", "direction": "inbound",
                 "caller": "sip:a@x", "called": "sip:ivr@y", "sip_call_id": "s1"})
    rec.observe({"type": "call_answered", "call_id": "c1"})
    rec.observe({"type": "route_decision", "call_id": "c1", "t": 1.0, "kind": "agent",
                 "target": "sip:agent7@pbx", "agent_id": "agent7"})
    rec.observe({"type": "call_ended", "call_id": "c1", "cause": "transferred", **ended})
    rec.observe({"type": "cdr", "call_id": "c1", "flow": "f", "path": ["menu", "handoff"],
                 "disposition": "handed_off", "language": "en", "intent": "billing"})
    rec.observe({"type": "call_started", "call_id": "c2", "direction": "outbound",
                 "caller": "sip:d@x", "called": "sip:+12125550100@gw", "sip_call_id": "s2"})
    rec.observe({"type": "call_failed", "call_id": "c2", "status": 486, "reason": "Busy Here"})
    rec.observe({"type": "call_ended", "call_id": "c2", "cause": "busy", "status": 486,
                 **ended})
    rec.observe({"type": "call_started", "call_id": "c3", "direction": "outbound",
                 "caller": "sip:d@x", "called": "sip:+12125550101@gw", "sip_call_id": "s3"})
    rec.observe({"type": "amd", "call_id": "c3", "result": "machine"})
    rec.observe({"type": "handoff_fallback", "call_id": "c3", "t": 2.0, "reason": "timeout"})
    rec.observe({"type": "call_ended", "call_id": "c3", "cause": "local_hangup", **ended})
    rec.observe({"type": "call_ended", "call_id": "never-started", "cause": "x", **ended})
    assert writer.flush(10)
    writer.close()
    rows = {r["call_id"]: r for r in iter_cdrs(engine, since=0)}
    engine.dispose()
    assert set(rows) == {"c1", "c2", "c3"}
    c1, c2, c3 = rows["c1"], rows["c2"], rows["c3"]
    assert (c1["handoff_result"], c1["handoff_target"], c1["agent"]) == (
        "agent", "sip:agent7@pbx", "agent7")
    assert (c1["disposition"], json.loads(c1["flow_path"]), c1["intent"]) == (
        "handed_off", ["menu", "handoff"], "billing")
    assert (c1["started_at"], c1["answered_at"], c1["ended_at"]) == (100.0, 101.0, 103.0)
    assert (c2["sip_status"], c2["sip_reason"], c2["end_cause"]) == (486, "Busy Here", "busy")
    assert c2["answered_at"] is None and c2["disposition"] is None
    assert (c3["amd"], c3["handoff_result"]) == ("machine", "fallback:timeout")


def test_export_refuses_a_database_behind_head(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    assert main(["cdr", "export", "--db", url, "--since", "2026-01-01"]) == 2
    assert "dialtone db upgrade" in capsys.readouterr().err


def test_export_names_a_bad_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["cdr", "export", "--since", "yesterday-ish"])
    assert "bad time 'yesterday-ish'" in capsys.readouterr().err


async def test_a_node_on_postgres_refuses_an_old_schema_then_writes_cdrs(
        pg_url: str) -> None:  # noqa: F811
    """The several-nodes set-up: the shared database is upgraded by the operator, not by a
    node; once it is, the node's CDRs land in it."""
    url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    config = load_config(env={}, flags={"sip.listen": "127.0.0.1:0", "db": url,
                                        "node_id": "pg-node", "sip.max_tick_lateness": None,
                                        "media.rtp_ports": "42200-42300"})
    with pytest.raises(ConfigError, match="dialtone db upgrade"):
        async with Node.running(config):
            pass
    upgrade(url)
    caller = UserAgent(ua_config(rtp_base=43200))
    await caller.start()
    try:
        async with Node.running(config) as node:
            assert node.sip_address is not None and node.cdr_writer is not None
            host, port = node.sip_address
            call = await caller.dial(f"sip:ivr@{host}:{port}")
            await call.hangup()
            writer = node.cdr_writer
            await wait_until(lambda: writer.written >= 1, timeout=20)
    finally:
        await caller.close()
    engine = make_engine(url)
    rows = list(iter_cdrs(engine, since=0))
    engine.dispose()
    assert [(r["node_id"], r["end_cause"], r["by_remote"]) for r in rows] == [
        ("pg-node", "remote_bye", True)]
    assert rows[0]["sip_call_id"] == call.sip_call_id
