"""Calling windows in the callee's local time (pure functions: ``now`` is passed in).

The default is the strictest common rule: 08:00 to 21:00 in the called party's local time,
every day (US FCC 47 CFR 64.1200(c)(1): no telephone solicitation "before the hour of 8 a.m. or
after 9 p.m. (local time at the called party's location)").  A number whose time zone cannot be
known is never inside a window; a number that spans several zones (phonenumbers gives a list,
e.g. a US toll-free or a multi-zone area code) is inside only when the window holds in all of
them.  Windows are half-open, ``[start, end)``: a call at 21:00:00 is outside.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.errors import DialerError

__all__ = [
    "ALWAYS",
    "DAYS",
    "DEFAULT_WINDOW",
    "CallingWindow",
    "known_zone",
    "window_open",
    "zones_from_key",
    "zones_key",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")

Span = tuple[time, time]


def _parse_hhmm(text: str) -> time:
    m = _HHMM.match(text.strip())
    if not m:
        raise DialerError(f"bad time {text!r}: expected HH:MM")
    h, mi = int(m.group(1)), int(m.group(2))
    if h == 24 and mi == 0:
        return time.max
    if not (0 <= h < 24 and 0 <= mi < 60):
        raise DialerError(f"bad time {text!r}")
    return time(h, mi)


def _fmt(t: time) -> str:
    return "24:00" if t == time.max else t.strftime("%H:%M")


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    # ZoneInfo objects are immutable and cached by zoneinfo itself; this only saves the lookup
    # of a name that does not exist (phonenumbers' "Etc/Unknown", a bad column value).
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def known_zone(name: str) -> bool:
    """True if ``name`` is an IANA time zone this machine knows (``Etc/Unknown`` is not)."""
    return name != "Etc/Unknown" and _zone(name) is not None


def zones_key(zones: Iterable[str]) -> str:
    """Canonical text for a set of zones (sorted, ``|``-joined; ``""`` when none is known)."""
    return "|".join(sorted({z for z in zones if known_zone(z)}))


def zones_from_key(key: str) -> tuple[str, ...]:
    """Inverse of :func:`zones_key`."""
    return tuple(key.split("|")) if key else ()


def _as_datetime(now: datetime | float) -> datetime:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise DialerError("now must be an aware datetime or epoch seconds")
        return now
    return datetime.fromtimestamp(now, tz=UTC)


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """When calls may be placed, in the callee's local time.

    ``hours`` maps a weekday (0 = Monday) to its open spans; a day absent is closed.
    ``holidays`` are local dates with no calls.  ``always`` opens every hour of every day and
    every zone, known or not (calls a person asked for, and tests).
    """

    hours: Mapping[int, tuple[Span, ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    always: bool = False

    @classmethod
    def daily(cls, start: str = "08:00", end: str = "21:00",
              days: Sequence[str] = DAYS, holidays: Iterable[date] = ()) -> CallingWindow:
        """The same span on each of ``days``."""
        span = (_parse_hhmm(start), _parse_hhmm(end))
        if span[0] >= span[1]:
            raise DialerError(f"window {start}-{end} is empty")
        idx = []
        for d in days:
            key = d.strip().lower()[:3]
            if key not in DAYS:
                raise DialerError(f"bad day {d!r}: expected one of {', '.join(DAYS)}")
            idx.append(DAYS.index(key))
        return cls({i: (span,) for i in idx}, frozenset(holidays))

    @classmethod
    def parse(cls, spec: Any) -> CallingWindow:
        """Build from the campaign file's form.

        ``"always"``; ``{days: [mon, ...], start: "HH:MM", end: "HH:MM", holidays: [dates]}``;
        or ``{hours: {mon: "09:00-12:00,14:00-20:00", sat: "10:00-14:00"}, holidays: [...]}``.
        """
        if spec is None:
            return DEFAULT_WINDOW
        if isinstance(spec, str):
            if spec.strip().lower() == "always":
                return ALWAYS
            raise DialerError(f"bad window {spec!r}: expected 'always' or a mapping")
        if not isinstance(spec, Mapping):
            raise DialerError(f"bad window {spec!r}")
        holidays = frozenset(
            h if isinstance(h, date) else date.fromisoformat(str(h))
            for h in spec.get("holidays") or ())
        if "hours" in spec:
            hours: dict[int, tuple[Span, ...]] = {}
            for day, text in dict(spec["hours"]).items():
                key = str(day).strip().lower()[:3]
                if key not in DAYS:
                    raise DialerError(f"bad day {day!r}")
                spans = []
                for part in str(text).split(","):
                    if not part.strip():
                        continue
                    a, _, b = part.partition("-")
                    span = (_parse_hhmm(a), _parse_hhmm(b))
                    if span[0] >= span[1]:
                        raise DialerError(f"window {part.strip()} is empty")
                    spans.append(span)
                hours[DAYS.index(key)] = tuple(spans)
            return cls(hours, holidays)
        return cls.daily(str(spec.get("start", "08:00")), str(spec.get("end", "21:00")),
                         list(spec.get("days") or DAYS), holidays)

    def to_spec(self) -> Any:
        """The form :meth:`parse` reads (round trip)."""
        if self.always:
            return "always"
        out: dict[str, Any] = {"hours": {
            DAYS[d]: ",".join(f"{_fmt(a)}-{_fmt(b)}" for a, b in spans)
            for d, spans in sorted(self.hours.items())}}
        if self.holidays:
            out["holidays"] = sorted(h.isoformat() for h in self.holidays)
        return out

    def open_in_zone(self, zone: str, now: datetime | float) -> bool:
        """True if a call placed at ``now`` falls inside this window in ``zone``."""
        if self.always:
            return True
        tz = _zone(zone) if zone != "Etc/Unknown" else None
        if tz is None:
            return False
        local = _as_datetime(now).astimezone(tz)
        if local.date() in self.holidays:
            return False
        t = local.time().replace(tzinfo=None)
        return any(a <= t < b for a, b in self.hours.get(local.weekday(), ()))

    def is_open(self, zones: Sequence[str], now: datetime | float) -> bool:
        """True if the window holds in every zone of ``zones`` (none known: False)."""
        if self.always:
            return True
        return bool(zones) and all(self.open_in_zone(z, now) for z in zones)

    def next_open(self, zones: Sequence[str], now: float, *, horizon_s: float = 8 * 86400,
                  step_s: float = 60.0) -> float | None:
        """The first minute at or after ``now`` (epoch) when :meth:`is_open` holds; None if
        never within ``horizon_s``.  For reports ("next call at ..."), not the hot path."""
        t = now
        while t <= now + horizon_s:
            if self.is_open(zones, t):
                return t
            t += step_s
        return None


DEFAULT_WINDOW = CallingWindow.daily("08:00", "21:00")
"""08:00-21:00 local, every day: 47 CFR 64.1200(c)(1)."""

ALWAYS = CallingWindow(always=True)


def window_open(window: CallingWindow, zones: Sequence[str], now: datetime | float) -> bool:
    """Functional form of :meth:`CallingWindow.is_open`."""
    return window.is_open(zones, now)


def local_day_start(zone: str, now: float) -> datetime:
    """Midnight of ``now``'s local day in ``zone`` (aware)."""
    tz = _zone(zone)
    if tz is None:
        raise DialerError(f"unknown time zone {zone!r}")
    local = datetime.fromtimestamp(now, tz)
    return datetime.combine(local.date(), time(0), tz)


def at_local(zone: str, day: date, at: time) -> float:
    """Epoch seconds of wall-clock ``at`` on ``day`` in ``zone`` (a skipped DST time moves
    forward, as zoneinfo's fold=0 does)."""
    tz = _zone(zone)
    if tz is None:
        raise DialerError(f"unknown time zone {zone!r}")
    return datetime.combine(day, at, tz).timestamp()


def add_days(d: date, n: int) -> date:
    """``d`` plus ``n`` days."""
    return d + timedelta(days=n)
