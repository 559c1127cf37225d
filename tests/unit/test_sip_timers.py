"""The SIP timer queue lets go of what it no longer needs (issue 12 finding 4, the memory
half: benchmarks/bench_defences_flood.py)."""

from __future__ import annotations

import gc
import weakref

from telephony.sip.call_leg import CallLeg
from telephony.sip.events import IncomingCall
from telephony.sip.timers import TimerQueue
from tests.sip_pair import SDP_ANSWER, SDP_OFFER, TARGET, UAC_ADDR, uac_and_uas


class Owner:
    def __init__(self) -> None:
        self.timers: dict[str, int] = {}
        self.fired: list[str] = []

    def on_timer(self, name: str, now: float) -> None:
        self.fired.append(name)


def test_cancelled_timers_do_not_keep_their_owners() -> None:
    q = TimerQueue()
    owners = [Owner() for _ in range(2000)]
    for o in owners:
        q.set(o, "far", 10_000.0)  # minutes away, like a ring guard
    keep = owners[::100]
    for o in owners:
        if o not in keep:
            TimerQueue.cancel(o, "far")
    refs = [weakref.ref(o) for o in owners]
    del owners, o
    assert q.pop_due(0.0) is None  # the first pop sweeps
    assert len(q) == len(keep) == 20
    assert sum(r() is not None for r in refs) == 20  # only the armed ones are held
    # re-arming many times keeps the heap bounded too (compaction on doubling)
    for _ in range(10_000):
        q.set(keep[0], "again", 5_000.0)
    assert len(q) < 1000
    # and what is armed still fires, in order
    assert q.pop_due(20_000.0) == (keep[0], "again")
    assert {q.pop_due(20_000.0)[0] for _ in range(20)} == set(keep)  # type: ignore[index]
    assert q.pop_due(20_000.0) is None


def test_ended_calls_are_freed_after_their_linger_not_minutes_later() -> None:
    """Before: an answered call's cancelled ring guard (timer C + 64*T1 = 212 s) and session
    timers kept its leg, dialog and INVITE alive for minutes after the call ended."""
    # CallLegs other tests left for the cyclic collector are not this test's business
    gc.collect()
    before = {id(o) for o in gc.get_objects() if isinstance(o, CallLeg)}
    p = uac_and_uas()
    # a call held throughout: its live timers sit before the stale entries in the heap (as
    # on a serving node), so looking for the next deadline never drains them by chance
    held = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    first = p.take(p.uas, IncomingCall)
    assert isinstance(first, IncomingCall)
    p.uas.answer(first.call, SDP_ANSWER, now=p.now)
    p.run(0.1)
    calls = []
    for _ in range(300):
        call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
        inc = p.take(p.uas, IncomingCall)
        assert isinstance(inc, IncomingCall)
        p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
        p.run(0.1)
        calls.append(call)
    for call in calls:
        p.uac.hangup(call, now=p.now)
    p.run(40)  # the 64*T1 linger (32 s), then a sweep
    assert p.uas.pending()["calls"] == 1 and p.uac.pending()["calls"] == 1
    assert p.uas.pending()["timers"] < 50, p.uas.pending()
    # freed by reference counting (no collection here): only the held call's legs remain
    legs = [o for o in gc.get_objects() if isinstance(o, CallLeg) and id(o) not in before]
    assert len(legs) == 2, len(legs)  # the held call's, one per side
    assert p.uac.call_info(held)["state"] == "confirmed"


def test_lingering_ended_calls_keep_no_parsed_headers_and_still_answer_retransmissions(
) -> None:
    """An ended call lingers 64*T1 only to match retransmissions: its INVITE and the BYE's
    transaction keep their raw header lines, not the parsed values (most of their memory:
    issue 12, thousands of ended calls linger after a burst); a retransmitted BYE still
    gets its 200 again."""
    p = uac_and_uas()
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    assert isinstance(inc, IncomingCall)
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.run(0.5)
    p.uac.hangup(call, now=p.now)
    p.run(1.0)
    legs = list(p.uas._calls.values())
    assert len(legs) == 1 and legs[0].state.name == "TERMINATED"  # lingering
    leg = legs[0]
    assert leg.invite is None or leg.invite._views is None
    assert leg.invite_tx is None or leg.invite_tx.request._views is None
    byes = [tx for tx in p.uas._server_txs.values() if tx.request.method == "BYE"]
    assert len(byes) == 1 and byes[0].request._views is None
    # the BYE again (our 200 lost, say): answered from the lingering transaction
    bye = byes[0].request.serialize()
    p.uas.receive_datagram(bye, UAC_ADDR, p.now)
    again = [out.data for out in p.uas.datagrams_to_send(p.now)]
    assert len(again) == 1 and again[0].startswith(b"SIP/2.0 200") and b" BYE\r\n" in again[0]
    p.run(40)
    assert p.uas.pending()["calls"] == 0 and p.uas.pending()["server_transactions"] == 0
