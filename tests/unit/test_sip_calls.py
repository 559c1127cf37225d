"""Call flows between two in-memory endpoints: setup both ways, CANCEL, re-INVITE, BYE,
INFO, REFER/NOTIFY, OPTIONS, UPDATE, session timers."""

from __future__ import annotations

from itertools import pairwise

import pytest

from telephony.errors import LocalProtocolError
from telephony.sip.events import (
    CallAnswered,
    CallConfirmed,
    CallFailed,
    CallProgress,
    CallTerminated,
    DtmfInfoReceived,
    IncomingCall,
    OptionsReceived,
    ReferProgress,
    ReferReceived,
    ReferRejected,
    ReinviteReceived,
    ReinviteResult,
    UpdateReceived,
)
from telephony.sip.message import parse_datagram
from tests.sip_pair import (
    REVERSE_TARGET,
    SDP_ANSWER,
    SDP_OFFER,
    TARGET,
    UAC_ADDR,
    UAS_ADDR,
    SipPair,
    uac_and_uas,
)


def establish(p: SipPair) -> tuple[str, str]:
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    assert isinstance(inc, IncomingCall)
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    p.take(p.uas, CallConfirmed)
    return call, inc.call


def sent(p: SipPair, pred) -> list:
    return [parse_datagram(d) for _, _, d in p.link.log if pred(parse_datagram(d))]


def requests(p: SipPair, method: str) -> list:
    return sent(p, lambda m: m.is_request and m.method == method)


def responses(p: SipPair, status: int, method: str | None = None) -> list:
    return sent(p, lambda m: not m.is_request and m.status == status
                and (method is None or m.cseq.method == method))


def test_basic_call_uac_to_uas_and_bye_from_uac() -> None:
    p = uac_and_uas()
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    assert inc.offer == SDP_OFFER and inc.remote_addr == UAC_ADDR
    assert inc.from_uri == "sip:alice@127.0.0.1:5061"
    p.uas.ringing(inc.call, now=p.now)
    prog = p.take(p.uac, CallProgress)
    assert (prog.status, prog.call) == (180, call)
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    assert p.take(p.uac, CallAnswered).body == SDP_ANSWER
    assert isinstance(p.take(p.uas, CallConfirmed), CallConfirmed)
    a, b = p.uac.call_info(call), p.uas.call_info(inc.call)
    assert a["state"] == b["state"] == "confirmed"
    assert a["sip_call_id"] == b["sip_call_id"]
    assert (a["local_tag"], a["remote_tag"]) == (b["remote_tag"], b["local_tag"])
    # The 2xx ACK is a new transaction: a branch different from the INVITE's (RFC 3261 17.1.1.3)
    inv, ack = requests(p, "INVITE")[0], requests(p, "ACK")[0]
    assert ack.top_via.branch != inv.top_via.branch and ack.cseq.seq == inv.cseq.seq
    p.uac.hangup(call, now=p.now)
    ev = p.take(p.uas, CallTerminated)
    assert ev.by_remote and ev.reason == "bye"
    local = p.take(p.uac, CallTerminated)
    assert not local.by_remote
    # The 200 to the BYE keeps the dialog's To tag (pyVoIP's bug was a fresh one).
    ok_bye = responses(p, 200, "BYE")[0]
    assert ok_bye.to.tag == b["local_tag"]
    p.run(40)
    assert p.uac.pending()["calls"] == 0 and p.uas.pending()["timers"] == 0


def test_call_the_other_way_and_bye_from_callee() -> None:
    p = uac_and_uas()
    call = p.uas.invite(REVERSE_TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uac, IncomingCall)
    p.uac.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uas, CallAnswered)
    p.take(p.uac, CallConfirmed)
    p.uac.hangup(inc.call, now=p.now)  # the callee hangs up: BYE in the other direction
    assert p.take(p.uas, CallTerminated).by_remote
    bye = requests(p, "BYE")[0]
    assert bye.uri.port == UAS_ADDR[1]  # sent to the remote target (the caller's Contact)
    assert p.uas.call_info(call)["state"] == "terminated"


def test_no_fixed_delay_before_200() -> None:
    p = uac_and_uas()
    p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    t0 = p.now
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    assert p.now - t0 < 0.011  # one link latency, not pyVoIP's second


