"""List import: bad rows reported with row and reason, good rows kept, duplicates merged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dialer.errors import ListImportError
from dialer.lists import ColumnMapping, ImportedContact, NumberParser, read_contacts

from .dialer_helpers import new_store

GOOD = "07400 123456"


def rows(data: bytes, mapping: ColumnMapping | None = None, region: str = "GB") -> list[
        ImportedContact | ListImportError]:
    return list(read_contacts(io.BytesIO(data), mapping or ColumnMapping(), region))


def test_e164_with_default_region_and_zones() -> None:
    p = NumberParser("GB")
    assert p.parse("07400 123456").e164 == "+447400123456"
    assert p.parse("(020) 7946-0000").e164 == "+442079460000"
    assert p.parse("(020) 7946-0000").zones == "Europe/London"
    us = NumberParser("US").parse("(212) 555-0100")
    assert (us.e164, us.zones) == ("+12125550100", "America/New_York")
    # The zone cache is keyed by prefix but must give what phonenumbers gives.
    assert NumberParser("US").parse("+1 208 555 0100").zones == \
        "America/Boise|America/Los_Angeles"


def test_bad_rows_reported_good_rows_kept() -> None:
    data = (b"name,phone,city\n"
            b"Ann,07400 123456,Leeds\n"          # row 2 good
            b"Bob,not a number,York\n"           # row 3 unparseable
            b"Cat,07400 12,Bath\n"               # row 4 impossible
            b"Dan,+33 6 12 34 56 78,Paris\n"     # row 5 good
            b"Eve\n"                             # row 6 missing column
            b"Fr\xe9d,07400 123457,Caen\n"       # row 7 bad encoding (latin-1 byte)
            b"Gus,,Hull\n"                       # row 8 no number
            b"Hal,07400 123458,Ely\n")           # row 9 good
    out = rows(data)
    good = [r for r in out if isinstance(r, ImportedContact)]
    bad = {r.row: r for r in out if isinstance(r, ListImportError)}
    assert [g.row for g in good] == [2, 5, 9]
    assert [g.phones[0].e164 for g in good] == ["+447400123456", "+33612345678",
                                                "+447400123458"]
    assert good[0].fields == {"name": "Ann", "city": "Leeds"}
    assert sorted(bad) == [3, 4, 6, 7, 8]
    assert bad[3].reason.startswith("unparseable number") and bad[3].column == "phone"
    assert bad[4].reason == "impossible number" and bad[4].value == "07400 12"
    assert bad[6].reason.startswith("missing column") and bad[6].column == "phone"
    assert bad[7].reason.startswith("bad encoding")
    assert bad[8].reason == "no phone number"
    assert "row 4" in str(bad[4])


def test_bad_encoding_inside_a_quoted_multiline_field_spoils_only_that_row() -> None:
    data = (b'name,phone,note\n'
            b'Ann,07400 123456,"two\nlines"\n'        # row 2 spans lines 2-3
            b'Bob,07400 123457,"bad \xff\nbyte"\n'    # row 3 spans lines 4-5, bad
            b'Cy,07400 123458,ok\n')                  # row 4
    out = rows(data)
    assert [(type(r).__name__, r.row) for r in out] == [
        ("ImportedContact", 2), ("ListImportError", 3), ("ImportedContact", 4)]
    assert isinstance(out[0], ImportedContact) and out[0].fields["note"] == "two\nlines"


def test_missing_mapped_column_in_header_is_row_1() -> None:
    with pytest.raises(ListImportError) as e:
        rows(b"name,tel\nAnn,07400 123456\n")
    assert e.value.row == 1 and e.value.column == "phone"


def test_several_phone_columns_timezone_language_priority() -> None:
    m = ColumnMapping(("mobile", "home"), timezone="tz", language="lang", priority="prio")
    data = (b"name,mobile,home,tz,lang,prio\n"
            b"Ann,07400 123456,020 7946 0000,Europe/London,en,5\n"
            b"Bob,bogus,020 7946 0001,,fr,\n"
            b"Cy,07400 123459,,Mars/Olympus,en,1\n"
            b"Di,07400 123460,,,en,high\n")
    out = rows(data, m)
    a, b, c, d = out
    assert isinstance(a, ImportedContact) and [p.label for p in a.phones] == ["mobile", "home"]
    assert (a.timezone, a.language, a.priority, a.fields) == ("Europe/London", "en", 5,
                                                              {"name": "Ann"})
    # A bad second number does not lose the row: kept with its good number, warned.
    assert isinstance(b, ImportedContact) and [p.e164 for p in b.phones] == ["+442079460001"]
    assert b.warnings[0].column == "mobile"
    assert isinstance(c, ListImportError) and c.reason == "unknown time zone"
    assert isinstance(d, ListImportError) and d.column == "prio"


def test_text_stream_and_path(tmp_path: Path) -> None:
    text = "phone,name\n07400 123456,Zoë\n"
    out = list(read_contacts(io.StringIO(text), ColumnMapping(), "GB"))
    assert isinstance(out[0], ImportedContact) and out[0].fields == {"name": "Zoë"}
    f = tmp_path / "l.csv"
    f.write_bytes(b"\xef\xbb\xbf" + text.encode())  # a BOM, as spreadsheets write
    out = list(read_contacts(f, ColumnMapping(), "GB"))
    assert isinstance(out[0], ImportedContact)


def test_store_import_merges_duplicates_within_and_across_imports(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="GB")
    m = ColumnMapping(("mobile", "home"))
    first = (b"name,mobile,home,email\n"
             b"Ann,07400 123456,,\n"
             b"Ann again,+44 7400 123456,020 7946 0000,ann@example.org\n"
             b"Bob,07400 223456,,\n"
             b"bad,xx,,\n")
    rep = store.import_contacts("c1", io.BytesIO(first), m, now=0.0, batch_size=2)
    assert (rep.rows, rep.imported, rep.merged, rep.bad_rows) == (4, 2, 1, 1)
    assert [p.row for p in rep.problems] == [5]
    second = b"name,mobile,home,email\nX,020 7946 0000,07400 999999,x@example.org\n"
    rep2 = store.import_contacts("c1", io.BytesIO(second), m, now=0.0)
    assert (rep2.imported, rep2.merged) == (0, 1)
    contacts = list(store.contact_report("c1"))
    assert len(contacts) == 2
    ann = contacts[0]
    assert ann["phones"] == ["+447400123456", "+442079460000", "+447400999999"]
    assert ann["fields"] == {"name": "Ann", "email": "ann@example.org"}


def test_store_import_reports_unknown_zone(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="GB")
    rep = store.import_contacts("c1", io.BytesIO(b"phone\n+800 1234 5678\n07400 123456\n"),
                                now=0.0)
    assert rep.imported == 2 and rep.unknown_zone == 1 and rep.unknown_zone_rows == [2]
    assert store.summary("c1", now=0.0)["unknown_timezone"] == 1


def test_import_progress_callback_and_batches(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="US")
    lines = ["phone"] + [f"+1 212 555 {i:04d}" for i in range(9000)]
    seen: list[int] = []
    rep = store.import_contacts("c1", io.BytesIO("\n".join(lines).encode()), now=0.0,
                                batch_size=1000, progress=seen.append)
    assert rep.imported == 9000 and rep.bad_rows == 0
    assert seen and seen == sorted(seen)


def test_row_joining_two_contacts_merges_them(tmp_path: Path) -> None:
    store = new_store(tmp_path, region="GB")
    data = (b"a,b\n07400 100001,07400 100002\n07400 100003,07400 100004\n"
            b"07400 100002,07400 100003\n")
    rep = store.import_contacts("c1", io.BytesIO(data), ColumnMapping(("a", "b")), now=0.0)
    assert rep.imported == 1
    (c,) = list(store.contact_report("c1"))
    assert sorted(c["phones"]) == [f"+4474001000{i:02d}" for i in range(1, 5)]


def test_bad_byte_far_into_a_large_file_spoils_only_its_row() -> None:
    # Over a megabyte: the reader decodes blocks at once and only a block that fails line by
    # line; the bad row must still be the right one, every other row kept.
    lines = [b"name,phone"] + [b"P%d,+1 212 555 %04d" % (i, i % 10000) for i in range(60000)]
    lines[45000] = b"Ren\xe9e,+1 212 555 0001"
    out = rows(b"\n".join(lines) + b"\n", region="US")
    bad = [r for r in out if isinstance(r, ListImportError)]
    assert [(b.row, b.reason.startswith("bad encoding")) for b in bad] == [(45001, True)]
    assert sum(isinstance(r, ImportedContact) for r in out) == 59999
