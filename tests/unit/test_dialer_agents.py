"""The campaign's agents (dialer/agents.py): the routing core's presence into the dialer's
table and the pacer's events, the per-contact choice (language, skills, longest idle), and
what the dialer publishes back on the contract (its own messages not taken for news)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dialer.agents import (
    AgentBook,
    AgentsSpec,
    AgentWants,
    DialerAgent,
    RoutingAgents,
    contact_offer,
    parse_agents,
)
from dialer.engine import CampaignEngine
from dialer.pacing import AgentLoggedIn, AgentLoggedOut, AgentReady
from dialer.pacing.events import PacerEvent
from routing.bus import InMemoryBus
from routing.contract import AgentState, CallEventMessage
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter


def state(agent_id: str, st: str = "available", *, skills: tuple[str, ...] = ("sales",),
          langs: tuple[str, ...] = (), since: float | None = None, **kw: Any) -> AgentState:
    return AgentState(agent_id=agent_id, state=st,  # type: ignore[arg-type]
                      uri=kw.pop("uri", f"sip:{agent_id}@127.0.0.1:5091"),
                      skills=list(skills), languages=list(langs), since=since, **kw)


def book(spec: AgentsSpec | None = None) -> tuple[AgentBook, list[PacerEvent]]:
    events: list[PacerEvent] = []
    return AgentBook(spec or AgentsSpec("routing"), events.append), events


def test_parse_agents_keeps_the_list_form() -> None:
    assert parse_agents(["sip:a@h"]) == AgentsSpec("list", uris=("sip:a@h",))
    assert parse_agents({"from": "routing", "skills": ["x"], "languages": ["en"]}) == \
        AgentsSpec("routing", skills=frozenset({"x"}), languages=("en",))
    assert parse_agents(None) == AgentsSpec()


def test_presence_joins_and_leaves_the_pool_and_the_pacer_sees_it() -> None:
    b, ev = book(AgentsSpec("routing", skills=frozenset({"sales"}), languages=("en",)))
    b.presence(state("alice", langs=("en", "fr")), now=10.0)
    b.presence(state("nosk", skills=("billing",)), now=10.0)       # lacks the skill
    b.presence(state("fr", langs=("fr",)), now=10.0)               # no campaign language
    b.presence(state("away", "offline"), now=10.0)                 # not available
    assert list(b.agents) == ["sip:alice@127.0.0.1:5091"]
    assert ev == [AgentLoggedIn("sip:alice@127.0.0.1:5091"), AgentReady("sip:alice@127.0.0.1:5091")]
    ev.clear()
    b.presence(state("alice", "offline", langs=("en",)), now=11.0)  # goes away mid-campaign
    assert b.agents["sip:alice@127.0.0.1:5091"].state == "off"
    assert ev == [AgentLoggedOut("sip:alice@127.0.0.1:5091")]
    assert b.free(set()) is None
    b.presence(state("alice", langs=("en",)), now=12.0)              # and comes back
    assert b.free(set()) is not None and len(ev) == 3


def test_the_longest_idle_agent_who_fits_the_contact_is_chosen() -> None:
    b, _ = book()
    b.presence(state("en_new", langs=("en",), since=50.0), now=60.0)
    b.presence(state("en_old", langs=("en",), since=10.0), now=60.0)
    b.presence(state("es", langs=("es",), since=1.0), now=60.0)
    b.presence(state("any", since=30.0, skills=("sales", "vip")), now=60.0)
    pick = b.free(set(), AgentWants("en-GB"))
    assert pick is not None and pick.agent_id == "en_old"
    es = b.free(set(), AgentWants("es"))
    assert es is not None and es.agent_id == "es"
    vip = b.free(set(), AgentWants.for_contact({"skills": "vip, sales"}, "fr"))
    assert vip is not None and vip.agent_id == "any"
    assert b.free({"sip:any@127.0.0.1:5091"}, AgentWants("de")) is None


def test_presence_during_our_call_waits_for_its_end() -> None:
    b, ev = book()
    b.presence(state("bob"), now=1.0)
    bob = b.agents["sip:bob@127.0.0.1:5091"]
    bob.state = "busy"  # the engine took him
    ev.clear()
    b.presence(state("bob", "offline"), now=2.0)
    assert bob.state == "busy" and ev == []
    bob.state = "ready"  # the engine frees him after wrap-up: he has logged off meanwhile
    assert b.back_to_ready(bob, now=3.0) is False
    assert bob.state == "off" and ev == [AgentLoggedOut(bob.uri)]


async def test_the_dialer_publishes_its_use_and_ignores_its_own_echo() -> None:
    bus = InMemoryBus(ReferenceRouter(RouterConfig.from_dict({"agents": []}), now=0.0),
                      node_id="dialer-1")
    await bus.start()
    try:
        b, ev = book()
        woken: list[int] = []
        ra = RoutingAgents(bus, b, campaign="c", clock=lambda: 100.0,
                           wake=lambda: woken.append(1))
        await bus.publish_agent_state(state("carol"))
        ra.start()  # the agents known now
        carol = b.agents["sip:carol@127.0.0.1:5091"]
        assert woken == [1]
        woken.clear()
        seen: list[AgentState] = []
        events: list[CallEventMessage] = []
        bus.add_agent_listener(seen.append)
        bus.add_event_listener(events.append)
        carol.state = "busy"
        ra.local_state(carol, "busy", "c-1")
        ra.offer(carol, call_id="c-1", phone="+442079460001", called="+442079460999",
                 fields={"name": "Ann", "customer_id": "42"}, language="en")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        carol.state = "wrap"
        ra.local_state(carol, "wrap", None)
        carol.state = "ready"
        ra.local_state(carol, "ready", None)
        for _ in range(5):
            await asyncio.sleep(0)  # the publications and the offer's decision
        assert [(s.state, s.call_id) for s in seen] == [
            ("busy", "c-1"), ("wrap_up", None), ("available", None)]
        # the reference router gave the offer the agent the dialer had connected
        assert [(d.kind, d.agent_id) for d in ra.offers if d is not None] == [
            ("transfer", "carol")]
        assert [(e.kind, e.call_id) for e in events] == [("ended", "c-1")]
        # our own messages came back through the bus and changed nothing
        assert carol.state == "ready" and len(woken) == 0
        # a change by someone else does
        await bus.publish_agent_state(state("carol", "busy", call_id="inbound-9"))
        assert carol.state == "off" and woken == [1]
        assert ev[-1] == AgentLoggedOut(carol.uri)
        await bus.publish_agent_state(state("carol"))
        assert carol.state == "ready"
        # an empty retained payload on agents/carol (MqttRoutingBus): she is gone
        bus._agent_removed("carol")
        assert carol.state == "off" and "carol" not in bus.agent_states()
        await ra.close()
    finally:
        await bus.close()


def test_the_contact_offer_carries_the_fields() -> None:
    o = contact_offer(node_id="n1", call_id="c-3", phone="+15550001", called="+15550002",
                      fields={"name": "Ann", "customer_id": "7", "tier": "gold", "n": 3},
                      language="es", campaign="parcels", skills=["sales"])
    assert o.collected == {"name": "Ann", "customer_id": "7", "tier": "gold", "n": "3",
                           "phone": "+15550001"}
    assert (o.customer_id, o.customer_tier, o.language, o.skills, o.menu_path) == (
        "7", "gold", "es", ["sales"], ["campaign:parcels"])


class FakeReferCall:
    """A called party's leg whose REFERs end as scripted (status, refused)."""

    def __init__(self, results: list[tuple[int, bool]]) -> None:
        self.results = results
        self.referred: list[str] = []
        self.ended = False

    async def refer(self, target: str, *, timeout: float) -> Any:
        from telephony.aio.call import ReferResult
        self.referred.append(target)
        status, refused = self.results.pop(0)
        return ReferResult(status, refused=refused)


