"""What the outbound path no longer recomputes (issue 14, the SIP path of an attempt) is still
what it would compute: typed header values shared between messages, the header index, our
Via and From primed, a dialog's From/To formatted once, SDP offers stamped in place."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from telephony.sdp import SdpSession, SessionDescription, answer_offer, build_offer
from telephony.sip import message as sipmsg
from telephony.sip.config import SipConfig
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import CallAnswered
from telephony.sip.headers import NameAddr, Via
from telephony.sip.message import Headers, parse_datagram, share_view, shared_view

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sip"


def test_responses_of_one_call_share_their_parsed_values() -> None:
    ok = (FIXTURES / "sipp_uas_200_invite.txt").read_bytes()
    ringing = (FIXTURES / "sipp_uas_180_ringing.txt").read_bytes()
    a, b = parse_datagram(ok), parse_datagram(ok)
    assert a.from_ is b.from_ and a.top_via is b.top_via and a.cseq is b.cseq
    # the same values a fresh parse gives, and vias[0] is the top Via
    assert a.from_ == NameAddr.parse(a.headers.get("From") or "")
    assert a.vias[0] is a.top_via
    r = parse_datagram(ringing)
    assert r.to == NameAddr.parse(r.headers.get("To") or "")


def test_an_edited_header_is_parsed_again() -> None:
    msg = parse_datagram((FIXTURES / "sipp_uas_200_invite.txt").read_bytes())
    assert msg.to.tag == "3363SIPpTag011"
    msg.headers.set("To", "<sip:service@127.0.0.1:5093>;tag=other")
    assert msg.to.tag == "other"
    msg.headers.items[0] = ("Via", "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKedited")
    msg.headers.changed()
    assert msg.top_via.host == "10.0.0.9" and msg.top_via.branch == "z9hG4bKedited"


def test_the_shared_memo_is_bounded_and_keeps_what_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sipmsg, "_SHARED_VIEWS", {})
    monkeypatch.setattr(sipmsg, "_OLD_VIEWS", {})
    monkeypatch.setattr(sipmsg, "_SHARED_VIEWS_MAX", 4)
    share_view("cseq", "keep", 1)
    for i in range(3):
        share_view("cseq", str(i), i)
    share_view("cseq", "3", 3)  # the young generation was full: it became the old one
    assert shared_view(("cseq", "keep")) == 1  # found in the old one: moved back
    for i in range(4, 9):
        share_view("cseq", str(i), i)
    assert len(sipmsg._SHARED_VIEWS) + len(sipmsg._OLD_VIEWS) <= 8
    assert shared_view(("cseq", "0")) is None  # two generations ago: gone


def test_headers_index_follows_every_change() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("v", "SIP/2.0/UDP b;branch=z9hG4bK2")])
    assert h.get("via") == "SIP/2.0/UDP a;branch=z9hG4bK1" and len(h.get_all("Via")) == 2
    h.prepend("Via", "SIP/2.0/UDP c;branch=z9hG4bK3")
    assert h.get("Via") == "SIP/2.0/UDP c;branch=z9hG4bK3"
    h.add("Contact", "<sip:x@y>")
    assert h.get("m") == "<sip:x@y>"
    h.remove("Contact")
    assert h.get("Contact") is None and h.get_all("Contact") == []
    assert h.get_all("Call-ID") == [] and h.get("Call-ID", "none") == "none"


@pytest.mark.parametrize("host", ["127.0.0.1", "pbx.example.com", "::1"])
def test_our_via_primed_value_is_what_parsing_gives(host: str) -> None:
    ep = SipEndpoint(SipConfig(host=host, port=5070), rng=random.Random(3))
    text = ep.via_value("udp")
    primed = shared_view(("via", text))
    if ":" in host:
        assert primed is None  # IPv6: left to the parser
    else:
        assert primed == Via.parse(text)


@pytest.mark.parametrize("caller", [None, "+442079460000", "sip:alice;x=1@example.com:5080"])
def test_our_from_primed_value_and_dialog_headers(caller: str | None) -> None:
    uac = SipEndpoint(SipConfig(host="127.0.0.1", port=5061, username="dialtone"),
                      rng=random.Random(5))
    uas = SipEndpoint(SipConfig(host="127.0.0.1", port=5062, username="bob"),
                      rng=random.Random(6))
    from_uri = None if caller is None else (caller if ":" in caller else
                                            f"sip:{caller}@127.0.0.1:5061")
    sdp = build_offer(address="127.0.0.1", port=4000, session_id=1, version=0)
    ref = uac.invite("sip:bob@127.0.0.1:5062", body=sdp.serialize().encode(), now=0.0,
                     from_uri=from_uri)
    (out,) = uac.datagrams_to_send(0.0)
    invite = parse_datagram(out.data)
    frm = invite.headers.get("From") or ""
    primed = shared_view(("na", frm))
    assert primed is None or primed == NameAddr.parse(frm)
    uas.receive_datagram(out.data, ("127.0.0.1", 5061), 0.0)
    inc = uas.next_event()
    uas.answer(inc.call, sdp.serialize().encode(), now=0.0)  # type: ignore[union-attr]
    for o in uas.datagrams_to_send(0.0):
        uac.receive_datagram(o.data, ("127.0.0.1", 5062), 0.0)
    assert any(isinstance(e, CallAnswered) for e in iter(uac.next_event, None))
    uac.hangup(ref, now=0.1)
    sent = [parse_datagram(o.data) for o in uac.datagrams_to_send(0.1)]
    ack, bye = [m for m in sent if m.is_request]
    for req in (ack, bye):  # the dialog's From/To, formatted once, are the INVITE's
        assert req.headers.get("From") == frm
        assert req.to.uri == invite.to.uri and req.to.tag
    assert bye.cseq.seq == 2 and ack.cseq.seq == 1


@pytest.mark.parametrize("codecs", [("PCMU", "PCMA"), ("PCMA",), ("PCMU", "G722", "opus/48000/2")])
@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "0.0.0.0", "media.example.com"])
@pytest.mark.parametrize("direction", ["sendrecv", "sendonly", "inactive"])
def test_sdp_offer_and_answer_stamped_in_place_equal_a_stamped_copy(
        codecs: tuple[str, ...], address: str, direction: str) -> None:
    fast, slow = SdpSession(session_id=77, username="dialtone"), SdpSession(session_id=77,
                                                                         username="dialtone")
    for port in (4000, 4000, 4002):  # same body (version kept), then a change (version + 1)
        kw = {"address": address, "port": port, "codecs": codecs, "direction": direction}
        a = fast.build_offer(**kw)  # type: ignore[arg-type]
        b = slow.stamp(build_offer(session_id=77, version=slow.version, username="dialtone",
                                   **kw))  # type: ignore[arg-type]
        assert a == b and a.serialize() == b.serialize() and fast.version == slow.version
    offer = SessionDescription.parse(a.serialize())
    x = fast.answer_offer(offer, address=address, port=5000)
    y0 = answer_offer(offer, address=address, port=5000, session_id=77, version=slow.version,
                      username="dialtone")
    assert x[0] == slow.stamp(y0[0]) and x[1] == y0[1]
