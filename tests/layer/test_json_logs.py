"""``dialtone serve --log-format json``: one JSON object per log line, and every line a call
causes carries that call's id (the same ``call_id`` as its events and its CDR)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from telephony.aio.useragent import UserAgent
from tests.interop.peers import DIALTONE, Proc, rtp_range, wait_until
from tests.layer.test_call_api import ua_config


def _lines(path: Path) -> list[dict[str, object]]:
    out = []
    for text in path.read_text().splitlines():
        if text.startswith("{"):
            out.append(json.loads(text))
    return out


async def test_every_line_of_a_served_call_carries_its_call_id(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lo, hi = rtp_range()
    # -v: INFO, so the call's own lines (arrival, end) are written
    # no flow (answer and hold): what is under test is the logging, not a flow's start-up
    proc = Proc([str(DIALTONE), "-v", "serve", "--sip", "127.0.0.1:0", "--no-tcp",
                 "--events", str(events), "--log-format", "json",
                 "--rtp-ports", f"{lo}-{hi}", "--db", f"sqlite:///{tmp_path / 'n.db'}",
                 "--node-id", "json-node"], log=tmp_path / "node.log", limit=60, cwd=tmp_path)
    caller = UserAgent(ua_config(rtp_base=44000))
    await caller.start()
    try:
        def started() -> list[dict[str, object]]:
            if not events.exists():
                return []
            return [e for e in map(json.loads, events.read_text().splitlines())
                    if e["type"] == "node_started"]
        assert wait_until(lambda: started() or not proc.running, 30), proc.output()
        port = str(started()[0]["sip"]).rsplit(":", 1)[1]
        call = await caller.dial(f"sip:ivr@127.0.0.1:{port}")
        await call.hangup()
        assert wait_until(lambda: '"type":"call_ended"' in events.read_text(), 10)
    finally:
        await caller.close()
        proc.stop(signal.SIGTERM, grace=5.0)
    ids = {e["call_id"] for e in map(json.loads, events.read_text().splitlines())
           if e["type"] == "call_started"}
    assert len(ids) == 1
    call_id = ids.pop()
    lines = _lines(tmp_path / "node.log")
    assert lines, proc.output()
    assert all(set(line) >= {"ts", "level", "logger", "message", "call_id", "node_id"}
               for line in lines)
    assert all(line["node_id"] == "json-node" for line in lines)
    mine = [line for line in lines if line["call_id"] == call_id]
    assert any("inbound call" in str(line["message"]) for line in mine)
    assert any("ends" in str(line["message"]) for line in mine)
    # every line about the call (naming it) carries its id, and no line carries another id
    about = [line for line in lines if call_id in str(line["message"])]
    assert about and all(line["call_id"] == call_id for line in about)
    assert {line["call_id"] for line in lines} <= {None, call_id}
    # between its arrival and its end, nothing is logged without the call's id
    first = next(i for i, line in enumerate(lines) if line["call_id"] == call_id)
    last = max(i for i, line in enumerate(lines) if line["call_id"] == call_id)
    assert all(line["call_id"] == call_id for line in lines[first:last + 1]), lines