class FakeEngine:
    """What the REFER path uses of the engine: its agents, clock and state changes."""

    def __init__(self, *uris: str) -> None:
        self.book, _ = book(AgentsSpec("list", uris=uris))
        for i, uri in enumerate(uris):
            self.book.agents[uri] = DialerAgent(uri, since=float(i))
        self.t = 0.0
        self.changes: list[tuple[str, str]] = []

    def _now(self) -> float:
        self.t += 0.01
        return self.t

    def _free_agent(self, tried: set[str], wants: AgentWants | None) -> DialerAgent | None:
        return self.book.free(tried, wants)

    def _agents_back(self, now: float) -> None:
        pass

    # the engine's own wait for a free agent, on this fake's agents and clock
    _wait_free_agent = CampaignEngine._wait_free_agent

    def _set_agent(self, agent: DialerAgent, state: str, call_id: str | None = None) -> None:
        agent.state = state
        self.changes.append((agent.uri, state))

    async def _claim(self, agent: DialerAgent, call_id: str | None,
                     deadline: float | None = None) -> bool:
        return True  # listed agents: nobody to claim them from


async def test_refer_tries_the_next_agent_after_a_failed_notify_and_stops_on_refusal() -> None:
    from dialer.refer import refer_to_agent

    eng = FakeEngine("sip:a@h", "sip:b@h")
    call = FakeReferCall([(486, False), (200, False)])  # a busy, then b answers
    got = await refer_to_agent(eng, "c-1", call, deadline=1.0, wants=None)  # type: ignore[arg-type]
    assert got is not None and got.uri == "sip:b@h"
    assert call.referred == ["sip:a@h", "sip:b@h"]
    assert eng.changes == [("sip:a@h", "reserved"), ("sip:a@h", "away"),
                           ("sip:b@h", "reserved")]
    # a peer that refuses REFER itself: no other agent is tried, the agent is released
    eng = FakeEngine("sip:a@h", "sip:b@h")
    call = FakeReferCall([(403, True)])
    got = await refer_to_agent(eng, "c-2", call, deadline=1.0, wants=None)  # type: ignore[arg-type]
    assert got is None
    assert call.referred == ["sip:a@h"] and eng.book.agents["sip:a@h"].state == "ready"
    # no agent free until the deadline: None (the engine plays the safe-harbour message)
    eng = FakeEngine()
    got = await refer_to_agent(eng, "c-3", FakeReferCall([]),  # type: ignore[arg-type]
                               deadline=0.1, wants=None)
    assert got is None


