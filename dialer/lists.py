"""Contact list import: CSV rows in, normalised contacts (or row errors) out, streaming.

``read_contacts`` is a generator: it reads a path or a file-like stream a line at a time and
yields one :class:`ImportedContact` or one :class:`~dialer.errors.ListImportError` per row, so
memory does not grow with the file.  A binary stream is decoded line by line: one bad byte
sequence spoils only its own row.  The store (:meth:`dialer.store.DialerStore.import_contacts`)
batches what it yields into the database and merges duplicates.

Row numbers are spreadsheet rows: the header is row 1, the first contact row 2 (a quoted field
that spans lines still counts as one row).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as pn_timezone
from phonenumbers.tzdata import TIMEZONE_LONGEST_PREFIX

from dialer.e164 import IMPOSSIBLE, E164FastPath
from dialer.errors import ListImportError
from dialer.windows import known_zone, zones_key

__all__ = ["ColumnMapping", "ImportedContact", "NumberParser", "ParsedNumber", "Phone", "Row",
           "RowPhone", "read_contacts", "read_rows"]

Source = str | os.PathLike[str] | IO[bytes] | IO[str]


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which CSV columns mean what.  Every column not named here is kept as a field."""

    phones: tuple[str, ...] = ("phone",)
    """Phone columns, in dialling order (e.g. ``("mobile", "home", "work")``)."""
    timezone: str | None = None
    """A column holding an IANA zone; when empty, the zone comes from the number."""
    language: str | None = None
    priority: str | None = None
    """An integer column; higher is dialled first."""

    @classmethod
    def parse(cls, text: str) -> ColumnMapping:
        """From ``"phone=mobile,home;timezone=tz;language=lang;priority=prio"``."""
        phones: tuple[str, ...] = ("phone",)
        opts: dict[str, str | None] = {"timezone": None, "language": None, "priority": None}
        for part in text.split(";"):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or not value.strip():
                raise ListImportError(1, f"bad column mapping {part!r}: expected key=column")
            if key in ("phone", "phones"):
                phones = tuple(v.strip() for v in value.split(",") if v.strip())
            elif key in opts:
                opts[key] = value.strip()
            else:
                raise ListImportError(1, f"unknown mapping key {key!r}")
        return cls(phones, opts["timezone"], opts["language"], opts["priority"])

    def special(self) -> frozenset[str]:
        """The mapped column names (not kept as fields)."""
        return frozenset(c for c in (*self.phones, self.timezone, self.language, self.priority)
                         if c)


@dataclass(frozen=True, slots=True)
class Phone:
    """One number of a contact."""

    label: str
    """The column it came from (``mobile``, ``home``...)."""
    e164: str
    zones: str
    """Its time zones as :func:`dialer.windows.zones_key` text (``""``: unknown)."""


@dataclass(frozen=True, slots=True)
class ImportedContact:
    """A good row, normalised."""

    row: int
    phones: tuple[Phone, ...]
    fields: dict[str, str]
    timezone: str | None = None
    language: str | None = None
    priority: int = 0
    warnings: tuple[ListImportError, ...] = ()
    """Problems that did not stop the row (a second number that does not parse)."""


@dataclass(frozen=True, slots=True)
class ParsedNumber:
    """The result of :meth:`NumberParser.parse`: an E.164 number or a reason."""

    e164: str | None
    zones: str
    reason: str | None = None


