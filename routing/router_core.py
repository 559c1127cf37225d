"""The reference router: skills-based routing as sans-IO decision logic.

Fed offers, agent presence and call events, each with ``now`` (Unix time: the
time of day matters); answers offers at once with a :class:`RouteDecision` and
produces later decisions (a queued call finally transferred, or timed out to a
callback) through :meth:`ReferenceRouter.decisions_to_send`, and the agent
reservations it makes through :meth:`ReferenceRouter.states_to_publish`, in the
manner of aioquic's ``datagrams_to_send``.  The glue (routing/bus.py,
routing/mqtt.py) owns the clock and calls :meth:`handle_timer` at
:meth:`get_timer`.

Policy, in order:

1. the offer's intent picks a queue (``intents``), else ``default_queue``;
2. outside the queue's hours, its ``closed`` action (transfer, callback, reject);
   a window with a ``target`` sends the call straight there;
3. the call joins the queue ordered by customer tier (VIP first), then arrival;
4. each waiting call, in that order, gets the longest-idle available agent who has
   every skill wanted (queue skills plus the offer's) and speaks the caller's
   language; with none, the call waits (queue decision with position and
   estimated wait), and gets a callback after ``max_wait_s``.

An offer for a call an agent is already reserved for (``busy`` with its ``call_id``,
as the dialer publishes when it connects a person) is answered with that agent.

A dialer claims an agent before dialling them (:meth:`ReferenceRouter.claim`): the router,
the one place every agent's state meets, grants the claim when the agent is ``available``
and reserved for nothing (and reserves them: ``busy`` with the claim's ``call_id``,
published like its own reservations), and refuses it otherwise.  Two dialers that want the
same agent in the same millisecond get one grant and one refusal, in the order their claims
reach the router; an inbound call and a dialer likewise.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from routing.contract import (
    AgentClaim,
    AgentState,
    CallEventMessage,
    ClaimReply,
    HandoffOffer,
    RouteDecision,
)
from routing.router_config import QueueConfig, RouterConfig

_DEDUP_CAPACITY = 10_000


@dataclass(slots=True)
class _Agent:
    state: AgentState
    idle_since: float
    reserved_call: str | None = None


@dataclass(slots=True)
class _Waiting:
    offer: HandoffOffer
    queue: QueueConfig
    skills: frozenset[str]
    priority: int
    seq: int
    enqueued_at: float

    def sort_key(self) -> tuple[int, int]:
        return (self.priority, self.seq)


class ReferenceRouter:
    """Skills, language, tier, time-of-day and longest-idle routing; no I/O."""

    def __init__(self, config: RouterConfig, *, now: float, router_id: str = "router") -> None:
        self.config = config
        self.router_id = router_id
        self._zone = config.zone()
        self._agents: dict[str, _Agent] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._call_agent: dict[str, str] = {}
        self._decided: OrderedDict[UUID, RouteDecision] = OrderedDict()
        self._claimed: OrderedDict[UUID, ClaimReply] = OrderedDict()
        self._claimant: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        """call id -> (node_id, campaign) of the claim that reserved an agent for it."""
        self._seen_states: OrderedDict[UUID, None] = OrderedDict()
        self._seq = itertools.count()
        self._out_decisions: list[RouteDecision] = []
        self._out_states: list[AgentState] = []
        for agent in config.agents:
            self._agents[agent.agent_id] = _Agent(
                agent, agent.since if agent.since is not None else now
            )
        self.routed_calls = 0
        """Offers answered (duplicates not counted)."""
        self.claims_granted = 0
        self.claims_refused = 0

    # --- inputs ----------------------------------------------------------------------------

    def route(self, offer: HandoffOffer, *, now: float) -> RouteDecision:
        """Decide for ``offer``; a re-delivered offer (same message_id) gets the same answer."""
        cached = self._decided.get(offer.message_id)
        if cached is not None:
            return cached
        decision = self._decide(offer, now=now)
        self._remember(offer.message_id, decision)
        self.routed_calls += 1
        return decision

    def claim(self, claim: AgentClaim, *, now: float) -> ClaimReply:
        """Grant or refuse a dialer's claim on an agent; a re-delivered claim (same
        message_id) gets the same answer, and a second claim for the call the agent is
        already reserved for is granted again (the dialer asked twice)."""
        cached = self._claimed.get(claim.message_id)
        if cached is not None:
            return cached
        agent = self._agents.get(claim.agent_id)
        reason: str | None = None
        if claim.sent_at > 0 and now > claim.deadline:
            reason = "claim expired"  # the dialer has stopped waiting for this answer
        elif agent is None:
            reason = "unknown agent"
        elif agent.reserved_call == claim.call_id:
            pass
        elif agent.reserved_call is not None and self._claimant.get(agent.reserved_call) == (
                claim.node_id, claim.campaign):
            # Reserved by a claim of this same dialer, which asks only for agents it has
            # free: its release is still on its way (it took another path through the
            # broker).  The reservation moves to the new call.
            pass
        elif agent.reserved_call is not None:
            reason = "agent reserved"
        elif agent.state.state != "available":
            reason = f"agent {agent.state.state}"
        if reason is None and agent is not None and agent.reserved_call != claim.call_id:
            if agent.reserved_call is not None:
                self._call_agent.pop(agent.reserved_call, None)
            self._set_agent(agent, "busy", now=now, call_id=claim.call_id)
            self._call_agent[claim.call_id] = claim.agent_id
            self._claimant[claim.call_id] = (claim.node_id, claim.campaign)
            if len(self._claimant) > _DEDUP_CAPACITY:
                self._claimant.popitem(last=False)
        held_for = (agent.reserved_call if reason is not None and agent is not None
                    else None)
        reply = ClaimReply(claim_id=claim.message_id, call_id=claim.call_id,
                           agent_id=claim.agent_id, granted=reason is None,
                           router_id=self.router_id, reason=reason, held_for=held_for)
        if reply.granted:
            self.claims_granted += 1
        else:
            self.claims_refused += 1
        self._claimed[claim.message_id] = reply
        if len(self._claimed) > _DEDUP_CAPACITY:
            self._claimed.popitem(last=False)
        return reply

    def on_agent_state(self, state: AgentState, *, now: float) -> None:
        """Presence of an agent (from the bus, the CLI or the config)."""
        if state.message_id in self._seen_states:
            return
        self._seen_states[state.message_id] = None
        if len(self._seen_states) > _DEDUP_CAPACITY:
            self._seen_states.popitem(last=False)
        previous = self._agents.get(state.agent_id)
        if state.state == "available":
            if previous is not None and previous.state.state == "available" and state.since is None:
                idle_since = previous.idle_since
            else:
                idle_since = state.since if state.since is not None else now
        else:
            idle_since = now
        reserved = state.call_id if state.state == "busy" else None
        if previous is not None and previous.reserved_call and reserved is None:
            self._call_agent.pop(previous.reserved_call, None)
        self._agents[state.agent_id] = _Agent(state, idle_since, reserved)
        if reserved is not None:
            self._call_agent[reserved] = state.agent_id
        self._dispatch(now=now)

    def on_call_event(self, event: CallEventMessage, *, now: float) -> None:
        """Abandoned or ended calls leave the queue; an ended call frees its agent."""
        if event.kind in ("abandoned", "ended"):
            self._waiting.pop(event.call_id, None)
        if event.kind in ("abandoned", "ended"):
            # "abandoned" too: the IVR gave up on a transfer decision that came too late.
            agent_id = self._call_agent.pop(event.call_id, None)
            agent = self._agents.get(agent_id) if agent_id else None
            if agent is not None and agent.reserved_call == event.call_id:
                self._set_agent(agent, "available", now=now, call_id=None)
                self._dispatch(now=now)

    def handle_timer(self, *, now: float) -> None:
        """Calls that waited ``max_wait_s`` get a callback decision."""
        for call_id, waiting in list(self._waiting.items()):
            if waiting.enqueued_at + waiting.queue.max_wait_s <= now:
                del self._waiting[call_id]
                self._emit(
                    self._make(waiting.offer, "callback", queue=waiting.queue.name,
                               callback_number=waiting.offer.caller, reason="max wait")
                )

    # --- outputs ---------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (None: no timer)."""
        deadlines = [w.enqueued_at + w.queue.max_wait_s for w in self._waiting.values()]
        return min(deadlines, default=None)

    def decisions_to_send(self) -> list[RouteDecision]:
        """Decisions made outside :meth:`route` (queued calls), oldest first; drains."""
        out, self._out_decisions = self._out_decisions, []
        return out

    def states_to_publish(self) -> list[AgentState]:
        """Agent reservations and releases this router made, to publish; drains."""
        out, self._out_states = self._out_states, []
        return out

    def agents(self) -> dict[str, AgentState]:
        """Current view of every agent."""
        return {k: a.state for k, a in self._agents.items()}

    def waiting_calls(self, queue: str | None = None) -> list[str]:
        """Call ids waiting (in ``queue``, or all), in service order."""
        items = sorted(self._waiting.values(), key=_Waiting.sort_key)
        return [w.offer.call_id for w in items if queue is None or w.queue.name == queue]

    # --- logic -----------------------------------------------------------------------------

    def _decide(self, offer: HandoffOffer, *, now: float) -> RouteDecision:
        if offer.sent_at > 0 and now > offer.deadline:
            return self._make(offer, "reject", reason="offer expired")
        reserved = self._agents.get(self._call_agent.get(offer.call_id, ""))
        if reserved is not None and reserved.reserved_call == offer.call_id:
            # An agent is already busy on this call (a dialer connected them and published
            # it): the offer brings the call's data, the reservation stands.
            return self._make(offer, "transfer", target=reserved.state.uri,
                              agent_id=reserved.state.agent_id, reason="reserved")
        queue = self.config.queue_for(offer.intent)
        if queue.hours:
            local = datetime.fromtimestamp(now, self._zone)
            window = next((w for w in queue.hours if w.contains(local)), None)
            if window is None:
                closed = queue.closed
                if closed.kind == "transfer" and closed.target:
                    return self._make(offer, "transfer", target=closed.target, queue=queue.name,
                                      reason=closed.reason)
                if closed.kind == "callback":
                    return self._make(offer, "callback", queue=queue.name,
                                      callback_number=offer.caller, reason=closed.reason)
                return self._make(offer, "reject", queue=queue.name, reason=closed.reason)
            if window.target is not None:
                return self._make(offer, "transfer", target=window.target, queue=queue.name)
        existing = self._waiting.get(offer.call_id)
        if existing is not None:
            return self._queue_decision(existing)
        waiting = _Waiting(
            offer=offer,
            queue=queue,
            skills=queue.skills | frozenset(offer.skills),
            priority=self.config.priority(offer.customer_tier),
            seq=next(self._seq),
            enqueued_at=now,
        )
        self._waiting[offer.call_id] = waiting
        self._dispatch(now=now)
        for i, decision in enumerate(self._out_decisions):
            if decision.call_id == offer.call_id:
                return self._out_decisions.pop(i)
        if len(self.waiting_calls(queue.name)) > queue.max_waiting:
            del self._waiting[offer.call_id]
            return self._make(offer, "callback", queue=queue.name,
                              callback_number=offer.caller, reason="queue full")
        return self._queue_decision(waiting)

    def _dispatch(self, *, now: float) -> None:
        """Give available agents to waiting calls, best call first, longest-idle agent first."""
        if not self._waiting:
            return
        free = sorted(
            (a for a in self._agents.values()
             if a.state.state == "available" and a.reserved_call is None),
            key=lambda a: (a.idle_since, a.state.agent_id),
        )
        if not free:
            return
        for waiting in sorted(self._waiting.values(), key=_Waiting.sort_key):
            agent = next((a for a in free if _eligible(a.state, waiting)), None)
            if agent is None:
                continue
            free.remove(agent)
            del self._waiting[waiting.offer.call_id]
            self._set_agent(agent, "busy", now=now, call_id=waiting.offer.call_id)
            self._call_agent[waiting.offer.call_id] = agent.state.agent_id
            self._emit(self._make(waiting.offer, "transfer", target=agent.state.uri,
                                  agent_id=agent.state.agent_id, queue=waiting.queue.name))
            if not free:
                return

    def _set_agent(self, agent: _Agent, status: str, *, now: float, call_id: str | None) -> None:
        # A fresh message_id: this is a new state, not a re-send of the old one.
        data = agent.state.model_dump(exclude={"message_id"})
        data.update(state=status, since=now, call_id=call_id)
        agent.state = AgentState.model_validate(data)
        self._seen_states[agent.state.message_id] = None
        agent.idle_since = now
        agent.reserved_call = call_id
        self._out_states.append(agent.state)

    def _queue_decision(self, waiting: _Waiting) -> RouteDecision:
        order = self.waiting_calls(waiting.queue.name)
        position = order.index(waiting.offer.call_id) + 1
        staffed = sum(
            1 for a in self._agents.values()
            if a.state.state != "offline" and waiting.skills <= set(a.state.skills)
        )
        wait = position * self.config.average_handle_s / max(1, staffed)
        return self._make(waiting.offer, "queue", queue=waiting.queue.name, position=position,
                          estimated_wait_s=round(wait, 1))

    def _make(self, offer: HandoffOffer, kind: str, **fields: object) -> RouteDecision:
        return RouteDecision.model_validate(
            {"call_id": offer.call_id, "offer_id": offer.message_id, "kind": kind,
             "router_id": self.router_id, **fields}
        )

    def _emit(self, decision: RouteDecision) -> None:
        self._out_decisions.append(decision)

    def _remember(self, offer_id: UUID, decision: RouteDecision) -> None:
        self._decided[offer_id] = decision
        if len(self._decided) > _DEDUP_CAPACITY:
            self._decided.popitem(last=False)


def _eligible(agent: AgentState, waiting: _Waiting) -> bool:
    if not waiting.skills <= set(agent.skills):
        return False
    if agent.languages and waiting.offer.language not in agent.languages:
        # "en-GB" callers can go to "en" agents.
        return waiting.offer.language.split("-")[0] in agent.languages
    return True
