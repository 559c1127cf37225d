"""The agents of an ``agents`` campaign: listed in its file, or followed from the routing core.

A campaign file names its agents in one of two ways (issue 14)::

    agents: [sip:alice@10.0.0.5:5060, sip:bob@10.0.0.6:5060]      # a fixed list

    agents: {from: routing, skills: [sales], languages: [en, es]}  # the routing core's

With ``from: routing`` the dialer follows the agents' presence on the routing bus (the
retained ``AgentState`` of the v1 contract, ``dialtone/v1/agents/<id>``; ``--mqtt``): an
agent joins the campaign's pool while ``available`` (with every campaign skill, and one of
its languages when the campaign lists some), and leaves it when their state says otherwise,
mid-campaign too (a call already bridged to them goes on).  The dialer coordinates with the
router and with other dialers through the same contract, not a side channel: before it
dials an agent it **claims** them (:class:`~routing.contract.AgentClaim`), and the routing
core, the one authority on agents, grants the claim (and publishes them ``busy`` with the
campaign call's id) or refuses it because another dialer or an inbound call has them; only
a granted agent is dialled.  When no router answers within the claim's timeout (1 s for the
early leg dialled at answer, hidden behind AMD; a quarter of the time left when a person
already waits), or none is online, the dialer falls back to its own reservation, published
``busy`` as the claim would have been; after ``CLAIMS_DOWN_AFTER`` claims in a row with no
reply at all from the routing core (a router that does not know claims) it stops asking
for ``CLAIMS_DOWN_S``.  Then ``wrap_up`` when the call ends and
``available`` after the campaign's ``wrap_s``; its own messages coming back from the broker
are recognised by ``message_id``, the router's ``busy`` for a call of ours by ``call_id``.
The dialer releases at the routing core only what it holds there (granted, or taken in the
fallback).

Per call, an agent is eligible when they speak the contact's language (the contact's
``language``, else the campaign's; an agent with no languages speaks any; ``en-GB`` goes to
``en``) and have the skills the contact's ``skills`` field asks for; among those, the
longest idle goes first.  When a person is connected, the contact's fields are offered to
the routing core as a :class:`~routing.contract.HandoffOffer` (as the inbound hand-off
does), with the reserved agent's ``call_id``, so a desktop integration can show them; the
reference router answers an offer for a call an agent is reserved for with that agent.

:class:`AgentBook` holds the table (no I/O); :class:`RoutingAgents` is the thin layer that
feeds it from the bus and publishes the dialer's changes.  Nothing here decides *how many*
calls to place: the pacer sees every change as an agent event.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from dialer.errors import DialerError
from dialer.pacing import AgentLoggedIn, AgentLoggedOut, AgentReady
from dialer.pacing.events import PacerEvent
from routing.contract import AgentClaim, AgentState, CallEventMessage, ClaimReply, HandoffOffer
from telephony.errors import CallFailed

if TYPE_CHECKING:
    from routing.bus import RoutingBus
    from routing.contract import RouteDecision

__all__ = ["AgentBook", "AgentClaimRefused", "AgentSourceError", "AgentWants", "AgentsSpec",
           "DialerAgent", "RoutingAgents", "contact_offer", "parse_agents"]

log = logging.getLogger(__name__)

COUNTED = frozenset({"ready", "reserved", "busy", "wrap"})
"""Local states the pacer counts as the campaign's agents (``away``, ``off``: logged out)."""
OURS = frozenset({"reserved", "busy", "wrap"})
"""Local states in which the agent is taken by this dialer (presence waits for the end)."""

ConnectMode = Literal["bridge", "refer"]

CLAIMS_DOWN_S = 30.0
"""After ``CLAIMS_DOWN_AFTER`` unanswered claims (and no reply, even late, for as long), the
dialer reserves on its own for this long."""
CLAIMS_DOWN_AFTER = 3


class AgentSourceError(DialerError):
    """The campaign's agents cannot be had as configured (routing core without a bus)."""


class AgentClaimRefused(CallFailed):
    """The routing core gave the agent to someone else: the leg was never dialled (not
    the agent's fault: they are not put aside)."""


@dataclass(frozen=True, slots=True)
class AgentsSpec:
    """Where a campaign's agents come from (its ``agents`` key, as stored)."""

    source: Literal["list", "routing"] = "list"
    uris: tuple[str, ...] = ()
    """``list``: the agents' SIP URIs."""
    skills: frozenset[str] = frozenset()
    """``routing``: skills every agent of the campaign has."""
    languages: tuple[str, ...] = ()
    """``routing``: an agent joins when they speak one of these (empty: any)."""

    def admits(self, state: AgentState) -> bool:
        """May the routing core's agent ``state`` serve this campaign (skills, languages)?"""
        if not self.skills <= set(state.skills):
            return False
        if self.languages and state.languages:
            return any(_speaks(state.languages, lang) for lang in self.languages)
        return True