def test_retransmitted_invite_is_absorbed() -> None:
    p = uac_and_uas()
    p.link.drop_next[UAC_ADDR] = 1  # lose the 100 Trying: timer A retransmits the INVITE
    p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    p.run(0.6)
    assert len(requests(p, "INVITE")) == 2
    assert len(p.events_of(p.uas, IncomingCall)) == 1
    # the second INVITE was answered with the stored 100, not a new call
    assert p.uas.stats["requests_absorbed"] == 1
    assert len(responses(p, 100)) == 2
    p.run(5)
    assert len(p.events_of(p.uas, IncomingCall)) == 1


def test_uac_retransmits_ack_when_200_is_retransmitted() -> None:
    p = uac_and_uas()
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.link.drop_next[UAS_ADDR] = 1  # the ACK is lost
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    p.take(p.uas, CallConfirmed)  # arrives after the 2xx retransmission re-triggers the ACK
    oks = responses(p, 200, "INVITE")
    acks = requests(p, "ACK")
    assert len(oks) == 2 and len(acks) == 2 and acks[0].serialize() == acks[1].serialize()
    assert len(p.events_of(p.uac, CallAnswered)) == 0  # taken once, never repeated
    assert p.uac.call_info(call)["state"] == "confirmed"


def test_200_retransmitted_until_ack_then_bye_after_64_t1() -> None:
    p = uac_and_uas()
    p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.link.drop_filter = lambda out: out.data.startswith(b"ACK")
    t0 = p.now
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    ev = p.take(p.uas, CallTerminated)
    assert ev.reason == "no ACK" and ev.status == 408
    assert p.now - t0 == pytest.approx(64 * 0.5, abs=0.01)
    times = [t for t, _, d in p.link.log if d.startswith(b"SIP/2.0 200") and b"INVITE" in d]
    gaps = [round(b - a, 3) for a, b in pairwise(times)][:6]
    # RFC 3261 13.3.1.4: T1, 2T1, 4T1... capped at T2
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and gaps[4] == 4.0
    assert requests(p, "BYE")  # the session is ended with BYE
    assert p.take(p.uac, CallTerminated).by_remote


def test_cancel_before_answer_gives_487() -> None:
    p = uac_and_uas()
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.ringing(inc.call, now=p.now)
    p.take(p.uac, CallProgress)
    p.uac.hangup(call, now=p.now)
    assert p.take(p.uac, CallTerminated).reason == "local hangup"
    ev = p.take(p.uas, CallTerminated)
    assert (ev.reason, ev.by_remote, ev.status) == ("cancelled", True, 487)
    p.run(1)
    assert responses(p, 200, "CANCEL") and responses(p, 487, "INVITE")
    acks = requests(p, "ACK")
    assert len(acks) == 1 and acks[0].top_via.branch == requests(p, "INVITE")[0].top_via.branch
    assert not p.events_of(p.uac, CallFailed)  # one terminal event only
    with pytest.raises(LocalProtocolError):
        p.uas.answer(inc.call, SDP_ANSWER, now=p.now)


def test_hangup_before_any_provisional_waits_to_cancel() -> None:
    p = uac_and_uas()
    p.link.latency = 0.3
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    p.uac.hangup(call, now=p.now)  # RFC 3261 9.1: no CANCEL before a provisional
    p.flush()
    assert not requests(p, "CANCEL")
    p.take(p.uas, IncomingCall)
    p.run(2)
    assert requests(p, "CANCEL")
    assert p.take(p.uas, CallTerminated).status == 487


def test_cancel_after_200_race_acks_then_byes() -> None:
    p = uac_and_uas()
    p.link.latency = 0.05
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.ringing(inc.call, now=p.now)
    p.take(p.uac, CallProgress)
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.uac.hangup(call, now=p.now)  # the CANCEL crosses the 200 on the wire
    p.run(3)
    assert responses(p, 200, "CANCEL")  # 9.2: the transaction exists: 200 to the CANCEL
    assert not responses(p, 487)  # ... but the INVITE was already answered
    assert requests(p, "ACK") and requests(p, "BYE")
    assert p.take(p.uas, CallTerminated).reason == "bye"
    assert not p.events_of(p.uac, CallAnswered)


def test_reject_busy_and_failed_event() -> None:
    p = uac_and_uas()
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.reject(inc.call, 486, now=p.now)
    ev = p.take(p.uac, CallFailed)
    assert (ev.call, ev.status, ev.reason) == (call, 486, "Busy Here")
    p.run(40)
    assert p.uas.pending()["server_transactions"] == 0 and p.uac.pending()["timers"] == 0