async def test_an_agent_handed_a_call_by_refer_waits_for_their_own_presence() -> None:
    bus = InMemoryBus(ReferenceRouter(RouterConfig.from_dict({"agents": []}), now=0.0),
                      node_id="dialer-1")
    await bus.start()
    try:
        b, ev = book()
        ra = RoutingAgents(bus, b, campaign="c", clock=lambda: 100.0, wake=lambda: None)
        ra.start()
        await bus.publish_agent_state(state("dan"))
        dan = b.agents["sip:dan@127.0.0.1:5091"]
        dan.state = "busy"
        ra.local_state(dan, "busy", "c-9")
        ra.offer(dan, call_id="c-9", phone="+15550001", called="+15550002", fields={},
                 language="en")
        ra.handed_over(dan)  # the REFER succeeded: his call goes on without us
        for _ in range(5):
            await asyncio.sleep(0)
        assert dan.state == "off" and ev[-1] == AgentLoggedOut(dan.uri)
        assert bus.agent_states()["dan"].state == "busy"  # as we published it, still
        assert b.free(set()) is None
        await bus.publish_agent_state(state("dan"))  # his desktop: the call is over
        assert dan.state == "ready" and b.free(set()) is dan
        await ra.close()
    finally:
        await bus.close()


# --- claims: two dialers, one routing core ----------------------------------------------------


def dialer_core(bus: InMemoryBus, name: str, t: list[float]
                ) -> tuple[AgentBook, RoutingAgents, list[PacerEvent]]:
    """One dialer's agent core (its book and its link to the routing core) on ``bus``."""
    b, ev = book()
    ra = RoutingAgents(bus, b, campaign=name, clock=lambda: t[0], wake=lambda: None)
    ra.start()
    return b, ra, ev


