"""The outbox, in memory and in SQLite: order, acknowledgement, cancellation, expiry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from routing.errors import RoutingError
from routing.outbox import MemoryOutbox, Outbox, SqlOutbox, open_outbox


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite-file"])
def box(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    url = {"memory": None, "sqlite-memory": "sqlite://",
           "sqlite-file": f"sqlite:///{tmp_path / 'o.sqlite3'}"}[request.param]
    b = open_outbox(url, owner="node-a")
    assert isinstance(b, MemoryOutbox if url is None else SqlOutbox)
    try:
        yield b
    finally:
        b.close()


def test_pending_in_order_and_deleted_on_ack(box: Outbox) -> None:
    for i in range(5):
        box.add(message_id=f"m{i}", topic=f"t/{i}", payload=f"p{i}".encode(),
                retain=i == 2, response_topic="r" if i == 0 else None,
                correlation=b"\x00\x01" if i == 0 else None)
    rows = box.pending(now=0.0, limit=3)
    assert [r.message_id for r in rows] == ["m0", "m1", "m2"]
    assert rows[0].response_topic == "r" and rows[0].correlation == b"\x00\x01"
    assert rows[2].retain and not rows[1].retain and rows[1].payload == b"p1"
    box.delete([rows[0].row_id, rows[2].row_id])
    assert [r.message_id for r in box.pending(now=0.0)] == ["m1", "m3", "m4"]
    assert box.count() == 3
    assert box.contains("m3") and not box.contains("m0")
    assert box.purge_topic("t/3") == 1 and box.purge_topic("t/3") == 0
    assert [r.message_id for r in box.pending(now=0.0)] == ["m1", "m4"]


def test_cancel_and_expiry(box: Outbox) -> None:
    box.add(message_id="offer", topic="o", payload=b"x", expires_at=100.0)
    box.add(message_id="event", topic="e", payload=b"y")
    box.add(message_id="offer2", topic="o", payload=b"z", expires_at=200.0)
    assert box.cancel("offer2") and not box.cancel("offer2")
    assert [r.message_id for r in box.pending(now=99.0)] == ["offer", "event"]
    assert [r.message_id for r in box.pending(now=101.0)] == ["event"]
    assert box.count() == 1  # the expired offer is gone for good


def test_sql_outbox_survives_a_restart_and_owners_are_separate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dialtone.sqlite3'}"
    a = SqlOutbox(url, owner="node-a")
    b = SqlOutbox(url, owner="node-b")
    a.add(message_id="m1", topic="t", payload=b"\x00\xffbinary")
    b.add(message_id="m2", topic="t", payload=b"other")
    a.close()
    b.close()
    again = SqlOutbox(url, owner="node-a")
    rows = again.pending(now=0.0)
    assert [(r.message_id, r.payload) for r in rows] == [("m1", b"\x00\xffbinary")]
    again.close()


def test_unusable_database_is_a_routing_error(tmp_path: Path) -> None:
    with pytest.raises(RoutingError):
        SqlOutbox(f"sqlite:///{tmp_path / 'missing-dir' / 'x.sqlite3'}", owner="n")