@dataclass(slots=True)
class NumberParser:
    """E.164 normalisation with phonenumbers, for one default region.

    Plain numbers (digits, spaces, ``( ) . -``, a leading ``+``) take
    :class:`dialer.e164.E164FastPath`, which decides exactly as phonenumbers does with its
    metadata compiled once; anything else, and anything the fast path declines, goes through
    phonenumbers itself (``fast=False``: always).

    phonenumbers classifies a number (regular expressions per number type) once in
    ``is_valid_number`` and again in ``time_zones_for_number``; the slow path classifies once
    and derives both.  Time zones are cached by the number's first
    ``TIMEZONE_LONGEST_PREFIX`` digits: phonenumbers' own look-up is a longest-prefix match on
    exactly those digits, so the cache returns what it would (exact, not an approximation).
    """

    region: str
    fast: bool = True
    _geo: dict[str, str] = field(default_factory=dict)
    _country: dict[int, str] = field(default_factory=dict)
    _fast: E164FastPath | None = None

    def __post_init__(self) -> None:
        if self.fast:
            self._fast = E164FastPath(self.region)

    def parse(self, raw: str) -> ParsedNumber:
        """Normalise ``raw``; ``e164`` is None with a ``reason`` when it is not a number."""
        if self._fast is not None:
            got = self._fast.classify(raw)
            if got is not None:
                if got == IMPOSSIBLE:
                    return _IMPOSSIBLE
                return ParsedNumber(got[0], got[1])
        return self.parse_slow(raw)

    def parse_slow(self, raw: str) -> ParsedNumber:
        """:meth:`parse` through phonenumbers alone (the reference the fast path matches)."""
        try:
            num = phonenumbers.parse(raw, self.region)
        except phonenumbers.NumberParseException as exc:
            return ParsedNumber(None, "", f"unparseable number: {exc._msg}")
        ntype = phonenumbers.number_type(num)
        if ntype == PhoneNumberType.UNKNOWN:
            # number_type is UNKNOWN exactly when is_valid_number is False (same helper).
            return _IMPOSSIBLE
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        cc = int(num.country_code or 0)
        if phonenumbers.is_number_type_geographical(ntype, cc):
            key = e164[1:1 + TIMEZONE_LONGEST_PREFIX]
            zones = self._geo.get(key)
            if zones is None:
                zones = self._geo[key] = zones_key(
                    pn_timezone.time_zones_for_geographical_number(num))
        else:
            zones_c = self._country.get(cc)
            if zones_c is None:
                # Country-level zones depend on the country code alone.
                zones_c = self._country[cc] = zones_key(pn_timezone.time_zones_for_number(num))
            zones = zones_c
        return ParsedNumber(e164, zones)


_IMPOSSIBLE = ParsedNumber(None, "", "impossible number")


def _decoded_lines(raw: IO[bytes], encoding: str, bad: set[int]) -> Iterator[str]:
    """Lines of ``raw`` decoded one by one; a line that does not decode is replaced (so the
    CSV reader keeps its place) and its number added to ``bad``.

    Lines are read about 256 KB at a time and each block decoded at once; only a block
    that does not decode is decoded again line by line to find the culprits."""
    n = 0
    first = True
    while True:
        block = raw.readlines(1 << 18)
        if not block:
            return
        if first:
            first = False
            if block[0].startswith(codecs.BOM_UTF8) and encoding.replace("_", "-").lower() in (
                    "utf-8", "utf8", "utf-8-sig"):
                block[0] = block[0][len(codecs.BOM_UTF8):]
        try:
            pieces = b"".join(block).decode(encoding).split("\n")
        except UnicodeDecodeError:
            pieces = []
        lines = [p + "\n" for p in pieces[:-1]]
        if pieces and pieces[-1]:
            lines.append(pieces[-1])
        if len(lines) == len(block):
            n += len(block)
            yield from lines
            continue
        for line in block:
            n += 1
            try:
                yield line.decode(encoding)
            except UnicodeDecodeError:
                bad.add(n)
                yield line.decode(encoding, errors="replace")


def _open(source: Source) -> tuple[IO[bytes] | IO[str], bool]:
    if isinstance(source, (str, os.PathLike)):
        return open(Path(source), "rb"), True
    return source, False


RowPhone = tuple[str, str, str]
"""A number of a good row, as :func:`read_rows` gives it: (label, E.164, zones key)."""
Row = tuple[int, list[RowPhone], dict[str, str], str | None, str | None, int,
            tuple[ListImportError, ...]]
"""A good row as :func:`read_rows` gives it: (row, phones, fields, time zone, language,
priority, warnings): the fields of :class:`ImportedContact`, without building one."""


def read_contacts(source: Source, mapping: ColumnMapping, region: str, *,
                  encoding: str = "utf-8", delimiter: str = ",",
                  progress: Callable[[int], None] | None = None,
                  parser: NumberParser | None = None,
                  ) -> Iterator[ImportedContact | ListImportError]:
    """Yield one contact or one error per data row of the CSV ``source``.

    Raises :class:`ListImportError` (row 1) only when the file cannot be used at all: no
    header, or a mapped column that the header does not have.  ``progress`` is called with
    the number of bytes read so far every few thousand rows (binary sources and paths).
    """
    for item in read_rows(source, mapping, region, encoding=encoding, delimiter=delimiter,
                          progress=progress, parser=parser):
        if isinstance(item, ListImportError):
            yield item
        else:
            row, phones, fields, tz, lang, prio, warnings = item
            yield ImportedContact(row, tuple(Phone(*p) for p in phones), fields, tz, lang,
                                  prio, warnings)


