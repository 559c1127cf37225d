"""RFC 3261 section 17 transactions driven directly, stepping a fake clock through timers
A-M; plus the endpoint's get_timer and transaction matching (17.2.3, RFC 2543 fallback)."""

from __future__ import annotations

import pytest

from telephony.errors import LocalProtocolError
from telephony.sip.message import SipRequest, SipResponse, make_response, parse_datagram
from telephony.sip.timers import TimerQueue
from telephony.sip.transaction import (
    TRANSITIONS,
    ClientTransaction,
    ServerTransaction,
    TxKind,
    TxState,
    server_key,
)
from tests.sip_pair import SDP_OFFER, TARGET, UAC_ADDR, UAS_ADDR, uac_and_uas

T1, T2, T4 = 0.5, 4.0, 5.0
PEER = ("127.0.0.1", 5099)


class FakeHost:
    def __init__(self) -> None:
        self.timer_queue = TimerQueue()
        self.t1, self.t2, self.t4 = T1, T2, T4
        self.sent: list[tuple[float, bytes, bool]] = []
        self.terminated: list[object] = []
        self.timeouts: list[int] = []
        self.now = 0.0

    def transmit(self, data: bytes, addr: tuple[str, int], transport: str, *,
                 retransmission: bool = False) -> None:
        self.sent.append((self.now, data, retransmission))

    def transaction_terminated(self, tx: object) -> None:
        self.terminated.append(tx)

    def on_transaction_timeout(self, tx: object, now: float, status: int) -> None:
        self.timeouts.append(status)

    def advance(self, until: float) -> None:
        """Fire every timer up to ``until`` in order."""
        while (d := self.timer_queue.next_deadline()) is not None and d <= until:
            self.now = d
            while (due := self.timer_queue.pop_due(self.now)) is not None:
                owner, name = due
                owner.on_timer(name, self.now)
        self.now = until


def request(method: str = "INVITE", branch: str = "z9hG4bKabc") -> SipRequest:
    return parse_datagram(
        f"{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n"
        f"Call-ID: c1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n".encode())  # type: ignore


def response(req: SipRequest, status: int) -> SipResponse:
    return make_response(req, status, to_tag="t9")


def send_times(host: FakeHost) -> list[float]:
    return [round(t, 3) for t, _, _ in host.sent]


def test_table_covers_every_kind() -> None:
    assert set(TRANSITIONS) == set(TxKind)
    assert TRANSITIONS[TxKind.INVITE_SERVER][TxState.ACCEPTED]


def test_invite_client_timer_a_doubles_and_b_times_out() -> None:
    h = FakeHost()
    tx = ClientTransaction(h, request(), PEER, "udp")
    tx.start(0.0)
    assert h.timer_queue.next_deadline() == T1  # timer A
    h.advance(64 * T1)
    # A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (doubling, no T2 cap for INVITE, 17.1.1.2)
    assert send_times(h) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert tx.state is TxState.TERMINATED and h.timeouts == [408]  # timer B at 64*T1


def test_invite_client_provisional_stops_retransmissions() -> None:
    h = FakeHost()
    req = request()
    tx = ClientTransaction(h, req, PEER, "udp")
    tx.start(0.0)
    h.advance(0.6)
    assert tx.receive_response(response(req, 180), 0.6) is True
    assert tx.state is TxState.PROCEEDING
    h.advance(100)
    assert len(h.sent) == 2 and not h.timeouts  # no more A, no B in Proceeding


def test_invite_client_non2xx_acked_in_transaction_timer_d() -> None:
    h = FakeHost()
    req = request()
    tx = ClientTransaction(h, req, PEER, "udp")
    tx.start(0.0)
    resp = response(req, 486)
    assert tx.receive_response(resp, 0.1) is True
    ack = parse_datagram(h.sent[-1][1])
    assert ack.method == "ACK" and ack.top_via.branch == "z9hG4bKabc"  # same branch 17.1.1.3
    assert ack.to.tag == "t9"
    assert tx.receive_response(resp, 0.2) is False  # retransmitted 486: ACK again, absorbed
    assert parse_datagram(h.sent[-1][1]).method == "ACK"
    assert tx.state is TxState.COMPLETED
    h.advance(0.1 + 31.9)
    assert tx.state is TxState.COMPLETED
    h.advance(0.1 + 32.0)
    assert tx.state is TxState.TERMINATED  # timer D = 32 s


