"""The call event log: one JSON object per line, appended, read by tools outside the project.

Keep the shape stable.  Every line has ``ts`` (UTC, ISO 8601 with milliseconds), ``type`` and,
for call events, ``call_id``; other keys depend on the type:

- ``call_started``: direction (inbound|outbound), caller, called, sip_call_id, remote
- ``call_answered``
- ``call_ended``: cause (normal|remote_bye|local_hangup|cancelled|rejected|media_timeout|failed|...),
  status (SIP code or null), duration_s
- ``call_failed`` (outbound): status, reason
- ``dtmf``: digit, duration_ms, source (rfc4733|info|inband)
- ``prompt_started`` / ``prompt_finished``: prompt, language (when known), interrupted
- flow events from ivr_flows (``flow_started``, ``node_entered``, ``input``, ``action``,
  ``hook_result``, ``handoff``, ``route_decision``, ``flow_ended``), each with ``t`` (seconds
  since the call started) and ``node``
- ``cdr``: one per call that ran a flow: the flow's CDR fields plus sip_call_id, direction,
  end_cause

Writing is synchronous and line-buffered: a line is one ``write`` call, so concurrent
readers (``tail -f``) never see half a line.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Protocol, TextIO


class EventSink(Protocol):
    def emit(self, event: dict[str, Any]) -> None: ...


class NullEventLog:
    def emit(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryEventLog:
    """Keeps events in a list (tests, the flow harness)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(dict(event))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def close(self) -> None:
        pass


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonLinesEventLog:
    """Appends events as JSON lines to ``path`` (created with its directory)."""

    def __init__(self, path: str | os.PathLike[str], *, node: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Held open for the log's lifetime and closed by close(): no context manager fits.
        self._fh: TextIO = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self.node = node

    def emit(self, event: dict[str, Any]) -> None:
        record: dict[str, Any] = {"ts": _utc_now()}
        if self.node is not None:
            record["node"] = self.node
        record.update(event)
        self._fh.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")

    def close(self) -> None:
        self._fh.close()
