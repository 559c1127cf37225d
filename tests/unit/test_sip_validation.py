"""RFC 3261 8.2 request validation by the endpoint: 400 naming the problem, 505, 501/405,
416, 420, 415, 483, oversize and garbage dropped and counted, received/rport stamping."""

from __future__ import annotations

import random

import pytest

from telephony.sip.config import SipConfig
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.message import SipResponse, parse_datagram

SRC = ("127.0.0.1", 5099)

GOOD = (
    "OPTIONS sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKval1;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:a@127.0.0.1>;tag=f1\r\n"
    "To: <sip:bob@127.0.0.1>\r\n"
    "Call-ID: val@x\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


def endpoint(**kw: object) -> SipEndpoint:
    return SipEndpoint(SipConfig(port=5062, **kw), rng=random.Random(1))  # type: ignore[arg-type]


def answer(ep: SipEndpoint, data: bytes) -> list[SipResponse]:
    ep.receive_datagram(data, SRC, 1.0)
    out = []
    for o in ep.datagrams_to_send(1.0):
        assert o.addr == SRC  # rport: back to the source address (RFC 3581)
        msg = parse_datagram(o.data)
        assert isinstance(msg, SipResponse)
        out.append(msg)
    return out


def test_good_options_gets_200_with_received_and_rport() -> None:
    (resp,) = answer(endpoint(), GOOD.encode())
    assert resp.status == 200
    via = resp.top_via
    assert via.params["received"] == "127.0.0.1" and via.params["rport"] == "5099"
    assert resp.to.tag


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: m.replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS"), "Bad CSeq"),
    (lambda m: m.replace("From: <sip:a@127.0.0.1>;tag=f1\r\n", ""), "Missing From"),
    (lambda m: m.replace("Max-Forwards: 70", "Max-Forwards: lots"), "Bad Max-Forwards"),
    (lambda m: m.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"), "CSeq method does not match"),
    (lambda m: m.replace("To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1"), "Unclosed"),
    (lambda m: m.replace("Content-Length: 0", "Content-Length: 40"), "Content-Length larger"),
    (lambda m: m.replace("Content-Length: 0", "Content-Length: x"), "Bad Content-Length"),
    (lambda m: m.replace("Max-Forwards: 70\r\n", "Max-Forwards 70\r\n"), "Malformed header line"),
    (lambda m: m.replace("sip:bob@127.0.0.1:5062 SIP", "sip:bob@127.0.0.1:99999 SIP"),
     "Bad Request-URI"),
])
def test_malformed_request_gets_400_with_reason(mutate, reason: str) -> None:
    ep = endpoint()
    (resp,) = answer(ep, mutate(GOOD).encode())
    assert resp.status == 400
    assert reason in resp.reason
    assert resp.call_id == "val@x"
    assert ep.stats["responded_400"] == 1


def test_wrong_version_gets_505() -> None:
    ep = endpoint()
    (resp,) = answer(ep, GOOD.replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1).encode())
    assert resp.status == 505


@pytest.mark.parametrize("method, status", [("FROB", 501), ("SUBSCRIBE", 405),
                                            ("REGISTER", 405)])
def test_unknown_or_unsupported_methods(method: str, status: int) -> None:
    (resp,) = answer(endpoint(), GOOD.replace("OPTIONS", method).encode())
    assert resp.status == status
    assert "INVITE" in resp.tokens("Allow")


def test_non_sip_uri_gets_416() -> None:
    (resp,) = answer(endpoint(), GOOD.replace("sip:bob@127.0.0.1:5062 SIP", "tel:+123 SIP")
                     .encode())
    assert resp.status == 416


def test_unknown_require_gets_420() -> None:
    (resp,) = answer(endpoint(), GOOD.replace("Max-Forwards", "Require: 100rel, timer\r\n"
                                              "Max-Forwards").encode())
    assert resp.status == 420 and resp.headers.get("Unsupported") == "100rel"


def test_invite_with_non_sdp_body_gets_415() -> None:
    inv = GOOD.replace("OPTIONS", "INVITE").replace(
        "Content-Length: 0\r\n\r\n", "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")
    responses = answer(endpoint(), inv.encode())
    assert responses[-1].status == 415


def test_garbage_is_dropped_and_counted() -> None:
    ep = endpoint()
    for junk in (b"\x00\xff garbage", b"HELLO\r\n\r\n", b"INVITE\r\n\r\n", b"SIP/2.0 abc\r\n\r\n",
                 GOOD.replace("Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKval1;rport\r\n",
                              "").encode()):
        assert answer(ep, junk) == []
    assert ep.stats["dropped_malformed"] == 5
    assert answer(ep, b"\r\n\r\n") == [] and ep.stats["keepalives"] == 1


def test_oversized_message_dropped() -> None:
    ep = endpoint(max_message_size=1000)
    big = GOOD.replace("Content-Length: 0\r\n\r\n", "Content-Length: 2000\r\n\r\n") + "x" * 2000
    assert answer(ep, big.encode()) == []
    assert ep.stats["dropped_oversize"] == 1


def test_stray_responses_dropped() -> None:
    ep = endpoint()
    resp = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKnope\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: s@x\r\nCSeq: 1 BYE\r\n"
            b"Content-Length: 0\r\n\r\n")
    assert answer(ep, resp) == []
    assert ep.stats["dropped_stray_response"] == 1


def test_cancel_without_invite_gets_481() -> None:
    (resp,) = answer(endpoint(), GOOD.replace("OPTIONS", "CANCEL").encode())
    assert resp.status == 481


def test_via_without_rport_answers_to_sent_by() -> None:
    ep = endpoint()
    ep.receive_datagram(GOOD.replace(";rport", "").encode(), SRC, 1.0)
    (out,) = ep.datagrams_to_send(1.0)
    assert out.addr == ("127.0.0.1", 5060)  # received (source IP) + sent-by port (18.2.2)
    assert parse_datagram(out.data).top_via.params["received"] == "127.0.0.1"


def test_tcp_responses_go_back_on_the_connection() -> None:
    ep = endpoint()
    ep.receive_datagram(GOOD.replace("UDP", "TCP").replace(";rport", "").encode(), SRC, 1.0,
                        transport="tcp")
    (out,) = ep.datagrams_to_send(1.0)
    assert out.addr == SRC and out.transport == "tcp"
