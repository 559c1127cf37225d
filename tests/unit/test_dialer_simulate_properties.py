"""Invariants of the simulator for any population file, team and strategy (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.population import DialOutcome, FilePopulation, Result
from dialer.simulate import SimConfig, simulate

outcomes = st.builds(
    DialOutcome,
    result=st.sampled_from(list(Result)),
    ring_s=st.floats(0.0, 30.0),
    amd_s=st.floats(0.0, 5.0),
    amd_says_human=st.booleans(),
    talk_s=st.floats(0.0, 300.0),
)


class Recording(FilePopulation):
    def __init__(self, rows: list[DialOutcome]) -> None:
        super().__init__(rows)
        self.times: list[float] = []

    def next(self, *, now: float) -> DialOutcome | None:
        self.times.append(now)
        return super().next(now=now)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(outcomes, min_size=1, max_size=60), agents=st.integers(1, 4),
       wrap=st.sampled_from([0.0, 5.0]), amd=st.booleans(),
       pacing=st.sampled_from(["progressive", "predictive", "ratio:1.5",
                               "adaptive:AVERAGE"]))
def test_invariants(rows: list[DialOutcome], agents: int, wrap: float, amd: bool,
                    pacing: str) -> None:
    pop = Recording(rows)
    hours = 0.05
    r = simulate(SimConfig(agents=agents, hours=hours, wrap=wrap, amd=amd, pacing=pacing), pop)
    s = r.summary()
    # every human answered is either connected or abandoned (AMD false positives included)
    assert s["live_answers"] == s["connected_humans"] + s["abandoned"]
    assert s["abandoned_amd"] <= s["abandoned"]
    if not amd:
        assert s["abandoned_amd"] == 0
    assert s["calls_placed"] == s["rows_used"] <= len(rows)
    assert all(t < hours * 3600 for t in pop.times)
    assert 0.0 <= s["occupancy"] <= 1.0 + 1e-9
    assert 0.0 <= s["abandon_rate"] <= 1.0
    assert s["talk_min_per_agent_hour"] <= 60.0 + 1e-9
    if pacing == "progressive":
        # a free agent is kept for every call in flight: only AMD can abandon a person,
        # and no machine passed as human ever waits in vain either
        assert s["abandoned"] == s["abandoned_amd"]
        assert r.abandoned_machines == 0