async def test_two_dialers_claiming_one_agent_at_once_get_one_grant() -> None:
    t = [100.0]
    bus = InMemoryBus(ReferenceRouter(RouterConfig.from_dict({"agents": []}), now=0.0),
                      node_id="dialer")
    await bus.start()
    try:
        await bus.publish_agent_state(state("eve"))
        (ba, ra_a, _), (bb, ra_b, ev_b) = (dialer_core(bus, "ca", t), dialer_core(bus, "cb", t))
        uri = "sip:eve@127.0.0.1:5091"
        ea, eb = ba.free(set()), bb.free(set())
        assert ea is not None and eb is not None  # both see her ready, in the same instant
        ea.state = eb.state = "reserved"
        ra_a.local_state(ea, "reserved", "ca-1")
        ra_b.local_state(eb, "reserved", "cb-1")
        got = await asyncio.gather(ra_a.claim(ea, "ca-1"), ra_b.claim(eb, "cb-1"))
        assert got == [True, False]  # the router saw a's claim first: b dials nobody
        assert ra_a.claims["granted"] == 1 and ra_b.claims["refused"] == 1
        # the router published her busy for a's call: a ignores its own grant, b drops her
        assert bus.agent_states()["eve"].call_id == "ca-1"
        assert ea.state == "reserved" and eb.state == "off"
        assert ev_b[-1] == AgentLoggedOut(uri) and bb.free(set()) is None
        # a's call: connected, wrap-up, free again; b sees her come back
        for st, cid in (("busy", "ca-1"), ("wrap", None), ("ready", None)):
            ea.state = st
            ra_a.local_state(ea, st, cid)
            for _ in range(3):
                await asyncio.sleep(0)
        assert bus.agent_states()["eve"].state == "available"
        assert eb.state == "ready" and ea.state == "ready"
        # now b's claim is granted and a's refused
        ea.state = eb.state = "reserved"
        got = await asyncio.gather(ra_b.claim(eb, "cb-2"), ra_a.claim(ea, "ca-2"))
        assert got == [True, False] and ea.state == "off"
        await ra_a.close()
        await ra_b.close()
    finally:
        await bus.close()


class SilentRouterBus(InMemoryBus):
    """A routing core that is online but answers no claim (an older router)."""

    def __init__(self, delay: float | None = None) -> None:
        super().__init__(ReferenceRouter(RouterConfig.from_dict({"agents": []}), now=0.0),
                         node_id="dialer")
        self.delay = delay

    async def claim_agent(self, claim: Any, *, timeout: float) -> Any:
        if self.delay is None:
            await asyncio.sleep(timeout)
            return None
        await asyncio.sleep(self.delay)  # answers, but late
        return await super().claim_agent(claim, timeout=timeout)


async def test_no_answer_to_a_claim_falls_back_to_our_own_reservation() -> None:
    t = [100.0]
    bus = SilentRouterBus()
    await bus.start()
    try:
        await bus.publish_agent_state(state("fay"))
        b, ra, _ = dialer_core(bus, "c", t)
        ra.claim_timeout_s = 0.01
        fay = b.free(set())
        assert fay is not None
        fay.state = "reserved"
        ra.local_state(fay, "reserved", "c-1")
        assert await ra.claim(fay, "c-1") is True  # dial her: nobody said no
        await asyncio.sleep(0)
        assert ra.claims["unanswered"] == 1
        assert (bus.agent_states()["fay"].state, bus.agent_states()["fay"].call_id) == (
            "busy", "c-1")  # our reservation, published as before claims
        assert ra.claims_in_use()  # one claim unanswered: a router slow this once
        fay.state = "ready"
        ra.local_state(fay, "ready", None)  # released: published, she was ours
        await asyncio.sleep(0)
        assert bus.agent_states()["fay"].state == "available"
        for n in (2, 3):  # a router that never answers claims (it does not know them)
            fay.state = "reserved"
            assert await ra.claim(fay, f"c-{n}") is True
            fay.state = "ready"
            ra.local_state(fay, "ready", None)
        assert not ra.claims_in_use()  # for CLAIMS_DOWN_S: no wait per call
        t[0] += 31.0
        assert ra.claims_in_use()
        await ra.close()
    finally:
        await bus.close()


