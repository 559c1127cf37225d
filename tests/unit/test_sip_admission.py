"""Overload control (issue 12 finding 4), sans-IO on a fake clock."""

from __future__ import annotations

import random

from telephony.sip.admission import AdmissionConfig, AdmissionControl, TokenBucket
from telephony.sip.config import SipConfig
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import IncomingCall
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
