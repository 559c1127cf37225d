"""Calling windows in the callee's local time: zones, several zones, holidays, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dialer.errors import DialerError
from dialer.windows import ALWAYS, DEFAULT_WINDOW, CallingWindow

from .dialer_helpers import at


def test_default_is_8_to_21_local() -> None:
    ny = ("America/New_York",)
    assert not DEFAULT_WINDOW.is_open(ny, at("America/New_York", 2026, 3, 4, 7, 59))
    assert DEFAULT_WINDOW.is_open(ny, at("America/New_York", 2026, 3, 4, 8, 0))
    assert DEFAULT_WINDOW.is_open(ny, at("America/New_York", 2026, 3, 4, 20, 59))
    assert not DEFAULT_WINDOW.is_open(ny, at("America/New_York", 2026, 3, 4, 21, 0))


def test_number_spanning_zones_must_be_open_in_all() -> None:
    idaho = ("America/Boise", "America/Los_Angeles")  # +1 208
    # 08:30 in Boise is 07:30 in Los Angeles: closed until LA opens.
    t = at("America/Boise", 2026, 3, 4, 8, 30)
    assert DEFAULT_WINDOW.is_open(("America/Boise",), t)
    assert not DEFAULT_WINDOW.is_open(idaho, t)
    assert DEFAULT_WINDOW.is_open(idaho, at("America/Los_Angeles", 2026, 3, 4, 8, 0))
    # 20:30 in LA is 21:30 in Boise: closed.
    assert not DEFAULT_WINDOW.is_open(idaho, at("America/Los_Angeles", 2026, 3, 4, 20, 30))


def test_unknown_zone_never_open_except_always() -> None:
    t = at("UTC", 2026, 3, 4, 12)
    assert not DEFAULT_WINDOW.is_open((), t)
    assert not DEFAULT_WINDOW.is_open(("Etc/Unknown",), t)
    assert not DEFAULT_WINDOW.is_open(("Mars/Olympus",), t)
    assert ALWAYS.is_open((), t)


def test_weekdays_and_holidays_in_local_date() -> None:
    w = CallingWindow.parse({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00",
                             "end": "17:00", "holidays": ["2026-12-25"]})
    tokyo = ("Asia/Tokyo",)
    assert w.is_open(tokyo, at("Asia/Tokyo", 2026, 12, 24, 10))       # Thursday
    assert not w.is_open(tokyo, at("Asia/Tokyo", 2026, 12, 25, 10))   # holiday
    assert not w.is_open(tokyo, at("Asia/Tokyo", 2026, 12, 26, 10))   # Saturday
    # Friday 25 Dec 10:00 in Tokyo is still Thursday 24 Dec in UTC: the local date counts.
    t = at("Asia/Tokyo", 2026, 12, 25, 10)
    assert datetime.fromtimestamp(t, UTC).date() == date(2026, 12, 25)
    assert w.is_open(("Europe/London",), at("Europe/London", 2026, 12, 24, 10))


def test_dst_transitions() -> None:
    ny = ("America/New_York",)
    # 2026-03-08: clocks go 02:00 EST -> 03:00 EDT.  08:00 local is 12:00 UTC after the
    # change and 13:00 UTC the day before.
    before = datetime(2026, 3, 7, 12, 30, tzinfo=UTC).timestamp()  # 07:30 EST
    after = datetime(2026, 3, 8, 12, 30, tzinfo=UTC).timestamp()   # 08:30 EDT
    assert not DEFAULT_WINDOW.is_open(ny, before)
    assert DEFAULT_WINDOW.is_open(ny, after)
    # Autumn: 2026-11-01 01:30 happens twice; 21:00 EST is 02:00 UTC next day.
    assert not DEFAULT_WINDOW.is_open(ny, datetime(2026, 11, 2, 2, 0,
                                                   tzinfo=UTC).timestamp())
    assert DEFAULT_WINDOW.is_open(ny, datetime(2026, 11, 2, 1, 59,
                                               tzinfo=UTC).timestamp())


def test_per_day_spans_round_trip_and_aware_datetimes() -> None:
    w = CallingWindow.parse({"hours": {"mon": "09:00-12:00,14:00-20:00", "sat": "10:00-13:00"}})
    assert CallingWindow.parse(w.to_spec()) == w
    assert CallingWindow.parse("always") is ALWAYS
    lon = ("Europe/London",)
    assert not w.is_open(lon, datetime(2026, 3, 2, 13, 0, tzinfo=UTC))  # Mon lunch
    assert w.is_open(lon, datetime(2026, 3, 2, 15, 0, tzinfo=UTC))
    with pytest.raises(DialerError):
        w.is_open(lon, datetime(2026, 3, 2, 15, 0))  # naive: refused
    with pytest.raises(DialerError):
        CallingWindow.parse({"start": "21:00", "end": "08:00"})
