"""The pacer on a fake clock: state, registry, preview, progressive, ratio, estimators."""

from __future__ import annotations

import numpy as np
import pytest

from dialer.pacing import (
    AgentBusy,
    AgentLoggedIn,
    AgentReady,
    AgentWrap,
    AmdDecided,
    CallAbandoned,
    CallAnswered,
    CallConnected,
    CallDialled,
    CallEnded,
    CallOutcome,
    CallPhase,
    Pacer,
    PacerConfig,
    PacingConfigError,
    default_registry,
)
from dialer.pacing.estimators import DecayedHistogram, DecayedMean, DecayedRate


def team(pacer: Pacer, n: int, *, now: float = 0.0) -> list[str]:
    ids = [f"a{i}" for i in range(n)]
    for a in ids:
        pacer.on_event(AgentLoggedIn(a), now=now)
        pacer.on_event(AgentReady(a), now=now)
    return ids


def test_registry_names_and_errors() -> None:
    reg = default_registry()
    assert reg.names() == ["adaptive", "predictive", "preview", "progressive", "ratio"]
    for bad in ("nonsense", "ratio:abc", "ratio:-1", "adaptive:SOMETIMES", "progressive:2"):
        with pytest.raises(PacingConfigError):
            Pacer.from_name(bad)
    assert Pacer.from_name("ADAPTIVE:average").strategy.name == "adaptive"
    with pytest.raises(PacingConfigError):
        reg.register("progressive", lambda c, a: reg.create("preview", c))
    with pytest.raises(PacingConfigError):
        PacerConfig(abandon_target=0.0)


def test_state_follows_a_call_and_counts_what_does_not_fit() -> None:
    pacer = Pacer.from_name("progressive")
    st = pacer.state
    team(pacer, 2)
    pacer.on_event(CallDialled("c1"), now=1.0)
    assert st.call_counts[CallPhase.DIALLING] == 1 and st.in_flight == 1
    pacer.on_event(CallAnswered("c1"), now=5.0)
    assert st.calls["c1"].answered_at == 5.0
    pacer.on_event(AmdDecided("c1", human=True), now=7.0)
    assert st.waiting == 1
    pacer.on_event(CallConnected("c1", "a0"), now=7.5)
    pacer.on_event(AgentBusy("a0", "c1"), now=7.5)
    assert st.in_flight == 0 and st.connected == 1 and st.ready == 1
    pacer.on_event(CallEnded("c1", CallOutcome.COMPLETED), now=60.0)
    pacer.on_event(AgentWrap("a0"), now=60.0)
    assert st.connected == 0 and st.calls == {}
    # events that do not fit are counted and dropped, never a crash
    pacer.on_event(CallAnswered("nope"), now=61.0)
    pacer.on_event(CallAbandoned("nope"), now=61.0)
    pacer.on_event(AgentReady("ghost"), now=61.0)
    pacer.on_event(AgentLoggedIn("a1"), now=61.0)
    assert st.ignored == 4
    # a machine needs no agent: it leaves the calls in flight at once
    pacer.on_event(CallDialled("c2"), now=62.0)
    pacer.on_event(CallAnswered("c2"), now=70.0)
    pacer.on_event(AmdDecided("c2", human=False), now=73.0)
    assert st.in_flight == 0 and st.call_counts[CallPhase.CLOSING] == 1


def test_preview_never_dials() -> None:
    pacer = Pacer.from_name("preview")
    team(pacer, 5)
    assert pacer.calls_to_place(now=0.0) == 0


def test_progressive_never_more_in_flight_than_free_agents() -> None:
    pacer = Pacer.from_name("progressive")
    team(pacer, 3)
    assert pacer.calls_to_place(now=0.0) == 3
    for c in ("c1", "c2"):
        pacer.on_event(CallDialled(c), now=0.0)
    assert pacer.calls_to_place(now=0.0) == 1
    pacer.on_event(CallDialled("c3"), now=0.0)
    assert pacer.calls_to_place(now=1.0) == 0
    pacer.on_event(CallEnded("c2", CallOutcome.BUSY), now=3.0)
    assert pacer.calls_to_place(now=3.0) == 1
    pacer.on_event(CallAnswered("c1"), now=8.0)
    pacer.on_event(AmdDecided("c1", human=True), now=10.0)
    pacer.on_event(CallConnected("c1", "a0"), now=10.0)
    pacer.on_event(AgentBusy("a0", "c1"), now=10.0)
    # 2 ready, 1 in flight (c3)
    assert pacer.calls_to_place(now=10.0) == 1


def test_ratio_places_lines_per_agent() -> None:
    pacer = Pacer.from_name("ratio:2.5")
    team(pacer, 4)
    assert pacer.calls_to_place(now=0.0) == 10
    for i in range(6):
        pacer.on_event(CallDialled(f"c{i}"), now=0.0)
    pacer.on_event(CallAnswered("c0"), now=5.0)
    pacer.on_event(AmdDecided("c0", human=True), now=7.0)
    pacer.on_event(CallConnected("c0", "a0"), now=7.0)
    pacer.on_event(AgentBusy("a0", "c0"), now=7.0)
    # 10 lines: 5 in flight + 1 connected
    assert pacer.calls_to_place(now=7.0) == 4
    assert pacer.dial_level == 2.5


def test_decayed_histogram_cdf_quantile_and_bounded_memory() -> None:
    h = DecayedHistogram(np.arange(0.0, 11.0, 1.0), memory=1000.0)
    for x in (0.5, 1.5, 2.5, 3.5):
        h.add(x)
    assert float(h.cdf(2.0)) == pytest.approx(0.5, abs=0.01)
    assert h.quantile(0.5) == pytest.approx(2.0, abs=0.05)
    # with a short memory the old values fade: the median follows the new ones
    short = DecayedHistogram(np.arange(0.0, 11.0, 1.0), memory=20.0)
    for _ in range(200):
        short.add(1.5)
    for _ in range(200):
        short.add(8.5)
    assert short.quantile(0.5) > 8.0
    assert short.effective_count == pytest.approx(20.0, rel=0.01)
    for _ in range(5000):  # geometric weights are rescaled, never overflow
        short.add(3.0)
    assert np.isfinite(short.cumulative()).all()
    assert float(short.cdf(10.0)) == pytest.approx(1.0)


def test_decayed_rate_upper_bound_is_conservative_when_few() -> None:
    r = DecayedRate(memory=500.0)
    assert r.upper() == 1.0
    for i in range(10):
        r.add(i < 2)
    assert r.value == pytest.approx(0.2, abs=0.01)
    few = r.upper()
    for i in range(400):
        r.add(i % 5 == 0)
    assert few > r.upper() > r.value
    m = DecayedMean(memory=10.0, default=7.0)
    assert m.value == 7.0
    m.add(2.0)
    assert m.value == 2.0
