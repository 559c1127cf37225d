"""The dialler on a virtual clock: a discrete-event simulation driving the real pacer.

The same :class:`~dialer.pacing.Pacer` objects the engine uses are told what a live dialer
would see (agent states, dial, answer, AMD decision, connect, abandon, end) at virtual
times taken from a heap of pending events; nothing sleeps, so an 8-hour day runs in about
a second.

Semantics (issue 13, "Simulator"), exactly:

* ``agents`` are logged in for the whole run of ``hours`` (and stay to serve the calls
  placed before its end); after a connected call an agent wraps up for ``wrap`` seconds;
* ``no_answer``, and a ``human``/``machine`` whose ``ring_s >= ring_timeout``, end at the ring
  timeout; ``busy`` and ``failed`` end at ``ring_s``;
* an answered call is decided by AMD ``amd_s`` later (``amd=False``: at once, as human):
  ``machine`` ends the call (a human there is an abandoned live answer); ``human`` makes the
  call ready for an agent;
* a ready call connects to a free agent at once, or to the first agent freed within
  ``connect_within`` seconds, first come first served; otherwise it is abandoned (the
  safe-harbour message), which counts when the callee is human;
* abandon rate = abandoned humans (AMD false positives included) / humans answered; talk
  minutes per agent-hour = human talk seconds inside [0, H] / 60 / (N * H); no call is
  placed after H.

At equal times, agents coming free are handled before connect deadlines, so an agent freed
exactly ``connect_within`` after a call became ready still takes it.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dialer.pacing import (
    AbandonBudget,
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
    Pacer,
    PacerConfig,
)
from dialer.pacing.state import AgentState
from dialer.population import DialOutcome, Population, Result
from dialtone_errors import ConfigError

# event kinds, in the order they are handled at equal times
_AGENT_FREE, _CALL_END, _ANSWER, _AMD, _TALK_END, _DEADLINE, _TICK = range(7)
_PRIORITY = {_TALK_END: 0, _AGENT_FREE: 1, _CALL_END: 2, _ANSWER: 3, _AMD: 4, _DEADLINE: 5,
             _TICK: 6}


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One simulated run."""

    agents: int = 20
    hours: float = 8.0
    wrap: float = 10.0
    ring_timeout: float = 20.0
    connect_within: float = 2.0
    amd: bool = True
    pacing: str = "progressive"
    abandon_target: float = 0.03
    tick: float = 1.0
    """Seconds between the pacer's periodic decisions (besides every event)."""
    timeline_step: float = 60.0
    """Seconds between the samples kept for the plot."""

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise ConfigError("agents must be >= 1")
        if self.hours <= 0 or self.wrap < 0 or self.ring_timeout <= 0:
            raise ConfigError("hours and ring timeout must be > 0, wrap >= 0")
        if self.connect_within < 0 or self.tick <= 0:
            raise ConfigError("connect_within must be >= 0 and tick > 0")


@dataclass(slots=True)
class _Call:
    cid: str
    o: DialOutcome
    dialled_at: float
    waiting: bool = False
    done: bool = False


@dataclass
class Timeline:
    """Samples every ``timeline_step`` seconds, for the plot."""

    t: list[float] = field(default_factory=list)
    dial_level: list[float] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    wrap: list[int] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    abandon_rate: list[float] = field(default_factory=list)


@dataclass
class SimResult:
    """What a run measured (:meth:`summary` has the JSON keys) and its timeline."""

    config: SimConfig
    calls_placed: int = 0
    rows_used: int = 0
    live_answers: int = 0
    abandoned: int = 0
    abandoned_amd: int = 0
    abandoned_machines: int = 0
    connected_humans: int = 0
    connected_machines: int = 0
    human_talk_s: float = 0.0
    busy_agent_s: float = 0.0
    wait_s_total: float = 0.0
    waits: int = 0
    abandon_rate_max_24h: float = 0.0
    list_exhausted: bool = False
    timeline: Timeline = field(default_factory=Timeline)

    def summary(self) -> dict[str, Any]:
        """The figures, with the key names tools outside the project read."""
        c = self.config
        agent_hours = c.agents * c.hours
        return {
            "pacing": c.pacing,
            "agents": c.agents,
            "hours": c.hours,
            "talk_min_per_agent_hour": self.human_talk_s / 60.0 / agent_hours,
            "occupancy": self.busy_agent_s / (agent_hours * 3600.0),
            "abandon_rate": self.abandoned / self.live_answers if self.live_answers else 0.0,
            "abandon_rate_max_24h": self.abandon_rate_max_24h,
            "calls_placed": self.calls_placed,
            "live_answers": self.live_answers,
            "abandoned": self.abandoned,
            "abandoned_amd": self.abandoned_amd,
            "connected_humans": self.connected_humans,
            "connected_machines": self.connected_machines,
            "rows_used": self.rows_used,
            "contacts_per_hour": self.connected_humans / c.hours,
            "agent_wait_s_mean": self.wait_s_total / self.waits if self.waits else 0.0,
            "list_exhausted": self.list_exhausted,
        }


