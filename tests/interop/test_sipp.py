"""SIPp (Debian's sip-tester) as the calling peer against a real ``dialtone serve`` process.

Assertions come from three places: SIPp's exit code (0 only if every message of the
scenario arrived as scripted), Dialtone's JSON event log, and Dialtone's SIP trace
(``--sip-trace``), which shows the exact bytes each side sent.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from tests.interop.peers import (
    DialtoneProcess,
    TraceRecord,
    UdpPeer,
    save_captures,
    sipp,
    wait_until,
)

pytestmark = pytest.mark.interop


def _calls_by_sip_id(dialtone: DialtoneProcess, sip_call_id: str) -> str:
    started = [e for e in dialtone.of_type("call_started") if e["sip_call_id"] == sip_call_id]
    assert len(started) == 1, started
    return str(started[0]["call_id"])


def _sip_call_ids(records: list[TraceRecord], method: str) -> list[str]:
    return [r.header("Call-ID") or "" for r in records
            if r.direction == "recv" and r.method == method]


def _new_call_ref(dialtone: DialtoneProcess, before: int) -> str:
    """The ref of the one call started since ``before`` call_started events."""
    started = dialtone.of_type("call_started")[before:]
    assert len(started) == 1, started
    return str(started[0]["call_id"])


def _events_of(dialtone: DialtoneProcess, ref: str, kind: str) -> list[dict[str, object]]:
    return [e for e in dialtone.of_type(kind) if e.get("call_id") == ref]


def test_basic_call_uac(dialtone: DialtoneProcess, tmp_path: Path) -> None:
    before = len(dialtone.of_type("call_started"))
    rc, out = sipp(tmp_path, dialtone.addr, builtin="uac", duration_ms=300)
    assert rc == 0, out
    ref = _new_call_ref(dialtone, before)
    dialtone.wait_for("call_ended", before + 1)
    assert len(_events_of(dialtone, ref, "call_answered")) == 1
    (ended,) = _events_of(dialtone, ref, "call_ended")
    assert ended["cause"] == "remote_bye" and ended["by_remote"] is True
    save_captures(dialtone.trace(), "sipp_uac")


def test_rfc2833_dtmf_from_pcap(dialtone: DialtoneProcess, tmp_path: Path) -> None:
    before = len(dialtone.of_type("call_started"))
    rc, out = sipp(tmp_path, dialtone.addr, scenario="uac_dtmf_2833.xml")
    assert rc == 0, out
    ref = _new_call_ref(dialtone, before)
    dialtone.wait_for("call_ended", before + 1)
    dtmf = _events_of(dialtone, ref, "dtmf")
    assert [e["digit"] for e in dtmf] == ["1", "2", "#"]  # each once, in order
    assert {e["source"] for e in dtmf} == {"rfc4733"}
    (ended,) = _events_of(dialtone, ref, "call_ended")
    assert ended["cause"] == "remote_bye"


def test_cancel_while_ringing(dialtone_ringing: DialtoneProcess, tmp_path: Path) -> None:
    dt = dialtone_ringing
    before = len(dt.of_type("call_started"))
    rc, out = sipp(tmp_path, dt.addr, scenario="uac_cancel.xml")
    assert rc == 0, out  # 180, then 200 for the CANCEL and 487 for the INVITE, in that order
    ref = _new_call_ref(dt, before)
    dt.wait_for("call_ended", before + 1)
    (ended,) = _events_of(dt, ref, "call_ended")
    assert ended["cause"] == "cancelled", ended
    assert not _events_of(dt, ref, "call_answered"), dt.events()
    sip_id = dt.of_type("call_started")[before]["sip_call_id"]
    sent = [r for r in dt.trace() if r.direction == "send" and r.header("Call-ID") == sip_id]
    finals = [(r.status, (r.header("CSeq") or "").split()[-1]) for r in sent
              if r.status is not None and r.status >= 200]
    assert (200, "CANCEL") in finals and (487, "INVITE") in finals, finals
    assert (200, "INVITE") not in finals, finals
    save_captures([r for r in dt.trace() if r.header("Call-ID") == sip_id], "sipp_cancel",
                  wanted=("CANCEL", "ACK"))


def _sdp_direction(body: bytes) -> str:
    dirs = re.findall(rb"^a=(sendrecv|sendonly|recvonly|inactive)\r?$", body, re.MULTILINE)
    return dirs[-1].decode() if dirs else "sendrecv"  # RFC 3264 5.1: sendrecv by default


def _o_version(body: bytes) -> int:
    m = re.search(rb"^o=\S+ \S+ (\d+) ", body, re.MULTILINE)
    assert m is not None, body
    return int(m.group(1))


def test_reinvite_hold_and_unhold(dialtone: DialtoneProcess, tmp_path: Path) -> None:
    before = len(dialtone.of_type("call_started"))
    rc, out = sipp(tmp_path, dialtone.addr, scenario="uac_hold.xml")
    assert rc == 0, out
    ref = _new_call_ref(dialtone, before)
    dialtone.wait_for("call_ended", before + 1)
    sip_id = dialtone.of_type("call_started")[before]["sip_call_id"]
    answers = [r for r in dialtone.trace()
               if r.direction == "send" and r.status == 200 and r.header("Call-ID") == sip_id
               and (r.header("CSeq") or "").endswith("INVITE")]
    by_cseq: dict[int, TraceRecord] = {}
    for r in answers:  # retransmissions of a 2xx carry the same SDP
        by_cseq.setdefault(int((r.header("CSeq") or "0").split()[0]), r)
    assert sorted(by_cseq) == [1, 2, 3]
    first, hold, unhold = (by_cseq[i].body for i in (1, 2, 3))
    assert _sdp_direction(first) == "sendrecv"
    assert _sdp_direction(hold) == "recvonly"  # RFC 3264 6.1: answer to sendonly
    assert _sdp_direction(unhold) == "sendrecv"
    assert _o_version(hold) == _o_version(first) + 1  # RFC 3264 8: changed SDP, version+1
    assert _o_version(unhold) == _o_version(hold) + 1
    kinds = [e["type"] for e in dialtone.events() if e.get("call_id") == ref]
    assert kinds.count("hold") == 1 and kinds.count("unhold") == 1
    assert kinds.index("hold") < kinds.index("unhold")


def test_info_dtmf_relay_and_dtmf(dialtone: DialtoneProcess, tmp_path: Path) -> None:
    before = len(dialtone.of_type("call_started"))
    rc, out = sipp(tmp_path, dialtone.addr, scenario="uac_info_dtmf.xml")
    assert rc == 0, out
    ref = _new_call_ref(dialtone, before)
    dialtone.wait_for("call_ended", before + 1)
    dtmf = _events_of(dialtone, ref, "dtmf")
    assert [e["digit"] for e in dtmf] == ["5", "*", "9", "#"]
    assert {e["source"] for e in dtmf} == {"info"}
    assert dtmf[0]["duration_ms"] == 160
    sip_id = dialtone.of_type("call_started")[before]["sip_call_id"]
    save_captures([r for r in dialtone.trace() if r.header("Call-ID") == sip_id], "sipp_info",
                  wanted=("INFO",))


def test_options_answered_with_allow(dialtone: DialtoneProcess, tmp_path: Path) -> None:
    rc, out = sipp(tmp_path, dialtone.addr, scenario="options.xml")
    assert rc == 0, out  # the scenario's ereg check_it fails the call without a fitting Allow
    replies = [r for r in dialtone.trace() if r.direction == "send" and r.status == 200
               and (r.header("CSeq") or "").endswith("OPTIONS")]
    assert replies
    allow = {m.strip() for m in (replies[-1].header("Allow") or "").split(",")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"} <= allow


def _request(method: str, port: int, peer: UdpPeer, *, call_id: str | None = "mal-1",
             cseq: str = "1 {m}", length: str | None = "0", version: str = "SIP/2.0",
             branch: str = "z9hG4bK-mal") -> bytes:
    lines = [f"{method} sip:service@127.0.0.1:{port} {version}",
             f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch={branch};rport",
             f"From: <sip:raw@127.0.0.1:{peer.port}>;tag=raw1",
             f"To: <sip:service@127.0.0.1:{port}>",
             f"CSeq: {cseq.format(m=method)}", "Max-Forwards: 70"]
    if call_id is not None:
        lines.insert(4, f"Call-ID: {call_id}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status_line(data: bytes) -> tuple[int, str]:
    first = data.split(b"\r\n", 1)[0].decode()
    parts = first.split(" ", 2)
    assert parts[0] == "SIP/2.0", first
    return int(parts[1]), parts[2] if len(parts) > 2 else ""


def test_malformed_requests_then_a_good_call(dialtone: DialtoneProcess, tmp_path: Path) -> None:
    peer = UdpPeer()
    port = dialtone.port
    try:
        cases: list[tuple[str, bytes, int | None, str]] = [
            ("bad CSeq", _request("OPTIONS", port, peer, cseq="abc OPTIONS", branch="z9hG4bK-m1"),
             400, "cseq"),
            ("CSeq method mismatch",
             _request("OPTIONS", port, peer, cseq="1 INVITE", branch="z9hG4bK-m2"), 400, "cseq"),
            ("missing Call-ID", _request("OPTIONS", port, peer, call_id=None, branch="z9hG4bK-m3"),
             None, ""),
            ("bad Content-Length",
             _request("OPTIONS", port, peer, length="12x", call_id="mal-3", branch="z9hG4bK-m4"),
             400, "content-length"),
            ("Content-Length beyond the body",
             _request("OPTIONS", port, peer, length="50", call_id="mal-4", branch="z9hG4bK-m5"),
             400, "content-length"),
            ("SIP/3.0", _request("OPTIONS", port, peer, version="SIP/3.0", call_id="mal-5",
                                 branch="z9hG4bK-m6"), 505, ""),
            ("unknown method", _request("FROB", port, peer, call_id="mal-6", branch="z9hG4bK-m7"),
             501, ""),
            ("garbage", b"\x00\xff\xfe garbage \x81\r\n\r\n", None, ""),
            ("binary noise", bytes(range(256)), None, ""),
        ]
        for label, data, want, reason_word in cases:
            peer.send(data, port)
            replies = peer.recv_all(0.4)
            if want is None:
                assert replies == [], (label, replies)
                continue
            assert len(replies) == 1, (label, replies)
            status, reason = _status_line(replies[0])
            assert status == want, (label, status, reason)
            if reason_word:
                assert reason_word in reason.lower(), (label, reason)  # names the problem
            if want == 501:
                assert b"\r\nAllow:" in replies[0]
        # ... and the server still works.
        peer.send(_request("OPTIONS", port, peer, call_id="ok-1", branch="z9hG4bK-ok"), port)
        replies = peer.recv_all(0.5)
        assert [_status_line(r)[0] for r in replies] == [200]
    finally:
        peer.close()
    before = len(dialtone.of_type("call_started"))
    rc, out = sipp(tmp_path, dialtone.addr, builtin="uac", duration_ms=200)
    assert rc == 0, out
    ref = _new_call_ref(dialtone, before)
    dialtone.wait_for("call_ended", before + 1)
    assert _events_of(dialtone, ref, "call_ended")[0]["cause"] == "remote_bye"


def test_pcma_audio_and_rfc2833_from_pcap(dialtone: DialtoneProcess, tmp_path: Path) -> None:
    before = len(dialtone.of_type("call_started"))
    rc, out = sipp(tmp_path, dialtone.addr, scenario="uac_pcma_audio_dtmf.xml")
    assert rc == 0, out
    ref = _new_call_ref(dialtone, before)
    dialtone.wait_for("call_ended", before + 1)
    sip_id = dialtone.of_type("call_started")[before]["sip_call_id"]
    ok = [r for r in dialtone.trace() if r.direction == "send" and r.status == 200
          and r.header("Call-ID") == sip_id and (r.header("CSeq") or "").endswith("INVITE")]
    assert ok and re.search(rb"^m=audio \d+ RTP/AVP 8 101\r?$", ok[0].body, re.MULTILINE), ok[0].body
    dtmf = _events_of(dialtone, ref, "dtmf")
    assert [e["digit"] for e in dtmf] == ["7", "3"]
    assert {e["source"] for e in dtmf} == {"rfc4733"}
    (ended,) = _events_of(dialtone, ref, "call_ended")
    rtp = ended["rtp"]
    assert isinstance(rtp, dict)
    # The audio source's own count: SIPp sends the RFC 2833 events (20 packets in the two
    # captures) under another SSRC, which must not restart the audio statistics.  SIPp stops
    # the audio pcap when the first DTMF pcap starts, so about 1 s of audio arrives.
    assert rtp["received"] > 30


def _invite(port: int, peer: UdpPeer, call_id: str, method: str = "INVITE") -> bytes:
    sdp = (b"v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           b"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n") if method == "INVITE" else b""
    head = (f"{method} sip:service@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-{call_id};rport\r\n"
            f"From: <sip:raw@127.0.0.1:{peer.port}>;tag=raw-{call_id}\r\n"
            f"To: <sip:service@127.0.0.1:{port}>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 {method}\r\nContact: <sip:raw@127.0.0.1:{peer.port}>\r\n"
            f"Max-Forwards: 70\r\n")
    if sdp:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(sdp)}\r\n\r\n").encode() + sdp


def test_cancel_right_behind_the_invite_leaves_no_call_behind(dialtone: DialtoneProcess) -> None:
    """INVITE and CANCEL back to back (the CANCEL lands while Dialtone is still setting the
    call up): whichever wins, the call must end (event log) and nothing keeps running."""
    peer = UdpPeer()
    port = dialtone.port
    call_ids = [f"race-{i}" for i in range(5)]
    try:
        for cid in call_ids:
            peer.send(_invite(port, peer, cid), port)
            peer.send(_invite(port, peer, cid, "CANCEL"), port)
        replies = peer.recv_all(1.5)
    finally:
        peer.close()
    for cid in call_ids:
        mine = [r for r in replies if f"Call-ID: {cid}\r\n".encode() in r]
        statuses = sorted((_status_line(r)[0], r.split(b"CSeq: 1 ", 1)[1].split(b"\r\n")[0])
                          for r in mine)
        assert (200, b"CANCEL") in statuses or (481, b"CANCEL") in statuses, statuses
        assert (487, b"INVITE") in statuses or (200, b"INVITE") in statuses, statuses
    started = {e["sip_call_id"]: e["call_id"] for e in dialtone.of_type("call_started")}
    refs = [started[cid] for cid in call_ids if cid in started]

    def all_ended() -> bool:
        ended = {e["call_id"] for e in dialtone.of_type("call_ended")}
        return all(ref in ended for ref in refs)

    # A call answered before the CANCEL got there is up until its 2xx goes unacknowledged
    # (64*T1 = 32 s by default): not this test's business; a cancelled one must end now.
    cancelled = [cid for cid in call_ids if any(
        f"Call-ID: {cid}\r\n".encode() in r and _status_line(r)[0] == 487 for r in replies)]
    assert cancelled
    wait_until(all_ended, 2)
    ended = {e["call_id"]: e for e in dialtone.of_type("call_ended")}
    for cid in cancelled:
        if cid in started:
            assert started[cid] in ended, f"{cid}: started, cancelled, never ended"
            assert ended[started[cid]]["cause"] == "cancelled"


def test_late_offer_invite_gets_answer_from_the_ack(dialtone: DialtoneProcess) -> None:
    """An INVITE without SDP (RFC 3261 13.2.1 delayed offer, as Cisco trunks send): Dialtone
    offers in its 200, the answer comes in the ACK; Dialtone must then send RTP to the port
    and with the codec the ACK chose (PCMA here, not its first choice PCMU)."""
    peer = UdpPeer()
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.settimeout(1.5)
    port = dialtone.port
    cid = f"late-{rtp.getsockname()[1]}"
    try:
        invite = _invite(port, peer, cid).split(b"Content-Type:")[0] + b"Content-Length: 0\r\n\r\n"
        peer.send(invite, port)
        replies = peer.recv_all(0.5)
        ok = [r for r in replies if r.startswith(b"SIP/2.0 200")]
        assert ok, replies
        offer = ok[0].split(b"\r\n\r\n", 1)[1]
        assert re.search(rb"^m=audio \d+ RTP/AVP 0 8", offer, re.MULTILINE), offer
        to_tag = re.search(rb"\r\nTo: [^\r]*;tag=([^;\r]+)", ok[0])
        assert to_tag is not None
        answer = (b"v=0\r\no=raw 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                  b"m=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n" % rtp.getsockname()[1])
        ack = (f"ACK sip:service@127.0.0.1:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-ack-{cid};rport\r\n"
               f"From: <sip:raw@127.0.0.1:{peer.port}>;tag=raw-{cid}\r\n"
               f"To: <sip:service@127.0.0.1:{port}>;tag={to_tag.group(1).decode()}\r\n"
               f"Call-ID: {cid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
               f"Content-Type: application/sdp\r\nContent-Length: {len(answer)}\r\n\r\n"
               ).encode() + answer
        peer.send(ack, port)
        packet = rtp.recv(2048)  # raises TimeoutError if Dialtone never learnt where to send
        assert packet[1] & 0x7F == 8, f"payload type {packet[1] & 0x7F}, the ACK chose PCMA (8)"
        bye = ack.split(b"Content-Type:")[0].replace(b"ACK sip:", b"BYE sip:", 1).replace(
            b"CSeq: 1 ACK", b"CSeq: 2 BYE").replace(b"branch=z9hG4bK-ack-", b"branch=z9hG4bK-bye-")
        peer.send(bye + b"Content-Length: 0\r\n\r\n", port)
        assert any(r.startswith(b"SIP/2.0 200") and b"BYE" in r for r in peer.recv_all(0.5))
    finally:
        peer.close()
        rtp.close()


def _in_dialog(method: str, port: int, peer: UdpPeer, cid: str, to_tag: str, cseq: int,
               body: bytes = b"", branch: str | None = None) -> bytes:
    head = (f"{method} sip:service@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch={branch or f'z9hG4bK-{cid}-{cseq}-{method}'};rport\r\n"
            f"From: <sip:raw@127.0.0.1:{peer.port}>;tag=raw-{cid}\r\n"
            f"To: <sip:service@127.0.0.1:{port}>;tag={to_tag}\r\n"
            f"Call-ID: {cid}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:raw@127.0.0.1:{peer.port}>\r\nMax-Forwards: 70\r\n")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _answer_sdp(rtp_port: int, version: int) -> bytes:
    return (b"v=0\r\no=raw 2 %d IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n" % (version, rtp_port))


def test_reinvite_without_sdp_offers_and_takes_the_answer_from_the_ack(
        dialtone: DialtoneProcess) -> None:
    """RFC 3261 14.2: a re-INVITE may carry no offer; the UAS then offers in its 2xx and the
    answer comes in the ACK.  Dialtone must not refuse it (488), and must follow the answer
    (here: a new RTP port and PCMA)."""
    peer = UdpPeer()
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first.bind(("127.0.0.1", 0))
    moved = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    moved.bind(("127.0.0.1", 0))
    moved.settimeout(1.5)
    port = dialtone.port
    cid = f"reoffer-{moved.getsockname()[1]}"
    try:
        invite = _invite(port, peer, cid).replace(b"m=audio 9 ", b"m=audio %d " % first.getsockname()[1])
        peer.send(invite, port)
        ok = [r for r in peer.recv_all(0.5) if r.startswith(b"SIP/2.0 200")]
        assert ok
        m = re.search(rb"\r\nTo: [^\r]*;tag=([^;\r]+)", ok[0])
        assert m is not None
        to_tag = m.group(1).decode()
        peer.send(_in_dialog("ACK", port, peer, cid, to_tag, 1), port)
        peer.send(_in_dialog("INVITE", port, peer, cid, to_tag, 2), port)
        replies = [r for r in peer.recv_all(0.5) if b"CSeq: 2 INVITE" in r]
        finals = [_status_line(r)[0] for r in replies if _status_line(r)[0] >= 200]
        assert finals and finals[0] == 200, finals  # not 488
        offer = replies[-1].split(b"\r\n\r\n", 1)[1]
        assert re.search(rb"^m=audio \d+ RTP/AVP .*\b8\b", offer, re.MULTILINE), offer
        peer.send(_in_dialog("ACK", port, peer, cid, to_tag, 2,
                             body=_answer_sdp(moved.getsockname()[1], 3)), port)
        deadline = time.monotonic() + 1.5
        packet = b""
        while time.monotonic() < deadline:  # the first packets may predate the ACK
            packet = moved.recv(2048)
            if packet[1] & 0x7F == 8:
                break
        assert packet and packet[1] & 0x7F == 8, "no PCMA RTP at the port the ACK's answer named"
        peer.send(_in_dialog("BYE", port, peer, cid, to_tag, 3), port)
        assert any(r.startswith(b"SIP/2.0 200") and b"BYE" in r for r in peer.recv_all(0.5))
    finally:
        peer.close()
        first.close()
        moved.close()
