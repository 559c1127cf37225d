"""A durable outbox of MQTT messages waiting for their PUBACK, in SQLite via SQLAlchemy 2.

Each message is written here before it is published and deleted once the broker
acknowledges it (MQTT 5 section 4.3.2: QoS 1 gives at-least-once delivery only
while the sender keeps the message until PUBACK).  A broker restart, a lost
connection or a node restart therefore never loses an offer or a call event; a
message may be sent twice, so it keeps its ``message_id`` and consumers
de-duplicate.  Offers carry ``expires_at``: once their call has taken its
fallback there is no point delivering them, and they are dropped unsent.

Several clients may share one database file: rows belong to an ``owner``
(the MQTT client id).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from routing.errors import RoutingError

_metadata = MetaData()

outbox_table = Table(
    "routing_outbox",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(256), nullable=False, index=True),
    Column("message_id", String(64), nullable=False),
    Column("topic", String(1024), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("retain", Boolean, nullable=False, default=False),
    Column("response_topic", String(1024), nullable=True),
    Column("correlation", LargeBinary, nullable=True),
    Column("expires_at", Float, nullable=True),
)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message waiting for its PUBACK."""

    row_id: int
    message_id: str
    topic: str
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation: bytes | None = None
    expires_at: float | None = None
    """Unix time after which the message is dropped unsent (None: never)."""


class MemoryOutbox:
    """The outbox in process memory: survives a broker restart, not a process restart."""

    def __init__(self, *, owner: str) -> None:
        self.owner = owner
        self._rows: dict[int, OutboxItem] = {}
        self._next = 1

    def add(
        self,
        *,
        message_id: str,
        topic: str,
        payload: bytes,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        expires_at: float | None = None,
    ) -> int:
        row_id, self._next = self._next, self._next + 1
        self._rows[row_id] = OutboxItem(row_id, message_id, topic, payload, retain,
                                        response_topic, correlation, expires_at)
        return row_id

    def pending(self, *, now: float, limit: int = 64) -> list[OutboxItem]:
        expired = [k for k, r in self._rows.items() if r.expires_at is not None
                   and r.expires_at < now]
        for k in expired:
            del self._rows[k]
        out = []
        for row in self._rows.values():  # dicts keep insertion order: oldest first
            out.append(row)
            if len(out) >= limit:
                break
        return out

    def delete(self, row_ids: list[int]) -> None:
        for k in row_ids:
            self._rows.pop(k, None)

    def cancel(self, message_id: str) -> bool:
        found = [k for k, r in self._rows.items() if r.message_id == message_id]
        self.delete(found)
        return bool(found)

    def contains(self, message_id: str) -> bool:
        return any(r.message_id == message_id for r in self._rows.values())

    def purge_topic(self, topic: str) -> int:
        found = [k for k, r in self._rows.items() if r.topic == topic]
        self.delete(found)
        return len(found)

    def count(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        self._rows.clear()


class SqlOutbox:
    """Rows in ``routing_outbox`` belonging to ``owner``, through SQLAlchemy 2 Core.

    Statements are built once (bind parameters), which makes each call several
    times cheaper than building them per call.
    """

    def __init__(self, db_url: str, *, owner: str) -> None:
        self.owner = owner
        try:
            if db_url in ("sqlite://", "sqlite:///:memory:"):
                # One shared connection, or every session would see its own empty database.
                self._engine: Engine = create_engine(
                    "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False},
                )
            else:
                self._engine = create_engine(_psycopg3(db_url))
                if self._engine.dialect.name == "sqlite":
                    event.listen(self._engine, "connect", _sqlite_pragmas)
            _metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            raise RoutingError(f"outbox database {db_url!r}: {exc}") from exc
        t = outbox_table
        mine = t.c.owner == bindparam("owner")
        self._insert = insert(t)
        self._purge = delete(t).where(mine, t.c.expires_at.is_not(None),
                                      t.c.expires_at < bindparam("now"))
        self._select = (
            select(t).where(mine).order_by(t.c.id).limit(bindparam("limit"))
        )
        self._delete = delete(t).where(t.c.id.in_(bindparam("ids", expanding=True)))
        self._cancel = delete(t).where(mine, t.c.message_id == bindparam("mid"))
        self._contains = select(t.c.id).where(mine, t.c.message_id == bindparam("mid")).limit(1)
        self._count = select(func.count()).select_from(t).where(mine)
        self._purge_topic = delete(t).where(mine, t.c.topic == bindparam("topic"))

    def add(
        self,
        *,
        message_id: str,
        topic: str,
        payload: bytes,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        expires_at: float | None = None,
    ) -> int:
        """Store a message to send; returns its row id."""
        with self._engine.begin() as conn:
            result = conn.execute(self._insert, {
                "owner": self.owner, "message_id": message_id, "topic": topic,
                "payload": payload, "retain": retain, "response_topic": response_topic,
                "correlation": correlation, "expires_at": expires_at,
            })
            key = result.inserted_primary_key
            return int(key[0]) if key is not None else 0

    def pending(self, *, now: float, limit: int = 64) -> list[OutboxItem]:
        """The oldest messages still to send; expired ones are deleted first."""
        with self._engine.begin() as conn:
            conn.execute(self._purge, {"owner": self.owner, "now": now})
            rows = conn.execute(self._select, {"owner": self.owner, "limit": limit}).all()
        return [
            OutboxItem(
                row_id=r.id, message_id=r.message_id, topic=r.topic, payload=bytes(r.payload),
                retain=bool(r.retain), response_topic=r.response_topic,
                correlation=None if r.correlation is None else bytes(r.correlation),
                expires_at=r.expires_at,
            )
            for r in rows
        ]

    def delete(self, row_ids: list[int]) -> None:
        """Forget messages the broker acknowledged."""
        if row_ids:
            with self._engine.begin() as conn:
                conn.execute(self._delete, {"ids": row_ids})

    def cancel(self, message_id: str) -> bool:
        """Drop a message not yet acknowledged (an offer whose call gave up); True if found."""
        with self._engine.begin() as conn:
            return bool(conn.execute(self._cancel, {"owner": self.owner, "mid": message_id})
                        .rowcount)

    def contains(self, message_id: str) -> bool:
        """True while ``message_id`` waits for its PUBACK."""
        with self._engine.connect() as conn:
            return conn.execute(self._contains, {"owner": self.owner, "mid": message_id}
                                ).first() is not None

    def purge_topic(self, topic: str) -> int:
        """Drop every unsent message to ``topic``; returns how many."""
        with self._engine.begin() as conn:
            return int(conn.execute(self._purge_topic, {"owner": self.owner, "topic": topic})
                       .rowcount)

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(self._count, {"owner": self.owner}).scalar_one())

    def close(self) -> None:
        self._engine.dispose()


Outbox = MemoryOutbox | SqlOutbox


def open_outbox(db_url: str | None, *, owner: str) -> Outbox:
    """An SQL outbox for a database URL, an in-memory one for None."""
    return MemoryOutbox(owner=owner) if db_url is None else SqlOutbox(db_url, owner=owner)


def _psycopg3(db_url: str) -> str:
    """``postgresql://`` names SQLAlchemy's default driver, psycopg2, which Dialtone does not
    install: the ``postgres`` extra brings psycopg 3 (as dialer.db reads the same URL)."""
    for scheme in ("postgresql://", "postgres://"):
        if db_url.startswith(scheme):
            return "postgresql+psycopg://" + db_url[len(scheme):]
    return db_url


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    # WAL + synchronous=NORMAL: durable across a process crash, a few times faster per commit.
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
