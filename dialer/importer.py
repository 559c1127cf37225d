"""Bulk import of contact rows into a campaign: batches, duplicate merges, the report.

:meth:`dialer.store.DialerStore.import_contacts` streams :func:`dialer.lists.read_rows` into a
:class:`ContactImporter`.  Rows are gathered into batches of ``batch_size`` rows, and
committed every ``commit_rows`` rows (100,000 by default: a few seconds of SQLite's write
lock, so a dialer leasing from another campaign in the same file waits that long at most,
never for a whole list; measured on a million rows, committing every batch cost 4% more CPU
than one transaction for everything).  Inside a batch:

1. rows that share a number are merged in memory (a row sharing numbers with two earlier rows
   joins them: one person);
2. one indexed look-up per batch finds which of the batch's numbers the campaign already has
   (from an earlier batch or an earlier import): those rows merge into the existing contacts
   (new numbers added after theirs, empty fields filled, the higher priority kept), again in
   a few statements per batch, not per row;
3. the rest are inserted with ``executemany``: on SQLite through the DB-API cursor with
   plain tuples (SQLAlchemy's per-row parameter processing cost as much as the insert), with
   ids assigned under the transaction's write lock; elsewhere through SQLAlchemy Core with
   ``RETURNING``.

Every bad row and every warning goes to ``on_problem`` as it is found (the command line
writes them all to ``--bad-rows FILE``); the report keeps the first ``max_problems`` and counts
the rest, so memory stays bounded whatever the file.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, update

from dialer.db import write_options
from dialer.errors import ListImportError
from dialer.lists import Row, RowPhone
from dialer.models import CampaignZone, Contact, ContactPhone

__all__ = ["ContactImporter", "ImportReport", "ProblemSink"]

ProblemSink = Callable[[ListImportError, str], None]
"""Called with each problem and its kind: ``rejected`` (the row was not imported),
``warning`` (the row was imported without that number), ``unknown_zone`` (imported, never
dialled: no time zone is known for it)."""

_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
"""``json.dumps(d, ensure_ascii=False)`` without building an encoder per call."""

_LOOKUP_CHUNK = 900
"""Numbers per ``IN (...)`` look-up (SQLite's default limit is 999 host parameters)."""

_SQLITE_CACHE_KIB = 262144
"""SQLite page cache during an import (256 MiB, at most; the default is 2 MiB).  The two
indexes on the number take numbers in random order: with the default cache a million-row list
spends its time re-reading index pages (1,000,000 rows: 64 MiB 41 CPU s, 128 MiB 38 s,
256 MiB 35 s and far less I/O).  The cache is a cap, not an allocation: peak RSS stays under
400 MB whatever the file (the goal is 500 MB); the default size is set back afterwards."""


@dataclass(slots=True)
class ImportReport:
    """What an import did.  ``problems`` keeps the first ``max_problems`` row errors (all are
    counted in ``bad_rows``/``warnings``) so memory stays bounded on a bad file."""

    rows: int = 0
    imported: int = 0
    merged: int = 0
    bad_rows: int = 0
    warnings: int = 0
    unknown_zone: int = 0
    problems: list[ListImportError] = field(default_factory=list)
    unknown_zone_rows: list[int] = field(default_factory=list)
    max_problems: int = 1000

    def problem(self, err: ListImportError) -> None:
        """Keep ``err`` if there is room."""
        if len(self.problems) < self.max_problems:
            self.problems.append(err)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"rows": self.rows, "imported": self.imported, "merged": self.merged,
                "bad_rows": self.bad_rows, "warnings": self.warnings,
                "unknown_zone": self.unknown_zone,
                "unknown_zone_rows": self.unknown_zone_rows,
                "problems": [{"row": p.row, "reason": p.reason, "column": p.column,
                              "value": p.value} for p in self.problems]}


@dataclass(slots=True)
class _Group:
    """A contact being built from rows that share numbers (only made when rows merge)."""

    row: int
    phones: list[RowPhone]
    fields: dict[str, str]
    timezone: str | None
    language: str | None
    priority: int

    @classmethod
    def of(cls, r: Row) -> _Group:
        return cls(r[0], list(r[1]), dict(r[2]), r[3], r[4], r[5])

    def merge(self, phones: Sequence[RowPhone], fields: dict[str, str], timezone: str | None,
              language: str | None, priority: int) -> None:
        have = {p[1] for p in self.phones}
        self.phones.extend(p for p in phones if p[1] not in have)
        self.fill(fields, timezone, language, priority)

    def fill(self, fields: dict[str, str], timezone: str | None, language: str | None,
             priority: int) -> None:
        """Fields it lacks, its zone and language if it has none, the higher priority."""
        for k, v in fields.items():
            if not self.fields.get(k):
                self.fields[k] = v
        self.timezone = self.timezone or timezone
        self.language = self.language or language
        self.priority = max(self.priority, priority)