def test_timer_c_cancels_unanswered_call() -> None:
    p = uac_and_uas(timer_c=10.0)
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.ringing(inc.call, now=p.now)
    ev = p.take(p.uac, CallFailed)
    assert ev.status == 408 and ev.call == call
    assert p.take(p.uas, CallTerminated).reason == "cancelled"


def test_reinvite_hold_unhold() -> None:
    p = uac_and_uas()
    call, callee = establish(p)
    hold = SDP_OFFER.replace(b"1 1 IN", b"1 2 IN") + b"a=sendonly\r\n"
    p.uac.reinvite(call, hold, now=p.now)
    ev = p.take(p.uas, ReinviteReceived)
    assert ev.offer == hold
    p.uas.answer_reinvite(callee, SDP_ANSWER + b"a=recvonly\r\n", now=p.now)
    res = p.take(p.uac, ReinviteResult)
    assert res.status == 200 and res.body.endswith(b"a=recvonly\r\n")
    unhold = SDP_OFFER.replace(b"1 1 IN", b"1 3 IN")
    p.uac.reinvite(call, unhold, now=p.now)
    p.take(p.uas, ReinviteReceived)
    p.uas.answer_reinvite(callee, SDP_ANSWER, now=p.now)
    assert p.take(p.uac, ReinviteResult).status == 200
    p.run(1)
    assert len(requests(p, "ACK")) == 3
    cseqs = [r.cseq.seq for r in requests(p, "INVITE")]
    assert cseqs == [1, 2, 3]


def test_reinvite_rejected_keeps_call() -> None:
    p = uac_and_uas()
    call, callee = establish(p)
    p.uas.reinvite(callee, SDP_ANSWER.replace(b"2 1 IN", b"2 2 IN"), now=p.now)
    p.take(p.uac, ReinviteReceived)
    p.uac.reject_reinvite(call, 488, now=p.now)
    assert p.take(p.uas, ReinviteResult).status == 488
    assert p.uas.call_info(callee)["state"] == "confirmed"


def test_glare_gives_491_and_retry_succeeds() -> None:
    p = uac_and_uas()
    call, callee = establish(p)
    p.uac.reinvite(call, SDP_OFFER.replace(b"1 1 IN", b"1 2 IN"), now=p.now)
    p.uas.reinvite(callee, SDP_ANSWER.replace(b"2 1 IN", b"2 2 IN"), now=p.now)
    p.run(0.1)
    assert len(responses(p, 491)) == 2
    # Both retry after a random back-off (RFC 3261 14.1); let them and answer each.
    for _ in range(2):
        p.run_until(lambda: bool(p.events_of(p.uas, ReinviteReceived)
                                 or p.events_of(p.uac, ReinviteReceived)), timeout=10)
        for ep, ref in ((p.uas, callee), (p.uac, call)):
            if p.events_of(ep, ReinviteReceived):
                p.take(ep, ReinviteReceived)
                ep.answer_reinvite(ref, SDP_ANSWER, now=p.now)
        p.run(0.2)
    assert [e.status for e in p.events_of(p.uac, ReinviteResult)] == [200]
    assert [e.status for e in p.events_of(p.uas, ReinviteResult)] == [200]


def test_out_of_order_cseq_gets_500() -> None:
    p = uac_and_uas()
    call, _ = establish(p)
    p.uac.send_info_dtmf(call, "1", 100, now=p.now)
    p.run(0.1)
    info = requests(p, "INFO")[0]
    stale = info.serialize().replace(b"CSeq: 2 INFO", b"CSeq: 1 INFO").replace(
        info.top_via.branch.encode(), b"z9hG4bKstale")
    p.uas.receive_datagram(stale, UAC_ADDR, p.now)
    out = [parse_datagram(o.data) for o in p.uas.datagrams_to_send(p.now)]
    assert [(m.status, m.reason) for m in out] == [(500, "Out of order CSeq")]


def test_481_for_requests_outside_a_dialog() -> None:
    p = uac_and_uas()
    call, _ = establish(p)
    for method in ("BYE", "INFO", "NOTIFY", "REFER", "UPDATE", "INVITE"):
        msg = (f"{method} sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{method}x\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=zz\r\n"
               "To: <sip:bob@127.0.0.1>;tag=nosuchdialog\r\nCall-ID: nope@x\r\n"
               f"CSeq: 5 {method}\r\nContent-Length: 0\r\n\r\n").encode()
        p.uas.receive_datagram(msg, UAC_ADDR, p.now)
        (resp,) = p.uas.datagrams_to_send(p.now)
        assert parse_datagram(resp.data).status == 481, method
    # and without a To tag for the methods that need a dialog
    msg = (b"BYE sip:bob@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKq\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=zz\r\nTo: <sip:bob@127.0.0.1>\r\n"
           b"Call-ID: nope2@x\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n")
    p.uas.receive_datagram(msg, UAC_ADDR, p.now)
    (resp,) = p.uas.datagrams_to_send(p.now)
    assert parse_datagram(resp.data).status == 481
    assert p.uac.call_info(call)["state"] == "confirmed"


