"""List uploads: checked whole before a single row is written, then imported in a worker
thread with progress the page polls (or reads from the campaign's stream).

An upload that cannot be a contact list (binary data, not UTF-8, no header, a mapped column
missing, larger than the limit) is refused with a 4xx naming why, before the import starts:
nothing is half-imported.  A readable file with bad rows imports its good rows and keeps the
bad ones (row, column, reason, value) for the table and the CSV download.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dialer.errors import DialerError, ListImportError
from dialer.lists import ColumnMapping
from dialer.store import DialerStore

__all__ = ["ImportJob", "ImportJobs", "check_csv", "preview_csv"]

SNIFF_BYTES = 64 * 1024


def _head(path: str) -> str:
    with open(path, "rb") as f:
        raw = f.read(SNIFF_BYTES)
    if not raw.strip():
        raise ListImportError(1, "empty file: no header row")
    if b"\x00" in raw:
        raise ListImportError(1, "not a CSV file: it holds binary data (NUL bytes)")
    dec = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        return dec.decode(raw, final=False)
    except UnicodeDecodeError as exc:
        raise ListImportError(1, f"not UTF-8 text (byte {exc.start})") from None


def preview_csv(path: str, *, delimiter: str | None = None, rows: int = 5
                ) -> dict[str, Any]:
    """The header and first ``rows`` rows (for mapping columns); ListImportError if not CSV."""
    text = _head(path)
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text.split("\n", 1)[0], ",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise ListImportError(1, f"no header row: {exc}") from None
    if not any(header):
        raise ListImportError(1, "empty header row")
    sample: list[list[str]] = []
    try:
        for rec in reader:
            if len(sample) >= rows:
                break
            sample.append(rec)
    except csv.Error:
        pass  # the sniffed head may cut a quoted field: the preview shows what parsed
    return {"columns": header, "rows": sample, "delimiter": delimiter}


def check_csv(path: str, mapping: ColumnMapping, *, delimiter: str = ",") -> list[str]:
    """Raise ListImportError unless the file is text with a header holding every mapped
    column; returns the header."""
    head = preview_csv(path, delimiter=delimiter, rows=0)
    header: list[str] = head["columns"]
    missing = [c for c in sorted(mapping.special()) if c not in header]
    if missing:
        raise ListImportError(1, f"column mapping names {', '.join(map(repr, missing))}, "
                                 f"not in the header (columns: {', '.join(header)})",
                              column=missing[0])
    return header


@dataclass
class ImportJob:
    """One upload's import."""

    id: str
    campaign: str
    filename: str
    bytes_total: int
    state: str = "running"
    """running, done, failed"""
    bytes_read: int = 0
    rows: int = 0
    started_at: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        done = self.state != "running"
        return {"id": self.id, "campaign": self.campaign, "filename": self.filename,
                "state": self.state, "bytes_total": self.bytes_total,
                "bytes_read": self.bytes_total if done else self.bytes_read,
                "progress": 1.0 if done else (self.bytes_read / self.bytes_total
                                              if self.bytes_total else 0.0),
                "started_at": self.started_at, "finished_at": self.finished_at,
                "error": self.error,
                "imported": self.report.get("imported", 0),
                "merged": self.report.get("merged", 0),
                "rows": self.report.get("rows", 0),
                "bad_rows": self.report.get("bad_rows", 0),
                "warnings": self.report.get("warnings", 0)}

    def problems(self) -> list[dict[str, Any]]:
        return list(self.report.get("problems", []))


class ImportJobs:
    """The node's imports (the last ``keep`` are remembered, in memory)."""

    def __init__(self, store: DialerStore, *, clock: Callable[[], float] = time.time,
                 keep: int = 200, on_change: Callable[[ImportJob], None] | None = None) -> None:
        self.store, self.clock, self.keep = store, clock, keep
        self.on_change = on_change
        self._jobs: dict[str, ImportJob] = {}
        self._n = 0
        self._lock = threading.Lock()

    def get(self, job_id: str) -> ImportJob | None:
        return self._jobs.get(job_id)

    def all(self, campaign: str | None = None) -> list[ImportJob]:
        """The remembered uploads, newest first (of one campaign, if given)."""
        return [j for j in reversed(list(self._jobs.values()))
                if campaign is None or j.campaign == campaign]

    def new(self, campaign: str, filename: str, path: str) -> ImportJob:
        with self._lock:
            self._n += 1
            job = ImportJob(f"list-{self._n}", campaign, filename, os.path.getsize(path),
                            started_at=self.clock())
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep:
                self._jobs.pop(next(iter(self._jobs)))
        return job

    def run(self, job: ImportJob, path: str, mapping: ColumnMapping, delimiter: str) -> None:
        """The import itself (blocking: run in a worker thread); removes ``path`` after."""
        def progress(n: int) -> None:
            job.bytes_read = n
            if self.on_change:
                self.on_change(job)

        try:
            report = self.store.import_contacts(job.campaign, path, mapping, now=self.clock(),
                                                delimiter=delimiter, progress=progress)
            job.report = report.to_dict()
            job.state = "done"
        except DialerError as exc:
            job.state, job.error = "failed", str(exc)
        finally:
            job.finished_at = self.clock()
            os.unlink(path)
            if self.on_change:
                self.on_change(job)