def _as_group(g: Row | _Group) -> _Group:
    return g if isinstance(g, _Group) else _Group.of(g)


_CONTACT_COLUMNS = {
    # column: SQL value (a "?" is taken from the row's tuple, in this order)
    "id": "?", "campaign_id": "?", "row": "?", "fields_json": "?", "timezone": "?",
    "language": "?", "priority": "?", "next_due": "?",
    "status": "'pending'", "disposition": "NULL", "attempts": "0", "phone_pos": "0",
    "locked_until": "0.0", "lease_owner": "NULL", "lease_until": "0.0",
    "lease_attempt": "NULL", "callback_at": "NULL", "callback_until": "NULL",
    "callback_source": "NULL", "callback_request": "NULL",
}
_PHONE_COLUMNS = {"contact_id": "?", "campaign_id": "?", "position": "?", "label": "?",
                  "e164": "?", "zones": "?", "invalid": "0"}


def _insert_sql(table: Table, columns: dict[str, str]) -> str:
    missing = {c.name for c in table.columns} - set(columns) - {"id"}
    if missing:  # a column added to the model must be given a value here
        raise AssertionError(f"bulk insert into {table.name} lacks {sorted(missing)}")
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join(columns.values())})")


_BY_NUMBER = operator.itemgetter(4)
_CONTACTS = cast(Table, Contact.__table__)
_PHONES = cast(Table, ContactPhone.__table__)
_INSERT_CONTACTS = _insert_sql(_CONTACTS, _CONTACT_COLUMNS)
_INSERT_PHONES = _insert_sql(_PHONES, _PHONE_COLUMNS)


