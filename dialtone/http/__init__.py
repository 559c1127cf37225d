"""The campaign console: the HTTP API (FastAPI), its live streams and the page (issue 15)."""

from __future__ import annotations

from dialtone.http.app import create_app
from dialtone.http.hub import EventHub

__all__ = ["EventHub", "create_app"]
