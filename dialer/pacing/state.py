"""What the pacer knows at any instant: agents by state and calls by phase.

Kept as counters updated per event, so a strategy reads the team in O(1); the per-agent and
per-call records (state and since when) serve the estimators.  The transitions are a table
(STYLE.md 1): an event that does not fit (a call never dialled, an agent never logged in) is
counted in :attr:`PacerState.ignored` and dropped, never a crash, because a real dialer's
events can arrive late or twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dialer.pacing.events import (
    AgentBusy,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentReady,
    AgentWrap,
    AmdDecided,
    CallAbandoned,
    CallAnswered,
    CallConnected,
    CallDialled,
    CallEnded,
    CallRinging,
    PacerEvent,
)


class AgentState(str, Enum):
    """An agent's state as the pacer sees it."""

    IDLE = "idle"  # logged in, not yet ready
    READY = "ready"
    BUSY = "busy"
    WRAP = "wrap"


class CallPhase(str, Enum):
    """Where a placed call is."""

    DIALLING = "dialling"  # dialled or ringing, not answered
    ANSWERED = "answered"  # answered, AMD deciding
    WAITING = "waiting"  # AMD said human, waiting for an agent
    CONNECTED = "connected"
    CLOSING = "closing"  # AMD said machine: being hung up, needs no agent


@dataclass(slots=True)
class AgentRecord:
    """One agent: its state and when it entered it."""

    state: AgentState
    since: float


@dataclass(slots=True)
class CallRecord:
    """One call in progress: its phase and the times it passed each step."""

    phase: CallPhase
    dialled_at: float
    answered_at: float | None = None
    live_at: float | None = None


_AGENT_TARGET: dict[type[PacerEvent], AgentState] = {
    AgentReady: AgentState.READY,
    AgentBusy: AgentState.BUSY,
    AgentWrap: AgentState.WRAP,
}

# Call transitions: event type -> (phases it may come from, phase it leads to).
_CALL_TRANSITIONS: dict[type[PacerEvent], tuple[frozenset[CallPhase], CallPhase]] = {
    CallRinging: (frozenset({CallPhase.DIALLING}), CallPhase.DIALLING),
    CallAnswered: (frozenset({CallPhase.DIALLING}), CallPhase.ANSWERED),
    CallConnected: (frozenset({CallPhase.WAITING, CallPhase.ANSWERED}), CallPhase.CONNECTED),
}


class PacerState:
    """Agents by state and calls by phase, updated from events."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.calls: dict[str, CallRecord] = {}
        self.agent_counts: dict[AgentState, int] = {s: 0 for s in AgentState}
        self.call_counts: dict[CallPhase, int] = {p: 0 for p in CallPhase}
        self.ignored = 0
        """Events that did not fit the state (unknown call or agent, wrong phase)."""

    # -- reading ------------------------------------------------------------------------
    @property
    def ready(self) -> int:
        """Agents waiting for a call."""
        return self.agent_counts[AgentState.READY]

    @property
    def logged_in(self) -> int:
        """Agents in the campaign, whatever their state."""
        return len(self.agents)

    @property
    def in_flight(self) -> int:
        """Calls placed that may still need an agent (dialling, answered, waiting)."""
        c = self.call_counts
        return c[CallPhase.DIALLING] + c[CallPhase.ANSWERED] + c[CallPhase.WAITING]

    @property
    def connected(self) -> int:
        """Calls bridged to an agent."""
        return self.call_counts[CallPhase.CONNECTED]

    @property
    def waiting(self) -> int:
        """Live calls waiting for an agent."""
        return self.call_counts[CallPhase.WAITING]

    # -- updating -----------------------------------------------------------------------
    def apply(self, event: PacerEvent, *, now: float) -> bool:
        """Update from one event; False (and counted in :attr:`ignored`) if it did not fit."""
        if isinstance(event, AgentLoggedIn):
            if event.agent_id in self.agents:
                self.ignored += 1
                return False
            self.agents[event.agent_id] = AgentRecord(AgentState.IDLE, now)
            self.agent_counts[AgentState.IDLE] += 1
            return True
        if isinstance(event, AgentLoggedOut):
            rec = self.agents.pop(event.agent_id, None)
            if rec is None:
                self.ignored += 1
                return False
            self.agent_counts[rec.state] -= 1
            return True
        target = _AGENT_TARGET.get(type(event))
        if target is not None:
            agent = self.agents.get(event.agent_id)  # type: ignore[attr-defined]
            if agent is None:
                self.ignored += 1
                return False
            self.agent_counts[agent.state] -= 1
            self.agent_counts[target] += 1
            agent.state = target
            agent.since = now
            return True
        return self._apply_call(event, now=now)

    def _apply_call(self, event: PacerEvent, *, now: float) -> bool:
        if isinstance(event, CallDialled):
            if event.call_id in self.calls:
                self.ignored += 1
                return False
            self.calls[event.call_id] = CallRecord(CallPhase.DIALLING, now)
            self.call_counts[CallPhase.DIALLING] += 1
            return True
        call_id: str = event.call_id  # type: ignore[attr-defined]
        call = self.calls.get(call_id)
        if call is None:
            self.ignored += 1
            return False
        if isinstance(event, CallEnded | CallAbandoned):
            if isinstance(event, CallAbandoned) and call.phase is not CallPhase.WAITING:
                self.ignored += 1
                return False
            del self.calls[call_id]
            self.call_counts[call.phase] -= 1
            return True
        if isinstance(event, AmdDecided):
            if call.phase is not CallPhase.ANSWERED:
                self.ignored += 1
                return False
            if event.human:
                call.live_at = now
                self._move(call, CallPhase.WAITING)
            else:
                self._move(call, CallPhase.CLOSING)
            return True
        rule = _CALL_TRANSITIONS.get(type(event))
        if rule is None or call.phase not in rule[0]:
            self.ignored += 1
            return False
        if isinstance(event, CallAnswered):
            call.answered_at = now
        self._move(call, rule[1])
        return True

    def _move(self, call: CallRecord, phase: CallPhase) -> None:
        self.call_counts[call.phase] -= 1
        self.call_counts[phase] += 1
        call.phase = phase
