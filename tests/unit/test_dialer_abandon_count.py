"""The engine's abandonment budget: the ledger counted afresh every ``abandon_recount_s``,
the engine's own outcomes added in between (a count scans every attempt of the campaign)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dialer.engine import CampaignEngine, EngineConfig
from dialer.store import AbandonmentReport


def report(live: int, abandoned: int) -> AbandonmentReport:
    return AbandonmentReport(0.03, live, abandoned, 0.0, live, abandoned, live, abandoned)


class FakeStore:
    def __init__(self) -> None:
        self.live, self.abandoned = 10, 1
        self.counts = 0
        self.during: Callable[[], None] | None = None

    def abandonment(self, name: str, *, now: float) -> AbandonmentReport:
        self.counts += 1
        if self.during is not None:  # an outcome committed and counted while this runs
            self.during()
        return report(self.live, self.abandoned)


class FakeEngine:
    def __init__(self) -> None:
        self.config = EngineConfig(trunk="sip:127.0.0.1:5060", abandon_recount_s=60.0)
        self.store = FakeStore()
        self.campaign = "c"
        self._ab_base: AbandonmentReport | None = None
        self._ab_at = 0.0
        self._ab_own = [0, 0]

    async def _db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return fn(*args, **kw)

    _abandonment = CampaignEngine._abandonment
    _count_own = CampaignEngine._count_own

    def outcome(self, disposition: str, live: bool | None = None) -> None:
        """An outcome written: in the ledger, and counted by the engine."""
        is_live = disposition not in ("machine", "busy", "no_answer", "failed") \
            if live is None else live
        self.store.live += is_live
        self.store.abandoned += disposition == "abandoned"
        self._count_own(disposition, live)


async def test_counted_afresh_only_every_recount_interval_with_own_outcomes_between() -> None:
    eng = FakeEngine()
    ab = await eng._abandonment(0.0)
    assert (ab.period_live, ab.period_abandoned, eng.store.counts) == (10, 1, 1)
    eng.outcome("connected")
    eng.outcome("abandoned")
    eng.outcome("machine")
    eng.outcome("opted_out", live=True)
    for t in (1.0, 30.0, 59.9):
        ab = await eng._abandonment(t)
        assert eng.store.counts == 1
        assert (ab.live, ab.abandoned) == (13, 2)
        assert (ab.period_live, ab.period_abandoned) == (13, 2)
        assert (ab.live_24h, ab.abandoned_24h) == (13, 2)
    # Another dialer's outcomes reach the budget at the next count.
    eng.store.live += 5
    eng.store.abandoned += 1
    ab = await eng._abandonment(60.0)
    assert eng.store.counts == 2
    assert (ab.period_live, ab.period_abandoned) == (18, 3)
    assert eng._ab_own == [0, 0]


async def test_an_outcome_committed_during_the_count_is_never_missed() -> None:
    eng = FakeEngine()
    await eng._abandonment(0.0)
    eng.outcome("abandoned")  # before the count: in the ledger the count reads
    eng.store.during = lambda: eng.outcome("abandoned")  # while the count runs
    ab = await eng._abandonment(60.0)
    # The ledger has 13 live answers and 3 abandoned; the one written during the count is
    # held once more (at most until the next count) rather than risk missing it.
    assert (eng.store.live, eng.store.abandoned) == (12, 3)
    assert (ab.period_live, ab.period_abandoned) == (13, 4)
    eng.store.during = None
    ab = await eng._abandonment(120.0)
    assert (ab.period_live, ab.period_abandoned) == (12, 3)


def test_report_plus_adds_to_every_window() -> None:
    base = AbandonmentReport(0.03, 100, 2, 5.0, 40, 1, 20, 0)
    assert base.plus(0, 0) is base
    more = base.plus(3, 1)
    assert (more.live, more.abandoned, more.period_live, more.period_abandoned,
            more.live_24h, more.abandoned_24h) == (103, 3, 43, 2, 23, 1)
    assert (more.target, more.period_start) == (0.03, 5.0)
