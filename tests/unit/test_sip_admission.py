"""Overload control (issue 12 finding 4), sans-IO on a fake clock."""

from __future__ import annotations

import random

from telephony.sip.admission import AdmissionConfig, AdmissionControl, TokenBucket
from telephony.sip.config import SipConfig
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import IncomingCall
from telephony.sip.headers import Via
from telephony.sip.message import SipResponse, parse_datagram
from tests.unit.test_sip_auth_hardening import invite

A, B = "192.0.2.10", "198.51.100.7"


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(10.0, 5.0, now=0.0)
    assert [bucket.take(now=0.0) for _ in range(6)] == [True] * 5 + [False]
    assert abs(bucket.wait(now=0.0) - 0.1) < 1e-9
    assert not bucket.take(now=0.05) and bucket.take(now=0.1)
    assert bucket.take(now=100.0) and bucket.tokens <= 5.0  # never above the burst


def test_node_rate_admits_the_rate_and_refuses_the_rest() -> None:
    ctl = AdmissionControl(AdmissionConfig(max_calls=None, calls_per_second=100.0,
                                           max_tick_lateness=None))
    admitted = 0
    now = 0.0
    for _ in range(2000 * 3):  # 2,000 INVITE/s for 3 s
        admitted += ctl.admit(A, now=now, active_calls=0).admitted
        now += 1 / 2000
    assert 395 <= admitted <= 401  # 100 of burst + 100/s for 3 s
    ctl.admit(A, now=now, active_calls=0)  # spends a token refilled since, if any
    refusal = ctl.admit(A, now=now, active_calls=0)
    assert refusal.reason == "node_rate" and refusal.retry_after == 1


def test_per_source_rate_leaves_other_sources_alone() -> None:
    ctl = AdmissionControl(AdmissionConfig(source_calls_per_second=2.0, max_tick_lateness=None))
    assert [ctl.admit(A, now=0.0, active_calls=0).admitted for _ in range(3)] == [True, True, False]
    assert ctl.admit(A, now=0.0, active_calls=0).reason == "source_rate"
    assert ctl.admit(B, now=0.0, active_calls=0).admitted
    assert ctl.admit(A, now=0.5, active_calls=0).admitted


def test_max_calls() -> None:
    ctl = AdmissionControl(AdmissionConfig(max_calls=3, retry_after=7))
    assert ctl.admit(A, now=0.0, active_calls=2).admitted
    refusal = ctl.admit(A, now=0.0, active_calls=3)
    assert (refusal.admitted, refusal.reason, refusal.retry_after) == (False, "max_calls", 7)


def test_tick_lateness_is_smoothed_and_decays() -> None:
    ctl = AdmissionControl(AdmissionConfig(max_tick_lateness=0.010, lateness_tau=0.5))
    now = 0.0
    for _ in range(50):  # one second of punctual ticks
        ctl.observe_lateness(0.001, now=now)
        now += 0.02
    ctl.observe_lateness(0.080, now=now)  # one bad tick does not refuse calls
    assert ctl.admit(A, now=now, active_calls=0).admitted
    for _ in range(50):  # a second of ticks 30 ms late does
        now += 0.02
        ctl.observe_lateness(0.030, now=now)
    assert ctl.admit(A, now=now, active_calls=0).reason == "tick_lateness"
    # the tick stops reporting (no calls up): the signal decays and calls come in again
    assert ctl.admit(A, now=now + 2.0, active_calls=0).admitted


def statuses(ep: SipEndpoint) -> list[SipResponse]:
    out = [parse_datagram(o.data) for o in ep.datagrams_to_send(0.0)]
    return [m for m in out if isinstance(m, SipResponse)]


