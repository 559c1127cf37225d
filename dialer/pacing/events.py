"""What the pacer is told: agent state changes and call progress (STYLE.md 3).

Events carry no clock: the driver passes ``now`` to :meth:`dialer.pacing.Pacer.on_event`, as
aioquic's ``receive_datagram(data, addr, now)`` does.  The pacer sees what a live dialer sees,
as it happens: it is never told whether a callee really was a person (only what
answering-machine detection said), nor how long a call will last.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CallOutcome(str, Enum):
    """How a placed call ended, as the dialer knows it."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    MACHINE = "machine"  # AMD said machine: hung up
    COMPLETED = "completed"  # connected to an agent, then hung up
    ABANDONED = "abandoned"  # AMD said human, no agent in time: safe-harbour message


@dataclass(frozen=True, slots=True)
class PacerEvent:
    """Base class of everything the pacer is told."""


@dataclass(frozen=True, slots=True)
class AgentEvent(PacerEvent):
    """Base class of agent state changes."""

    agent_id: str
    """The agent (any stable identifier: a SIP URI, a routing-core agent id)."""


@dataclass(frozen=True, slots=True)
class AgentLoggedIn(AgentEvent):
    """The agent joined the campaign (not yet ready: a :class:`AgentReady` follows)."""


@dataclass(frozen=True, slots=True)
class AgentReady(AgentEvent):
    """The agent is waiting for a call."""


@dataclass(frozen=True, slots=True)
class AgentBusy(AgentEvent):
    """The agent is talking (usually sent with :class:`CallConnected`)."""

    call_id: str | None = None
    """The call the agent took, when known."""


@dataclass(frozen=True, slots=True)
class AgentWrap(AgentEvent):
    """The call ended; the agent is wrapping up (after-call work) and cannot take a call."""


@dataclass(frozen=True, slots=True)
class AgentLoggedOut(AgentEvent):
    """The agent left the campaign (or paused: the pacer treats both alike)."""


@dataclass(frozen=True, slots=True)
class CallEvent(PacerEvent):
    """Base class of call progress."""

    call_id: str
    """The call placed by the dialer (unique within the campaign)."""


@dataclass(frozen=True, slots=True)
class CallDialled(CallEvent):
    """The dialer placed the call (INVITE sent)."""


@dataclass(frozen=True, slots=True)
class CallRinging(CallEvent):
    """The far end is ringing (180/183)."""


@dataclass(frozen=True, slots=True)
class CallAnswered(CallEvent):
    """The far end answered (200 OK); answering-machine detection starts."""


@dataclass(frozen=True, slots=True)
class AmdDecided(CallEvent):
    """Answering-machine detection decided (errors included: the pacer cannot know)."""

    human: bool
    """True: a live person, the call now needs an agent; False: a machine, the call ends."""


@dataclass(frozen=True, slots=True)
class CallConnected(CallEvent):
    """The live call was bridged to an agent."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class CallAbandoned(CallEvent):
    """No agent within the connect limit: the safe-harbour message was played."""


@dataclass(frozen=True, slots=True)
class CallEnded(CallEvent):
    """The call is over, whatever happened before."""

    outcome: CallOutcome


@dataclass(frozen=True, slots=True)
class AbandonBudget:
    """What the compliance ledger says, so the pacer knows the abandonment budget left.

    The ledger counts what a regulator counts (FTC TSR 16 CFR 310.4(b)(4)(i), Ofcom's
    persistent-misuse policy): live answers, and those abandoned, AMD false positives
    included. The pacer cannot see AMD false positives itself; the ledger can (from audits
    or from the detector's measured accuracy).
    """

    abandoned: int
    """Live answers abandoned so far in the period (AMD false positives included)."""
    live_answers: int
    """Calls answered by a live person so far in the period."""
    cap: float = 0.03
    """The most abandoned / live answers allowed (3%: FTC safe harbour, Ofcom)."""

    @property
    def rate(self) -> float:
        """The measured abandonment rate (0 before any live answer)."""
        return self.abandoned / self.live_answers if self.live_answers else 0.0

    @property
    def left(self) -> float:
        """Abandons that could happen now and keep the rate at or under the cap."""
        return self.cap * self.live_answers - self.abandoned

    @property
    def exhausted(self) -> bool:
        """The measured rate is already over the cap: no call may be dialled ahead."""
        return self.abandoned > self.cap * self.live_answers
