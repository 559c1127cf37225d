"""Business hours: weekly opening hours in a time zone, minus holidays.

Pure functions of a Unix time (passed in, never read from the system clock)."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from ivr_flows.model import Calendar

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def _days(spec: str) -> list[int]:
    """``mon``, ``mon-fri``, ``sat,sun`` -> weekday numbers (Monday 0)."""
    out: list[int] = []
    for part in spec.lower().split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            i, j = _DAYS.index(a.strip()), _DAYS.index(b.strip())
            out.extend(range(i, j + 1) if i <= j else [*range(i, 7), *range(j + 1)])
        else:
            out.append(_DAYS.index(part))
    return out


def _range(spec: str) -> tuple[time, time]:
    m = _RANGE.match(spec.strip())
    if not m:
        raise ValueError(f"bad hours {spec!r} (want HH:MM-HH:MM)")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    end = time(23, 59, 59, 999999) if (h2, m2) == (24, 0) else time(h2, m2)
    return time(h1, m1), end


def parse_calendar_problems(cal: Calendar) -> list[str]:
    """Every malformed day, hours range or holiday in ``cal``."""
    problems: list[str] = []
    for spec, ranges in cal.hours.items():
        try:
            _days(spec)
        except ValueError:
            problems.append(f"bad day spec {spec!r} (use mon..sun, ranges like mon-fri)")
        for r in ranges:
            try:
                _range(r)
            except ValueError as e:
                problems.append(str(e))
    for h in cal.holidays:
        try:
            date.fromisoformat(h)
        except ValueError:
            problems.append(f"bad holiday date {h!r} (want YYYY-MM-DD)")
    return problems


def is_open(cal: Calendar, unix_time: float) -> bool:
    """True if ``unix_time`` falls inside the calendar's hours and is not a holiday."""
    local = datetime.fromtimestamp(unix_time, ZoneInfo(cal.timezone))
    if local.date().isoformat() in cal.holidays:
        return False
    now_t = local.time().replace(tzinfo=None)
    for spec, ranges in cal.hours.items():
        if local.weekday() in _days(spec):
            for r in ranges:
                start, end = _range(r)
                if start <= now_t < end:
                    return True
    return False
