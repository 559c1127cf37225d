"""The routing bus the IVR and the dialer use, and its in-memory implementation.

:class:`RoutingBus` is the whole interface: hand a call off and wait for the
decision (``None`` on timeout: the flow runs its fallback), follow a queued
call's later decisions, publish call events, follow agent presence.
:class:`InMemoryBus` runs a :class:`ReferenceRouter` in-process (the default of
``make run``); routing/mqtt.py has the MQTT 5 one.  Both keep the same contract.

Typical IVR use::

    decision = await bus.request_route(offer, timeout=offer.timeout_s)
    while decision is not None and decision.kind == "queue":
        # play announcements / music on hold, then:
        decision = await bus.next_decision(offer.call_id, timeout=30.0)
    if decision is None: ...  # the flow's fallback
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from uuid import UUID, uuid4

from routing.contract import (
    AgentClaim,
    AgentState,
    CallEventMessage,
    ClaimReply,
    HandoffOffer,
    RouteDecision,
)
from routing.errors import RoutingError
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter

log = logging.getLogger(__name__)

AgentListener = Callable[[AgentState], None]
EventListener = Callable[[CallEventMessage], None]
Clock = Callable[[], float]

_FINAL_KINDS = frozenset({"transfer", "callback", "reject"})


class SeenIds:
    """A bounded set of recently seen message ids, for at-least-once de-duplication."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._ids: OrderedDict[UUID, None] = OrderedDict()
        self._capacity = capacity

    def first_time(self, message_id: UUID) -> bool:
        """True the first time ``message_id`` is offered, False for a duplicate."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


class DecisionInbox:
    """Decisions awaited per call: matched by offer id, de-duplicated by message id."""

    def __init__(self) -> None:
        self._queues: dict[str, tuple[UUID, asyncio.Queue[RouteDecision]]] = {}
        self._seen = SeenIds()
        self.dropped = 0
        """Decisions dropped: duplicates, or for calls nobody waits for any more."""

    def expect(self, offer: HandoffOffer) -> None:
        self._queues[offer.call_id] = (offer.message_id, asyncio.Queue())

    def forget(self, call_id: str) -> None:
        self._queues.pop(call_id, None)

    def waiting(self, call_id: str) -> bool:
        return call_id in self._queues

    def deliver(self, decision: RouteDecision) -> bool:
        """Hand ``decision`` to its waiting call; False (and dropped) otherwise."""
        entry = self._queues.get(decision.call_id)
        if entry is None or entry[0] != decision.offer_id:
            self.dropped += 1
            return False
        if not self._seen.first_time(decision.message_id):
            self.dropped += 1
            return False
        entry[1].put_nowait(decision)
        return True

    async def get(self, call_id: str, timeout: float) -> RouteDecision | None:
        entry = self._queues.get(call_id)
        if entry is None:
            raise RoutingError(f"no hand-off in progress for call {call_id!r}")
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            async with asyncio.timeout(max(0.0, timeout)):
                decision = await entry[1].get()
        except TimeoutError:
            return None
        if decision.kind in _FINAL_KINDS:
            self.forget(call_id)
        return decision


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """True if ``event`` is set within ``timeout`` s (cancellation-safe, unlike 3.11 wait_for)."""
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        return False
    return True


class RouterTimer:
    """Drives a :class:`ReferenceRouter`'s timer (``get_timer``/``handle_timer``) from an
    asyncio task.  ``after_fire`` runs after each expiry so the owner sends what the router
    produced; :meth:`wake` makes the task read the deadline again after the owner fed the
    router.  Once closed it does not run again."""

    def __init__(self, router: ReferenceRouter, clock: Clock, after_fire: Callable[[], None],
                 *, name: str) -> None:
        self._router = router
        self._clock = clock
        self._after_fire = after_fire
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while not self._closing:
            self._wake.clear()
            deadline = self._router.get_timer()
            delay = 3600.0 if deadline is None else max(0.0, deadline - self._clock())
            if not await wait_event(self._wake, delay):
                self._router.handle_timer(now=self._clock())
                self._after_fire()


class RoutingBus(ABC):
    """What the IVR and the dialer need from the routing core (transport-independent)."""

    def __init__(self, node_id: str, *, clock: Clock = time.time) -> None:
        self.node_id = node_id
        self._clock = clock
        self._inbox = DecisionInbox()
        self._agents: dict[str, AgentState] = {}
        self._agent_listeners: list[AgentListener] = []
        self._event_listeners: list[EventListener] = []

    @abstractmethod
    async def start(self) -> None:
        """Connect (or start the in-process router); returns without waiting for a broker."""

    @abstractmethod
    async def close(self) -> None:
        """Stop; idempotent."""

    @abstractmethod
    async def _send_offer(self, offer: HandoffOffer, timeout: float) -> None:
        """Transport-specific: make the offer reach the routing core."""

    @abstractmethod
    async def _cancel_offer(self, offer: HandoffOffer) -> None:
        """Transport-specific: the call gave up; do not deliver the offer any more."""

    def _offer_done(self, offer: HandoffOffer) -> None:
        """Transport hook: the offer got its first decision or timed out."""

    @abstractmethod
    async def publish_event(self, event: CallEventMessage) -> None:
        """Publish a call event (answered, handed_off, transferred, abandoned, ended)."""

    @abstractmethod
    async def publish_agent_state(self, state: AgentState) -> None:
        """Publish an agent's presence (the CLI, an agent desktop, the dialer's agents)."""

    async def request_route(self, offer: HandoffOffer, *, timeout: float) -> RouteDecision | None:
        """Offer the call and wait up to ``timeout`` s for the first decision; None on timeout.

        A ``queue`` decision is followed by more: see :meth:`next_decision`.
        """
        if offer.node_id != self.node_id:
            raise RoutingError(f"offer for node {offer.node_id!r} sent by node {self.node_id!r}")
        if offer.sent_at == 0.0:
            # model_copy keeps message_id: a re-send is still the same offer.
            offer = offer.model_copy(update={"sent_at": self._clock(), "timeout_s": timeout})
        self._inbox.expect(offer)
        try:
            await self._send_offer(offer, timeout)
            decision = await self._inbox.get(offer.call_id, timeout)
        except BaseException:
            self._inbox.forget(offer.call_id)
            raise
        finally:
            self._offer_done(offer)
        if decision is None:
            self._inbox.forget(offer.call_id)
            await self._cancel_offer(offer)
        return decision

    async def next_decision(self, call_id: str, *, timeout: float) -> RouteDecision | None:
        """The next decision for a queued call (a transfer, an updated position, a callback).

        None if nothing came within ``timeout``; the call stays queued until a final
        decision or :meth:`publish_event` with ``abandoned``/``ended``.
        """
        return await self._inbox.get(call_id, timeout)

    last_claim_reply_at: float | None = None
    """When the last reply to a claim arrived (late ones too): the routing core answers."""

    def claims_supported(self) -> bool:
        """Is a routing core there to answer :meth:`claim_agent` (a router online)?"""
        return False

    async def claim_agent(self, claim: AgentClaim, *, timeout: float) -> ClaimReply | None:
        """Ask the routing core for an agent before dialling them; None when no answer
        came within ``timeout`` (or this bus has no routing core to ask)."""
        return None

    def agent_states(self) -> dict[str, AgentState]:
        """Snapshot of every agent's last known presence."""
        return dict(self._agents)

    def add_agent_listener(self, listener: AgentListener) -> Callable[[], None]:
        """Call ``listener`` on each presence change; returns a function that unsubscribes."""
        self._agent_listeners.append(listener)
        return lambda: self._agent_listeners.remove(listener)

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` on each call event (once per message_id); returns unsubscribe."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    def _agent_changed(self, state: AgentState) -> None:
        self._agents[state.agent_id] = state
        for listener in list(self._agent_listeners):
            listener(state)

    def _agent_removed(self, agent_id: str) -> None:
        previous = self._agents.pop(agent_id, None)
        if previous is not None:
            # Its retained state was cleared: listeners (the dialer) hear it went offline.
            gone = previous.model_copy(update={"state": "offline", "call_id": None,
                                               "message_id": uuid4()})
            for listener in list(self._agent_listeners):
                listener(gone)

    def _event_seen(self, event: CallEventMessage) -> None:
        if event.kind in ("abandoned", "ended"):
            self._inbox.forget(event.call_id)
        for listener in list(self._event_listeners):
            listener(event)


class InMemoryBus(RoutingBus):
    """The contract in-process: offers go straight to a :class:`ReferenceRouter`."""

    def __init__(
        self,
        router: ReferenceRouter | None = None,
        *,
        node_id: str = "local",
        clock: Clock = time.time,
    ) -> None:
        super().__init__(node_id, clock=clock)
        self.router = router or ReferenceRouter(RouterConfig(), now=clock())
        self._timer = RouterTimer(self.router, clock, self._pump, name="routing-timer")
        for state in self.router.agents().values():
            self._agents[state.agent_id] = state

    @classmethod
    def from_config_file(cls, path: str, *, node_id: str = "local") -> InMemoryBus:
        """An in-memory bus running the reference router configured by a YAML file."""
        return cls(ReferenceRouter(RouterConfig.from_yaml(path), now=time.time()), node_id=node_id)

    async def start(self) -> None:
        self._timer.start()

    async def close(self) -> None:
        await self._timer.close()

    async def _send_offer(self, offer: HandoffOffer, timeout: float) -> None:
        decision = self.router.route(offer, now=self._clock())
        self._inbox.deliver(decision)
        self._pump()

    async def _cancel_offer(self, offer: HandoffOffer) -> None:
        self.router.on_call_event(
            CallEventMessage(kind="abandoned", call_id=offer.call_id, node_id=offer.node_id,
                             at=self._clock()),
            now=self._clock(),
        )

    async def publish_event(self, event: CallEventMessage) -> None:
        self.router.on_call_event(event, now=self._clock())
        self._event_seen(event)
        self._pump()

    async def publish_agent_state(self, state: AgentState) -> None:
        self.router.on_agent_state(state, now=self._clock())
        self._agent_changed(state)
        self._pump()

    def claims_supported(self) -> bool:
        return True

    async def claim_agent(self, claim: AgentClaim, *, timeout: float) -> ClaimReply | None:
        if claim.sent_at == 0.0:
            claim = claim.model_copy(update={"sent_at": self._clock(), "timeout_s": timeout})
        reply = self.router.claim(claim, now=self._clock())
        self.last_claim_reply_at = self._clock()
        self._pump()  # the reservation's busy state, as the router publishes it
        return reply

    def _pump(self) -> None:
        for state in self.router.states_to_publish():
            self._agent_changed(state)
        for decision in self.router.decisions_to_send():
            self._inbox.deliver(decision)
        self._timer.wake()