def test_invite_client_2xx_accepted_timer_m() -> None:
    h = FakeHost()
    req = request()
    tx = ClientTransaction(h, req, PEER, "udp")
    tx.start(0.0)
    ok = response(req, 200)
    assert tx.receive_response(ok, 0.1) is True
    assert tx.state is TxState.ACCEPTED
    assert tx.receive_response(ok, 0.6) is True  # RFC 6026: retransmitted 2xx to the TU
    h.advance(0.1 + 64 * T1)
    assert tx.state is TxState.TERMINATED and not h.timeouts


def test_non_invite_client_timer_e_caps_at_t2_and_f() -> None:
    h = FakeHost()
    tx = ClientTransaction(h, request("OPTIONS"), PEER, "udp")
    tx.start(0.0)
    h.advance(64 * T1)
    gaps = [round(b - a, 3) for a, b in zip(send_times(h), send_times(h)[1:])]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]  # 17.1.2.2: doubling up to T2
    assert h.timeouts == [408] and tx.state is TxState.TERMINATED


def test_non_invite_client_proceeding_retransmits_every_t2_then_k() -> None:
    h = FakeHost()
    req = request("BYE")
    tx = ClientTransaction(h, req, PEER, "udp")
    tx.start(0.0)
    tx.receive_response(response(req, 100), 0.1)
    h.advance(10.0)
    gaps = [round(b - a, 3) for a, b in zip(send_times(h), send_times(h)[1:])]
    assert gaps[-1] == T2
    tx.receive_response(response(req, 200), 10.0)
    assert tx.state is TxState.COMPLETED
    assert tx.receive_response(response(req, 200), 10.5) is False  # absorbed
    h.advance(10.0 + T4)
    assert tx.state is TxState.TERMINATED  # timer K = T4


def test_reliable_transport_has_no_retransmissions_and_zero_k() -> None:
    h = FakeHost()
    req = request("BYE")
    tx = ClientTransaction(h, req, PEER, "tcp")
    tx.start(0.0)
    h.advance(10.0)
    assert len(h.sent) == 1
    tx.receive_response(response(req, 200), 10.0)
    assert tx.state is TxState.TERMINATED


def test_invite_server_timer_g_h_and_ack_then_i() -> None:
    h = FakeHost()
    req = request()
    tx = ServerTransaction(h, req, server_key(req, req.top_via), PEER, "udp")
    tx.send_response(response(req, 100), 0.0)
    assert tx.receive_request(req, 0.2) is False  # retransmitted INVITE: resend the 100
    assert h.sent[-1][2] is True and b"100 Trying" in h.sent[-1][1]
    h.now = 1.0
    tx.send_response(response(req, 486), 1.0)
    h.advance(1.0 + 7.6)
    gaps = [round(b - a, 3) for a, b in zip(send_times(h)[2:], send_times(h)[3:])]
    assert gaps == [0.5, 1.0, 2.0, 4.0]  # G doubles up to T2
    ack = request("ACK")
    assert tx.receive_request(ack, 8.7) is False
    assert tx.state is TxState.CONFIRMED
    n = len(h.sent)
    h.advance(8.7 + T4)
    assert tx.state is TxState.TERMINATED and len(h.sent) == n  # timer I


def test_invite_server_timer_h_without_ack() -> None:
    h = FakeHost()
    req = request()
    tx = ServerTransaction(h, req, server_key(req, req.top_via), PEER, "udp")
    tx.send_response(response(req, 480), 0.0)
    h.advance(64 * T1)
    assert tx.state is TxState.TERMINATED
    assert all(t <= 64 * T1 for t, _, _ in h.sent)


def test_invite_server_2xx_accepted_absorbs_invite_and_passes_ack() -> None:
    h = FakeHost()
    req = request()
    tx = ServerTransaction(h, req, server_key(req, req.top_via), PEER, "udp")
    tx.send_response(response(req, 200), 0.0)
    assert tx.state is TxState.ACCEPTED
    n = len(h.sent)
    assert tx.receive_request(req, 0.1) is False and len(h.sent) == n  # the TU retransmits
    assert tx.receive_request(request("ACK"), 0.2) is True
    h.advance(64 * T1)
    assert tx.state is TxState.TERMINATED  # timer L


