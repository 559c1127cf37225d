"""Campaign settings, dispositions and the retry policy (pure: ``now`` is passed in).

Disposition names are the report's contract (issue 14): ``connected``, ``abandoned``,
``machine``, ``machine_message``, ``busy``, ``no_answer``, ``failed``, ``invalid_number``,
``dnc``, ``opted_out``, plus a message flow's own outcomes (``confirmed``,
``callback_scheduled``...), which are final unless the campaign's ``retries`` names them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from dialer.errors import DialerError
from dialer.windows import DEFAULT_WINDOW, CallingWindow

__all__ = ["DEFAULT_CALLBACK_SLOTS", "DEFAULT_RETRIES", "CampaignSettings", "Decision",
           "Disposition", "decide", "is_live_answer"]


class Disposition(StrEnum):
    """What became of a contact (or of one attempt)."""

    CONNECTED = "connected"
    ABANDONED = "abandoned"
    MACHINE = "machine"
    MACHINE_MESSAGE = "machine_message"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    INVALID_NUMBER = "invalid_number"
    DNC = "dnc"
    OPTED_OUT = "opted_out"
    LEASE_EXPIRED = "lease_expired"
    """Ledger only: the dialer holding the lease stopped before writing an outcome."""


NOT_LIVE = frozenset({Disposition.MACHINE, Disposition.MACHINE_MESSAGE, Disposition.BUSY,
                      Disposition.NO_ANSWER, Disposition.FAILED, Disposition.INVALID_NUMBER,
                      Disposition.DNC, Disposition.LEASE_EXPIRED})


def is_live_answer(disposition: str) -> bool:
    """Default for "a live person answered": every outcome but the machine and network ones
    (a message flow's own outcomes come from a person).  A live person hung up on by AMD is
    reported by the engine as ``abandoned`` and counts (FTC 16 CFR 310.4(b)(4)(i))."""
    return disposition not in NOT_LIVE


DEFAULT_RETRIES: Mapping[str, float] = {
    "busy": 15 * 60.0,
    "no_answer": 2 * 3600.0,
    "machine": 4 * 3600.0,
    "failed": 30 * 60.0,
    "abandoned": 72 * 3600.0,
}
"""Seconds before the next attempt, per outcome; an outcome not listed is final."""

DEFAULT_CALLBACK_SLOTS: Mapping[str, tuple[str, str]] = {
    "morning": ("09:00", "12:00"),
    "afternoon": ("12:00", "17:00"),
    "evening": ("17:00", "20:00"),
}
"""The IVR callback node's slots (ivr_flows: ``slot: morning``...) in the callee's time."""


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    """A campaign's settings; the campaign file's keys (issue 14) map one to one."""

    region: str = "US"
    """Default region for numbers without a country code (ISO 3166 alpha-2)."""
    kind: str = "agents"
    caller_id: str | None = None
    pacing: str = "progressive"
    window: CallingWindow = DEFAULT_WINDOW
    callback_window: CallingWindow | None = None
    """Window for scheduled callbacks (None: the campaign's)."""
    max_attempts: int = 3
    """1 means one attempt, no retry."""
    retries: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RETRIES))
    abandon_lockout_s: float = 72 * 3600.0
    """No redial after an abandoned call unless an agent is reserved (FTC, Ofcom: 72 h)."""
    abandon_target: float = 0.03
    ring_timeout: float = 20.0
    lease_s: float = 120.0
    callback_slots: Mapping[str, tuple[str, str]] = field(
        default_factory=lambda: dict(DEFAULT_CALLBACK_SLOTS))
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other campaign-file keys kept as given (list, agents, flow, machine_message...)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DialerError("max_attempts must be at least 1")
        if self.ring_timeout < 15:
            # Ofcom and the FTC's safe harbour: ring at least 15 s before giving up.
            raise DialerError("ring_timeout must be at least 15 s")
        if not 0 <= self.abandon_target <= 1:
            raise DialerError("abandon_target is a fraction (0.03 = 3 %)")
        for k, v in self.retries.items():
            if float(v) < 0:
                raise DialerError(f"retry delay for {k} is negative")

    @property
    def callbacks_window(self) -> CallingWindow:
        """The window callbacks are placed in."""
        return self.callback_window or self.window

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what :meth:`from_dict` reads)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, CallingWindow):
                v = v.to_spec()
            elif isinstance(v, Mapping):
                v = {k: list(x) if isinstance(x, tuple) else x for k, x in v.items()}
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignSettings:
        """From a mapping (stored JSON, a campaign file); unknown keys go to ``extra``."""
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        extra = dict(data.get("extra") or {})
        for k, v in data.items():
            if k == "extra":
                continue
            if k not in known:
                extra[k] = v
            elif k in ("window", "callback_window"):
                kw[k] = None if v is None and k == "callback_window" else CallingWindow.parse(v)
            elif k == "retries":
                kw[k] = {str(a): float(b) for a, b in dict(v).items()}
            elif k == "callback_slots":
                kw[k] = {str(a): (str(b[0]), str(b[1])) for a, b in dict(v).items()}
            elif k in ("max_attempts",):
                kw[k] = int(v)
            elif k in ("abandon_lockout_s", "abandon_target", "ring_timeout", "lease_s"):
                kw[k] = float(v)
            else:
                kw[k] = v
        return cls(**kw, extra=extra)

    def to_json(self) -> str:
        """Stored form."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CampaignSettings:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text or "{}"))

    def with_value(self, key: str, value: Any) -> CampaignSettings:
        """A copy with ``key`` set (as :meth:`from_dict` reads it); for ``campaign set``."""
        data = self.to_dict()
        if "." in key:  # retries.busy=600
            top, sub = key.split(".", 1)
            inner = dict(data.get(top) or {})
            inner[sub] = value
            data[top] = inner
        else:
            data[key] = value
        return CampaignSettings.from_dict(data)

    def replace(self, **changes: Any) -> CampaignSettings:
        """dataclasses.replace, as a method."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Decision:
    """What an outcome does to a contact."""

    status: str
    """``pending`` or ``final``."""
    disposition: str
    next_due: float
    phone_pos: int
    locked_until: float
    mark_invalid: bool = False
    opt_out: bool = False