def read_rows(source: Source, mapping: ColumnMapping, region: str, *,
              encoding: str = "utf-8", delimiter: str = ",",
              progress: Callable[[int], None] | None = None,
              parser: NumberParser | None = None) -> Iterator[Row | ListImportError]:
    """:func:`read_contacts` with each good row as a plain :data:`Row` tuple (what the store's
    import consumes: a million rows make a million fewer objects)."""
    stream, owned = _open(source)
    try:
        yield from _read(stream, mapping, region, encoding, delimiter, progress,
                         parser or NumberParser(region))
    finally:
        if owned:
            stream.close()


def _read(stream: IO[bytes] | IO[str], mapping: ColumnMapping, region: str, encoding: str,
          delimiter: str, progress: Callable[[int], None] | None, parser: NumberParser,
          ) -> Iterator[Row | ListImportError]:
    bad_lines: set[int] = set()
    binary = not isinstance(stream, io.TextIOBase) and "b" in getattr(stream, "mode", "b")
    lines: Iterable[str]
    if binary:
        lines = _decoded_lines(stream, encoding, bad_lines)  # type: ignore[arg-type]
    else:
        lines = stream  # type: ignore[assignment]
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ListImportError(1, "empty file: no header row") from None
    if 1 in bad_lines:
        raise ListImportError(1, f"header is not valid {encoding}")
    index = {name: i for i, name in enumerate(header)}
    for col in mapping.special():
        if col not in index:
            raise ListImportError(1, f"missing column {col!r} in the header "
                                     f"(columns: {', '.join(header)})", column=col)
    phone_cols = [(c, index[c]) for c in mapping.phones]
    tz_i = index[mapping.timezone] if mapping.timezone else None
    lang_i = index[mapping.language] if mapping.language else None
    prio_i = index[mapping.priority] if mapping.priority else None
    special = mapping.special()
    field_cols = [(h, i) for i, h in enumerate(header) if h not in special and h]
    ncols = len(header)
    parse = parser.parse
    row = 1
    last_line = reader.line_num
    tell = getattr(stream, "tell", None) if binary and progress else None
    for rec in reader:
        row += 1
        first_line, last_line = last_line + 1, reader.line_num
        if progress is not None and row % 4096 == 0:
            progress(tell() if tell else row)
        if bad_lines:
            hit = [n for n in bad_lines if first_line <= n <= last_line]
            if hit:
                for n in hit:
                    bad_lines.discard(n)
                yield ListImportError(row, f"bad encoding: not valid {encoding}")
                continue
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            continue  # a blank line is not a row anyone meant
        if len(rec) < ncols:
            missing = header[len(rec)]
            yield ListImportError(row, f"missing column: {len(rec)} of {ncols} values",
                                  column=missing)
            continue
        phones: list[RowPhone] = []
        warnings: list[ListImportError] | None = None
        for col, i in phone_cols:
            raw = rec[i].strip()
            if not raw:
                continue
            parsed = parse(raw)
            e164 = parsed.e164
            if e164 is None:
                err = ListImportError(row, parsed.reason or "bad number", column=col, value=raw)
                if warnings is None:
                    warnings = [err]
                else:
                    warnings.append(err)
            elif not phones or all(p[1] != e164 for p in phones):
                phones.append((col, e164, parsed.zones))
        if not phones:
            yield warnings[0] if warnings else ListImportError(
                row, "no phone number", column=",".join(mapping.phones))
            continue
        tz: str | None = None
        if tz_i is not None:
            tz = rec[tz_i].strip() or None
            if tz is not None and not known_zone(tz):
                yield ListImportError(row, "unknown time zone", column=mapping.timezone,
                                      value=tz)
                continue
        priority = 0
        if prio_i is not None and rec[prio_i].strip():
            try:
                priority = int(rec[prio_i])
            except ValueError:
                yield ListImportError(row, "priority is not an integer",
                                      column=mapping.priority, value=rec[prio_i])
                continue
        yield (row, phones, {h: rec[i] for h, i in field_cols}, tz,
               (rec[lang_i].strip() or None) if lang_i is not None else None, priority,
               tuple(warnings) if warnings else ())
