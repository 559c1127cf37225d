"""Reports read from the compliance ledger (``dialer_attempts``): dispositions per hour and in
total, abandonment with the calls behind it, and a recorded day as a simulator population."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from dialer.db import read_session
from dialer.models import Attempt
from dialer.population import DialOutcome, Result
from dialer.store import DAY_S, DialerStore

__all__ = ["compliance", "dispositions", "recorded_population"]


def dispositions(engine: Engine, campaign_id: int, *, since: float, until: float
                 ) -> dict[str, Any]:
    """``{"total": {disposition: n}, "per_hour": [{"hour": ISO, "counts": {...}}]}`` of the
    attempts dialled in [since, until) that have an outcome."""
    total: dict[str, int] = {}
    hours: dict[int, dict[str, int]] = {}
    with read_session(engine) as s:
        q = (select(func.floor(Attempt.dialled_at / 3600.0), Attempt.disposition, func.count())
             .where(Attempt.campaign_id == campaign_id, Attempt.disposition.is_not(None),
                    Attempt.dialled_at >= since, Attempt.dialled_at < until)
             .group_by(func.floor(Attempt.dialled_at / 3600.0), Attempt.disposition))
        for hour, disp, n in s.execute(q):
            h = int(hour)
            total[disp] = total.get(disp, 0) + int(n)
            per = hours.setdefault(h, {})
            per[disp] = per.get(disp, 0) + int(n)
    return {"since": since, "until": until, "total": dict(sorted(total.items())),
            "per_hour": [{"hour": datetime.fromtimestamp(h * 3600, UTC).isoformat(),
                          "counts": dict(sorted(c.items()))} for h, c in sorted(hours.items())]}


def compliance(store: DialerStore, name: str, *, now: float, limit: int = 5000
               ) -> dict[str, Any]:
    """Abandonment per 24 h and per 30-day period against the cap, and the abandoned calls
    of the period (the ledger rows a regulator asks for)."""
    ab = store.abandonment(name, now=now)
    since = min(ab.period_start if ab.period_start is not None else now, now - DAY_S)
    calls = [r for r in store.ledger(name, since=since) if r["abandoned"]][:limit]
    return {"cap": ab.target,
            "last_24h": {"live": ab.live_24h, "abandoned": ab.abandoned_24h,
                         "rate": ab.rate_24h, "over_cap": ab.rate_24h > ab.target},
            "period_30d": {"start": ab.period_start, "live": ab.period_live,
                           "abandoned": ab.period_abandoned, "rate": ab.period_rate,
                           "over_cap": ab.period_rate > ab.target},
            "budget_left": ab.budget_left,
            "abandoned_calls": calls}


_MACHINE = {"machine", "machine_message"}


def recorded_population(engine: Engine, campaign_id: int, *, limit: int = 200_000
                        ) -> list[DialOutcome]:
    """The campaign's finished attempts as simulator outcomes, in dialling order.

    The ledger keeps outcomes, not ring times: answered calls take 10 s of ringing (the
    reference population's mean), busy 3 s, failed 1 s; a connected call's talk is its
    duration after the agent took it; an abandoned person is replayed as a person with the
    campaign's mean talk (had an agent been free, they would have talked).
    """
    with read_session(engine) as s:
        rows = list(s.execute(select(Attempt.disposition, Attempt.dialled_at, Attempt.ended_at,
                                     Attempt.time_to_agent_s, Attempt.amd)
                              .where(Attempt.campaign_id == campaign_id,
                                     Attempt.disposition.is_not(None))
                              .order_by(Attempt.dialled_at, Attempt.id).limit(limit)))
    talks = [max(1.0, (e or d) - d - (w or 0.0)) for disp, d, e, w, _ in rows
             if disp == "connected"]
    mean_talk = sum(talks) / len(talks) if talks else 120.0
    out = []
    for disp, d, e, w, _amd in rows:
        if disp == "connected":
            out.append(DialOutcome(Result.HUMAN, 10.0, 2.0, True,
                                   max(1.0, (e or d) - d - (w or 0.0))))
        elif disp == "abandoned":
            out.append(DialOutcome(Result.HUMAN, 10.0, 2.0, True, mean_talk))
        elif disp in _MACHINE:
            out.append(DialOutcome(Result.MACHINE, 15.0, 3.5, False, 5.0))
        elif disp == "busy":
            out.append(DialOutcome(Result.BUSY, 3.0))
        elif disp == "no_answer":
            out.append(DialOutcome(Result.NO_ANSWER, 0.0))
        elif disp in ("failed", "invalid_number"):
            out.append(DialOutcome(Result.FAILED, 1.0))
    return out
