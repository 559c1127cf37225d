"""Hypothesis fuzz: only typed errors (SipParseError and subclasses) leave the parser; nothing
at all leaves the endpoint's receive_datagram, fresh or in the middle of a call."""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.errors import SipParseError
from telephony.sip.config import SipConfig
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import CallAnswered, CallConfirmed, IncomingCall, ReferReceived
from telephony.sip.message import SipStreamParser, parse_datagram
from tests.sip_pair import SDP_ANSWER, SDP_OFFER, TARGET, UAC_ADDR, SipPair, uac_and_uas

FIXTURES = [p.read_bytes() for p in
            sorted((Path(__file__).parent.parent / "fixtures" / "sip").glob("*.txt"))]
SIP_CHARS = ':;,<>"@=/ \t\r\n\\?[]sipSIP2.0zbK9hG4tagbranchrportViaToFromCSeqContact-Length-_*%'
FUZZ = settings(max_examples=int(__import__("os").environ.get("SIP_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mutated(draw: st.DrawFn, corpus: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "insert_sip", "truncate", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 20))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        elif op == "insert_sip":
            data[pos:pos] = draw(st.text(SIP_CHARS, min_size=1, max_size=20)).encode()
        elif op == "truncate":
            del data[pos:]
        elif op == "dup":
            end = data.find(b"\r\n", pos)
            start = data.rfind(b"\r\n", 0, pos)
            if 0 <= start < end:
                data[end:end] = data[start:end]
    return bytes(data)


def parse_only_typed_errors(data: bytes) -> None:
    try:
        msg = parse_datagram(data)
    except SipParseError:
        return
    # the typed views may refuse a header, but only with the typed error
    for view in ("vias", "from_", "to", "call_id", "cseq", "contacts", "routes",
                 "record_routes", "max_forwards", "content_type", "expires", "refer_to"):
        try:
            getattr(msg, view)
        except SipParseError:
            pass
    parse_datagram(msg.serialize())


@FUZZ
@given(st.binary(max_size=1500))
def test_parser_on_random_bytes(data: bytes) -> None:
    parse_only_typed_errors(data)


@FUZZ
@given(mutated(FIXTURES))
def test_parser_on_mutated_fixtures(data: bytes) -> None:
    parse_only_typed_errors(data)
    sp = SipStreamParser()
    try:
        sp.feed(data)
        list(sp.messages())
    except SipParseError:
        pass


@FUZZ
@given(mutated(FIXTURES))
def test_fresh_endpoint_never_raises(data: bytes) -> None:
    ep = SipEndpoint(SipConfig(port=5090), rng=random.Random(1))
    ep.receive_datagram(data, ("127.0.0.1", 5091), 1.0)
    ep.receive_datagram(data, ("127.0.0.1", 5091), 1.1, transport="tcp")
    while (t := ep.get_timer()) is not None and t < 100:
        ep.handle_timer(t)
    for out in ep.datagrams_to_send(100.0):
        parse_datagram(out.data)  # whatever we answer parses


def established() -> tuple[SipPair, str, str]:
    p = uac_and_uas()
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    inc = p.take(p.uas, IncomingCall)
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    p.take(p.uas, CallConfirmed)
    return p, call, inc.call


@lru_cache(maxsize=1)
def in_dialog_corpus() -> list[bytes]:
    """Every message of a call with re-INVITE, INFO, REFER/NOTIFY, UPDATE, BYE (same seeds,
    so its Call-ID and tags match every freshly established pair)."""
    p, call, callee = established()
    p.uac.send_info_dtmf(call, "5", 160, now=p.now)
    p.uac.update(call, now=p.now)
    p.uac.reinvite(call, SDP_OFFER.replace(b"1 1 IN", b"1 2 IN"), now=p.now)
    p.run(0.1)
    p.uas.answer_reinvite(callee, SDP_ANSWER, now=p.now)
    p.uac.refer(call, "sip:carol@127.0.0.1", now=p.now)
    p.take(p.uas, ReferReceived)
    p.uas.accept_refer(callee, now=p.now)
    p.uas.notify_refer_progress(callee, 200, now=p.now)
    p.run(0.1)
    p.uac.hangup(call, now=p.now)
    p.run(1)
    return [d for _, _, d in p.link.log]


@settings(max_examples=int(__import__("os").environ.get("SIP_FUZZ_EXAMPLES", "120")), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_endpoint_in_a_call_never_raises(data: st.DataObject) -> None:
    corpus = in_dialog_corpus()
    fuzzed = data.draw(mutated(corpus))
    p, _, _ = established()
    p.uas.receive_datagram(fuzzed, UAC_ADDR, p.now)
    p.uac.receive_datagram(fuzzed, ("127.0.0.1", 5062), p.now)
    p.run(70)
    p.uac.close(now=p.now)
    p.run(70)
    assert p.uac.pending()["client_transactions"] == 0
