"""Invariants of the reference router under random traffic (hypothesis, bounded)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.contract import AgentState, CallEventMessage, HandoffOffer, RouteDecision
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter, _eligible

AGENTS = {
    "a0": (["general", "billing"], ["en"]),
    "a1": (["general"], ["es"]),
    "a2": (["general", "billing"], ["en", "es"]),
    "a3": (["billing"], []),
}
CONFIG = RouterConfig.from_dict({
    "timezone": "UTC",
    "intents": {"billing": "billing"},
    "queues": {"general": {"skills": ["general"], "max_wait_s": 50, "max_waiting": 6},
               "billing": {"skills": ["billing"], "max_wait_s": 80}},
})

op = st.one_of(
    st.tuples(st.just("offer"), st.sampled_from(["vip", "standard", "gold"]),
              st.sampled_from(["en", "es", "fr"]), st.sampled_from([None, "billing"])),
    st.tuples(st.just("agent"), st.sampled_from(sorted(AGENTS)),
              st.sampled_from(["available", "busy", "offline", "wrap_up"])),
    st.tuples(st.just("end"), st.integers(0, 40), st.sampled_from(["ended", "abandoned"])),
    st.tuples(st.just("tick"), st.floats(0.5, 40.0)),
)


@settings(max_examples=80, deadline=None)
@given(ops=st.lists(op, max_size=60))
def test_router_invariants(ops: list[tuple[object, ...]]) -> None:
    now = 1_000_000.0
    r = ReferenceRouter(CONFIG, now=now)
    calls: list[str] = []
    transferred: dict[str, str] = {}  # call -> agent
    ended: set[str] = set()

    def record(d: RouteDecision) -> None:
        if d.kind == "transfer":
            assert d.call_id not in transferred, "a call was transferred twice"
            assert d.agent_id is not None
            busy = {c for c, a in transferred.items() if a == d.agent_id and c not in ended}
            assert not busy, f"{d.agent_id} given {d.call_id} while on {busy}"
            transferred[d.call_id] = d.agent_id

    for item in ops:
        kind = item[0]
        if kind == "offer":
            _, tier, lang, intent = item
            call_id = f"c{len(calls)}"
            calls.append(call_id)
            d = r.route(HandoffOffer(call_id=call_id, node_id="n", caller="1", called="2",
                                     customer_tier=tier, language=lang, intent=intent),
                        now=now)
            record(d)
        elif kind == "agent":
            _, agent_id, state = item
            skills, langs = AGENTS[agent_id]  # type: ignore[index]
            r.on_agent_state(AgentState(agent_id=agent_id, state=state,  # type: ignore[arg-type]
                                        uri=f"sip:{agent_id}@127.0.0.1", skills=skills,
                                        languages=langs, since=now), now=now)
            if state != "busy":
                # Presence overrides a reservation: the agent's earlier call is over.
                ended.update(c for c, a in transferred.items() if a == agent_id)
        elif kind == "end" and calls:
            _, index, ev = item
            call_id = calls[index % len(calls)]  # type: ignore[operator]
            r.on_call_event(CallEventMessage(kind=ev, call_id=call_id, node_id="n", at=now),
                            now=now)
            ended.add(call_id)
        elif kind == "tick":
            now += item[1]  # type: ignore[operator]
            timer = r.get_timer()
            if timer is not None and timer <= now:
                r.handle_timer(now=now)
        for d in r.decisions_to_send():
            record(d)
        r.states_to_publish()

        # Work-conserving: no waiting call could be served by a free agent.
        free = [a for a in r.agents().values() if a.state == "available" and a.call_id is None]
        waiting = r._waiting
        for w in waiting.values():
            assert not any(_eligible(a, w) for a in free), f"{w.offer.call_id} left waiting"
        # VIP first within each queue.
        for queue in ("general", "billing"):
            order = [waiting[c].priority for c in r.waiting_calls(queue)]
            assert order == sorted(order)
        # Nobody waits past max_wait_s once the timer has run.
        if kind == "tick":
            assert all(w.enqueued_at + w.queue.max_wait_s > now for w in waiting.values())