def parse_agents(value: Any) -> AgentsSpec:
    """The stored ``agents`` setting: a list of SIP URIs, or ``{from: routing, skills:
    [...], languages: [...]}`` (the campaign file validated it; the store keeps JSON)."""
    if value is None:
        return AgentsSpec()
    if isinstance(value, Mapping):
        source = str(value.get("from") or "routing")
        if source != "routing":
            raise AgentSourceError(f"agents from {source!r}: only 'routing' is known")
        return AgentsSpec("routing", skills=frozenset(str(s) for s in value.get("skills") or ()),
                          languages=tuple(str(x) for x in value.get("languages") or ()))
    return AgentsSpec("list", uris=tuple(str(u) for u in value))


def _speaks(languages: Iterable[str], language: str) -> bool:
    langs = {x.lower() for x in languages}
    lang = language.lower()
    return lang in langs or lang.split("-")[0] in langs


@dataclass(slots=True)
class DialerAgent:
    """One agent as this dialer sees them."""

    uri: str
    state: str = "ready"
    """``ready``, ``reserved`` (their leg rings), ``busy``, ``wrap``, ``away`` (their leg
    failed lately) or ``off`` (presence says they cannot take a call)."""
    since: float = 0.0
    calls: int = 0
    agent_id: str | None = None
    """The routing core's id (None: listed in the campaign file)."""
    skills: frozenset[str] = frozenset()
    languages: tuple[str, ...] = ()
    """Empty: any language."""
    presence: str = "available"
    """The last state the routing core (or the agent) published, not counting ours."""
    call_id: str | None = None
    """The campaign call this dialer took the agent for."""


@dataclass(frozen=True, slots=True)
class AgentWants:
    """What a contact needs of an agent."""

    language: str | None = None
    skills: frozenset[str] = frozenset()

    def fits(self, agent: DialerAgent) -> bool:
        if not self.skills <= agent.skills:
            return False
        return not (self.language and agent.languages
                    and not _speaks(agent.languages, self.language))

    @classmethod
    def for_contact(cls, fields: Mapping[str, Any], language: str | None) -> AgentWants:
        """From the contact's ``language`` (else ``language``) and ``skills`` fields (comma
        or space separated)."""
        skills = str(fields.get("skills") or "").replace(",", " ").split()
        return cls(str(fields.get("language") or language or "") or None, frozenset(skills))


class AgentBook:
    """The campaign's agents and their states; no I/O.  ``emit`` gets the pacer's events."""

    def __init__(self, spec: AgentsSpec, emit: Callable[[PacerEvent], None],
                 agents: dict[str, DialerAgent] | None = None) -> None:
        self.spec = spec
        self.emit = emit
        self.agents: dict[str, DialerAgent] = agents if agents is not None else {}
        """By URI (the pacer's agent id); the engine's table."""
        self._by_id: dict[str, str] = {}

    def free(self, tried: set[str], wants: AgentWants | None = None) -> DialerAgent | None:
        """The longest-idle ready agent not in ``tried`` who fits ``wants`` (the ACD rule)."""
        ready = [a for a in self.agents.values() if a.state == "ready" and a.uri not in tried
                 and (wants is None or wants.fits(a))]
        return min(ready, key=lambda a: a.since) if ready else None

    def presence(self, st: AgentState, *, now: float) -> DialerAgent | None:
        """Apply the routing core's view of one agent; returns the agent if it changed."""
        uri = self._by_id.get(st.agent_id)
        agent = self.agents.get(uri) if uri is not None else None
        if agent is not None and agent.uri != st.uri and agent.state not in OURS:
            # They logged in from another phone: a new agent for the pacer.
            self._leave(agent)
            del self.agents[agent.uri]
            agent = None
        if agent is None:
            if not self.spec.admits(st) or st.state != "available" or st.uri in self.agents:
                return None
            agent = DialerAgent(st.uri, state="off", agent_id=st.agent_id)
            self.agents[st.uri] = agent
            self._by_id[st.agent_id] = st.uri
        agent.skills, agent.languages = frozenset(st.skills), tuple(st.languages)
        agent.presence = st.state if self.spec.admits(st) else "offline"
        if agent.state in OURS:
            return agent  # on a call of ours: the new presence applies when it ends
        if agent.presence == "available":
            if agent.state == "off":
                agent.since = st.since if st.since is not None else now
                agent.state = "ready"
                self.emit(AgentLoggedIn(agent.uri))
                self.emit(AgentReady(agent.uri))
        elif agent.state != "off":
            self._leave(agent)
            agent.state, agent.since = "off", now
        return agent

    def back_to_ready(self, agent: DialerAgent, *, now: float) -> bool:
        """The engine freed ``agent`` (wrap over, leg failure forgiven): False if their
        presence changed meanwhile, in which case they leave the pool instead."""
        agent.call_id = None
        if agent.agent_id is None or agent.presence == "available":
            return True
        self._leave(agent)
        agent.state, agent.since = "off", now
        return False

    def claim_refused(self, agent: DialerAgent, *, now: float) -> None:
        """The routing core refused our claim on ``agent`` (reserved locally, never
        dialled): back to ready while their presence still says available (the state that
        says who has them is on its way), otherwise out of the pool.  The reservation made
        no pacer event, so going back to ready makes none either."""
        agent.call_id = None
        if agent.state != "reserved":
            return
        if agent.presence == "available":
            agent.state = "ready"
        else:
            self._leave(agent)
            agent.state, agent.since = "off", now

    def handed_over(self, agent: DialerAgent, *, now: float) -> None:
        """A routing-core agent took a call this dialer no longer sees (REFER): out of the
        pool, busy as published, until their own presence changes."""
        self._leave(agent)
        agent.state, agent.since, agent.presence, agent.call_id = "off", now, "busy", None

    def _leave(self, agent: DialerAgent) -> None:
        if agent.state in COUNTED:
            self.emit(AgentLoggedOut(agent.uri))


