"""Call detail records: one row per call in the node's database, written when the call ends.

:class:`CdrRecorder` is an observer of the node's event stream (:class:`dialtone.node.
NodeEvents`): it gathers one call's SIP leg (start, answer, end cause and status), its flow
(path, disposition, language, intent), its hand-off (the routing decision, or the fallback and
why), the agent, and the answering-machine verdict of an outbound call, and hands the finished
row to a writer thread, so the event loop never waits on the database.

A call's row is inserted when its SIP leg ends (``call_ended``); a call that ran a flow gets the
flow's fields when the flow's ``cdr`` event follows (an update of the same row).  An outbound
campaign call gets its campaign, disposition, AMD verdict and agent when the dialer's
``campaign_call`` event follows: it names the number dialled, and the row is that of the latest
outbound leg to that number (a contact is leased to one call at a time, so there is one).  Times
are epoch seconds (UTC), as in the dialer's tables.

The node records its own dialer's calls this way; ``dialtone campaign run`` records the calls it
places into its ``--db`` through the same recorder (dialtone.cli hands it down as a hook: the
dialer layer does not import this one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, Engine, Float, Index, Integer, String, Text, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, configure_mappers, mapped_column

__all__ = ["CDR_FIELDS", "CdrBase", "CdrRecorder", "CdrRow", "CdrWriter", "campaign_run_cdrs",
           "iter_cdrs"]

log = logging.getLogger(__name__)


class CdrBase(DeclarativeBase):
    """Declarative base of the CDR table (apart from other layers' metadata)."""


class CdrRow(CdrBase):
    """One call."""

    __tablename__ = "dialtone_cdrs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64))
    """The node's reference of the call (the event log's ``call_id``)."""
    sip_call_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    node_id: Mapped[str] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(16))
    caller: Mapped[str] = mapped_column(String(256), default="")
    called: Mapped[str] = mapped_column(String(256), default="")
    remote: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    """Answered time (0 for a call never answered)."""
    end_cause: Mapped[str] = mapped_column(String(32))
    sip_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The SIP status that ended or refused the call, when one did."""
    sip_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    by_remote: Mapped[bool] = mapped_column(Boolean, default=False)
    flow: Mapped[str | None] = mapped_column(String(256), nullable=True)
    flow_path: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of the flow nodes the call went through, in order."""
    end_node: Mapped[str | None] = mapped_column(String(128), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    handoff_result: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The routing decision's kind (``agent``, ``queue``, ...), ``fallback:<reason>``, or
    ``transfer_failed``; None: no hand-off."""
    handoff_target: Mapped[str | None] = mapped_column(String(256), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    amd: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """human, machine, ... (outbound calls with answering-machine detection)."""
    rtp_received: Mapped[int] = mapped_column(Integer, default=0)
    rtp_lost: Mapped[int] = mapped_column(Integer, default=0)
    campaign: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The outbound campaign that placed the call (None: not a campaign's customer leg).
    Last, so the export's earlier columns keep their places."""

    __table_args__ = (
        Index("ix_dialtone_cdrs_started", "started_at"),
        Index("ix_dialtone_cdrs_call", "call_id"),
    )


CDR_FIELDS: tuple[str, ...] = tuple(c.name for c in CdrRow.__table__.columns if c.name != "id")
"""The export's columns, in order (``dialtone cdr export``)."""


@dataclass
class _Pending:
    row: dict[str, Any]
    flow_fields: dict[str, Any] = field(default_factory=dict)


class CdrWriter:
    """A thread that inserts and updates CDR rows, so the event loop never blocks on I/O.

    A failing database is logged and counted (``failed``), never raised into the node."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # the ORM's first use (mapper configuration, the pool's first connection) costs tens
        # of ms of CPU under the GIL: pay it now, before the node's media tick runs, not on
        # the first call's end while other calls' ticks are due
        configure_mappers()
        with Session(engine) as s:
            s.execute(select(CdrRow.id).limit(1))
        self.written = 0
        self.failed = 0
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._idle = threading.Condition()
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="cdr-writer", daemon=True)
        self._thread.start()

    def insert(self, row: dict[str, Any]) -> None:
        self._put(("insert", row))

    def update(self, call_id: str, started_at: float, values: dict[str, Any]) -> None:
        self._put(("update", {"call_id": call_id, "started_at": started_at, **values}))

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < 256:  # a burst of calls ending shares one transaction
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                self._write(batch)
                self.written += len(batch)
            except SQLAlchemyError as exc:
                self.failed += len(batch)
                log.error("%d CDR writes lost: %s", len(batch), exc)
            with self._idle:
                self._busy -= len(batch)
                self._idle.notify_all()

    def _write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        with Session(self.engine) as s, s.begin():
            for op, values in batch:
                if op == "insert":
                    s.add(CdrRow(**values))
                    s.flush()
                else:
                    call_id, started = values.pop("call_id"), values.pop("started_at")
                    s.execute(update(CdrRow).where(CdrRow.call_id == call_id,
                                                   CdrRow.started_at == started).values(**values))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued is written (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)


class CdrRecorder:
    """Builds each call's row from the node's events (``observe``) and writes it on end."""

    def __init__(self, writer: CdrWriter, node_id: str, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.writer = writer
        self.node_id = node_id
        self.wall_clock = wall_clock
        self._calls: dict[str, _Pending] = {}
        self._ended: dict[str, float] = {}
        """call_id -> started_at of rows written whose flow ``cdr`` may still follow."""
        self._outbound: dict[str, tuple[str, float]] = {}
        """Number dialled -> (call_id, started_at) of the latest outbound leg to it, for the
        dialer's ``campaign_call`` that follows its end."""

    def observe(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        call_id = event.get("call_id")
        if not isinstance(call_id, str):
            return
        now = self.wall_clock()
        if kind == "call_started":
            self._calls[call_id] = _Pending(row={
                "call_id": call_id, "sip_call_id": event.get("sip_call_id"),
                "node_id": self.node_id, "direction": str(event.get("direction", "")),
                "caller": str(event.get("caller", "")), "called": str(event.get("called", "")),
                "remote": event.get("remote"), "started_at": now,
            })
            if event.get("direction") == "outbound":
                called = str(event.get("called", ""))
                self._outbound.pop(called, None)  # re-inserted last: the oldest go first
                self._outbound[called] = (call_id, now)
                if len(self._outbound) > 10_000:
                    self._outbound.pop(next(iter(self._outbound)))
            return
        if kind == "cdr":
            self._flow_cdr(call_id, event)
            return
        if kind == "campaign_call":
            self._campaign_call(event)
            return
        pending = self._calls.get(call_id)
        if pending is None:
            return
        row = pending.row
        if kind == "call_answered":
            row["answered_at"] = now
        elif kind == "call_failed":
            row["sip_status"], row["sip_reason"] = event.get("status"), event.get("reason")
        elif kind == "route_decision":
            row["handoff_result"] = event.get("kind")
            row["handoff_target"] = event.get("target") or event.get("queue")
            if event.get("agent_id"):
                row["agent"] = event.get("agent_id")
        elif kind == "handoff_fallback":
            row["handoff_result"] = f"fallback:{event.get('reason')}"[:64]
        elif kind == "transfer_result" and not event.get("ok"):
            row["handoff_result"] = "transfer_failed"
        elif kind == "amd":
            # the outbound engine's verdict (human, machine, ...), when it emits one
            row["amd"] = event.get("result")
        elif kind == "call_ended":
            self._end(call_id, pending, event, now)

    def _end(self, call_id: str, pending: _Pending, event: dict[str, Any], now: float) -> None:
        del self._calls[call_id]
        row = pending.row
        row["ended_at"] = now
        row["end_cause"] = str(event.get("cause", ""))
        if event.get("status") is not None:
            row["sip_status"] = event.get("status")
        row["by_remote"] = bool(event.get("by_remote", False))
        row["duration_s"] = float(event.get("duration_s") or 0.0)
        rtp = event.get("rtp") or {}
        row["rtp_received"] = int(rtp.get("received", 0))
        row["rtp_lost"] = int(rtp.get("lost", 0))
        self.writer.insert(row)
        self._ended[call_id] = row["started_at"]
        if len(self._ended) > 10_000:  # a flow's cdr comes right after its call: keep few
            self._ended.pop(next(iter(self._ended)))

    def _flow_cdr(self, call_id: str, event: dict[str, Any]) -> None:
        values = {
            "flow": event.get("flow"), "flow_path": json.dumps(list(event.get("path") or [])),
            "end_node": event.get("end_node"), "language": event.get("language") or None,
            "disposition": event.get("disposition"), "intent": event.get("intent"),
        }
        if event.get("handoff_target"):
            values["handoff_target"] = event.get("handoff_target")
        pending = self._calls.get(call_id)
        if pending is not None:  # the flow finished before the SIP leg's end was seen
            pending.row.update(values)
            return
        started = self._ended.pop(call_id, None)
        if started is not None:
            self.writer.update(call_id, started, values)


    def _campaign_call(self, event: dict[str, Any]) -> None:
        leg = self._outbound.pop(str(event.get("number", "")), None)
        if leg is None:  # never dialled (a failure before the INVITE): no SIP leg, no row
            return
        call_id, started = leg
        values: dict[str, Any] = {
            "campaign": str(event.get("campaign", ""))[:128] or None,
            "disposition": str(event.get("disposition", ""))[:32] or None,
            "amd": event.get("amd"), "agent": event.get("agent"),
        }
        if event.get("language"):
            values["language"] = str(event["language"])[:16]
        pending = self._calls.get(call_id)
        if pending is not None:  # the outcome came before the SIP leg's end was seen
            pending.row.update(values)
        else:
            self.writer.update(call_id, started, values)


@contextlib.contextmanager
def campaign_run_cdrs(db: str, node_id: str) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """The recorder ``dialtone campaign run`` hands down to the dialer (dialer.run_cli's
    ``RecorderFactory``): its calls' rows go into ``db``, written before the command returns.

    SQLite is brought to the newest schema first (as a node does); another database behind
    it is left alone and the run goes on without CDRs, with a warning that says why."""
    from dialer.db import make_engine
    from dialtone.migrations import ensure_schema
    from dialtone_errors import ConfigError

    try:
        ensure_schema(db)
    except ConfigError as exc:
        log.warning("this run writes no CDRs: %s", exc)
        yield None
        return
    engine = make_engine(db)
    writer = CdrWriter(engine)
    try:
        yield CdrRecorder(writer, node_id).observe
    finally:
        if not writer.flush(30.0):
            log.error("CDRs of this run not all written after 30 s")
        writer.close()
        engine.dispose()


def iter_cdrs(engine: Engine, *, since: float, until: float | None = None
              ) -> Iterator[dict[str, Any]]:
    """Rows that started in [since, until), oldest first, as plain dicts (CDR_FIELDS)."""
    q = select(CdrRow).where(CdrRow.started_at >= since)
    if until is not None:
        q = q.where(CdrRow.started_at < until)
    q = q.order_by(CdrRow.started_at, CdrRow.id).execution_options(yield_per=1000)
    with Session(engine) as s:
        for row in s.scalars(q):
            yield {name: getattr(row, name) for name in CDR_FIELDS}
