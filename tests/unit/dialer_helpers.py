"""Shared helpers of the dialer store tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from dialer.policy import CampaignSettings
from dialer.store import DialerStore


def at(zone: str, y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    """Epoch seconds of a wall-clock time in ``zone``."""
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(zone)).timestamp()


def new_store(tmp: Path, name: str = "c1", **settings: object) -> DialerStore:
    """A SQLite store in ``tmp`` with one campaign."""
    store = DialerStore(f"sqlite:///{tmp / 'dialer.db'}")
    store.create_campaign(name, CampaignSettings(**settings), now=0.0)  # type: ignore[arg-type]
    return store