_WIRE_STATE = {"reserved": "busy", "busy": "busy", "wrap": "wrap_up", "ready": "available",
               "away": "available"}
"""Local state -> the contract's: an agent whose leg failed is released, not logged out
(their presence is theirs to set)."""


class RoutingAgents:
    """Follows the routing core's agents on ``bus`` into an :class:`AgentBook` and publishes
    this dialer's changes (thin: the book decides)."""

    def __init__(self, bus: RoutingBus, book: AgentBook, *, campaign: str,
                 clock: Callable[[], float], wake: Callable[[], None],
                 claim_timeout_s: float = 1.0) -> None:
        self.bus = bus
        self.book = book
        self.campaign = campaign
        self.clock = clock
        self.wake = wake
        self.claim_timeout_s = claim_timeout_s
        self._mine: OrderedDict[UUID, None] = OrderedDict()
        self._held: dict[str, str] = {}
        """agent_id -> call id: agents this dialer holds at the routing core (claim
        granted, or taken without one); only these are released on the wire."""
        self._claimed_calls: OrderedDict[tuple[str, str], None] = OrderedDict()
        """(agent_id, call id) of this dialer's claims: the router's ``busy`` for them is
        ours (per agent: another dialer's campaign may have a call of the same name)."""
        self._claims_down_until = 0.0
        self._unanswered_in_a_row = 0
        self.claims = {"granted": 0, "refused": 0, "unanswered": 0, "local": 0, "healed": 0}
        """Claims by outcome (``local``: no routing core to ask, reserved on our own;
        ``healed``: refusals for a stale reservation of ours, released)."""
        self.claim_wait_s: list[float] = []
        """Each answered claim's round trip (the last 1000)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._offered: set[str] = set()
        self.offers: list[RouteDecision | None] = []
        """Decisions the routing core gave this dialer's offers (for tests and logs)."""

    def start(self) -> None:
        """Take the agents known now, then follow every change."""
        for st in self.bus.agent_states().values():
            self._on_state(st)
        self._unsubscribe = self.bus.add_agent_listener(self._on_state)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_state(self, st: AgentState) -> None:
        if st.message_id in self._mine:
            return  # our own publication, back from the broker
        if st.state == "busy" and (st.agent_id, st.call_id) in self._claimed_calls:
            return  # the router's reservation for a claim of ours: not news
        if self.book.presence(st, now=self.clock()) is not None:
            self.wake()

    # --- claims -----------------------------------------------------------------------------

    def claims_in_use(self) -> bool:
        """Ask the routing core before dialling (a router is online and answered lately)?"""
        return self.clock() >= self._claims_down_until and self.bus.claims_supported()

    async def claim(self, agent: DialerAgent, call_id: str, *,
                    timeout: float | None = None) -> bool:
        """Claim ``agent`` (reserved locally) for ``call_id`` at the routing core: True when
        granted, or when no router answered within ``timeout`` (default
        ``claim_timeout_s``; the fallback: our own reservation, published); False when
        refused (the agent is back in the pool or out of it, as their presence says).
        Cancelled while waiting: a grant that comes later is released."""
        if agent.agent_id is None:
            return True
        if not self.claims_in_use():
            self.claims["local"] += 1
            self._take(agent, call_id)
            return True
        self._claimed_calls[(agent.agent_id, call_id)] = None
        while len(self._claimed_calls) > 10_000:
            self._claimed_calls.popitem(last=False)
        claim = AgentClaim(call_id=call_id, node_id=self.bus.node_id, agent_id=agent.agent_id,
                           campaign=self.campaign[:256])
        sent = self.clock()
        wait = self.claim_timeout_s if timeout is None else max(0.01, timeout)
        task = asyncio.ensure_future(self.bus.claim_agent(claim, timeout=wait))
        try:
            reply = await asyncio.shield(task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if not (task.cancelled() and me is not None and not me.cancelling()):
                task.add_done_callback(lambda t: self._late_reply(agent, t))
                raise
            # The claim's own task was cancelled, not we: as no answer (seen on a starved
            # loop, Python 3.11).  Raised on, it ended the call with no outcome.
            log.warning("claim of agent %s for %s: cancelled in the bus", agent.agent_id,
                        call_id)
            reply = None
        return self._settle(agent, call_id, reply, sent, wait)

    def _settle(self, agent: DialerAgent, call_id: str, reply: ClaimReply | None,
                sent: float, wait: float) -> bool:
        if reply is None:
            self.claims["unanswered"] += 1
            self._unanswered_in_a_row += 1
            now = self.clock()
            last = self.bus.last_claim_reply_at
            if self._unanswered_in_a_row >= CLAIMS_DOWN_AFTER and (
                    last is None or now - last > CLAIMS_DOWN_S):
                # A router that never answers (it does not know claims): stop asking.
                self._claims_down_until = now + CLAIMS_DOWN_S
                log.warning("the routing core answers no claim: the dialer reserves agents "
                            "on its own for %.0f s", CLAIMS_DOWN_S)
            log.warning("claim of agent %s for %s: no answer from the routing core in %.0f "
                        "ms; dialling on our own reservation", agent.agent_id, call_id,
                        wait * 1000)
            self._take(agent, call_id)
            return True
        self._unanswered_in_a_row = 0
        self.claim_wait_s.append(self.clock() - sent)
        del self.claim_wait_s[:-1000]
        if reply.granted:
            self.claims["granted"] += 1
            assert agent.agent_id is not None
            self._held[agent.agent_id] = call_id
            agent.call_id = call_id
            return True
        self.claims["refused"] += 1
        log.info("claim of agent %s for %s refused: %s", agent.agent_id, call_id, reply.reason)
        held_for = reply.held_for
        if (held_for is not None and (reply.agent_id, held_for) in self._claimed_calls
                and self._held.get(reply.agent_id) != held_for):
            # Reserved at the router for a call of ours that is over: a claim that reached
            # it after our release (a late grant), or a release it never got.  Release them
            # now; the next claim gets them.
            self.claims["healed"] += 1
            log.warning("agent %s was still reserved at the routing core for %s, a call of "
                        "ours that is over: released", reply.agent_id, held_for)
            self._publish(agent, "available", None)
        self.book.claim_refused(agent, now=self.clock())
        return False

    def _late_reply(self, agent: DialerAgent, task: asyncio.Task[ClaimReply | None]) -> None:
        """A claim whose caller gave up: release a grant that came after all."""
        if task.cancelled() or task.exception() is not None:
            return
        reply = task.result()
        if reply is not None and reply.granted and agent.agent_id not in self._held:
            self._publish(agent, "available", None)

    def _take(self, agent: DialerAgent, call_id: str) -> None:
        """Our own reservation (no claim): published ``busy`` with the call's id."""
        assert agent.agent_id is not None
        self._held[agent.agent_id] = call_id
        agent.call_id = call_id
        self._publish(agent, "busy", call_id)

    def local_state(self, agent: DialerAgent, state: str, call_id: str | None) -> None:
        """The engine moved ``agent`` to ``state``: tell the routing core and other dialers.

        ``reserved`` publishes nothing: :meth:`claim` follows (the router publishes a
        grant; the fallback publishes ``busy``).  A release (``ready``, ``away``) and
        wrap-up go out only for an agent this dialer holds at the routing core."""
        if agent.agent_id is None:
            return
        if state in ("reserved", "busy") and call_id is not None:
            agent.call_id = call_id
        if state == "busy" and agent.call_id is not None:
            self._held[agent.agent_id] = agent.call_id
        wire = _WIRE_STATE.get(state)
        if wire is None or state == "reserved":
            return
        held = agent.agent_id in self._held
        if state in ("ready", "away"):
            self._held.pop(agent.agent_id, None)
        if state == "ready" and not self.book.back_to_ready(agent, now=self.clock()):
            return  # they went away meanwhile: nothing of ours to release
        if not held:
            return  # never ours at the routing core (a claim refused or still unanswered)
        ended = agent.call_id if state in ("wrap", "away") else None
        self._publish(agent, wire, agent.call_id if wire == "busy" else None)
        if ended is not None and ended in self._offered:
            # After wrap_up (which releases the reservation): a router that queued the
            # offer forgets it; the agent is not made available by it.
            self._offered.discard(ended)
            self._spawn(self.bus.publish_event(CallEventMessage(
                kind="ended", call_id=ended, node_id=self.bus.node_id, at=self.clock(),
                agent_id=agent.agent_id, target=agent.uri,
                detail={"campaign": self.campaign})))

    def _publish(self, agent: DialerAgent, wire: str, call_id: str | None) -> None:
        assert agent.agent_id is not None
        msg = AgentState(agent_id=agent.agent_id, state=wire, uri=agent.uri,  # type: ignore[arg-type]
                         skills=sorted(agent.skills), languages=list(agent.languages),
                         since=self.clock(), call_id=call_id)
        self._remember(msg.message_id)
        self._spawn(self.bus.publish_agent_state(msg))

    def offer(self, agent: DialerAgent, *, call_id: str, phone: str, called: str,
              fields: Mapping[str, Any], language: str | None, skills: Iterable[str] = ()
              ) -> None:
        """Offer the connected contact to the routing core, as the inbound hand-off does."""
        offer = contact_offer(node_id=self.bus.node_id, call_id=call_id, phone=phone,
                              called=called, fields=fields, language=language,
                              campaign=self.campaign, skills=skills)  # the bus dates it
        self._offered.add(call_id)
        self._spawn(self._offer(offer, agent))

    def handed_over(self, agent: DialerAgent) -> None:
        """The agent took the call by REFER: it goes on out of our sight (no ``ended``)."""
        if agent.call_id is not None:
            self._offered.discard(agent.call_id)
        if agent.agent_id is not None:
            self._held.pop(agent.agent_id, None)  # theirs now: their presence releases them
        self.book.handed_over(agent, now=self.clock())

    async def _offer(self, offer: HandoffOffer, agent: DialerAgent) -> None:
        decision = await self.bus.request_route(offer, timeout=offer.timeout_s)
        self.offers.append(decision)
        if decision is None:
            log.info("offer of %s: no answer from the routing core", offer.call_id)
        elif decision.kind != "transfer" or decision.agent_id != agent.agent_id:
            log.warning("offer of %s: the routing core answered %s %s, not the agent the "
                        "dialer connected (%s)", offer.call_id, decision.kind,
                        decision.agent_id or decision.target, agent.agent_id)

    def _remember(self, message_id: UUID) -> None:
        self._mine[message_id] = None
        while len(self._mine) > 10_000:
            self._mine.popitem(last=False)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("routing bus: %r", task.exception())


def contact_offer(*, node_id: str, call_id: str, phone: str, called: str,
                  fields: Mapping[str, Any], language: str | None, campaign: str,
                  skills: Iterable[str] = (), sent_at: float = 0.0,
                  timeout_s: float = 5.0) -> HandoffOffer:
    """The :class:`~routing.contract.HandoffOffer` of a contact connected to an agent: the
    contact's fields in ``collected`` (as strings), ``customer_id``/``customer_tier`` when
    the list has those columns, and the campaign as the menu path."""
    collected = {str(k)[:128]: str(v)[:1024] for k, v in fields.items() if v is not None}
    collected.setdefault("phone", phone)
    return HandoffOffer(
        call_id=call_id, node_id=node_id, caller=phone, called=called,
        language=(language or "en")[:16], intent=None,
        menu_path=[f"campaign:{campaign}"], collected=collected,
        customer_id=collected.get("customer_id"),
        customer_tier=collected.get("customer_tier") or collected.get("tier") or "standard",
        skills=sorted(set(skills)), sent_at=sent_at, timeout_s=timeout_s)