async def test_a_grant_that_comes_after_the_call_gave_up_is_released() -> None:
    t = [100.0]
    bus = SilentRouterBus(delay=0.02)
    await bus.start()
    try:
        await bus.publish_agent_state(state("gil"))
        b, ra, _ = dialer_core(bus, "c", t)
        gil = b.free(set())
        assert gil is not None
        gil.state = "reserved"
        claim = asyncio.ensure_future(ra.claim(gil, "c-1"))
        await asyncio.sleep(0.005)
        claim.cancel()  # a machine: the early leg is dropped before the router answered
        with pytest.raises(asyncio.CancelledError):
            await claim
        gil.state = "ready"
        ra.local_state(gil, "ready", None)  # not held yet: nothing goes out now
        assert bus.agent_states()["gil"].state == "available"
        await asyncio.sleep(0.04)  # the grant arrives: the router had her busy for c-1...
        for _ in range(3):
            await asyncio.sleep(0)
        # ...and the dialer released her at once
        assert bus.agent_states()["gil"].state == "available"
        assert bus.router.agents()["gil"].state == "available"
        assert gil.state == "ready"
        await ra.close()
    finally:
        await bus.close()


# --- REFER answered after the 2 s: connected, with its real wait ----------------------------


class LateReferCall(FakeReferCall):
    """A called party whose referred call to the agent is answered ``after`` s later (on
    the engine's fake clock), or fails then with ``status``."""

    def __init__(self, eng: FakeEngine, after: float, status: int = 200) -> None:
        super().__init__([])
        self.eng, self.after, self.status = eng, after, status
        self.timeouts: list[float] = []
        self.hung_up: str | None = None

    async def refer(self, target: str, *, timeout: float) -> Any:
        from telephony.aio.call import ReferResult
        self.referred.append(target)
        self.timeouts.append(timeout)
        if self.after > timeout:
            self.eng.t += timeout
            return ReferResult(408)
        self.eng.t += self.after
        return ReferResult(self.status)

    async def hangup(self, reason: str = "normal") -> None:
        self.hung_up, self.ended = reason, True


class ReferEngine(FakeEngine):
    """What connect_by_refer/human_by_refer use beyond the agent table."""

    def __init__(self, *uris: str) -> None:
        from dialer.engine import EngineStats
        from dialer.policy import CampaignSettings

        super().__init__(*uris)
        self.stats = EngineStats()
        self.settings = CampaignSettings(ring_timeout=20.0)
        self.connect_within = 2.0
        self.routing_agents = None
        self.pacer_events: list[Any] = []
        self.pacer = type("P", (), {"on_event": lambda _s, ev, now: self.pacer_events.append(ev)})()
        self.harbour: list[str] = []

    def _offer_contact(self, agent: DialerAgent, call_id: str, lease: Any) -> None:
        pass

    _connected = CampaignEngine._connected  # the engine's own bookkeeping of a connect

    def _wants(self, lease: Any) -> None:
        return None

    async def _late_machine(self, call: Any, results: Any) -> None:
        await asyncio.Event().wait()  # no machine after all

    async def _safe_harbour(self, call_id: str, call: Any, out: dict[str, Any]) -> Any:
        from dialer.pacing import CallAbandoned
        from dialer.policy import Disposition
        self.harbour.append(call_id)
        self.stats.abandoned += 1
        self.pacer_events.append(CallAbandoned(call_id))
        return Disposition.ABANDONED