def test_non_invite_server_timer_j_and_retransmitted_final() -> None:
    h = FakeHost()
    req = request("BYE")
    tx = ServerTransaction(h, req, server_key(req, req.top_via), PEER, "udp")
    assert tx.receive_request(req, 0.0) is False and not h.sent  # Trying: absorbed silently
    tx.send_response(response(req, 200), 0.0)
    tx.receive_request(req, 1.0)
    assert len(h.sent) == 2 and h.sent[1][2] is True
    h.advance(64 * T1)
    assert tx.state is TxState.TERMINATED  # timer J


def test_illegal_local_transition_raises() -> None:
    h = FakeHost()
    req = request("BYE")
    tx = ServerTransaction(h, req, server_key(req, req.top_via), PEER, "udp")
    tx.send_response(response(req, 200), 0.0)
    with pytest.raises(LocalProtocolError):
        tx.send_response(response(req, 486), 0.1)


def test_server_key_rfc3261_and_rfc2543() -> None:
    inv = request()
    ack = request("ACK")
    cancel = request("CANCEL")
    assert server_key(inv, inv.top_via) == server_key(ack, ack.top_via)
    assert server_key(cancel, cancel.top_via) != server_key(inv, inv.top_via)
    assert server_key(cancel, cancel.top_via, method="INVITE") == server_key(inv, inv.top_via)
    old = request(branch="1234")  # no magic cookie: RFC 2543 matching
    old_ack = parse_datagram(request("ACK", branch="1234").serialize().replace(
        b"To: <sip:bob@127.0.0.1>", b"To: <sip:bob@127.0.0.1>;tag=t9"))
    assert server_key(old, old.top_via)[0] == "2543"
    assert server_key(old, old.top_via) == server_key(old_ack, old_ack.top_via)


def test_rfc2543_peer_retransmission_and_ack_absorbed_by_endpoint() -> None:
    p = uac_and_uas()
    msg = (b"INVITE sip:bob@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=old\r\nTo: <sip:bob@127.0.0.1>\r\n"
           b"Call-ID: rfc2543@x\r\nCSeq: 7 INVITE\r\nContact: <sip:a@127.0.0.1:5061>\r\n"
           b"Content-Length: 0\r\n\r\n")
    p.uas.receive_datagram(msg, UAC_ADDR, p.now)
    p.uas.receive_datagram(msg, UAC_ADDR, p.now + 0.5)
    assert p.uas.stats["calls_in"] == 1 and p.uas.stats["requests_absorbed"] == 1


def test_endpoint_get_timer_steps_with_t1() -> None:
    p = uac_and_uas()
    p.link.drop_filter = lambda out: True  # nothing gets through
    now = p.now
    p.uac.invite(TARGET, body=SDP_OFFER, now=now)
    assert p.uac.get_timer() == now + T1
    p.uac.handle_timer(now + T1)
    assert p.uac.get_timer() == now + T1 + 2 * T1
    assert p.uac.stats["retransmissions"] == 1


def test_timer_b_gives_call_failed_408() -> None:
    from telephony.sip.events import CallFailed

    p = uac_and_uas()
    p.link.drop_filter = lambda out: out.addr == UAS_ADDR
    t0 = p.now
    p.uac.invite(TARGET, body=SDP_OFFER, now=p.now)
    ev = p.take(p.uac, CallFailed)
    assert ev.status == 408 and p.now - t0 == pytest.approx(64 * T1)


def test_connection_failure_gives_503() -> None:
    from telephony.sip.events import CallFailed

    p = uac_and_uas()
    p.uac.invite(TARGET.replace("5062", "5099") + ";transport=tcp", body=SDP_OFFER, now=p.now)
    out = p.uac.datagrams_to_send(p.now)
    assert out[0].transport == "tcp" and b"SIP/2.0/TCP" in out[0].data
    p.uac.connection_failed(("127.0.0.1", 5099), "tcp", p.now)
    ev = p.uac.next_event()
    assert isinstance(ev, CallFailed) and ev.status == 503
