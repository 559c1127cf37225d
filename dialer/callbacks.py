"""Callback requests: what the IVR's callback node leaves for the dialer.

A minimal store (SQLAlchemy 2 model + repository on a given engine); the dialer proper
reads pending requests and places the calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Float, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class CallbackBase(DeclarativeBase):
    """Declarative base of the callback tables (kept apart from other modules' metadata)."""


class CallbackRow(CallbackBase):
    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(256), index=True)
    number: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    context_json: Mapped[str] = mapped_column(Text, default="{}")


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """A stored callback request."""

    id: int
    call_id: str
    number: str
    slot: str
    language: str
    created_at: float
    status: str
    context: dict[str, Any]


def _to_request(row: CallbackRow) -> CallbackRequest:
    return CallbackRequest(row.id, row.call_id, row.number, row.slot, row.language,
                           row.created_at, row.status, json.loads(row.context_json or "{}"))


class CallbackStore:
    """Repository of callback requests on ``engine`` (creates its table)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        CallbackBase.metadata.create_all(engine)

    def create(self, *, call_id: str, number: str, slot: str, language: str, created_at: float,
               context: dict[str, Any] | None = None) -> CallbackRequest:
        """Store a new pending request; returns it with its id."""
        row = CallbackRow(call_id=call_id, number=number, slot=slot, language=language,
                          created_at=created_at, status="pending",
                          context_json=json.dumps(context or {}, default=str))
        with Session(self.engine) as s, s.begin():
            s.add(row)
            s.flush()
            out = _to_request(row)
        return out

    def pending(self, limit: int = 100) -> list[CallbackRequest]:
        """Pending requests, oldest first."""
        with Session(self.engine) as s:
            rows = s.scalars(select(CallbackRow).where(CallbackRow.status == "pending")
                             .order_by(CallbackRow.created_at, CallbackRow.id).limit(limit))
            return [_to_request(r) for r in rows]

    def mark(self, request_id: int, status: str) -> None:
        """Set a request's status (``dialled``, ``done``, ``failed``...)."""
        with Session(self.engine) as s, s.begin():
            row = s.get(CallbackRow, request_id)
            if row is not None:
                row.status = status
