"""Do-not-call lists: a global internal list, one per campaign, and imported lists.

A number is checked when it is about to be dialled (:meth:`dialer.store.DialerStore.lease`
asks :func:`blocked` in the lease's own transaction), not only at import, so a number added
while a campaign runs is never dialled afterwards.  An opt-out (pressed or said in a call,
entered by an agent or the manager) goes on the global list and so takes effect at once on
every campaign.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session

from dialer.db import read_session, write_session
from dialer.errors import ListImportError
from dialer.lists import NumberParser
from dialer.models import GLOBAL_SCOPE, DncEntry

__all__ = ["DncImportReport", "DncList", "blocked"]


def blocked(session: Session, numbers: Iterable[str], campaign_id: int) -> set[str]:
    """Which of ``numbers`` (E.164) are on the global list or ``campaign_id``'s."""
    nums = list(set(numbers))
    out: set[str] = set()
    for i in range(0, len(nums), 500):
        chunk = nums[i:i + 500]
        out.update(session.scalars(select(DncEntry.e164).where(
            DncEntry.e164.in_(chunk),
            DncEntry.campaign_id.in_((GLOBAL_SCOPE, campaign_id)))))
    return out


@dataclass(slots=True)
class DncImportReport:
    """What a DNC import did."""

    added: int = 0
    already: int = 0
    problems: list[ListImportError] = field(default_factory=list)


class DncList:
    """The DNC repository on ``engine``; ``campaign_id`` None means the global list."""

    def __init__(self, engine: Engine, *, region: str = "US") -> None:
        self.engine = engine
        self.region = region

    def normalise(self, number: str, region: str | None = None) -> str:
        """E.164 of ``number``; raises ListImportError (row 0) when it is not a number."""
        parsed = NumberParser(region or self.region).parse(number)
        if parsed.e164 is None:
            raise ListImportError(0, parsed.reason or "bad number", value=number)
        return parsed.e164

    def add(self, number: str, *, now: float, campaign_id: int | None = None,
            source: str = "manual", region: str | None = None) -> str:
        """Put ``number`` on the list (idempotent); returns its E.164 form."""
        e164 = self.normalise(number, region)
        with write_session(self.engine) as s:
            self.add_e164(s, [e164], now=now, campaign_id=campaign_id, source=source)
        return e164

    @staticmethod
    def add_e164(session: Session, numbers: Iterable[str], *, now: float,
                 campaign_id: int | None = None, source: str = "manual") -> int:
        """Add normalised numbers inside ``session``'s transaction; returns how many were new
        (used by the store to record an opt-out atomically with its attempt)."""
        scope = GLOBAL_SCOPE if campaign_id is None else campaign_id
        nums = set(numbers)
        have = set(session.scalars(select(DncEntry.e164).where(
            DncEntry.campaign_id == scope, DncEntry.e164.in_(nums)))) if nums else set()
        new = [n for n in nums if n not in have]
        if new:
            session.execute(insert(DncEntry),
                            [{"campaign_id": scope, "e164": n, "source": source,
                              "added_at": now} for n in new])
        return len(new)

    def opt_out(self, number: str, *, now: float, source: str = "call",
                region: str | None = None) -> str:
        """An opt-out: the global list, so every campaign stops calling the number at once."""
        return self.add(number, now=now, campaign_id=None, source=f"opt_out:{source}",
                        region=region)

    def remove(self, number: str, *, campaign_id: int | None = None,
               region: str | None = None) -> bool:
        """Take ``number`` off one list; True if it was there."""
        e164 = self.normalise(number, region)
        scope = GLOBAL_SCOPE if campaign_id is None else campaign_id
        with write_session(self.engine) as s:
            res = s.execute(delete(DncEntry).where(DncEntry.e164 == e164,
                                                   DncEntry.campaign_id == scope))
            return bool(getattr(res, "rowcount", 0))

    def check(self, number: str, *, campaign_id: int | None = None,
              region: str | None = None) -> list[DncEntry]:
        """The entries that block ``number`` (global and, if given, the campaign's)."""
        e164 = self.normalise(number, region)
        scopes = (GLOBAL_SCOPE,) if campaign_id is None else (GLOBAL_SCOPE, campaign_id)
        with read_session(self.engine) as s:
            return list(s.scalars(select(DncEntry).where(DncEntry.e164 == e164,
                                                         DncEntry.campaign_id.in_(scopes))))

    def import_file(self, source: str | os.PathLike[str] | IO[bytes] | IO[str], *, now: float,
                    campaign_id: int | None = None, region: str | None = None,
                    column: str | None = None, source_name: str = "import",
                    batch_size: int = 5000,
                    progress: Callable[[int], None] | None = None) -> DncImportReport:
        """Import one number per line, or a CSV whose ``column`` (default: ``phone``, else
        the first column) holds the numbers.  Bad lines are reported by row, good ones kept."""
        report = DncImportReport()
        parser = NumberParser(region or self.region)
        batch: list[str] = []

        def flush() -> None:
            with write_session(self.engine) as s:
                n = self.add_e164(s, batch, now=now, campaign_id=campaign_id,
                                  source=source_name)
            report.added += n
            report.already += len(set(batch)) - n
            batch.clear()

        for row, raw in _numbers(source, column):
            if progress is not None and row % 4096 == 0:
                progress(row)
            if isinstance(raw, ListImportError):
                report.problems.append(raw)
                continue
            parsed = parser.parse(raw)
            if parsed.e164 is None:
                report.problems.append(ListImportError(row, parsed.reason or "bad number",
                                                       value=raw))
                continue
            batch.append(parsed.e164)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        return report


def _numbers(source: str | os.PathLike[str] | IO[bytes] | IO[str],
             column: str | None) -> Iterator[tuple[int, str | ListImportError]]:
    if isinstance(source, (str, os.PathLike)):
        with open(Path(source), "rb") as f:
            yield from _numbers(f, column)
        return
    first = source.readline()
    text_first = first.decode("utf-8-sig", errors="replace") if isinstance(first, bytes) \
        else first

    def lines() -> Iterator[tuple[int, str | None]]:
        n = 1
        for line in source:
            n += 1
            if isinstance(line, bytes):
                try:
                    yield n, line.decode("utf-8")
                except UnicodeDecodeError:
                    yield n, None
            else:
                yield n, line

    is_csv = "," in text_first or (column is not None)
    if not is_csv:
        if text_first.strip():
            yield 1, text_first.strip()
        for n, line in lines():
            if line is None:
                yield n, ListImportError(n, "bad encoding: not valid utf-8")
            elif line.strip() and not line.lstrip().startswith("#"):
                yield n, line.strip()
        return
    header = next(csv.reader(io.StringIO(text_first)))
    names = [h.strip() for h in header]
    col = column or ("phone" if "phone" in names else None)
    if col is None:
        # No header naming the column: the first line is a number if it parses as one.
        idx = 0
        if text_first.strip():
            yield 1, names[0]
    elif col not in names:
        raise ListImportError(1, f"missing column {col!r} in the header", column=col)
    else:
        idx = names.index(col)
    for n, line in lines():
        if line is None:
            yield n, ListImportError(n, "bad encoding: not valid utf-8")
            continue
        if not line.strip():
            continue
        rec = next(csv.reader(io.StringIO(line)), [])
        if len(rec) <= idx:
            yield n, ListImportError(n, "missing column", column=col)
        else:
            yield n, rec[idx].strip()
