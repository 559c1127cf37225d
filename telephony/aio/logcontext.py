"""The call a log line is about, carried by a context variable.

The user agent sets :data:`current_call_id` at the top of each call's own task (inbound set-up,
then the application's handler, which inherits it: asyncio copies the context into every task
it creates) and around work it does for one call from shared code (teardown, media failures).
:class:`CallIdFilter` copies it onto each :class:`logging.LogRecord` as ``call_id``, so a
formatter (the node's JSON lines) can write it on every line without each call site passing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["CallIdFilter", "call_context", "current_call_id"]

current_call_id: ContextVar[str | None] = ContextVar("dialtone_call_id", default=None)
"""The node's reference of the call the running code works for (None: node-wide work)."""


@contextmanager
def call_context(call_id: str) -> Iterator[None]:
    """Log as ``call_id`` inside the block (restored afterwards, for shared code)."""
    token = current_call_id.set(call_id)
    try:
        yield
    finally:
        current_call_id.reset(token)


class CallIdFilter(logging.Filter):
    """Adds ``record.call_id`` (the context's, unless the call site passed ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_id", None) is None:
            record.call_id = current_call_id.get()
        return True
