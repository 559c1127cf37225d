"""A whole call (INVITE/180/200/ACK, re-INVITE, INFO, BYE) still completes between two
endpoints over a link with 20% loss, 10% duplication and 20% reordering."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.sip.events import (
    CallAnswered,
    CallConfirmed,
    CallTerminated,
    DtmfInfoReceived,
    IncomingCall,
    ReinviteReceived,
    ReinviteResult,
)
from tests.sip_pair import SDP_ANSWER, SDP_OFFER, TARGET, Link, uac_and_uas


def lossy_call(seed: int) -> None:
    link = Link(loss=0.2, duplication=0.1, reorder=0.2, rng=random.Random(seed))
    p = uac_and_uas(link=link, seed=seed)
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.ringing(inc.call, now=p.now)
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    p.take(p.uas, CallConfirmed)
    p.uac.send_info_dtmf(call, "7", 120, now=p.now)
    assert p.take(p.uas, DtmfInfoReceived).digit == "7"
    p.uac.reinvite(call, SDP_OFFER.replace(b"1 1 IN", b"1 2 IN"), now=p.now)
    p.take(p.uas, ReinviteReceived)
    p.uas.answer_reinvite(inc.call, SDP_ANSWER, now=p.now)
    assert p.take(p.uac, ReinviteResult).status == 200
    p.uac.hangup(call, now=p.now)
    assert p.take(p.uas, CallTerminated).reason == "bye"
    p.run(70)
    # exactly one of each event, whatever got duplicated or retransmitted
    assert p.events_of(p.uas, IncomingCall) == []  # taken once above
    assert all(not isinstance(e, (IncomingCall, CallAnswered, CallConfirmed))
               for ep in (p.uac, p.uas) for e in p.events_of(ep))
    assert p.uac.pending()["calls"] == p.uas.pending()["calls"] == 0
    assert p.uac.pending()["client_transactions"] == 0
    assert p.uas.pending()["server_transactions"] == 0
    assert link.dropped > 0 or link.delivered > 0


@settings(max_examples=int(__import__("os").environ.get("SIP_LOSS_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_call_completes_under_loss(seed: int) -> None:
    lossy_call(seed)