def _next_position(current: int, positions: Sequence[int]) -> tuple[int, bool]:
    """Next valid position after ``current`` (round robin) and whether it wrapped."""
    later = [p for p in positions if p > current]
    if later:
        return min(later), False
    return (min(positions), True) if positions else (current, True)


def decide(settings: CampaignSettings, *, disposition: str, attempts: int, phone_pos: int,
           valid_positions: Sequence[int], locked_until: float, now: float) -> Decision:
    """The contact's next state after an attempt ended with ``disposition``.

    ``attempts`` counts the attempt just made; ``valid_positions`` are the contact's numbers
    not marked invalid (before this outcome).  A retryable outcome moves to the contact's next
    number at once (a mobile after a home that did not answer); only when the numbers wrap
    round does the outcome's delay apply.  ``invalid_number`` is never retried on that number;
    ``opted_out`` puts the number on the global DNC list (the store does it in the same
    transaction).  An abandoned call locks the contact out for ``abandon_lockout_s``.
    """
    if disposition == Disposition.ABANDONED:
        locked_until = max(locked_until, now + settings.abandon_lockout_s)
    if disposition == Disposition.OPTED_OUT:
        return Decision("final", disposition, now, phone_pos, locked_until, opt_out=True)
    if disposition == Disposition.INVALID_NUMBER:
        rest = [p for p in valid_positions if p != phone_pos]
        if not rest or attempts >= settings.max_attempts:
            return Decision("final", disposition, now, phone_pos, locked_until,
                            mark_invalid=True)
        pos, _ = _next_position(phone_pos, rest)
        return Decision("pending", disposition, now, pos, locked_until, mark_invalid=True)
    delay = settings.retries.get(str(disposition))
    if delay is None or attempts >= settings.max_attempts or not valid_positions:
        return Decision("final", disposition, now, phone_pos, locked_until)
    pos, wrapped = _next_position(phone_pos, valid_positions)
    due = now + delay if wrapped else now
    return Decision("pending", disposition, due, pos, locked_until)
