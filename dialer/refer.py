"""``connect: refer``: a person reaches the agent by REFER instead of a bridge (issue 14).

The dialer sends REFER on the called party's leg (Refer-To: the agent's URI, RFC 3515), so
the called party's equipment (a PBX, a UA that honours REFER) calls the agent itself and the
dialer's media path drops out of the conversation.  The outcome comes back in the NOTIFY
``message/sipfrag`` bodies (RFC 3515 2.4.4): a final 2xx means the agent answered, and the
dialer then ends its own leg (BYE).  A REFER the peer refuses (403, 405, 501...) or a
NOTIFY with a failure (486 from a busy agent...) or no final NOTIFY by the deadline is a
failure: another free agent is tried while time is left (a refused REFER is not retried:
the peer will not transfer), and at the deadline (2 s from the end of the greeting) the
engine's safe-harbour path runs, as when no agent is free.

A REFER still pending at the deadline is followed to its end, not abandoned: the referred
INVITE is the called party's own request, and RFC 3515 gives the REFER's sender no way to
stop it (no CANCEL of another UA's INVITE; ending our leg or the subscription leaves it
going), so playing the safe-harbour message then would tell a person "no agent" whom the
agent may answer a second later, and report them ``abandoned`` while they talk.  So a new
REFER is sent only while the deadline has not passed, and the one in flight is waited for
up to the campaign's ``ring_timeout`` (the longest an agent's phone rings): a final 2xx is
``connected`` with its real wait (``wait_s`` and ``greeting_to_bridge_s`` over the 2 s;
the engine counts it in ``connected_late``), and a failure or no final NOTIFY by then is
the safe-harbour message and ``abandoned``, as ever.  Disposition, report, CDR, the
pacer and the abandonment figures all say the same thing.

After a REFER the dialer no longer sees the agent's call, so it cannot tell when it ends:
an agent of the routing core stays ``busy`` (as published) until their own presence says
otherwise; an agent listed in the campaign file goes to wrap-up at once (a phone still on
the call answers the next REFER with 486, which puts them aside for a while).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from dialer.agents import AgentWants, DialerAgent
from dialer.policy import Disposition
from telephony.aio.call import Call
from telephony.dsp.amd import AmdResult
from telephony.errors import CallEnded, TransferFailed

if TYPE_CHECKING:
    from dialer.engine import CampaignEngine, _AmdTap
    from dialer.store import Lease

__all__ = ["connect_by_refer", "human_by_refer", "refer_to_agent"]

log = logging.getLogger(__name__)


async def refer_to_agent(engine: CampaignEngine, call_id: str, call: Call, *,
                         deadline: float, wants: AgentWants | None,
                         refer_wait_s: float = 20.0) -> DialerAgent | None:
    """REFER ``call`` to free agents in turn until one answers; a REFER is sent only before
    ``deadline``, and followed to its final NOTIFY for up to ``refer_wait_s`` (past the
    deadline if need be: it cannot be taken back).

    Returns the agent the call went to (our leg is then ended), or None (the caller plays
    the safe-harbour message on the leg, still ours)."""
    tried: set[str] = set()
    while (agent := await engine._wait_free_agent(call, tried, deadline, wants)) is not None:
        engine._set_agent(agent, "reserved", call_id)
        try:
            if not await engine._claim(agent, call_id, deadline):
                continue  # another dialer has them: the next agent
            if engine._now() >= deadline:
                engine._set_agent(agent, "ready")  # the claim took the last of the time
                return None
            result = await call.refer(
                agent.uri, timeout=max(deadline - engine._now(), refer_wait_s))
        except (TransferFailed, CallEnded) as exc:
            # The node's transfer policy refuses the agent, or the call ended meanwhile.
            log.warning("%s: REFER to %s: %s", call_id, agent.uri, exc)
            engine._set_agent(agent, "ready")
            return None
        except asyncio.CancelledError:
            engine._set_agent(agent, "ready")
            raise
        if result.ok:
            return agent
        log.info("%s: REFER to %s: %s%s", call_id, agent.uri, result.status,
                 " (REFER refused)" if result.refused else "")
        if result.refused:
            engine._set_agent(agent, "ready")
            return None  # this peer will not transfer: no other agent will do better
        # The agent's phone failed the referred call (busy, no answer): aside for a while.
        engine._set_agent(agent, "away")
    return None


async def connect_by_refer(engine: CampaignEngine, call_id: str, call: Call, lease: Lease,
                           out: dict[str, Any], *, decided_at: float, greeting_end: float,
                           deadline: float, wants: AgentWants | None,
                           refer_wait_s: float = 20.0) -> DialerAgent | None:
    """The REFER path of a person's call: the agent or None (safe harbour follows); on
    success the engine's figures and the pacer are updated and our leg is ended."""
    engine.stats.waiting_now += 1
    try:
        agent = await refer_to_agent(engine, call_id, call, deadline=deadline, wants=wants,
                                     refer_wait_s=refer_wait_s)
    finally:
        engine.stats.waiting_now -= 1
    if agent is None:
        return None
    now = engine._now()
    engine._connected(call_id, lease, out, agent, at=now, decided_at=decided_at,
                      greeting_end=greeting_end)
    if now > deadline:
        # The REFER was sent in time and the agent answered after the 2 s: connected, with
        # the real wait (see the module's docstring), and said so.
        engine.stats.connected_late += 1
        log.warning("%s: the agent answered the REFER %.2f s after the end of the greeting "
                    "(over the %.1f s rule): connected late", call_id, now - greeting_end,
                    engine.connect_within)
    # RFC 3515: the transfer is done; the transferee keeps the new call, we leave ours.
    await call.hangup("transferred")
    if agent.agent_id is None:
        engine._set_agent(agent, "wrap")
    elif engine.routing_agents is not None:
        # Their call goes on out of our sight: they stay busy until their presence changes.
        engine.routing_agents.handed_over(agent)
    return agent


async def human_by_refer(engine: CampaignEngine, call_id: str, call: Call, lease: Lease,
                         out: dict[str, Any], results: asyncio.Queue[AmdResult],
                         tap: _AmdTap, *, decided_at: float, greeting_end: float,
                         deadline: float) -> Disposition:
    """A person answered a ``connect: refer`` campaign: REFER them to an agent, or the
    safe-harbour message; a machine after all (the detector revises its verdict before the
    transfer is done) is treated as a machine, as on the bridge path."""
    refer = asyncio.ensure_future(connect_by_refer(
        engine, call_id, call, lease, out, decided_at=decided_at, greeting_end=greeting_end,
        deadline=deadline, wants=engine._wants(lease),
        refer_wait_s=engine.settings.ring_timeout))
    late = asyncio.ensure_future(engine._late_machine(call, results))
    try:
        await asyncio.wait({refer, late}, return_when=asyncio.FIRST_COMPLETED)
        revised = late.result() if late.done() else None
        if revised is not None and not refer.done():
            refer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refer
            out["amd"] = "machine"
            return await engine._machine(call, out, results, tap, revised)
    finally:
        late.cancel()
    if await refer is not None:
        return Disposition.CONNECTED
    return await engine._safe_harbour(call_id, call, out)