@pytest.mark.parametrize("ctype, body, digit, duration", [
    ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5", 160),
    ("application/dtmf-relay", b"Signal=11\r\nDuration=100\r\n", "#", 100),
    ("application/dtmf", b"5", "5", 0),
])
def test_info_dtmf_bodies(ctype: str, body: bytes, digit: str, duration: int) -> None:
    p = uac_and_uas()
    call, callee = establish(p)
    p.uac.send_info_dtmf(call, "1", 250, now=p.now)
    ev = p.take(p.uas, DtmfInfoReceived)
    assert (ev.call, ev.digit, ev.duration_ms) == (callee, "1", 250)
    # and a hand-made INFO with the given body
    info = requests(p, "INFO")[0]
    h = info.headers
    h.set("Content-Type", ctype)
    h.set("CSeq", "9 INFO")
    h.set("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKinfo9;rport")
    info.body = body
    p.uas.receive_datagram(info.serialize(), UAC_ADDR, p.now)
    ev = p.take(p.uas, DtmfInfoReceived)
    assert (ev.digit, ev.duration_ms) == (digit, duration)
    assert responses(p, 200, "INFO")


def test_refer_both_directions_with_notify_progress() -> None:
    p = uac_and_uas()
    call, callee = establish(p)
    p.uas.refer(callee, "sip:carol@127.0.0.1:5070", now=p.now)  # the callee transfers us
    ev = p.take(p.uac, ReferReceived)
    assert str(ev.refer_to.uri) == "sip:carol@127.0.0.1:5070"
    assert ev.referred_by is not None and "bob" in ev.referred_by
    p.uac.accept_refer(call, now=p.now)
    first = p.take(p.uas, ReferProgress)
    assert (first.status, first.final) == (100, False)
    p.uac.notify_refer_progress(call, 200, now=p.now)
    last = p.take(p.uas, ReferProgress)
    assert (last.status, last.final) == (200, True)
    notifies = requests(p, "NOTIFY")
    assert [n.headers.get("Subscription-State").split(";")[0] for n in notifies] == [
        "active", "terminated"]
    assert notifies[0].body == b"SIP/2.0 100 Trying\r\n"
    assert notifies[1].body == b"SIP/2.0 200 OK\r\n"
    assert notifies[0].headers.get("Event") == "refer"
    assert responses(p, 202, "REFER")
    # the referrer hangs up once the transfer succeeded
    p.uas.hangup(callee, now=p.now)
    assert p.take(p.uac, CallTerminated).by_remote


def test_refer_rejected() -> None:
    p = uac_and_uas()
    call, callee = establish(p)
    p.uac.refer(call, "sip:carol@127.0.0.1", now=p.now)
    p.take(p.uas, ReferReceived)
    p.uas.reject_refer(callee, 603, now=p.now)
    assert p.take(p.uac, ReferRejected).status == 603


def test_refer_failure_notify() -> None:
    p = uac_and_uas()
    call, callee = establish(p)
    p.uac.refer(call, "carol@127.0.0.1", now=p.now)
    p.take(p.uas, ReferReceived)
    p.uas.accept_refer(callee, now=p.now)
    p.uas.notify_refer_progress(callee, 486, now=p.now)
    p.take(p.uac, ReferProgress)
    ev = p.take(p.uac, ReferProgress)
    assert (ev.status, ev.final) == (486, True)