async def test_a_refer_answered_after_the_deadline_is_connected_with_its_real_wait() -> None:
    from dialer.pacing import CallAbandoned, CallConnected
    from dialer.policy import Disposition
    from dialer.refer import human_by_refer

    eng = ReferEngine("sip:a@h")
    call = LateReferCall(eng, after=2.5)  # the agent answers 2.5 s after the REFER
    out: dict[str, Any] = {}
    got = await human_by_refer(eng, "c-1", call, None, out, asyncio.Queue(), None,  # type: ignore[arg-type]
                               decided_at=0.4, greeting_end=0.0, deadline=2.0)
    assert got is Disposition.CONNECTED and eng.harbour == []
    # the REFER was followed past the deadline (up to ring_timeout), not given up at 2 s
    assert call.timeouts[0] >= 20.0 - 0.1
    assert out["agent"] == "sip:a@h" and out["live"] is True
    assert out["wait_s"] > 2.0 and out["greeting_to_bridge_s"] > 2.0  # the real wait
    assert (eng.stats.connected, eng.stats.connected_late, eng.stats.abandoned) == (1, 1, 0)
    assert [type(e) for e in eng.pacer_events] == [CallConnected]
    assert not any(isinstance(e, CallAbandoned) for e in eng.pacer_events)
    assert call.hung_up == "transferred"


async def test_a_refer_that_fails_after_the_deadline_is_abandoned_and_none_is_sent_late() -> None:
    from dialer.policy import Disposition
    from dialer.refer import human_by_refer

    eng = ReferEngine("sip:a@h", "sip:b@h")
    call = LateReferCall(eng, after=2.5, status=486)  # a's phone refuses, after the 2 s
    out: dict[str, Any] = {}
    got = await human_by_refer(eng, "c-2", call, None, out, asyncio.Queue(), None,  # type: ignore[arg-type]
                               decided_at=0.4, greeting_end=0.0, deadline=2.0)
    assert got is Disposition.ABANDONED and eng.harbour == ["c-2"]
    assert call.referred == ["sip:a@h"]  # no second REFER once the 2 s have gone
    assert out.get("wait_s") is None and out.get("agent") is None
    assert (eng.stats.connected, eng.stats.connected_late, eng.stats.abandoned) == (0, 0, 1)


async def test_an_agent_left_reserved_for_a_call_of_ours_that_is_over_is_released() -> None:
    t = [100.0]
    bus = InMemoryBus(ReferenceRouter(RouterConfig.from_dict({"agents": []}), now=0.0),
                      node_id="dialer")
    await bus.start()
    try:
        await bus.publish_agent_state(state("hal"))
        b, ra, _ = dialer_core(bus, "c", t)
        hal = b.free(set())
        assert hal is not None
        hal.state = "reserved"
        # c-1's claim went unanswered: the dialer reserved hal on its own (busy published)
        ra._claimed_calls[("hal", "c-1")] = None
        ra._take(hal, "c-1")
        await asyncio.sleep(0)
        # the call ends, but its release never reaches the router: the router still has
        # hal for c-1, the dialer has him ready
        ra._held.clear()
        hal.state = "ready"
        ra.local_state(hal, "ready", None)
        assert bus.router.agents()["hal"].call_id == "c-1"
        hal.state = "reserved"
        assert await ra.claim(hal, "c-2") is False  # refused: reserved for c-1...
        for _ in range(3):
            await asyncio.sleep(0)
        assert ra.claims["healed"] == 1  # ...a call of ours that is over: released
        assert bus.router.agents()["hal"].state == "available"
        assert hal.state == "ready"
        hal.state = "reserved"
        assert await ra.claim(hal, "c-3") is True
        await ra.close()
    finally:
        await bus.close()


class CancellingBus(SilentRouterBus):
    """A bus whose claim task ends cancelled (not the caller's cancellation)."""

    async def claim_agent(self, claim: Any, *, timeout: float) -> Any:
        raise asyncio.CancelledError


async def test_a_claim_cancelled_inside_the_bus_is_no_answer_not_the_callers_cancel() -> None:
    t = [100.0]
    bus = CancellingBus()
    await bus.start()
    try:
        await bus.publish_agent_state(state("fay"))
        b, ra, _ = dialer_core(bus, "c", t)
        fay = b.free(set())
        assert fay is not None
        fay.state = "reserved"
        ra.local_state(fay, "reserved", "c-1")
        assert await ra.claim(fay, "c-1") is True  # our own reservation, as unanswered
        assert ra.claims["unanswered"] == 1
    finally:
        await bus.close()
