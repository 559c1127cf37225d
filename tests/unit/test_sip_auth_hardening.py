"""Digest hardening (issue 12 finding 6) on a fake clock: replays refused, nonces bound to
the source they were issued to, a source locked out after 10 failures in 60 s."""

from __future__ import annotations

import random

from telephony.sip.auth import (
    AuthFailureLimiter,
    DigestAuthorization,
    DigestClient,
    DigestCredentials,
    DigestServer,
    VerifyStatus,
)
from telephony.sip.config import SipConfig
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import IncomingCall
from telephony.sip.message import SipResponse, parse_datagram

URI = "sip:ivr@127.0.0.1:5080"
A = "192.0.2.10"
B = "198.51.100.7"


def server(**kw: object) -> DigestServer:
    return DigestServer("dialtone.test", {"alice": "wonderland"}.get,  # type: ignore[arg-type]
                        nonce_secret=b"k" * 32, **kw)


def test_replayed_authorization_is_refused() -> None:
    srv = server()
    client = DigestClient(DigestCredentials("alice", "wonderland"))
    value = client.authorize(srv.challenge(now=10.0, source=A), method="INVITE", uri=URI)
    assert srv.verify(value, method="INVITE", uri=URI, now=11.0, source=A).ok
    replay = srv.verify(value, method="INVITE", uri=URI, now=12.0, source=A)
    assert replay.status is VerifyStatus.BAD and "replayed" in replay.reason
    # the legitimate client counts up (nc=2) and is still welcome
    again = client.authorize_again(method="INVITE", uri=URI)
    assert again is not None and DigestAuthorization.parse(again).nc == 2
    assert srv.verify(again, method="INVITE", uri=URI, now=13.0, source=A).ok
    # ...but going back to nc=1 with the same cnonce is a replay even after nc=2
    assert not srv.verify(value, method="INVITE", uri=URI, now=14.0, source=A).ok


def test_rfc2069_nonce_without_qop_is_good_once() -> None:
    srv = server(qop=())
    client = DigestClient(DigestCredentials("alice", "wonderland"))
    value = client.authorize(srv.challenge(now=0.0, source=A), method="INVITE", uri=URI)
    assert DigestAuthorization.parse(value).nc is None
    assert srv.verify(value, method="INVITE", uri=URI, now=1.0, source=A).ok
    assert not srv.verify(value, method="INVITE", uri=URI, now=2.0, source=A).ok


def test_nonce_is_bound_to_the_source_it_was_sent_to() -> None:
    srv = server()
    client = DigestClient(DigestCredentials("alice", "wonderland"))
    value = client.authorize(srv.challenge(now=0.0, source=A), method="INVITE", uri=URI)
    stolen = srv.verify(value, method="INVITE", uri=URI, now=1.0, source=B)
    assert stolen.status is VerifyStatus.BAD and "not issued" in stolen.reason
    assert srv.verify(value, method="INVITE", uri=URI, now=1.0, source=A).ok


def test_replay_memory_is_bounded_and_expires_with_the_nonce() -> None:
    srv = server(nonce_ttl=60.0, max_tracked_nonces=50)
    for i in range(200):
        client = DigestClient(DigestCredentials("alice", "wonderland"))
        value = client.authorize(srv.challenge(now=float(i), source=A), method="INVITE", uri=URI)
        assert srv.verify(value, method="INVITE", uri=URI, now=float(i), source=A).ok
    assert len(srv._nc_seen) <= 50


def test_limiter_locks_after_ten_failures_in_sixty_seconds_then_cools_down() -> None:
    lim = AuthFailureLimiter(max_failures=10, window=60.0, lockout=300.0)
    # nine failures spread over 100 s never lock
    for i in range(9):
        assert not lim.failure(A, now=i * 11.0)
    assert not lim.locked(A, now=100.0)
    # ten within a minute do
    t = 1000.0
    locked = [lim.failure(A, now=t + i) for i in range(10)]
    assert locked == [False] * 9 + [True]
    assert lim.locked(A, now=t + 10) and not lim.locked(B, now=t + 10)
    assert lim.locked(A, now=t + 9 + 299.9)
    assert not lim.locked(A, now=t + 9 + 300.0)
    assert lim.locked_sources(now=t + 9 + 300.0) == []