def test_options_in_and_out_of_dialog_and_max_forwards_zero() -> None:
    p = uac_and_uas()
    msg = (b"OPTIONS sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKopt1\r\nMax-Forwards: 70\r\n"
           b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: o1@x\r\n"
           b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    p.uas.receive_datagram(msg, UAC_ADDR, p.now)
    (out,) = p.uas.datagrams_to_send(p.now)
    resp = parse_datagram(out.data)
    assert resp.status == 200
    assert "INVITE" in resp.tokens("Allow") and "timer" in resp.tokens("Supported")
    assert resp.headers.get("Accept") == "application/sdp"
    assert isinstance(p.uas.next_event(), OptionsReceived)
    p.uas.receive_datagram(msg.replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
                           .replace(b"opt1", b"opt2"), UAC_ADDR, p.now)
    (out,) = p.uas.datagrams_to_send(p.now)
    assert parse_datagram(out.data).status == 483


def test_update_without_and_with_offer() -> None:
    p = uac_and_uas()
    call, callee = establish(p)
    p.uac.update(call, now=p.now)
    assert p.take(p.uas, UpdateReceived).offer is None
    p.run(0.1)
    assert responses(p, 200, "UPDATE")
    new_offer = SDP_OFFER.replace(b"1 1 IN", b"1 2 IN")
    p.uac.update(call, new_offer, now=p.now)
    ev = p.take(p.uas, UpdateReceived)
    assert ev.offer == new_offer
    p.uas.answer_update(callee, SDP_ANSWER, now=p.now)
    p.run(0.1)
    assert responses(p, 200, "UPDATE")[-1].body == SDP_ANSWER


def test_session_timer_refresh_by_uac_and_expiry_when_peer_silent() -> None:
    p = uac_and_uas(session_expires=120, min_se=90)
    call, callee = establish(p)
    info = p.uac.call_info(call)
    assert info["session_expires"] == 120 and info["we_refresh"] is True  # refresher=uac
    assert p.uas.call_info(callee)["we_refresh"] is False
    t0 = p.now
    p.run(61)
    ups = requests(p, "UPDATE")  # the peer allows UPDATE: refresh by UPDATE at half-time
    assert len(ups) == 1
    assert abs(next(t for t, _, d in p.link.log if d.startswith(b"UPDATE")) - (t0 + 60)) < 0.02
    p.run(600)
    assert p.uas.call_info(callee)["state"] == "confirmed"  # refreshes keep it alive
    assert len(requests(p, "UPDATE")) >= 10
    # now the refresher goes silent: the peer sends BYE before expiry (RFC 4028 10)
    p.link.drop_filter = lambda out: out.data.startswith(b"UPDATE")
    p.run(100)
    ev = p.take(p.uas, CallTerminated)
    assert ev.reason == "session timer expired"
    assert p.take(p.uac, CallTerminated).by_remote


def test_session_timer_refresh_by_reinvite_when_peer_has_no_update() -> None:
    p = uac_and_uas(session_expires=100, min_se=90)
    call, _ = establish(p)
    leg = p.uac._calls[call]
    leg.peer_allow = frozenset({"INVITE", "ACK", "BYE"})
    p.run(51)
    reinv = requests(p, "INVITE")
    assert len(reinv) == 2 and reinv[1].body == SDP_OFFER
    assert reinv[1].headers.get("Session-Expires") == "100;refresher=uac"
    p.run(1)
    # an unchanged offer is answered automatically with the previous answer (RFC 3264 8)
    assert not p.events_of(p.uas, ReinviteReceived)
    assert not p.events_of(p.uac, ReinviteResult)
    assert responses(p, 200, "INVITE")[-1].body == SDP_ANSWER


def test_session_expires_too_small_gets_422_and_uac_retries() -> None:
    uac_cfg = uac_and_uas(session_expires=60, min_se=30).uac.config
    p = uac_and_uas(uac_config=uac_cfg, min_se=90)
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    assert responses(p, 422)[0].headers.get("Min-SE") == "90"
    assert inc.request.headers.get("Session-Expires") == "90"
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    assert p.uac.call_info(call)["session_expires"] == 90


def test_info_on_terminated_call_is_refused_locally() -> None:
    p = uac_and_uas()
    call, _ = establish(p)
    p.uac.hangup(call, now=p.now)
    with pytest.raises(LocalProtocolError):
        p.uac.send_info_dtmf(call, "1", 100, now=p.now)
    with pytest.raises(LocalProtocolError):
        p.uac.hangup("call-999", now=p.now)  # type: ignore[arg-type]


def test_unanswered_inbound_call_is_released_by_the_ring_guard() -> None:
    p = uac_and_uas(timer_c=10.0)
    p.link.drop_filter = lambda out: out.data.startswith(b"CANCEL")  # the caller's CANCEL is lost
    p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.ringing(inc.call, now=p.now)
    ev = p.take(p.uas, CallTerminated)
    assert (ev.reason, ev.status) == ("not answered", 480)
    p.run(100)
    assert p.uas.pending()["calls"] == 0 and p.uac.pending()["calls"] == 0
