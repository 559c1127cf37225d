"""The predictive strategy: learning, dialling ahead, and never when the budget is spent."""

from __future__ import annotations

import pytest

from dialer.pacing import (
    AbandonBudget,
    AgentBusy,
    AgentLoggedIn,
    AgentReady,
    AgentWrap,
    CallAnswered,
    CallConnected,
    CallDialled,
    Pacer,
    PacerConfig,
    PredictiveStrategy,
)
from dialer.pacing.state import PacerState
from dialer.population import ModelledPopulation, PopulationModel
from dialer.simulate import SimConfig, Simulation


@pytest.fixture(scope="module")
def learnt() -> PredictiveStrategy:
    """A predictive strategy that has worked an hour of the reference population."""
    sim = Simulation(SimConfig(agents=20, hours=1.0, pacing="predictive"),
                     ModelledPopulation(PopulationModel(), seed=3))
    sim.run()
    strategy = sim.pacer.strategy
    assert isinstance(strategy, PredictiveStrategy)
    return strategy


def busy_team(n_busy: int, n_ready: int, *, now: float, n_wrap: int = 0) -> PacerState:
    """Talking agents (talk started 5..(5 + 10k) s ago), ready agents, and agents 6 s into
    their wrap-up (so free in about 4 s)."""
    st = PacerState()
    for i in range(n_busy + n_ready + n_wrap):
        st.apply(AgentLoggedIn(f"a{i}"), now=0.0)
        st.apply(AgentReady(f"a{i}"), now=0.0)
    for i in range(n_busy):
        since = now - 5.0 - 10.0 * i
        st.apply(CallDialled(f"c{i}"), now=since - 12.0)
        st.apply(CallAnswered(f"c{i}"), now=since - 2.0)
        st.apply(CallConnected(f"c{i}", f"a{i}"), now=since)
        st.apply(AgentBusy(f"a{i}", f"c{i}"), now=since)
    for i in range(n_busy + n_ready, n_busy + n_ready + n_wrap):
        st.apply(AgentWrap(f"a{i}"), now=now - 6.0)
    return st


def test_learns_the_population(learnt: PredictiveStrategy) -> None:
    # the reference: 45% of dials answered, about 57% of answers human for AMD,
    # AMD decides ~2 s after a human's hello, 10 s of wrap, talk mean ~120 s
    cum = learnt.first.cumulative()
    assert float(cum[0, -1]) == pytest.approx(0.45, abs=0.05)
    assert learnt.amd_human.value == pytest.approx(0.57, abs=0.06)
    assert learnt.amd_delay.value == pytest.approx(2.0, abs=0.2)
    assert learnt.wrap.value == pytest.approx(10.0, abs=1e-6)
    assert learnt.talk.quantile(0.5) == pytest.approx(120.0 * 0.73, rel=0.2)  # median


def test_dials_ahead_of_busy_agents(learnt: PredictiveStrategy) -> None:
    learnt.budget = AbandonBudget(abandoned=5, live_answers=500)
    st = busy_team(15, 0, now=10_000.0, n_wrap=5)
    placed = []
    for threshold in (0.001, 0.05, 0.3):
        learnt.threshold = threshold
        learnt._dirty = True
        placed.append(learnt.calls_to_place(st, now=10_000.0))
        assert learnt.last_reason == "planned"
    # progressive would place none (no agent is free); it dials ahead of the five agents
    # about to come free, and the more abandonment risk a dial may carry, the more it dials
    assert placed[0] <= placed[1] <= placed[2]
    assert 0 < placed[1] < placed[2] <= 40


def test_never_dials_ahead_when_the_budget_is_exhausted(learnt: PredictiveStrategy) -> None:
    learnt.threshold = 0.02
    for ready in (0, 3):
        st = busy_team(20 - ready, ready, now=10_000.0)
        learnt.budget = AbandonBudget(abandoned=16, live_answers=500)  # 3.2% > 3%
        learnt._dirty = True
        n = learnt.calls_to_place(st, now=10_000.0)
        assert learnt.last_reason == "budget"
        # only calls that have a free agent each: none that could be abandoned
        assert n == ready - st.in_flight
        assert n == ready
    st = busy_team(20, 0, now=10_000.0)
    assert Pacer(learnt).strategy.calls_to_place(st, now=10_000.0) == 0


def test_progressive_while_learning() -> None:
    pacer = Pacer(PredictiveStrategy(PacerConfig()))
    for i in range(4):
        pacer.on_event(AgentLoggedIn(f"a{i}"), now=0.0)
        pacer.on_event(AgentReady(f"a{i}"), now=0.0)
    assert pacer.calls_to_place(now=0.0) == 4
    assert pacer.strategy.last_reason == "learning"  # type: ignore[attr-defined]
    assert pacer.get_timer(now=3.0) == 4.0


def test_feedback_lowers_the_threshold_after_abandons() -> None:
    s = PredictiveStrategy(PacerConfig())
    s.budget = AbandonBudget(abandoned=0, live_answers=1000)
    start = s.threshold
    for _ in range(200):
        s._live_outcome(False)
    assert s.threshold > start
    high = s.threshold
    for _ in range(3):
        s._live_outcome(True)
    assert s.threshold < high
    # the unseen abandons (AMD false positives in the ledger) lower the goal
    goal = s._goal()
    s.budget = AbandonBudget(abandoned=3 + 15, live_answers=1000)
    assert s._goal() < goal


def test_beats_progressive_on_the_same_population_within_the_cap() -> None:
    """Two simulated hours of the reference population, the same dial outcomes for both."""
    def day(pacing: str) -> dict[str, float]:
        return Simulation(SimConfig(agents=20, hours=2.0, pacing=pacing),
                          ModelledPopulation(PopulationModel(), seed=4)).run().summary()
    prog, pred = day("progressive"), day("predictive")
    assert pred["talk_min_per_agent_hour"] > 1.1 * prog["talk_min_per_agent_hour"]
    assert pred["abandon_rate"] <= 0.03
    assert pred["agent_wait_s_mean"] < prog["agent_wait_s_mean"]
