"""Dialogs (RFC 3261 12): route sets from Record-Route, loose and strict routing, remote
target refresh, forked 2xx, and a call over TCP (no retransmissions, Via/Contact transport)."""

from __future__ import annotations

from telephony.sip.dialog import Dialog, DialogState
from telephony.sip.events import CallAnswered, CallConfirmed, IncomingCall
from telephony.sip.message import SipRequest, SipResponse, make_response, parse_datagram
from tests.sip_pair import SDP_ANSWER, SDP_OFFER, TARGET, UAS_ADDR, uac_and_uas

INVITE = (b"INVITE sip:bob@192.0.2.5 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKd1\r\nMax-Forwards: 70\r\n"
          b"From: <sip:alice@a.example>;tag=al\r\nTo: <sip:bob@b.example>\r\n"
          b"Call-ID: dlg@x\r\nCSeq: 4 INVITE\r\nContact: <sip:alice@127.0.0.1:5061>\r\n"
          b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
          b"Content-Length: 0\r\n\r\n")


def test_uas_and_uac_route_sets_mirror_each_other() -> None:
    req = parse_datagram(INVITE)
    assert isinstance(req, SipRequest)
    uas = Dialog.from_uas(req, local_tag="bt", transport="udp", remote_addr=("127.0.0.1", 5061))
    assert uas.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert uas.remote_seq == 4 and uas.state is DialogState.EARLY
    resp = make_response(req, 200, to_tag="bt",
                         headers=[("Contact", "<sip:bob@192.0.2.5:5062>")])
    uac = Dialog.from_uac(req, resp, transport="udp", remote_addr=("192.0.2.5", 5060))
    assert uac.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]  # reversed
    assert str(uac.remote_target) == "sip:bob@192.0.2.5:5062" and uac.remote_tag == "bt"
    bye = uac.create_request("BYE", via="SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKb")
    assert str(bye.uri) == "sip:bob@192.0.2.5:5062"  # loose routing: R-URI = remote target
    assert bye.headers.get_all("Route") == uac.route_set
    assert bye.cseq.seq == 5
    # the next hop is the first route; a name there falls back to the known address
    assert uac.destination() == (("192.0.2.5", 5060), "udp")


def test_strict_route_becomes_request_uri() -> None:
    req = parse_datagram(INVITE.replace(b"<sip:p1.example;lr>, <sip:p2.example;lr>",
                                        b"<sip:10.0.0.1:5070>"))
    assert isinstance(req, SipRequest)
    d = Dialog.from_uas(req, local_tag="bt", transport="udp", remote_addr=("127.0.0.1", 5061))
    bye = d.create_request("BYE", via="SIP/2.0/UDP h;branch=z9hG4bKs")
    assert str(bye.uri) == "sip:10.0.0.1:5070"
    assert bye.headers.get_all("Route") == ["<sip:alice@127.0.0.1:5061>"]
    assert d.destination() == (("10.0.0.1", 5070), "udp")


def test_second_fork_2xx_is_acked_and_byed() -> None:
    p = uac_and_uas()
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    ok = next(parse_datagram(d) for _, _, d in p.link.log if d.startswith(b"SIP/2.0 200"))
    assert isinstance(ok, SipResponse)
    fork = ok.serialize().replace(ok.to.tag.encode(), b"fork2")
    p.uac.receive_datagram(fork, UAS_ADDR, p.now)
    sent = [parse_datagram(o.data) for o in p.uac.datagrams_to_send(p.now)]
    assert [m.method for m in sent] == ["ACK", "BYE"]
    assert all(m.to.tag == "fork2" for m in sent)
    assert p.uac.call_info(call)["remote_tag"] == ok.to.tag  # the first answer keeps the call


def test_call_over_tcp() -> None:
    p = uac_and_uas(transport="tcp")
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    p.take(p.uas, CallConfirmed)
    p.uac.hangup(call, now=p.now)
    p.run(40)
    msgs = [parse_datagram(d) for _, _, d in p.link.log]
    assert all(m.top_via.transport == "TCP" for m in msgs)
    assert "transport=tcp" in msgs[0].headers.get("Contact")
    assert p.uac.stats["retransmissions"] == 0
    assert p.uac.pending()["client_transactions"] == 0