class Simulation:
    """One run: a population, a team, a pacer, and a heap of pending events."""

    def __init__(self, config: SimConfig, population: Population,
                 pacer: Pacer | None = None) -> None:
        self.config = config
        self.population = population
        self.end = config.hours * 3600.0
        self.pacer = pacer or Pacer.from_name(config.pacing, config=PacerConfig(
            abandon_target=config.abandon_target, connect_within=config.connect_within,
            ring_timeout=config.ring_timeout))
        self.result = SimResult(config)
        self._heap: list[tuple[float, int, int, int, Any]] = []
        self._seq = 0
        self._free: deque[int] = deque()  # agents ready, longest idle first
        self._ready_since: list[float] = [0.0] * config.agents
        self._busy_since: list[float] = [0.0] * config.agents
        self._queue: deque[_Call] = deque()  # live calls waiting for an agent, FCFS
        self._ledger_abandoned = 0
        self._ledger_live = 0
        self._hourly: list[tuple[float, int, int]] = [(0.0, 0, 0)]
        self._n_calls = 0
        self._agent_ids = [f"agent{i:03d}" for i in range(config.agents)]

    # -- the event heap -----------------------------------------------------------------
    def _push(self, t: float, kind: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, _PRIORITY[kind], self._seq, kind, payload))

    def run(self) -> SimResult:
        """Run to the end of the day and until the last call placed is over."""
        pacer = self.pacer
        for i, aid in enumerate(self._agent_ids):
            pacer.on_event(AgentLoggedIn(aid), now=0.0)
            pacer.on_event(AgentReady(aid), now=0.0)
            self._free.append(i)
        self._push(0.0, _TICK, None)
        handlers: dict[int, Callable[[float, Any], None]] = {_AGENT_FREE: self._agent_free, _CALL_END: self._call_end,
                    _ANSWER: self._answer, _AMD: self._amd, _TALK_END: self._talk_end,
                    _DEADLINE: self._deadline, _TICK: self._tick}
        heap = self._heap
        while heap:
            t, _, _, kind, payload = heapq.heappop(heap)
            handlers[kind](t, payload)
            if t < self.end and kind != _TICK and (not heap or heap[0][0] > t):
                self._pace(t)
        self._close()
        return self.result

    def _pace(self, now: float) -> None:
        if self.result.list_exhausted:
            return
        n = self.pacer.calls_to_place(now=now)
        for _ in range(n):
            if not self._dial(now):
                break

    # -- handlers -----------------------------------------------------------------------
    def _tick(self, now: float, _: Any) -> None:
        c = self.config
        if now % c.timeline_step < c.tick - 1e-9:
            self._sample(now)
        if now % 3600.0 < c.tick - 1e-9 and now > 0:
            self._hour_mark(now)
        if now < self.end:
            self._pace(now)
            self._push(min(now + c.tick, self.end), _TICK, None)

    def _dial(self, now: float) -> bool:
        o = self.population.next(now=now)
        if o is None:
            self.result.list_exhausted = True
            return False
        r = self.result
        r.calls_placed += 1
        r.rows_used += 1
        self._n_calls += 1
        call = _Call(f"c{self._n_calls}", o, now)
        self.pacer.on_event(CallDialled(call.cid), now=now)
        timeout = self.config.ring_timeout
        if o.result in (Result.HUMAN, Result.MACHINE) and o.ring_s < timeout:
            self._push(now + o.ring_s, _ANSWER, call)
        elif o.result in (Result.BUSY, Result.FAILED):
            self._push(now + o.ring_s, _CALL_END, (call, o.result))
        else:
            self._push(now + timeout, _CALL_END, (call, Result.NO_ANSWER))
        return True

    def _call_end(self, now: float, payload: tuple[_Call, Result]) -> None:
        call, result = payload
        outcome = {Result.BUSY: CallOutcome.BUSY, Result.FAILED: CallOutcome.FAILED}.get(
            result, CallOutcome.NO_ANSWER)
        self.pacer.on_event(CallEnded(call.cid, outcome), now=now)

    def _answer(self, now: float, call: _Call) -> None:
        self.pacer.on_event(CallAnswered(call.cid), now=now)
        if call.o.result is Result.HUMAN:
            self.result.live_answers += 1
        if self.config.amd:
            self._push(now + call.o.amd_s, _AMD, call)
        else:
            self._amd(now, call, forced_human=True)

    def _amd(self, now: float, call: _Call, forced_human: bool = False) -> None:
        says_human = forced_human or call.o.amd_says_human
        self.pacer.on_event(AmdDecided(call.cid, says_human), now=now)
        if not says_human:
            self.pacer.on_event(CallEnded(call.cid, CallOutcome.MACHINE), now=now)
            if call.o.result is Result.HUMAN:  # AMD false positive: a live person hung up on
                self.result.abandoned += 1
                self.result.abandoned_amd += 1
                self._ledger(now, abandoned=True)
            return
        if self._free:
            self._connect(now, call, self._free.popleft())
        else:
            call.waiting = True
            self._queue.append(call)
            self._push(now + self.config.connect_within, _DEADLINE, call)

    def _connect(self, now: float, call: _Call, agent: int) -> None:
        r = self.result
        call.waiting = False
        aid = self._agent_ids[agent]
        self.pacer.on_event(CallConnected(call.cid, aid), now=now)
        self.pacer.on_event(AgentBusy(aid, call.cid), now=now)
        if now <= self.end:
            r.wait_s_total += now - self._ready_since[agent]
            r.waits += 1
        self._busy_since[agent] = now
        talk = call.o.talk_s
        if call.o.result is Result.HUMAN:
            r.connected_humans += 1
            r.human_talk_s += max(0.0, min(now + talk, self.end) - min(now, self.end))
            self._ledger(now, abandoned=False)
        else:
            r.connected_machines += 1
        self._push(now + talk, _TALK_END, (call, agent))

    def _talk_end(self, now: float, payload: tuple[_Call, int]) -> None:
        call, agent = payload
        aid = self._agent_ids[agent]
        self.pacer.on_event(CallEnded(call.cid, CallOutcome.COMPLETED), now=now)
        self.pacer.on_event(AgentWrap(aid), now=now)
        if self.config.wrap > 0:
            self._push(now + self.config.wrap, _AGENT_FREE, agent)
        else:
            self._agent_free(now, agent)

    def _agent_free(self, now: float, agent: int) -> None:
        r = self.result
        start = self._busy_since[agent]
        r.busy_agent_s += max(0.0, min(now, self.end) - min(start, self.end))
        self.pacer.on_event(AgentReady(self._agent_ids[agent]), now=now)
        self._ready_since[agent] = now
        while self._queue:
            call = self._queue.popleft()
            if call.waiting:
                self._connect(now, call, agent)
                return
        self._free.append(agent)

    def _deadline(self, now: float, call: _Call) -> None:
        if not call.waiting:
            return
        call.waiting = False  # lazily removed from the queue
        self.pacer.on_event(CallAbandoned(call.cid), now=now)
        self.pacer.on_event(CallEnded(call.cid, CallOutcome.ABANDONED), now=now)
        if call.o.result is Result.HUMAN:
            self.result.abandoned += 1
            self._ledger(now, abandoned=True)
        else:
            self.result.abandoned_machines += 1

    # -- the compliance ledger and the figures ------------------------------------------
    def _ledger(self, now: float, *, abandoned: bool) -> None:
        self._ledger_live += 1
        self._ledger_abandoned += int(abandoned)
        self.pacer.set_budget(AbandonBudget(self._ledger_abandoned, self._ledger_live,
                                            self.config.abandon_target), now=now)

    def _hour_mark(self, now: float) -> None:
        self._hourly.append((now, self._ledger_abandoned, self._ledger_live))
        # Ofcom's rolling 24 h: the window ending now, from the hourly marks
        start = now - 24 * 3600.0
        base = next(((a, lv) for t, a, lv in self._hourly if t >= start - 1e-6), (0, 0))
        ab, live = self._ledger_abandoned - base[0], self._ledger_live - base[1]
        if live:
            self.result.abandon_rate_max_24h = max(self.result.abandon_rate_max_24h,
                                                   ab / live)

    def _sample(self, now: float) -> None:
        tl = self.result.timeline
        st = self.pacer.state
        tl.t.append(now)
        tl.dial_level.append(self.pacer.dial_level)
        tl.ready.append(st.ready)
        tl.busy.append(st.agent_counts[AgentState.BUSY])
        tl.wrap.append(st.agent_counts[AgentState.WRAP])
        tl.in_flight.append(st.in_flight)
        live = self._ledger_live
        tl.abandon_rate.append(self._ledger_abandoned / live if live else 0.0)

    def _close(self) -> None:
        # the day's end is the last hourly mark (after the calls placed before it are over)
        self._hour_mark(max(self.end, 1.0))
        if not math.isfinite(self.result.human_talk_s):
            raise ConfigError("talk times must be finite")


def simulate(config: SimConfig, population: Population, pacer: Pacer | None = None
             ) -> SimResult:
    """Run one simulated day (see the module docstring for the semantics)."""
    return Simulation(config, population, pacer).run()
