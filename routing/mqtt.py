"""The routing contract over MQTT 5: the IVR's bus and the router service.

:class:`MqttRoutingBus` is what a Dialtone node uses (``dialtone serve --mqtt``):
offers are published at QoS 1 with the MQTT 5 Response Topic (the node's decision
topic) and Correlation Data (the offer's ``message_id``, 16 bytes), section
4.10; decisions come back on ``dialtone/v1/handoff/decision/<node_id>``.

:class:`MqttRouterService` runs a :class:`ReferenceRouter` behind the shared
subscription ``$share/dialtone-routers/dialtone/v1/handoff/offer`` (section
4.8.2), so several routers share the offers, each offer going to one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal
from uuid import UUID

import aiomqtt

from routing.bus import Clock, RouterTimer, RoutingBus, SeenIds, wait_event
from routing.contract import (
    AGENTS_FILTER,
    EVENTS_FILTER,
    NODES_FILTER,
    SHARED_GROUP,
    TOPIC_ROOT,
    AgentClaim,
    AgentState,
    CallEventMessage,
    ClaimReply,
    HandoffOffer,
    NodeStatus,
    RouteDecision,
    agent_topic,
    check_topic_id,
    claim_reply_topic,
    claim_topic,
    decision_topic,
    decode_agent_state,
    decode_claim,
    decode_claim_reply,
    decode_decision,
    decode_event,
    decode_node_status,
    decode_offer,
    events_topic,
    node_status_topic,
    offer_topic,
    shared_claim_subscription,
    shared_offer_subscription,
)
from routing.errors import RoutingError
from routing.mqtt_link import MqttLink, MqttSettings
from routing.outbox import open_outbox
from routing.router_core import ReferenceRouter

log = logging.getLogger(__name__)

_AGENTS_PREFIX = AGENTS_FILTER[:-1]
_EVENTS_PREFIX = EVENTS_FILTER[:-1]
_NODES_PREFIX = f"{TOPIC_ROOT}/nodes/"


def _link(
    url: str,
    client_id: str,
    node_id: str,
    role: Literal["ivr", "router"],
    db_url: str | None,
    subscriptions: list[str],
    handler: Any,
    clock: Clock,
    options: dict[str, Any],
    on_connected: Any = None,
) -> MqttLink:
    settings = MqttSettings.from_url(url, client_id=client_id, **options)
    status = node_status_topic(node_id)
    return MqttLink(
        settings,
        outbox=open_outbox(db_url, owner=client_id),
        subscriptions=subscriptions,
        status_topic=status,
        online_payload=lambda: NodeStatus(node_id=node_id, status="online", role=role,
                                          at=clock()).encode(),
        offline_payload=NodeStatus(node_id=node_id, status="offline", role=role).encode(),
        handler=handler,
        clock=clock,
        on_connected=on_connected,
    )


def _correlation(message: aiomqtt.Message) -> bytes | None:
    props = message.properties
    value = getattr(props, "CorrelationData", None) if props is not None else None
    return bytes(value) if value is not None else None


def _response_topic(message: aiomqtt.Message) -> str | None:
    props = message.properties
    value = getattr(props, "ResponseTopic", None) if props is not None else None
    return str(value) if value else None


class MqttRoutingBus(RoutingBus):
    """A Dialtone node's bus to the routing core through an MQTT 5 broker.

    ``db_url`` is the SQLAlchemy URL of the database holding the outbox (None: in
    memory, which survives a broker restart but not a node restart).
    ``follow_events`` also subscribes to every node's call events (CDR and
    workforce consumers).  Extra keyword arguments go to :class:`MqttSettings`.
    """

    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        db_url: str | None = None,
        follow_agents: bool = True,
        follow_events: bool = False,
        clock: Clock = time.time,
        offer_retry_s: float = 2.0,
        **options: Any,
    ) -> None:
        super().__init__(check_topic_id(node_id), clock=clock)
        subs = [decision_topic(node_id), claim_reply_topic(node_id), NODES_FILTER]
        if follow_agents:
            subs.append(AGENTS_FILTER)
        if follow_events:
            subs.append(EVENTS_FILTER)
        self.link = _link(url, f"dialtone-node-{node_id}", node_id, "ivr", db_url, subs,
                          self._on_message, clock, options, on_connected=self._reoffer)
        self._decision_topic = decision_topic(node_id)
        self._claim_reply_topic = claim_reply_topic(node_id)
        self._claims: dict[UUID, asyncio.Future[ClaimReply]] = {}
        self._routers: set[str] = set()
        """Routers whose retained status says online (they can answer claims)."""
        self._seen = SeenIds()
        self._pending: dict[UUID, HandoffOffer] = {}
        self._offer_retry_s = offer_retry_s
        self._retry_task: asyncio.Task[None] | None = None
        self.reoffers = 0
        """Offers sent again because no decision had come (see :meth:`_reoffer`)."""

    async def start(self) -> None:
        # Offers left by a previous run of this node belong to calls that died with it.
        stale = self.link.outbox.purge_topic(offer_topic())
        if stale:
            log.info("node %s: dropped %d offers of a previous run", self.node_id, stale)
        await self.link.start()
        if self._retry_task is None:
            self._retry_task = asyncio.create_task(self._retry_loop(), name="reoffer")

    async def close(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
            self._retry_task = None
        await self.link.close()
        self.link.outbox.close()

    def _reoffer(self) -> None:
        """Send again every offer still waiting for its first decision.

        A PUBACK only means the broker took the offer: Mosquitto 2.0 drops it when no
        router is subscribed (shared subscriptions are not restored after a broker
        restart until each router re-subscribes), and a router may die before
        answering.  So offers are re-sent, with the same message_id, when we
        reconnect, when a router comes online, and every ``offer_retry_s``; routers
        answer a re-sent offer with the decision they already made.
        """
        for offer in list(self._pending.values()):
            message_id = str(offer.message_id)
            if offer.deadline > self._clock() and not self.link.outbox.contains(message_id):
                self.reoffers += 1
                self._enqueue_offer(offer)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._offer_retry_s)
            now = self._clock()
            if any(now - o.sent_at >= self._offer_retry_s for o in self._pending.values()):
                self._reoffer()

    async def wait_connected(self, timeout: float) -> bool:
        """True once connected to the broker, False if not within ``timeout`` s."""
        return await wait_event(self.link.connected, timeout)

    async def _send_offer(self, offer: HandoffOffer, timeout: float) -> None:
        self._pending[offer.message_id] = offer
        self._enqueue_offer(offer)

    def _offer_done(self, offer: HandoffOffer) -> None:
        self._pending.pop(offer.message_id, None)

    def _enqueue_offer(self, offer: HandoffOffer) -> None:
        self.link.enqueue(
            offer_topic(), offer.encode(), message_id=str(offer.message_id),
            response_topic=self._decision_topic, correlation=offer.message_id.bytes,
            expires_at=offer.deadline,
        )

    async def _cancel_offer(self, offer: HandoffOffer) -> None:
        if not self.link.cancel(str(offer.message_id)):
            # Delivered but unanswered: tell the router, which may have queued the call.
            await self.publish_event(CallEventMessage(
                kind="abandoned", call_id=offer.call_id, node_id=self.node_id,
                at=self._clock(), detail={"reason": "no routing decision in time"},
            ))

    async def publish_event(self, event: CallEventMessage) -> None:
        self.link.enqueue(events_topic(event.node_id), event.encode(),
                          message_id=str(event.message_id))
        if event.kind in ("abandoned", "ended"):
            self._inbox.forget(event.call_id)

    async def publish_agent_state(self, state: AgentState) -> None:
        self.link.enqueue(agent_topic(state.agent_id), state.encode(),
                          message_id=str(state.message_id), retain=True)

    def claims_supported(self) -> bool:
        return bool(self._routers) and self.link.connected.is_set()

    async def claim_agent(self, claim: AgentClaim, *, timeout: float) -> ClaimReply | None:
        """Publish the claim (QoS 1, expiring with it, the reply topic and correlation data
        as an offer's) and wait up to ``timeout`` s for the router's answer."""
        if claim.sent_at == 0.0:
            claim = claim.model_copy(update={"sent_at": self._clock(), "timeout_s": timeout})
        waiter: asyncio.Future[ClaimReply] = asyncio.get_running_loop().create_future()
        self._claims[claim.message_id] = waiter
        try:
            self.link.enqueue(claim_topic(), claim.encode(), message_id=str(claim.message_id),
                              response_topic=self._claim_reply_topic,
                              correlation=claim.message_id.bytes, expires_at=claim.deadline)
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    return await waiter
            except TimeoutError:
                # A loop that was busy when the reply came may run our timer before the
                # task that reads the broker's messages: let that task run first.
                for _ in range(3):
                    await asyncio.sleep(0)
                if waiter.done():
                    return waiter.result()
                self.link.cancel(str(claim.message_id))
                return None
        finally:
            self._claims.pop(claim.message_id, None)

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if topic == self._claim_reply_topic:
            reply = decode_claim_reply(payload)
            self.last_claim_reply_at = self._clock()
            waiter = self._claims.get(reply.claim_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)
        elif topic == self._decision_topic:
            decision = decode_decision(payload)
            corr = _correlation(message)
            if corr is not None and corr != decision.offer_id.bytes:
                raise RoutingError("decision whose correlation data does not match its offer_id")
            self._inbox.deliver(decision)
        elif topic.startswith(_AGENTS_PREFIX):
            if not payload:
                self._agent_removed(topic[len(_AGENTS_PREFIX):])
                return
            state = decode_agent_state(payload)
            if state.agent_id != topic[len(_AGENTS_PREFIX):]:
                raise RoutingError(f"agent state for {state.agent_id!r} on {topic}")
            if self._seen.first_time(state.message_id):
                self._agent_changed(state)
        elif topic.startswith(_EVENTS_PREFIX):
            event = decode_event(payload)
            if self._seen.first_time(event.message_id):
                self._event_seen(event)
        elif topic.startswith(_NODES_PREFIX):
            if not payload:
                return
            status = decode_node_status(payload)
            if status.role == "router":
                if status.status == "online":
                    self._routers.add(status.node_id)
                else:
                    self._routers.discard(status.node_id)
            if status.role == "router" and status.status == "online" and not message.retain:
                # A router (re)subscribed: offers the broker dropped meanwhile can go now.
                self._reoffer()


class MqttRouterService:
    """A :class:`ReferenceRouter` answering offers from the broker (``dialtone router``)."""

    def __init__(
        self,
        url: str,
        router: ReferenceRouter,
        *,
        router_id: str = "router-1",
        db_url: str | None = None,
        group: str = SHARED_GROUP,
        clock: Clock = time.time,
        **options: Any,
    ) -> None:
        self.router = router
        self.router_id = check_topic_id(router_id)
        self._clock = clock
        subs = [shared_offer_subscription(group), shared_claim_subscription(group),
                AGENTS_FILTER, EVENTS_FILTER]
        self.link = _link(url, f"dialtone-router-{router_id}", router_id, "router", db_url,
                          subs, self._on_message, clock, options)
        self._reply: dict[str, tuple[str, bytes]] = {}
        self._seen_events = SeenIds()
        self._timer = RouterTimer(router, clock, self._pump, name="router-timer")
        self.offers_received = 0
        """Offer messages received, duplicates included."""

    async def start(self) -> None:
        await self.link.start()
        self._timer.start()

    async def close(self) -> None:
        await self._timer.close()
        await self.link.close()
        self.link.outbox.close()

    async def wait_connected(self, timeout: float) -> bool:
        return await wait_event(self.link.connected, timeout)

    async def publish_agent_state(self, state: AgentState) -> None:
        """Publish presence (retained) and apply it to this router at once."""
        self.router.on_agent_state(state, now=self._clock())
        self.link.enqueue(agent_topic(state.agent_id), state.encode(),
                          message_id=str(state.message_id), retain=True)
        self._pump()

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        now = self._clock()
        if topic == offer_topic():
            offer = decode_offer(payload)
            self.offers_received += 1
            reply_to = _response_topic(message) or decision_topic(offer.node_id)
            if not reply_to.startswith(decision_topic(offer.node_id)):
                raise RoutingError(f"offer with a response topic outside the contract: {reply_to}")
            corr = _correlation(message) or offer.message_id.bytes
            self._reply[offer.call_id] = (reply_to, corr)
            decision = self.router.route(offer, now=now)
            expires = offer.deadline if offer.sent_at > 0 else None
            self._send(decision, expires_at=expires)
        elif topic == claim_topic():
            claim = decode_claim(payload)
            reply_to = _response_topic(message) or claim_reply_topic(claim.node_id)
            if reply_to != claim_reply_topic(claim.node_id):
                raise RoutingError(f"claim with a reply topic outside the contract: {reply_to}")
            reply = self.router.claim(claim, now=now)
            # The reservation's busy state first, then the answer: a dialer that is refused
            # has already heard who holds the agent.
            self._pump()
            self.link.enqueue(reply_to, reply.encode(), message_id=str(reply.message_id),
                              correlation=_correlation(message) or claim.message_id.bytes,
                              expires_at=claim.deadline if claim.sent_at > 0 else None)
        elif topic.startswith(_AGENTS_PREFIX):
            if not payload:
                return
            self.router.on_agent_state(decode_agent_state(payload), now=now)
        elif topic.startswith(_EVENTS_PREFIX):
            event = decode_event(payload)
            if self._seen_events.first_time(event.message_id):
                self.router.on_call_event(event, now=now)
                if event.kind in ("abandoned", "ended"):
                    self._reply.pop(event.call_id, None)
        self._pump()

    def _send(self, decision: RouteDecision, *, expires_at: float | None = None) -> None:
        reply = self._reply.get(decision.call_id)
        if reply is None:
            log.info("decision for call %s with nowhere to send it", decision.call_id)
            return
        self.link.enqueue(reply[0], decision.encode(), message_id=str(decision.message_id),
                          correlation=reply[1], expires_at=expires_at)
        if decision.kind != "queue":
            self._reply.pop(decision.call_id, None)

    def _pump(self) -> None:
        for state in self.router.states_to_publish():
            self.link.enqueue(agent_topic(state.agent_id), state.encode(),
                              message_id=str(state.message_id), retain=True)
        for decision in self.router.decisions_to_send():
            self._send(decision)
        self._timer.wake()


def offer_correlation(offer_id: UUID) -> bytes:
    """The MQTT 5 Correlation Data of an offer: its message_id's 16 bytes."""
    return offer_id.bytes
