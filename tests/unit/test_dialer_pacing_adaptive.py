"""Vicidial's adaptive modes: the level arithmetic against hand-computed steps."""

from __future__ import annotations

import pytest

from dialer.pacing import (
    AbandonBudget,
    AdaptiveMode,
    AdaptiveSettings,
    AdaptiveStrategy,
    AgentLoggedIn,
    AgentReady,
    CallDialled,
    Pacer,
    PacerConfig,
)
from dialer.pacing.adaptive import apply_drop_rules, hhmm, next_level


def settings(**kw: object) -> AdaptiveSettings:
    return AdaptiveSettings(**kw)  # type: ignore[arg-type]


def test_next_level_by_hand() -> None:
    # differential 2 over 10 agents: +20%
    assert next_level(1.0, differential=2.0, agents_average=10.0,
                      settings=settings()) == pytest.approx(1.2)
    # intensity 20 raises a rise by 20%: 20% * 1.2 = 24%
    assert next_level(1.0, differential=2.0, agents_average=10.0,
                      settings=settings(intensity=20.0)) == pytest.approx(1.24)
    # a fall of 30% with intensity 20 is softened: -30% * |0.2 - 1| = -24%
    assert next_level(2.0, differential=-3.0, agents_average=10.0,
                      settings=settings(intensity=20.0)) == pytest.approx(1.52)
    # dl_diff_target -1 aims at one agent waiting: (1 - 1) / 10 = no change
    assert next_level(1.7, differential=1.0, agents_average=10.0,
                      settings=settings(dl_diff_target=-1.0)) == pytest.approx(1.7)
    # capped at the maximum level, floored at 1.0
    assert next_level(2.8, differential=2.0, agents_average=10.0,
                      settings=settings()) == 3.0
    assert next_level(1.1, differential=-5.0, agents_average=10.0,
                      settings=settings()) == 1.0
    assert next_level(1.5, differential=0.0, agents_average=0.0, settings=settings()) == 1.5


def rules(level: float, mode: AdaptiveMode, *, now: float = 3600.0, calls_today: int = 100,
          drops_pct: float = 4.0, calls_one: int = 10, drops_one_pct: float = 0.0) -> float:
    return apply_drop_rules(level, settings=settings(mode=mode, latest_time=8 * 3600.0),
                            calls_one=calls_one, drops_one_pct=drops_one_pct,
                            calls_today=calls_today, drops_answers_today_pct=drops_pct,
                            drop_target_pct=3.0, now=now)


def test_drop_rules_by_mode() -> None:
    assert rules(2.4, AdaptiveMode.HARD_LIMIT) == 1.0
    assert rules(2.4, AdaptiveMode.AVERAGE) == pytest.approx(1.2)
    assert rules(1.6, AdaptiveMode.AVERAGE) == 1.0  # halved to 0.8, floored
    # TAPERED at 06:00 with the latest time 08:00: HHMM 800 - 600 = 200 -> x 0.2, floored
    assert rules(2.4, AdaptiveMode.TAPERED, now=6 * 3600.0) == 1.0
    # at 01:00: 800 - 100 = 700 -> x 0.7
    assert rules(2.4, AdaptiveMode.TAPERED, now=3600.0) == pytest.approx(1.68)
    assert rules(2.4, AdaptiveMode.TAPERED, now=9 * 3600.0) == 1.0  # past the latest time
    # under the target, or 50 calls or fewer today: no change
    assert rules(2.4, AdaptiveMode.HARD_LIMIT, drops_pct=2.9) == 2.4
    assert rules(2.4, AdaptiveMode.HARD_LIMIT, calls_today=50) == 2.4
    # the last minute's drops over half its calls halve the level whatever the mode
    assert rules(2.4, AdaptiveMode.HARD_LIMIT, drops_pct=0.0, calls_one=21,
                 drops_one_pct=51.0) == pytest.approx(1.2)
    assert hhmm(8 * 3600.0 + 5 * 60.0 + 59.0) == 805


def test_level_steps_on_a_fake_clock() -> None:
    """Ten agents ready, no live calls: differential 10 over 10 agents doubles the level at
    each 15-second step (capped at 3.0); calls = round(level * agents) - calls in flight."""
    pacer = Pacer(AdaptiveStrategy(PacerConfig()))
    for i in range(10):
        pacer.on_event(AgentLoggedIn(f"a{i}"), now=0.0)
        pacer.on_event(AgentReady(f"a{i}"), now=0.0)
    assert pacer.calls_to_place(now=0.0) == 10
    assert pacer.calls_to_place(now=14.9) == 10
    assert pacer.calls_to_place(now=15.0) == 20
    assert pacer.dial_level == pytest.approx(2.0)
    for i in range(5):
        pacer.on_event(CallDialled(f"c{i}"), now=20.0)
    assert pacer.calls_to_place(now=20.0) == 15
    assert pacer.calls_to_place(now=30.0) == 25  # level 3.0 (capped): 30 - 5 in flight
    assert pacer.get_timer(now=30.0) == 45.0


def test_hard_limit_after_the_drop_check() -> None:
    strategy = AdaptiveStrategy(PacerConfig(), AdaptiveSettings(mode=AdaptiveMode.HARD_LIMIT))
    pacer = Pacer(strategy)
    for i in range(10):
        pacer.on_event(AgentLoggedIn(f"a{i}"), now=0.0)
        pacer.on_event(AgentReady(f"a{i}"), now=0.0)
    pacer.calls_to_place(now=45.0)
    assert strategy.level == 3.0
    for i in range(60):
        pacer.on_event(CallDialled(f"c{i}"), now=46.0)
    pacer.set_budget(AbandonBudget(abandoned=4, live_answers=100), now=50.0)
    # drops are recounted at 60 s, then the 60 s level step applies the HARD_LIMIT rule
    pacer.calls_to_place(now=59.0)
    assert strategy.level == 3.0
    pacer.calls_to_place(now=60.0)
    assert strategy.calls_today_seen == 60
    assert strategy.drops_answers_today_pct == pytest.approx(4.0)
    assert strategy.level == 1.0
