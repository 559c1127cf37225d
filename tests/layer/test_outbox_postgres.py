"""The routing outbox in a shared PostgreSQL, named as an operator writes it
(``postgresql://``, as in docker/compose.yaml): two nodes' rows stay apart by owner."""

from __future__ import annotations

from routing.outbox import SqlOutbox
from tests.layer.test_dialer_postgres import pg_base, pg_url  # noqa: F401 - fixtures


def test_two_owners_share_one_postgres_outbox(pg_url: str) -> None:  # noqa: F811
    url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    a, b = SqlOutbox(url, owner="node1"), SqlOutbox(url, owner="node2")
    try:
        a.add(message_id="m1", topic="t/1", payload=b"one")
        b.add(message_id="m2", topic="t/2", payload=b"two", expires_at=10.0)
        assert [i.message_id for i in a.pending(now=0.0)] == ["m1"]
        assert [i.message_id for i in b.pending(now=0.0)] == ["m2"]
        assert b.pending(now=11.0) == []  # expired offers are dropped unsent
        assert a.contains("m1") and not b.contains("m1")
        assert a.cancel("m1") and a.count() == 0
    finally:
        a.close()
        b.close()