def test_limiter_memory_is_bounded() -> None:
    lim = AuthFailureLimiter(max_sources=100)
    for i in range(10_000):
        lim.failure(f"10.0.{i // 256}.{i % 256}", now=0.0)
    assert len(lim._failures) <= 100


# --- through the endpoint -------------------------------------------------------------------


def invite(n: int, authorization: str | None = None, source: str = A) -> bytes:
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    return (f"INVITE {URI} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:5060;branch=z9hG4bK-{n}-x;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:bob@{source}>;tag=f{n}\r\nTo: <{URI}>\r\n"
            f"Call-ID: call-{n}@{source}\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@{source}>\r\n"
            f"{auth}Content-Length: 0\r\n\r\n").encode()


def final_status(ep: SipEndpoint) -> int:
    out = [parse_datagram(o.data) for o in ep.datagrams_to_send(0.0)]
    finals = [m.status for m in out if isinstance(m, SipResponse) and m.status >= 200]
    provisional = [m for m in out if isinstance(m, SipResponse) and m.status < 200]
    return finals[-1] if finals else (100 if provisional else 0)


def endpoint() -> tuple[SipEndpoint, DigestServer]:
    srv = server()
    cfg = SipConfig(trusted_sources=frozenset(), inbound_auth=srv)
    return SipEndpoint(cfg, rng=random.Random(1)), srv


def challenge_of(ep: SipEndpoint, n: int, source: str, now: float) -> list[str]:
    ep.receive_datagram(invite(n, source=source), (source, 5060), now)
    out = [parse_datagram(o.data) for o in ep.datagrams_to_send(now)]
    resp = out[-1]
    assert isinstance(resp, SipResponse) and resp.status == 401
    return resp.headers.get_all("WWW-Authenticate")


def test_endpoint_refuses_a_replayed_invite_and_a_nonce_from_elsewhere() -> None:
    ep, _ = endpoint()
    client = DigestClient(DigestCredentials("alice", "wonderland"))
    value = client.authorize(challenge_of(ep, 1, A, 0.0), method="INVITE", uri=URI)
    ep.receive_datagram(invite(2, value), (A, 5060), 1.0)
    assert final_status(ep) == 100
    assert isinstance(ep.next_event(), IncomingCall)
    # the captured header on a new INVITE, from the same or another address: 401 again
    ep.receive_datagram(invite(3, value), (A, 5060), 2.0)
    assert final_status(ep) == 401
    ep.receive_datagram(invite(4, value, source=B), (B, 5060), 2.0)
    assert final_status(ep) == 401
    assert ep.next_event() is None  # no call was offered to the application


def test_endpoint_locks_a_guessing_source_out() -> None:
    ep, srv = endpoint()
    now = 0.0
    statuses = []
    for n in range(10):
        guess = DigestClient(DigestCredentials("alice", f"guess{n}"))
        value = guess.authorize(challenge_of(ep, 100 + n, A, now), method="INVITE", uri=URI)
        ep.receive_datagram(invite(200 + n, value), (A, 5060), now + 0.1)
        statuses.append(final_status(ep))
        now += 1.0
    # the tenth failure within 60 s locks the source out
    assert statuses == [401] * 9 + [403]
    assert ep.stats["auth_lockouts"] == 1
    # while locked, every INVITE from A gets 403, with or without credentials (no challenge,
    # no password tried); another source is unaffected
    ep.receive_datagram(invite(300), (A, 5060), now)
    assert final_status(ep) == 403
    assert ep.stats["auth_locked_out"] == 1
    good = DigestClient(DigestCredentials("alice", "wonderland"))
    value = good.authorize(challenge_of(ep, 301, B, now), method="INVITE", uri=URI)
    ep.receive_datagram(invite(302, value, source=B), (B, 5060), now)
    assert final_status(ep) == 100
    # after the cool-down A is challenged again and gets in with the password
    later = now + srv.limiter.lockout + 1
    value = DigestClient(DigestCredentials("alice", "wonderland")).authorize(
        challenge_of(ep, 400, A, later), method="INVITE", uri=URI)
    ep.receive_datagram(invite(401, value), (A, 5060), later)
    assert final_status(ep) == 100