def test_endpoint_answers_503_with_retry_after_before_any_leg_and_options_still_answer() -> None:
    cfg = SipConfig(admission=AdmissionConfig(max_calls=2, calls_per_second=None))
    ep = SipEndpoint(cfg, rng=random.Random(3))
    for n in range(5):
        ep.receive_datagram(invite(n), (A, 5060), 0.0)
    got = statuses(ep)
    assert [r.status for r in got] == [100, 100, 503, 503, 503]
    assert all(r.headers.get("Retry-After") == "5" for r in got if r.status == 503)
    assert ep.live_calls() == 2 and ep.stats["overload_max_calls"] == 3
    events = [ep.next_event(), ep.next_event(), ep.next_event()]
    assert [type(e) for e in events] == [IncomingCall, IncomingCall, type(None)]
    options = (f"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bKo1\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:mon@{A}>;tag=m\r\nTo: <sip:ivr@127.0.0.1>\r\n"
               "Call-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
    ep.receive_datagram(options, (A, 5060), 0.0)
    assert [r.status for r in statuses(ep)] == [200]
    # a call ending makes room again
    first = events[0]
    assert isinstance(first, IncomingCall)
    ep.reject(first.call, 486, now=0.1)
    statuses(ep)
    ep.receive_datagram(invite(9), (A, 5060), 0.2)
    assert [r.status for r in statuses(ep)] == [100]


def test_refusals_are_stateless_so_a_flood_holds_nothing() -> None:
    """benchmarks/bench_defences_flood.py: answered through transactions, the 503s of a
    2,000 INVITE/s flood kept ~30,000 requests and responses alive for 5-32 s (timers H, I);
    the collector's full passes over them stalled the loop for up to 440 ms.  A refusal is
    now a stateless 503 (RFC 3261 8.2.7): nothing kept, nothing retransmitted, the same To
    tag for a retransmitted INVITE, its ACK ignored."""
    cfg = SipConfig(admission=AdmissionConfig(max_calls=None, calls_per_second=10.0,
                                              max_tick_lateness=None))
    ep = SipEndpoint(cfg, rng=random.Random(5))
    now = 0.0
    for n in range(2000):  # one second at 2,000 INVITE/s
        ep.receive_datagram(invite(n), (A, 5060), now)
        now += 0.0005
    got = statuses(ep)
    refused = [r for r in got if r.status == 503]
    assert len(refused) == 2000 - 19 and [r.status for r in got].count(100) == 19  # 10 + 9/s
    assert all(r.headers.get("Retry-After") == "1" and r.to.tag for r in refused)
    assert ep.stats["responded_statelessly"] == len(refused) == ep.stats["overload_node_rate"]
    assert ep.pending()["server_transactions"] == 19  # the admitted calls' only
    # no retransmission of a 503 (timer G would fire at T1 = 0.5 s)
    ep.handle_timer(now + 1.0)
    assert [r for r in statuses(ep) if r.status == 503] == []
    # a retransmitted refused INVITE is refused again with the same To tag
    last = refused[-1]
    n = int(last.call_id.split("-")[1].split("@")[0])
    ep.receive_datagram(invite(n), (A, 5060), now)
    again = statuses(ep)
    assert [r.status for r in again] == [503] and again[0].to.tag == last.to.tag
    # and its ACK finds no transaction and is ignored, creating nothing
    ack = (f"ACK sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK-{n}-x\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:bob@{A}>;tag=f{n}\r\n"
           f"To: <sip:ivr@127.0.0.1>;tag={last.to.tag}\r\nCall-ID: call-{n}@{A}\r\n"
           "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
    ep.receive_datagram(ack, (A, 5060), now)
    assert statuses(ep) == [] and ep.pending()["server_transactions"] == 19
    assert ep.stats["acks_absorbed"] == 1


def test_raw_refusal_copies_the_headers_and_leaves_anything_unusual_to_the_parser() -> None:
    """The refusal is decided and answered before the INVITE is parsed (about a tenth of
    the cost); what the raw path cannot vouch for goes the full way."""
    cfg = SipConfig(admission=AdmissionConfig(max_calls=None, calls_per_second=1.0,
                                              burst=1.0, max_tick_lateness=None))
    ep = SipEndpoint(cfg, rng=random.Random(7))
    ep.receive_datagram(invite(1), (A, 5070), 0.0)  # the one token
    assert [r.status for r in statuses(ep)] == [100]
    # its retransmission is absorbed by its transaction and spends no token
    ep.receive_datagram(invite(1), (A, 5070), 0.01)
    assert [r.status for r in statuses(ep)] == [100]
    # compact forms, two Via hops, no rport: refused raw, every header copied
    compact = (f"INVITE sip:ivr@127.0.0.1 SIP/2.0\r\n"
               f"v: SIP/2.0/UDP {B}:5062;branch=z9hG4bK-c2, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
               f"Max-Forwards: 70\r\nf: \"Bob\" <sip:bob@{B}>;tag=fc\r\nt: <sip:ivr@127.0.0.1>\r\n"
               f"i: compact-1@{B}\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    ep.receive_datagram(compact, (A, 5070), 0.02)
    out = ep.datagrams_to_send(0.02)
    assert len(out) == 1 and out[0].addr == (A, 5062)  # received= the source, the Via's port
    resp = parse_datagram(out[0].data)
    assert isinstance(resp, SipResponse) and resp.status == 503
    assert resp.headers.get("Retry-After") == "1" and resp.cseq.seq == 7
    assert resp.call_id == f"compact-1@{B}" and resp.from_.tag == "fc"
    assert resp.top_via.params.get("received") == A and resp.top_via.branch == "z9hG4bK-c2"
    assert [str(v.host) for v in map(Via.parse, resp.headers.get_all("Via"))] == [B, "10.0.0.1"]
    assert resp.to.tag is not None and resp.to.tag.startswith("sl")
    assert ep.stats["responded_statelessly"] == 1 and ep.pending()["server_transactions"] == 1
    # a folded header line: the parser decides (and refuses it statelessly too, same tag)
    folded = compact.replace(b"CSeq: 7 INVITE", b"CSeq:\r\n 7 INVITE")
    ep.receive_datagram(folded, (A, 5070), 0.03)
    again = statuses(ep)
    assert [r.status for r in again] == [503] and again[0].to.tag == resp.to.tag
    assert ep.stats["responded_statelessly"] == 2 and ep.pending()["server_transactions"] == 1
    # no CSeq: no 503 made of raw lines; the parser drops it (nothing to answer along)
    dropped = ep.stats["dropped_malformed"]
    ep.receive_datagram(compact.replace(b"CSeq: 7 INVITE\r\n", b""), (A, 5070), 0.04)
    assert statuses(ep) == [] and ep.stats["dropped_malformed"] == dropped + 1
    # a bare LF inside a header value is never echoed into a raw 503: the parser decides
    raw_before = ep.stats["responded_statelessly"]
    smuggled = compact.replace(b"i: compact-1@", b"i: compact-2\nX-Evil: 1@")
    ep.receive_datagram(smuggled, (A, 5070), 0.05)
    assert all(b"X-Evil" not in o.data for o in ep.datagrams_to_send(0.05))
    assert ep.stats["responded_statelessly"] <= raw_before + 1
