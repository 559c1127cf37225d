"""The node's log lines: text for a person, or JSON lines for a log pipeline (``--log-format
json``), each with the call it is about (``call_id``, see telephony.aio.logcontext)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from telephony.aio.logcontext import CallIdFilter

__all__ = ["JsonFormatter", "apply_log_format"]

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (ISO 8601 UTC, ms), ``level``, ``logger``,
    ``message``, ``call_id`` (null for node-wide lines), ``node_id``, and ``exc`` with the
    traceback when there is one.  Field names are fixed: log pipelines index them."""

    def __init__(self, node_id: str | None = None) -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "call_id": getattr(record, "call_id", None),
            "node_id": self.node_id,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def apply_log_format(fmt: LogFormat, *, node_id: str | None = None) -> None:
    """Give every root handler the call-id filter and, for ``json``, the JSON formatter
    (the handlers themselves come from ``logging.basicConfig`` in ``dialtone.cli.main``)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, CallIdFilter) for f in handler.filters):
            handler.addFilter(CallIdFilter())
        if fmt == "json":
            handler.setFormatter(JsonFormatter(node_id))
