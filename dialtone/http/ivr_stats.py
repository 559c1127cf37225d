"""IVR statistics from the event log: which edges callers took, where they hung up.

The flow engine writes ``node_entered`` (with ``from``, ``node`` and ``edge``) for every step
and ``remote_hangup`` (with ``node``) when the caller hangs up; reading those lines for a
period gives the flow as a graph with counts.  Calls in the IVR now come from the live event
stream (``flow_started`` without its ``flow_ended``).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["IvrTracker", "ivr_period_stats"]


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def ivr_period_stats(path: str | None, *, since: float, until: float,
                     max_lines: int = 5_000_000) -> dict[str, Any]:
    """Edges (from, to, edge, count), hang-ups per node and calls, over [since, until)."""
    edges: dict[tuple[str, str, str], int] = {}
    hangups: dict[str, int] = {}
    nodes: dict[str, str] = {}
    calls: set[str] = set()
    bad = 0
    if path and Path(path).exists():
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f):
                if n >= max_lines:
                    break
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    bad += 1  # a torn last line while the node writes: counted, skipped
                    continue
                if not isinstance(ev, dict):
                    bad += 1
                    continue
                t = _ts(ev.get("ts"))
                if t is None or not since <= t < until:
                    continue
                kind = ev.get("type")
                if kind == "flow_started":
                    calls.add(str(ev.get("call_id")))
                elif kind == "node_entered":
                    to = str(ev.get("node"))
                    frm = str(ev.get("from") or "start")
                    key = (frm, to, str(ev.get("edge", "")))
                    edges[key] = edges.get(key, 0) + 1
                    nodes[to] = str(ev.get("kind", ""))
                    nodes.setdefault(frm, "start" if frm == "start" else "")
                elif kind == "remote_hangup":
                    where = str(ev.get("node") or "start")
                    hangups[where] = hangups.get(where, 0) + 1
    return {"since": since, "until": until, "calls": len(calls),
            "nodes": [{"id": k, "kind": v, "hangups": hangups.get(k, 0)}
                      for k, v in sorted(nodes.items())],
            "edges": [{"from": a, "to": b, "edge": e, "count": c}
                      for (a, b, e), c in sorted(edges.items(), key=lambda kv: -kv[1])],
            "hangups": [{"node": k, "count": v}
                        for k, v in sorted(hangups.items(), key=lambda kv: -kv[1])],
            "unreadable_lines": bad}


class IvrTracker:
    """Calls in the IVR now, per node (a hub listener)."""

    def __init__(self) -> None:
        self.calls: dict[str, str | None] = {}

    def observe(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        call_id = str(event.get("call_id", ""))
        if kind == "flow_started":
            self.calls[call_id] = None
            if len(self.calls) > 100_000:
                self.calls.pop(next(iter(self.calls)))
        elif kind == "node_entered" and call_id in self.calls:
            self.calls[call_id] = str(event.get("node"))
        elif kind in ("flow_ended", "call_ended"):
            self.calls.pop(call_id, None)

    def now(self) -> dict[str, Any]:
        by_node: dict[str, int] = {}
        for node in self.calls.values():
            key = node or "start"
            by_node[key] = by_node.get(key, 0) + 1
        return {"in_ivr": len(self.calls), "by_node": by_node}
