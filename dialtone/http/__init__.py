"""The campaign console: the HTTP API (FastAPI), its live streams and the page (issue 15).

``create_app`` and ``EventHub`` are imported on first use, so ``dialtone`` subcommands that
do not serve the console do not load FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EventHub", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from dialtone.http.app import create_app
        return create_app
    if name == "EventHub":
        from dialtone.http.hub import EventHub
        return EventHub
    raise AttributeError(name)
