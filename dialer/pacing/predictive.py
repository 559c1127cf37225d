"""``predictive``: dial ahead as far as the expected abandonment allows.

What the estimator does
=======================
Everything is learnt from the events of this campaign, with bounded memory (exponentially
decayed, :mod:`dialer.pacing.estimators`); nothing about the list comes from configuration.

1. **When a dial becomes a live answer.**  For every dial, the time from dial to its first
   visible outcome goes into one decayed histogram with two series: *answered at x s* and
   *ended unanswered at x s* (busy, failed, no answer).  AMD's decisions give the decayed
   share of answers that AMD calls human (``h``) and its mean decision delay ``m``.  A new
   dial is live by ``t`` with probability ``q(t) = h * A(t - m)`` (``A``: answered
   sub-distribution).  A call still ringing after ``e`` s is live by ``now + t`` with
   ``h * (A(e + t - m) - A(e)) / (1 - A(e) - N(e))``: the distribution conditioned on what
   has not happened yet.  Answered calls awaiting AMD count ``h``; live calls waiting, 1.
2. **When busy agents come free.**  Talk times (connect to hang-up) go into a decayed
   histogram on a logarithmic grid (heavy tails up to two hours) and wrap-up times into a
   decayed mean ``w``.  An agent talking for ``e`` s is free by ``now + t`` with
   ``P(T <= e + t - w | T > e)``; an agent wrapping for ``e`` s when ``e + t >= w``.
3. **The decision.**  A live call must meet an agent within ``connect_within`` (2 s) of the
   AMD decision.  At instants ``t_j`` every 2 s over the next ring timeout + 8 s, it
   compares the live calls expected by ``now + t_j`` (demand ``D_j``: waiting calls, calls
   answered and awaiting AMD, ringing calls, and ``n`` new dials) with the agents expected
   free by ``now + t_j + connect_within`` (supply ``S_j``: ready agents, agents finishing
   wrap-up, talking agents finishing talk and wrap-up).  Both are sums of independent
   Bernoulli variables; with a normal approximation (continuity-corrected) the ``(n+1)``-th
   new dial, if it becomes live in slot ``j``, finds no agent with probability
   ``P(D_j(n) - S_j >= 0)``; weighted by the new dial's arrival density over the slots,
   that is its own abandonment probability.  The pacer places the largest ``n`` whose
   last dial's probability is at most ``lambda``: placing calls while their marginal
   abandonment probability is under a threshold is the Lagrangian form of "most talk time
   for a bounded expected abandonment".  The per-elapsed-time probabilities come from
   lookup tables refreshed every 15 s (answer model) and 30 s (talk model).
4. **The feedback loop.**  ``lambda`` follows a Robbins-Monro step on ``log(lambda)`` per
   live outcome the pacer sees: ``+gain`` for a connect, ``-gain * (1 - goal) / goal`` for
   an abandon, so at equilibrium its own abandon rate is the goal.  The goal is
   ``margin * cap`` (0.9 x 3%) less the abandonment the pacer cannot see (AMD false
   positives: the ledger's abandons less its own, with a small prior), less twice any
   excess of the ledger's rate over ``margin * cap``.  When the budget is exhausted (the
   ledger's rate over the cap) it dials only progressively: no call that could lack an
   agent.
5. **Care with small samples and small teams.**  Until 60 dials and 15 talks have been
   seen it is progressive; the AMD-human share used for planning is an upper confidence
   bound (more expected live calls, fewer dials); ``lambda`` starts low (0.4%) and earns
   its way up; small teams get wide supply and demand variances and so dial less far
   ahead.  It never places fewer calls than ``progressive`` would.

Cost per decision: O(agents + calls in flight) with fixed-size histograms, whatever the
length of the campaign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from dialer.pacing.base import PacerConfig, PacingStrategy
from dialer.pacing.estimators import DecayedHistogram, DecayedMean, DecayedRate, FloatArray
from dialer.pacing.events import (
    AgentReady,
    AgentWrap,
    AmdDecided,
    CallAbandoned,
    CallAnswered,
    CallConnected,
    CallDialled,
    CallEnded,
    PacerEvent,
)
from dialer.pacing.state import AgentState, CallPhase, PacerState

ANSWERED, UNANSWERED = 0, 1
SLOT = 2.0  # seconds between the instants compared
MODEL_REFRESH = 15.0  # seconds between refreshes of the live-answer tables
TALK_REFRESH = 30.0  # seconds between refreshes of the talk-time table
REPLAN_EVERY = 2.0  # seconds after which time passing alone calls for a new plan
# events after which more calls may be due: supply rose or expected demand fell
_WAKING = (AgentReady, CallAbandoned, AmdDecided)


@dataclass(frozen=True, slots=True)
class PredictiveSettings:
    """Tuning of the predictive strategy (not facts about the list: those are learnt)."""

    margin: float = 0.9
    """Aim at ``margin * cap`` so that noise stays under the cap."""
    dial_memory: float = 600.0
    """Dials remembered by the answer-time estimate (effective count)."""
    talk_memory: float = 300.0
    """Talks remembered by the talk-time estimate."""
    live_memory: float = 150.0
    """Live outcomes remembered by the recent own abandon rate (``own_drops``, for status)."""
    gain: float = 0.003
    """Step of the feedback loop on log(lambda), per live outcome (x 1/goal for an abandon)."""
    initial_threshold: float = 0.004
    """``lambda`` before any feedback."""
    min_dials: int = 60
    """Dials resolved before planning (progressive until then)."""
    min_talks: int = 15
    """Talks completed before planning."""
    min_budget: float = 0.0
    """Abandons the ledger must still allow for any dial ahead (0: only an exhausted budget,
    the rate over the cap, stops it; a positive value stops it sooner)."""
    z: float = 1.0
    """Standard errors of the upper confidence bound on the live-answer share."""
    max_lines_per_agent: float = 4.0
    """A hard ceiling on lines per agent (sanity, not pacing)."""


class PredictiveStrategy(PacingStrategy):
    """Ours: expected-abandonment pacing with learnt distributions and a feedback loop."""

    name = "predictive"

    def __init__(self, config: PacerConfig, settings: PredictiveSettings | None = None) -> None:
        super().__init__(config)
        self.settings = s = settings or PredictiveSettings()
        top = config.ring_timeout + 10.0
        self.first = DecayedHistogram(np.arange(0.0, top + 0.5, 0.5), memory=s.dial_memory,
                                      series=2)
        self.talk = DecayedHistogram(
            np.concatenate(([0.0], np.geomspace(1.0, 7200.0, 90))), memory=s.talk_memory)
        self.amd_human = DecayedRate(memory=s.dial_memory / 2)
        self.amd_delay = DecayedMean(memory=100.0, default=2.0)
        self.wrap = DecayedMean(memory=100.0, default=0.0)
        self.own_drops = DecayedRate(memory=s.live_memory)
        self.own_abandoned = 0
        self.own_live = 0
        self.threshold = s.initial_threshold
        self.last_reason = "cold start"
        """Why the last decision was what it was (for status views and tests)."""
        # per-call notes, bounded by the calls in progress
        self._dialled: dict[str, float] = {}
        self._answered: set[str] = set()
        self._connected: dict[str, float] = {}
        self._wrap_since: dict[str, float] = {}
        self._dirty = True
        self._planned_at = -math.inf
        self._model_cache: tuple[float, FloatArray] | None = None
        # instants after now at which supply and demand are compared
        self._slots = np.arange(1.0, config.ring_timeout + 8.0, SLOT)
        self._arrival = np.zeros(len(self._slots))
        self._ring_grid = np.arange(0.0, config.ring_timeout + 10.0, 0.5)
        self._talk_grid = np.concatenate((np.arange(0.0, 600.0, 1.0),
                                          np.arange(600.0, 7200.0, 10.0)))
        self._ring_p = self._ring_v = np.zeros((len(self._ring_grid), len(self._slots)))
        self._talk_r = self._talk_v = np.zeros((len(self._talk_grid), len(self._slots)))
        self._talk_until = -math.inf
        self._model_until = -math.inf

    @classmethod
    def from_arg(cls, config: PacerConfig, arg: str | None) -> PredictiveStrategy:
        """``predictive`` (no argument)."""
        return cls(config)

    # -- learning -----------------------------------------------------------------------
    def on_event(self, event: PacerEvent, state: PacerState, *, now: float) -> None:
        if isinstance(event, _WAKING):
            self._dirty = True
        if isinstance(event, CallDialled):
            self._dialled[event.call_id] = now
        elif isinstance(event, CallAnswered):
            dialled = self._dialled.get(event.call_id)
            if dialled is not None:
                self.first.add(now - dialled, ANSWERED)
                self._answered.add(event.call_id)
        elif isinstance(event, CallEnded):
            dialled = self._dialled.pop(event.call_id, None)
            if dialled is not None and event.call_id not in self._answered:
                self.first.add(now - dialled, UNANSWERED)
            self._answered.discard(event.call_id)
            connected = self._connected.pop(event.call_id, None)
            if connected is not None:
                self.talk.add(now - connected)
        elif isinstance(event, AmdDecided):
            call = state.calls.get(event.call_id)
            self.amd_human.add(event.human)
            if event.human and call is not None and call.answered_at is not None:
                self.amd_delay.add(now - call.answered_at)
        elif isinstance(event, CallConnected):
            self._connected[event.call_id] = now
            self._live_outcome(False)
        elif isinstance(event, CallAbandoned):
            self._live_outcome(True)
        elif isinstance(event, AgentWrap):
            self._wrap_since[event.agent_id] = now
        elif isinstance(event, AgentReady):
            since = self._wrap_since.pop(event.agent_id, None)
            if since is not None:
                self.wrap.add(now - since)

    def _live_outcome(self, abandoned: bool) -> None:
        # Robbins-Monro on log(lambda): each live outcome moves it by gain * (goal - x) / goal,
        # x = 1 for an abandon, 0 for a connect; at equilibrium the abandon rate is the goal.
        self.own_drops.add(abandoned)
        self.own_live += 1
        self.own_abandoned += int(abandoned)
        goal = self._goal()
        step = self.settings.gain * ((goal - (1.0 if abandoned else 0.0)) / goal)
        self.threshold = min(0.5, max(1e-4, self.threshold * math.exp(max(-1.0, step))))

    def _goal(self) -> float:
        """The abandonment rate the pacer's own drops should aim at.

        ``margin * cap``, less the abandons the pacer cannot see (AMD false positives: the
        ledger's count less its own, estimated with a small prior so that a few early ones
        do not swing it), less twice any excess of the period's rate over ``margin * cap``
        (which pulls the period's rate back under it, away from the cap).
        """
        cap = self.config.abandon_target
        s = self.settings
        b = self.budget
        unseen = max(0, b.abandoned - self.own_abandoned)
        unseen_rate = (unseen + 0.5) / (b.live_answers + 30.0)
        goal = s.margin * cap - unseen_rate - 2.0 * max(0.0, b.rate - s.margin * cap)
        return max(0.05 * cap, goal)

    def next_timer(self, *, now: float) -> float | None:
        return now + 1.0

    # -- deciding -----------------------------------------------------------------------
    def calls_to_place(self, state: PacerState, *, now: float) -> int:
        s = self.settings
        progressive = state.ready - state.in_flight
        budget = self.budget
        if budget.exhausted or budget.left < s.min_budget:
            self.last_reason = "budget"
            return progressive
        if self.first.count < s.min_dials or self.talk.count < s.min_talks:
            self.last_reason = "learning"
            return progressive
        if not self._dirty and now < self._planned_at + REPLAN_EVERY:
            # nothing that frees an agent or removes a call has happened since the last
            # plan, whose calls the driver has placed: only the progressive floor is new
            return progressive
        self._dirty = False
        self._planned_at = now
        extra = self._plan(state, now=now)
        ceiling = int(s.max_lines_per_agent * state.logged_in) - state.in_flight - state.connected
        self.last_reason = "planned"
        return max(progressive, min(extra, ceiling))

    def _model(self, now: float) -> tuple[float, FloatArray] | None:
        """(h, live share of a new dial by each slot); refreshes the lookup tables.

        The tables hold, per elapsed time on a grid, each slot's probability that a ringing
        call is live (``_ring_p``) and that a talking agent is free (``_talk_r``), and their
        Bernoulli variances, so a decision costs a few array lookups whatever the team.
        """
        if self._model_cache is not None and now < self._model_until:
            return self._model_cache
        cum = self.first.cumulative()
        if float(cum[ANSWERED, -1]) <= 0.0:
            return None
        s = self.settings
        h = self.amd_human.upper(s.z)
        m = self.amd_delay.value
        edges = self.first.edges
        ts = self._slots
        q_new = h * np.interp(ts - m, edges, cum[ANSWERED])
        total = float(q_new[-1])
        self._arrival = np.diff(q_new, prepend=0.0) / total if total > 0 else q_new * 0.0
        # ringing calls: elapsed e on the grid, live by now + t_j
        e = self._ring_grid
        a_e = np.interp(e, edges, cum[ANSWERED])
        alive = np.maximum(1.0 - a_e - np.interp(e, edges, cum[UNANSWERED]), 1e-9)
        a_t = np.interp(e[:, None] + (ts[None, :] - m), edges, cum[ANSWERED])
        p = np.minimum(h * np.maximum(a_t - a_e[:, None], 0.0) / alive[:, None], 1.0)
        self._ring_p, self._ring_v = p, p * (1.0 - p)
        if now >= self._talk_until:
            # talking agents: elapsed e on the grid, free (talk over, wrap done) by t_j + cw
            w = self.wrap.value
            e = self._talk_grid
            tcum = self.talk.cumulative()[0]
            tedges = self.talk.edges
            f_e = np.interp(e, tedges, tcum)
            surv = np.maximum(1.0 - f_e, 1e-9)
            f_t = np.interp(e[:, None] + (ts[None, :] + self.config.connect_within - w),
                            tedges, tcum)
            r = np.minimum(np.maximum(f_t - f_e[:, None], 0.0) / surv[:, None], 1.0)
            self._talk_r, self._talk_v = r, r * (1.0 - r)
            self._talk_until = now + TALK_REFRESH
        self._model_cache = (h, q_new)
        self._model_until = now + MODEL_REFRESH
        return self._model_cache

    def _plan(self, state: PacerState, *, now: float) -> int:
        model = self._model(now)
        if model is None:
            return 0
        h, q_new = model
        ts = self._slots
        s = self.settings
        cw = self.config.connect_within

        # demand: live calls expected by each instant now + t_j from the calls in flight
        dialling = CallPhase.DIALLING
        n_answered = state.call_counts[CallPhase.ANSWERED]
        mean = np.full(len(ts), state.waiting + n_answered * h - state.ready)
        var = np.full(len(ts), n_answered * h * (1.0 - h) + 0.25)
        if state.call_counts[dialling]:
            idx = np.searchsorted(self._ring_grid, np.array(
                [now - c.dialled_at for c in state.calls.values() if c.phase is dialling]))
            idx = np.minimum(idx, len(self._ring_grid) - 1)
            mean += self._ring_p[idx].sum(axis=0)
            var += self._ring_v[idx].sum(axis=0)

        # supply: agents free now, and busy agents expected free by now + t_j + connect_within
        busy, wrap = AgentState.BUSY, AgentState.WRAP
        if state.agent_counts[wrap]:
            w = self.wrap.value
            wrapping = np.array([now - a.since for a in state.agents.values()
                                 if a.state is wrap])
            mean -= ((wrapping[:, None] + (ts[None, :] + cw)) >= w).sum(axis=0)
        if state.agent_counts[busy]:
            idx = np.searchsorted(self._talk_grid, np.array(
                [now - a.since for a in state.agents.values() if a.state is busy]))
            idx = np.minimum(idx, len(self._talk_grid) - 1)
            mean -= self._talk_r[idx].sum(axis=0)
            var += self._talk_v[idx].sum(axis=0)

        # the (n+1)-th new dial, live in slot j (with the new dial's arrival density w_j),
        # finds no agent if the calls in flight and the n dials before it leave none by then:
        # P(D_j - S_j >= 0), normal approximation with a continuity correction
        n_max = max(1, int(s.max_lines_per_agent * state.logged_in) - state.in_flight
                    - state.connected)
        qv = q_new * (1.0 - q_new)
        start = 0
        while start < n_max:
            # candidates in blocks: most decisions end within the first block
            stop = min(n_max, start + 8 if start == 0 else 2 * start)
            n = np.arange(start, stop, dtype=np.float64)[:, None]
            mu = mean + 0.5 + n * q_new
            own = ndtr(mu / np.sqrt(var + n * qv)) @ self._arrival
            over = np.flatnonzero(own > self.threshold)
            if len(over):
                return start + int(over[0])
            start = stop
        return n_max
