"""Call detail records: one row per call, written by the node when the call ends."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class CdrBase(DeclarativeBase):
    """Declarative base of the CDR table (apart from other layers' metadata)."""