class ContactImporter:
    """Streams rows into campaign ``campaign_id`` (see the module's docstring)."""

    def __init__(self, engine: Engine, campaign_id: int, *, now: float,
                 batch_size: int = 20000, commit_rows: int | None = None,
                 on_problem: ProblemSink | None = None,
                 report: ImportReport | None = None) -> None:
        self.engine = engine
        self.cid = campaign_id
        self.now = now
        self.batch_size = max(1, batch_size)
        self.commit_rows = commit_rows if commit_rows is not None else 5 * self.batch_size
        self.on_problem = on_problem
        self.report = report or ImportReport()
        self._sqlite = engine.dialect.name == "sqlite"
        self._known_zones: set[str] = set()
        self._pending = 0

    def run(self, rows: Iterable[Row | ListImportError]) -> ImportReport:
        """Import every row; returns the report."""
        report, sink = self.report, self.on_problem
        with self.engine.connect().execution_options(**write_options()) as conn:
            self._known_zones = set(conn.scalars(
                select(CampaignZone.zones).where(CampaignZone.campaign_id == self.cid)))
            conn.commit()
            restore = self._tune(conn)
            try:
                batch: list[Row] = []
                for item in rows:
                    report.rows += 1
                    if isinstance(item, ListImportError):
                        report.bad_rows += 1
                        report.problem(item)
                        if sink is not None:
                            sink(item, "rejected")
                        continue
                    for w in item[6]:
                        report.warnings += 1
                        report.problem(w)
                        if sink is not None:
                            sink(w, "warning")
                    batch.append(item)
                    if len(batch) >= self.batch_size:
                        self._batch(conn, batch)
                        batch = []
                if batch:
                    self._batch(conn, batch)
                if conn.in_transaction():
                    conn.commit()
            finally:
                if conn.in_transaction():
                    conn.rollback()
                restore()
        return report

    def _tune(self, conn: Connection) -> Callable[[], None]:
        """A larger page cache on this connection for the import (restored after)."""
        if not self._sqlite:
            return lambda: None
        old = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        conn.exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
        conn.commit()

        def restore() -> None:
            conn.exec_driver_sql(f"PRAGMA cache_size={int(old or -2000)}")
            conn.commit()
        return restore

    # -- one batch ---------------------------------------------------------------------------

    def _batch(self, conn: Connection, batch: list[Row]) -> None:
        groups, numbers = self._group(batch)
        existing = self._existing(conn, numbers)
        new: list[Row | _Group] = []
        merges: list[tuple[int, _Group]] = []
        for g in groups:
            if g is None:
                continue
            old = None
            if existing:
                for p in g[1] if isinstance(g, tuple) else g.phones:
                    old = existing.get(p[1])
                    if old is not None:
                        break
            if old is None:
                new.append(g)
            else:
                merges.append((old, _as_group(g)))
        if merges:
            self.report.merged += len(merges)
            self._merge_existing(conn, merges, existing)
        if new:
            self._insert(conn, new)
        self._pending += len(batch)
        if self._pending >= self.commit_rows:
            conn.commit()
            self._pending = 0

    def _group(self, batch: list[Row]) -> tuple[list[Row | _Group | None], list[str]]:
        """Rows sharing a number become one group (the first row's); returns the groups
        (None where a group was folded into another) and the batch's distinct numbers."""
        groups: list[Row | _Group | None] = []
        by_number: dict[str, int] = {}
        for r in batch:
            phones = r[1]
            hits: list[int] | None = None
            for p in phones:
                h = by_number.get(p[1])
                if h is not None:
                    if hits is None:
                        hits = [h]
                    elif h not in hits:
                        hits.append(h)
            if hits is None:
                i = len(groups)
                groups.append(r)
                for p in phones:
                    by_number[p[1]] = i
                continue
            hits.sort()
            target = _as_group(cast(Row | _Group, groups[hits[0]]))
            groups[hits[0]] = target
            target.merge(phones, r[2], r[3], r[4], r[5])
            self.report.merged += 1
            for other in hits[1:]:
                # This row joins two earlier contacts (it shares a number with each):
                # they are one person, merged into the first.
                g = _as_group(cast(Row | _Group, groups[other]))
                target.merge(g.phones, g.fields, g.timezone, g.language, g.priority)
                groups[other] = None
            for p in target.phones:
                by_number[p[1]] = hits[0]
        return groups, list(by_number)

    def _existing(self, conn: Connection, numbers: list[str]) -> dict[str, int]:
        """Which of ``numbers`` the campaign already has: number -> contact id (one indexed
        look-up per chunk of numbers, on the unique (campaign, number) index)."""
        out: dict[str, int] = {}
        if self._sqlite:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                for i in range(0, len(numbers), _LOOKUP_CHUNK):
                    chunk = numbers[i:i + _LOOKUP_CHUNK]
                    cur.execute(
                        "SELECT e164, contact_id FROM dialer_contact_phones "
                        f"WHERE campaign_id = ? AND e164 IN ({','.join('?' * len(chunk))})",
                        (self.cid, *chunk))
                    out.update(cur.fetchall())
            finally:
                cur.close()
            return out
        for i in range(0, len(numbers), _LOOKUP_CHUNK):
            out.update(conn.execute(select(ContactPhone.e164, ContactPhone.contact_id).where(
                ContactPhone.campaign_id == self.cid,
                ContactPhone.e164.in_(numbers[i:i + _LOOKUP_CHUNK]))).all())
        return out

    def _insert(self, conn: Connection, new: list[Row | _Group]) -> None:
        report, cid = self.report, self.cid
        rows: list[Row] = [g if isinstance(g, tuple) else
                           (g.row, g.phones, g.fields, g.timezone, g.language, g.priority, ())
                           for g in new]
        ids = self._insert_contacts(conn, rows)
        phone_rows: list[tuple[int, int, int, str, str, str]] = []
        zones_seen: set[str] = set()
        for contact_id, (row, phones, _, tz, _, _, _) in zip(ids, rows, strict=True):
            if not (tz or phones[0][2]):
                report.unknown_zone += 1
                if len(report.unknown_zone_rows) < report.max_problems:
                    report.unknown_zone_rows.append(row)
                if self.on_problem is not None:
                    self.on_problem(ListImportError(
                        row, "unknown time zone: imported, never dialled",
                        value=phones[0][1]), "unknown_zone")
            for pos, (label, e164, zones) in enumerate(phones):
                z = tz or zones
                zones_seen.add(z)
                phone_rows.append((contact_id, cid, pos, label, e164, z))
        # In number order: the two indexes on the number then take the batch's keys page by
        # page instead of at random (fewer page-cache misses on a large campaign).
        phone_rows.sort(key=_BY_NUMBER)
        self._insert_phones(conn, phone_rows)
        report.imported += len(new)
        self._add_zones(conn, zones_seen)

    def _insert_contacts(self, conn: Connection, rows: list[Row]) -> Sequence[int]:
        """Insert the contacts of ``rows``; returns their ids in order."""
        cid, now = self.cid, self.now
        if self._sqlite:
            # The transaction holds SQLite's write lock (BEGIN IMMEDIATE): no other writer
            # can take ids between this max() and the insert.
            base = int(conn.execute(select(func.max(Contact.id))).scalar() or 0)
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.executemany(_INSERT_CONTACTS, [
                    (i, cid, r[0], _ENCODE(r[2]), r[3], r[4], r[5], now)
                    for i, r in enumerate(rows, start=base + 1)])
            finally:
                cur.close()
            return range(base + 1, base + 1 + len(rows))
        fixed = {"campaign_id": cid, "next_due": now, "status": "pending", "disposition": None,
                 "attempts": 0, "phone_pos": 0, "locked_until": 0.0, "lease_owner": None,
                 "lease_until": 0.0, "lease_attempt": None, "callback_at": None,
                 "callback_until": None, "callback_source": None, "callback_request": None}
        return list(conn.scalars(
            _CONTACTS.insert().returning(_CONTACTS.c.id, sort_by_parameter_order=True),
            [{"row": r[0], "fields_json": _ENCODE(r[2]), "timezone": r[3], "language": r[4],
              "priority": r[5], **fixed} for r in rows]))

    def _insert_phones(self, conn: Connection,
                       rows: list[tuple[int, int, int, str, str, str]]) -> None:
        if not rows:
            return
        if self._sqlite:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.executemany(_INSERT_PHONES, rows)
            finally:
                cur.close()
            return
        keys = ("contact_id", "campaign_id", "position", "label", "e164", "zones")
        conn.execute(_PHONES.insert(), [{**dict(zip(keys, r, strict=True)), "invalid": False}
                                        for r in rows])

    def _add_zones(self, conn: Connection, zones: set[str]) -> None:
        fresh = zones - self._known_zones
        if fresh:
            conn.execute(insert(CampaignZone),
                         [{"campaign_id": self.cid, "zones": z} for z in sorted(fresh)])
            self._known_zones |= fresh

    def _merge_existing(self, conn: Connection, merges: list[tuple[int, _Group]],
                        existing: dict[str, int]) -> None:
        """Fold groups into contacts the campaign already has, a few statements per batch:
        their new numbers go after the contact's own, empty fields are filled, the zone and
        language kept if set, the higher priority kept."""
        ids = sorted({cid for cid, _ in merges})
        state: dict[int, tuple[_Group, list[int]]] = {}
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[i:i + _LOOKUP_CHUNK]
            pos = dict(conn.execute(
                select(ContactPhone.contact_id, func.max(ContactPhone.position))
                .where(ContactPhone.contact_id.in_(chunk))
                .group_by(ContactPhone.contact_id)).all())
            for cid_, row, fields_json, tz, lang, prio in conn.execute(
                    select(Contact.id, Contact.row, Contact.fields_json, Contact.timezone,
                           Contact.language, Contact.priority).where(Contact.id.in_(chunk))):
                state[cid_] = (_Group(row, [], json.loads(fields_json), tz, lang, prio),
                               [int(pos.get(cid_) or 0)])
        phone_rows: list[tuple[int, int, int, str, str, str]] = []
        zones_seen: set[str] = set()
        for contact_id, g in merges:
            have, last = state[contact_id]
            have.fill(g.fields, g.timezone, g.language, g.priority)
            for label, e164, zones in g.phones:
                if e164 in existing:
                    continue
                last[0] += 1
                z = have.timezone or zones
                phone_rows.append((contact_id, self.cid, last[0], label, e164, z))
                zones_seen.add(z)
                existing[e164] = contact_id
        conn.execute(update(_CONTACTS).where(_CONTACTS.c.id == bindparam("b_id")).values(
            fields_json=bindparam("b_fields"), timezone=bindparam("b_tz"),
            language=bindparam("b_lang"), priority=bindparam("b_prio")),
            [{"b_id": k, "b_fields": _ENCODE(h.fields), "b_tz": h.timezone,
              "b_lang": h.language, "b_prio": h.priority} for k, (h, _) in state.items()])
        self._insert_phones(conn, phone_rows)
        self._add_zones(conn, zones_seen)

