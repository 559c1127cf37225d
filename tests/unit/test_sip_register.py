"""Digest authentication of our INVITE and REGISTER (401 and 407, MD5 and SHA-256),
the REGISTER client's refresh timing and unregistration, and the challenge of inbound
INVITEs from untrusted sources."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from telephony.sip.auth import DigestCredentials, DigestServer
from telephony.sip.config import SipConfig
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import CallAnswered, CallFailed, IncomingCall, RegistrationChanged
from telephony.sip.message import SipRequest, make_response, parse_datagram
from tests.sip_pair import SDP_ANSWER, SDP_OFFER, TARGET, UAC_ADDR, UAS_ADDR, uac_and_uas

REGISTRAR = ("127.0.0.1", 5070)


def digest_server(algorithm: str) -> DigestServer:
    return DigestServer("dialtone.test", {"alice": "s3cret"}.get, nonce_secret=b"k" * 16,
                        algorithms=(algorithm,), salt_source=random.Random(3).randbytes)


class FakeRegistrar:
    """Answers REGISTER with a digest challenge, then 200 with the granted expiry."""

    def __init__(self, algorithm: str = "MD5", status: int = 401, grant: int | None = None,
                 style: str = "contact") -> None:
        self.server = digest_server(algorithm)
        self.status = status
        self.grant = grant
        self.style = style
        self.requests: list[SipRequest] = []

    def handle(self, ep: SipEndpoint, now: float) -> int:
        n = 0
        for out in ep.datagrams_to_send(now):
            if out.addr != REGISTRAR:
                continue
            req = parse_datagram(out.data)
            assert isinstance(req, SipRequest)
            self.requests.append(req)
            n += 1
            header = req.headers.get("Authorization" if self.status == 401
                                     else "Proxy-Authorization")
            result = None if header is None else self.server.verify(
                header, method="REGISTER", uri=str(req.uri), now=now)
            if result is None or not result.ok:
                name = "WWW-Authenticate" if self.status == 401 else "Proxy-Authenticate"
                stale = result is not None and result.status.value == "stale"
                resp = make_response(req, self.status, to_tag="r1", headers=[
                    (name, c) for c in self.server.challenge(now=now, stale=stale)])
            else:
                asked = int(req.headers.get("Expires") or 0)
                grant = asked if self.grant is None or asked == 0 else self.grant
                contact = req.headers.get("Contact")
                hdrs = [("Contact", f"{contact};expires={grant}")] if self.style == "contact" \
                    else [("Contact", contact), ("Expires", str(grant))]
                resp = make_response(req, 200, to_tag="r1", headers=hdrs)
            ep.receive_datagram(resp.serialize(), REGISTRAR, now)
        return n


def run_timers(ep: SipEndpoint, until: float) -> None:
    while (t := ep.get_timer()) is not None and t <= until:
        ep.handle_timer(t)


def endpoint() -> SipEndpoint:
    return SipEndpoint(SipConfig(port=5061, username="alice"), rng=random.Random(5))


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("status", [401, 407])
def test_register_with_digest(algorithm: str, status: int) -> None:
    ep = endpoint()
    reg_srv = FakeRegistrar(algorithm, status, grant=600)
    reg = ep.register("sip:127.0.0.1:5070", aor="sip:alice@dialtone.test",
                      credentials=DigestCredentials("alice", "s3cret"), expires=3600, now=0.0)
    assert reg_srv.handle(ep, 0.0) == 1  # challenged
    assert reg_srv.handle(ep, 0.0) == 1  # resent with credentials, accepted
    first, second = reg_srv.requests
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
    assert f"algorithm={algorithm}" in (second.headers.get("Authorization")
                                         or second.headers.get("Proxy-Authorization") or "")
    ev = ep.next_event()
    assert ev == RegistrationChanged(reg, True, 200, 600)
    # refresh at expires - margin (600 - 30 s)
    run_timers(ep, 569.99)
    assert reg_srv.handle(ep, 569.99) == 0
    run_timers(ep, 570.0)
    assert reg_srv.handle(ep, 570.0) == 1  # pre-emptive credentials (nc=2)
    refresh = reg_srv.requests[-1]
    assert refresh.cseq.seq == 3
    assert refresh.headers.get("Authorization" if status == 401 else "Proxy-Authorization")
    # the nonce is older than the server's TTL: stale=true, answered once more
    assert reg_srv.handle(ep, 570.0) == 1
    assert reg_srv.requests[-1].cseq.seq == 4
    assert ep.next_event() == RegistrationChanged(reg, True, 200, 600)


def test_register_wrong_password_does_not_loop() -> None:
    ep = endpoint()
    reg_srv = FakeRegistrar()
    reg = ep.register("127.0.0.1:5070", aor="sip:alice@dialtone.test",
                      credentials=DigestCredentials("alice", "wrong"), now=0.0)
    for _ in range(4):
        reg_srv.handle(ep, 0.0)
    assert len(reg_srv.requests) == 2  # challenge, one answer, then give up
    ev = ep.next_event()
    assert ev == RegistrationChanged(reg, False, 401, 0)
    run_timers(ep, 59.99)
    assert reg_srv.handle(ep, 59.99) == 0
    run_timers(ep, 60.0)
    assert reg_srv.handle(ep, 60.0) == 1  # retried later


def test_register_failures_in_a_row_back_off_doubling_and_reset_on_success() -> None:
    ep = endpoint()
    reg_srv = FakeRegistrar()
    creds = DigestCredentials("alice", "wrong")
    reg = ep.register("127.0.0.1:5070", aor="sip:alice@dialtone.test", credentials=creds,
                      now=0.0)
    reg_srv.handle(ep, 0.0)
    reg_srv.handle(ep, 0.0)
    assert ep.next_event() == RegistrationChanged(reg, False, 401, 0)
    now, retries = 0.0, []
    for _ in range(6):  # each failure in a row doubles the wait: 60, 120, 240, 480, 900, 900
        before = len(reg_srv.requests)
        while len(reg_srv.requests) == before:
            now += 1.0
            run_timers(ep, now)
            reg_srv.handle(ep, now)
        reg_srv.handle(ep, now)  # the challenged answer, refused again
        retries.append(now)
        assert ep.next_event() == RegistrationChanged(reg, False, 401, 0)
    gaps = [b - a for a, b in zip([0.0, *retries], retries, strict=False)]
    assert gaps == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0]


def test_register_short_expiry_refreshes_at_half_and_expires_header() -> None:
    ep = endpoint()
    reg_srv = FakeRegistrar(grant=40, style="expires")
    ep.register("sip:127.0.0.1:5070", aor="sip:alice@dialtone.test",
                credentials=DigestCredentials("alice", "s3cret"), expires=40, now=0.0)
    reg_srv.handle(ep, 0.0)
    reg_srv.handle(ep, 0.0)
    assert ep.next_event() == RegistrationChanged("reg-1", True, 200, 40)
    run_timers(ep, 19.99)
    assert reg_srv.handle(ep, 19.99) == 0
    run_timers(ep, 20.0)
    assert reg_srv.handle(ep, 20.0) == 1


def test_unregister_on_close() -> None:
    ep = endpoint()
    reg_srv = FakeRegistrar()
    reg = ep.register("sip:127.0.0.1:5070", aor="sip:alice@dialtone.test",
                      credentials=DigestCredentials("alice", "s3cret"), now=0.0)
    reg_srv.handle(ep, 0.0)
    reg_srv.handle(ep, 0.0)
    ep.next_event()
    ep.close(now=10.0)
    reg_srv.handle(ep, 10.0)
    assert reg_srv.requests[-1].headers.get("Expires") == "0"
    assert ep.next_event() == RegistrationChanged(reg, False, 200, 0)
    assert ep.registrations() == {}


def test_register_timeout_reports_408() -> None:
    ep = endpoint()
    reg = ep.register("sip:127.0.0.1:5070", aor="sip:alice@x", now=0.0)
    while (t := ep.get_timer()) is not None and t <= 32.0:
        ep.handle_timer(t)
    assert ep.next_event() == RegistrationChanged(reg, False, 408, 0)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("status", [401, 407])
def test_invite_with_digest(algorithm: str, status: int) -> None:
    ep = endpoint()
    server = digest_server(algorithm)
    call = ep.invite("sip:bob@127.0.0.1:5062", body=SDP_OFFER, now=0.0,
                     credentials=DigestCredentials("alice", "s3cret"))
    (out,) = ep.datagrams_to_send(0.0)
    inv = parse_datagram(out.data)
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    challenge = make_response(inv, status, to_tag="p1",
                              headers=[(name, c) for c in server.challenge(now=0.0)])
    ep.receive_datagram(challenge.serialize(), UAS_ADDR, 0.1)
    ack, inv2 = (parse_datagram(o.data) for o in ep.datagrams_to_send(0.1))
    assert ack.method == "ACK" and ack.top_via.branch == inv.top_via.branch  # ACK in the tx
    assert inv2.method == "INVITE" and inv2.cseq.seq == 2
    assert inv2.top_via.branch != inv.top_via.branch and inv2.call_id == inv.call_id
    assert inv2.from_.tag == inv.from_.tag
    header = inv2.headers.get("Authorization" if status == 401 else "Proxy-Authorization")
    assert header is not None
    assert server.verify(header, method="INVITE", uri=str(inv2.uri), now=0.1).ok
    ok = make_response(inv2, 200, to_tag="b1", headers=[("Contact", "<sip:bob@127.0.0.1:5062>")],
                       body=SDP_ANSWER)
    ep.receive_datagram(ok.serialize(), UAS_ADDR, 0.2)
    assert isinstance(ep.next_event(), CallAnswered)
    (ack2,) = (parse_datagram(o.data) for o in ep.datagrams_to_send(0.2))
    assert ack2.cseq.seq == 2 and ack2.headers.get(
        "Authorization" if status == 401 else "Proxy-Authorization") == header
    assert ep.call_info(call)["state"] == "confirmed"


def test_invite_challenge_without_credentials_fails() -> None:
    ep = endpoint()
    call = ep.invite("sip:bob@127.0.0.1:5062", body=SDP_OFFER, now=0.0)
    (out,) = ep.datagrams_to_send(0.0)
    inv = parse_datagram(out.data)
    resp = make_response(inv, 407, to_tag="p", headers=[
        ("Proxy-Authenticate", digest_server("MD5").challenge(now=0.0)[0])])
    ep.receive_datagram(resp.serialize(), UAS_ADDR, 0.1)
    assert ep.next_event() == CallFailed(call, 407, "Proxy Authentication Required")


def test_inbound_invite_from_untrusted_source_is_challenged() -> None:
    server = digest_server("SHA-256")
    p = uac_and_uas()
    p.uas = SipEndpoint(replace(p.uas.config, trusted_sources=frozenset({"10.9.9.9"}),
                                inbound_auth=server), rng=random.Random(9))
    p.endpoints[UAS_ADDR] = p.uas
    p.events[id(p.uas)] = []
    # without credentials: 401, then CallFailed
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    ev = p.take(p.uac, CallFailed)
    assert ev.status == 401 and not p.events_of(p.uas, IncomingCall)
    # with credentials: the retry is accepted
    call = p.uac.invite(TARGET, body=SDP_OFFER, now=p.now,
                        credentials=DigestCredentials("alice", "s3cret"))
    inc = p.take(p.uas, IncomingCall)
    assert inc.request.headers.get("Authorization")
    p.uas.answer(inc.call, SDP_ANSWER, now=p.now)
    p.take(p.uac, CallAnswered)
    assert p.uac.call_info(call)["state"] == "confirmed"
    # wrong password: challenged again, then no loop
    p.uac.invite(TARGET, body=SDP_OFFER, now=p.now, credentials=DigestCredentials("alice", "x"))
    assert p.take(p.uac, CallFailed).status == 401
    assert p.uas.stats["auth_failures"] == 1


def test_trusted_source_needs_no_auth() -> None:
    p = uac_and_uas()
    p.uas = SipEndpoint(replace(p.uas.config, trusted_sources=frozenset({UAC_ADDR[0]}),
                                inbound_auth=digest_server("MD5")), rng=random.Random(9))
    p.endpoints[UAS_ADDR] = p.uas
    p.events[id(p.uas)] = []
    p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    assert isinstance(p.take(p.uas, IncomingCall), IncomingCall)
