"""An INVITE flood against `dialtone serve` (issue 12, finding 4): do held calls, health checks
and memory survive 2,000 INVITEs/s for 15 s, and is every INVITE answered?

    .venv/bin/python benchmarks/bench_defences_flood.py [--rate 2000] [--seconds 15]
        [--held 20] [--recover 60] [--node-cpu 0] [--client-cpu 1] [--label after]
        [--node-arg=--max-cps=...]

Four processes on 127.0.0.1 (UDP only), each started by this script:

- the node: ``dialtone serve --sip 127.0.0.1:0 --no-tcp --events ...`` (no flow: it answers
  and holds each call, streaming RTP), pinned to ``--node-cpu`` with taskset;
- ``--role held``: a small UAC that sets up ``--held`` calls first, keeps them up sending
  PCMU at 50 packets/s, and records each RTP packet the node sends back with its kernel
  receive time (SO_TIMESTAMPNS), so its own scheduling does not count as the node's jitter;
- ``--role options``: an OPTIONS every 100 ms (retransmitted after 0.5 s, RFC 3261 17.1.2.2
  timer E; latency counts from the first send);
- ``--role flood``: ``--rate`` INVITEs/s (with SDP, one source address) for ``--seconds``; it
  ACKs every non-2xx final response (RFC 3261 17.1.1.3), ACKs and BYEs every 200, retransmits
  INVITEs that got no response at all (timer A: 0.5 s doubling) and, after the flood, waits
  until every INVITE has its final response or timer B (32 s) has passed.

The clients share ``--client-cpu``.  Measured: the held calls' inter-arrival deviation from
the 20 ms grid (|interval - 20 ms| between consecutive sequence numbers) before, during and
after the flood; OPTIONS latency; responses by status; the node's RSS (/proc/PID/status)
before, during (peak) and over the minute after the flood; the node's calls left behind
(``call_started`` vs ``call_ended`` events, and the RTP sockets still open: 2 per call).

Writes benchmarks/results/defences_flood[_LABEL].md and .json.  Where the node's memory
goes (allocator arenas, malloc's heap, the media bank, per-call tables): run the node under
benchmarks/flood_probe.py (its docstring says how).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import re
import select
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from hostinfo import machine

DIALTONE = REPO / ".venv" / "bin" / "dialtone"
HOST = "127.0.0.1"
SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>; SCM_TIMESTAMPNS has the same value
TICK = 0.020

_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")
_CALL_ID = re.compile(rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r]+)", re.IGNORECASE)
_CSEQ = re.compile(rb"\r\n(?:CSeq)[ \t]*:[ \t]*(\d+)[ \t]+([A-Z]+)", re.IGNORECASE)
_TO = re.compile(rb"\r\n(?:To|t)[ \t]*:([^\r]+)", re.IGNORECASE)
_CONTACT = re.compile(rb"\r\n(?:Contact|m)[ \t]*:[^<\r]*<([^>]+)>", re.IGNORECASE)
_VIA = re.compile(rb"\r\n(?:Via|v)[ \t]*:([^\r]+)", re.IGNORECASE)
_FROM = re.compile(rb"\r\n(?:From|f)[ \t]*:([^\r]+)", re.IGNORECASE)
_SDP_PORT = re.compile(rb"\r\nm=audio (\d+) ")
_SDP_HOST = re.compile(rb"\r\nc=IN IP4 ([0-9.]+)")


# --- SIP messages (just enough of RFC 3261 for a UAC) ----------------------------------------


def sdp(port: int, sess: int) -> bytes:
    return (f"v=0\r\no=bench {sess} 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n").encode()


def invite(call_id: str, branch: str, lport: int, target: int, body: bytes) -> bytes:
    return (f"INVITE sip:ivr@{HOST}:{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{lport};branch=z9hG4bK{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:bench@{HOST}>;tag={call_id[-8:]}\r\n"
            f"To: <sip:ivr@{HOST}:{target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:bench@{HOST}:{lport}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def ack_non2xx(response: bytes, target: int) -> bytes:
    """RFC 3261 17.1.1.3: the ACK of a non-2xx final is part of the INVITE transaction (same
    Via branch, the response's To)."""
    via = _VIA.search(response)
    frm = _FROM.search(response)
    to = _TO.search(response)
    cid = _CALL_ID.search(response)
    assert via and frm and to and cid
    return (b"ACK sip:ivr@" + HOST.encode() + b":" + str(target).encode() + b" SIP/2.0\r\n"
            b"Via:" + via.group(1) + b"\r\nMax-Forwards: 70\r\nFrom:" + frm.group(1)
            + b"\r\nTo:" + to.group(1) + b"\r\nCall-ID: " + cid.group(1)
            + b"\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")


def in_dialog(method: str, response: bytes, lport: int, cseq: int, target: int) -> bytes:
    """ACK of a 2xx or BYE: a new transaction to the remote target (Contact), RFC 3261 13.2.2.4
    and 15.1.1."""
    frm = _FROM.search(response)
    to = _TO.search(response)
    cid = _CALL_ID.search(response)
    contact = _CONTACT.search(response)
    assert frm and to and cid
    uri = contact.group(1) if contact else f"sip:ivr@{HOST}:{target}".encode()
    branch = f"z9hG4bK{random.getrandbits(48):x}"
    return (method.encode() + b" " + uri + b" SIP/2.0\r\n"
            + f"Via: SIP/2.0/UDP {HOST}:{lport};branch={branch};rport\r\n".encode()
            + b"Max-Forwards: 70\r\nFrom:" + frm.group(1) + b"\r\nTo:" + to.group(1)
            + b"\r\nCall-ID: " + cid.group(1) + f"\r\nCSeq: {cseq} {method}\r\n".encode()
            + b"Content-Length: 0\r\n\r\n")


def response_to(request: bytes, status: int, reason: str) -> bytes:
    """A minimal response (to a BYE or OPTIONS the node sends us)."""
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    keep = [h for h in head if h.split(b":", 1)[0].strip().lower()
            in (b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq")]
    return b"\r\n".join([f"SIP/2.0 {status} {reason}".encode(), *keep,
                         b"Content-Length: 0", b"", b""])


def udp_socket(rcvbuf: int = 4 << 20) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((HOST, 0))
    s.setblocking(False)
    return s


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


# --- role: held calls ------------------------------------------------------------------------


def role_held(target: int, calls: int, out: Path) -> int:
    """Set up ``calls`` calls, print ``ready``, stream RTP at 50 packets/s each and record the
    node's RTP until a line arrives on stdin; then BYE them all and write ``out``."""
    sip = udp_socket()
    lport = sip.getsockname()[1]
    rtp = []
    for _ in range(calls):
        s = udp_socket(1 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        rtp.append(s)
    cids = [f"held-{os.getpid()}-{i}" for i in range(calls)]
    answers: dict[str, bytes] = {}
    remote: dict[str, tuple[str, int]] = {}
    deadline = time.monotonic() + 30
    sent_at: dict[str, float] = {}
    while len(answers) < calls and time.monotonic() < deadline:
        now = time.monotonic()
        for i, cid in enumerate(cids):
            if cid not in answers and now - sent_at.get(cid, -9.0) > 0.5:
                sip.sendto(invite(cid, f"h{i}{random.getrandbits(32):x}", lport, target,
                                  sdp(rtp[i].getsockname()[1], i + 1)), (HOST, target))
                sent_at[cid] = now
        select.select([sip], [], [], 0.05)
        while True:
            try:
                data, addr = sip.recvfrom(65536)
            except BlockingIOError:
                break
            m, c = _STATUS.match(data), _CALL_ID.search(data)
            if m is None or c is None:
                continue
            cid = c.group(1).decode()
            status = int(m.group(1))
            if status >= 300:
                sip.sendto(ack_non2xx(data, target), addr)
                print(f"held call {cid} refused: {status}", file=sys.stderr)
            elif status == 200 and cid not in answers:
                answers[cid] = data
                port, host = _SDP_PORT.search(data), _SDP_HOST.search(data)
                assert port and host, data
                remote[cid] = (host.group(1).decode(), int(port.group(1)))
                sip.sendto(in_dialog("ACK", data, lport, 1, target), addr)
    if len(answers) < calls:
        emit({"error": f"only {len(answers)} of {calls} held calls answered"})
        return 1
    emit({"ready": True, "t": time.time()})

    arrivals: list[list[tuple[int, int]]] = [[] for _ in range(calls)]
    payload = b"\xff" * 160
    seq = random.randrange(0, 1 << 16)
    ts = random.getrandbits(32)
    start = time.monotonic()
    k = 0
    sent = 0
    stdin = sys.stdin.fileno()
    fds = [s.fileno() for s in rtp]
    by_fd = {s.fileno(): i for i, s in enumerate(rtp)}
    dest = [remote[cid] for cid in cids]
    stop = False
    while not stop:
        due = start + k * TICK
        now = time.monotonic()
        if now >= due:
            hdr = struct.pack("!BBHII", 0x80, 0, (seq + k) & 0xFFFF, (ts + k * 160) & 0xFFFFFFFF,
                              0)
            for i, s in enumerate(rtp):
                s.sendto(hdr[:8] + struct.pack("!I", 0x5000 + i) + payload, dest[i])
                sent += 1
            k += 1
            continue
        ready, _, _ = select.select([*fds, stdin, sip.fileno()], [], [], due - now)
        for fd in ready:
            if fd == stdin:
                stop = True
                continue
            if fd == sip.fileno():
                try:
                    data, addr = sip.recvfrom(65536)
                except BlockingIOError:
                    continue
                if data[:4] != b"SIP/" and not data.startswith(b"ACK "):
                    sip.sendto(response_to(data, 200, "OK"), addr)  # the node's BYE, OPTIONS
                continue
            i = by_fd[fd]
            sock = rtp[i]
            while True:
                try:
                    data, anc, _flags, _addr = sock.recvmsg(2048, 64)
                except BlockingIOError:
                    break
                t_ns = 0
                for level, typ, cdata in anc:
                    if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", cdata[:16])
                        t_ns = sec * 1_000_000_000 + nsec
                if t_ns == 0:
                    t_ns = time.time_ns()
                if len(data) >= 12:
                    arrivals[i].append((struct.unpack_from("!H", data, 2)[0], t_ns))
    sys.stdin.readline()
    # BYE every call (RFC 3261 15.1.1), retransmitted until answered or 5 s
    byes = {cid: in_dialog("BYE", answers[cid], lport, 2, target) for cid in cids}
    bye_ok: set[str] = set()
    deadline = time.monotonic() + 5
    last_sent = -9.0
    while len(bye_ok) < calls and time.monotonic() < deadline:
        if time.monotonic() - last_sent > 0.5:
            for cid, msg in byes.items():
                if cid not in bye_ok:
                    sip.sendto(msg, (HOST, target))
            last_sent = time.monotonic()
        select.select([sip], [], [], 0.05)
        while True:
            try:
                data, _ = sip.recvfrom(65536)
            except BlockingIOError:
                break
            c, cs, m = _CALL_ID.search(data), _CSEQ.search(data), _STATUS.match(data)
            if c and cs and m and cs.group(2) == b"BYE" and int(m.group(1)) >= 200:
                bye_ok.add(c.group(1).decode())
    out.write_text(json.dumps({"arrivals": arrivals, "sent": sent, "bye_ok": len(bye_ok),
                               "calls": calls}))
    return 0


# --- role: OPTIONS monitor -------------------------------------------------------------------


def role_options(target: int, interval: float, out: Path) -> int:
    """An OPTIONS every ``interval`` s until a line arrives on stdin; then 3 s of grace."""
    s = udp_socket(1 << 20)
    lport = s.getsockname()[1]
    sent: dict[str, float] = {}      # call-id -> first send (time.time())
    last: dict[str, float] = {}      # call-id -> last (re)transmission
    rtt: dict[str, float] = {}
    msgs: dict[str, bytes] = {}
    stdin = sys.stdin.fileno()
    n = 0
    next_at = time.monotonic()
    stopping_at: float | None = None
    while True:
        mono = time.monotonic()
        if stopping_at is None and mono >= next_at:
            cid = f"opt-{os.getpid()}-{n}"
            msgs[cid] = (f"OPTIONS sip:ivr@{HOST}:{target} SIP/2.0\r\n"
                         f"Via: SIP/2.0/UDP {HOST}:{lport};branch=z9hG4bKo{n}x{os.getpid()};rport"
                         f"\r\nMax-Forwards: 70\r\nFrom: <sip:mon@{HOST}>;tag=m{n}\r\n"
                         f"To: <sip:ivr@{HOST}:{target}>\r\nCall-ID: {cid}\r\n"
                         "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
            sent[cid] = time.time()
            last[cid] = mono
            s.sendto(msgs[cid], (HOST, target))
            n += 1
            next_at += interval
        for cid, at in list(last.items()):
            if mono - at > 0.5:  # timer E (RFC 3261 17.1.2.2), T1 = 500 ms
                s.sendto(msgs[cid], (HOST, target))
                last[cid] = mono
        if stopping_at is not None and (not last or mono - stopping_at > 3.0):
            break
        wait = max(0.0, min(next_at - time.monotonic(), 0.05)) if stopping_at is None else 0.05
        ready, _, _ = select.select([s, stdin] if stopping_at is None else [s], [], [], wait)
        if stdin in ready:
            sys.stdin.readline()
            stopping_at = time.monotonic()
        if s in ready:
            while True:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    break
                c, m = _CALL_ID.search(data), _STATUS.match(data)
                if c and m and int(m.group(1)) >= 200:
                    cid = c.group(1).decode()
                    if cid in last:
                        rtt[cid] = time.time() - sent[cid]
                        del last[cid]
    out.write_text(json.dumps({"sent": [[cid, t, rtt.get(cid)] for cid, t in sent.items()]}))
    return 0


# --- role: the flood -------------------------------------------------------------------------


def role_flood(target: int, rate: float, seconds: float, out: Path) -> int:
    """``rate`` INVITEs/s for ``seconds``, answering what comes back; then wait for every final
    response (timer B, 32 s, at most)."""
    s = udp_socket(8 << 20)
    sink = udp_socket(64 << 10)  # the SDP's media address: the node's RTP piles up and drops
    lport = s.getsockname()[1]
    body = sdp(sink.getsockname()[1], 7)
    dest = (HOST, target)
    total = int(rate * seconds)
    first_sent: list[float] = [0.0] * total
    retry: list[tuple[float, int]] = []  # (when, n): INVITEs that may need retransmitting
    flood_end: float | None = None
    interval: list[float] = [0.5] * total
    heard = bytearray(total)          # any response
    final: dict[int, int] = {}
    final_at: dict[int, float] = {}
    no_retry_after = 0
    answered_200: dict[int, bytes] = {}
    bye_pending: dict[int, tuple[bytes, float, float]] = {}   # n -> (BYE, last send, interval)
    bye_done = 0
    retrans = 0
    others: Counter[int] = Counter()
    per_second: Counter[int] = Counter()
    prefix = f"fl{os.getpid()}-"
    plen = len(prefix)
    branches = [f"f{random.getrandbits(40):x}" for _ in range(total)]

    def msg(n: int) -> bytes:
        return invite(f"{prefix}{n}", branches[n], lport, target, body)

    def handle(data: bytes, addr: tuple[str, int], now: float) -> None:
        nonlocal no_retry_after, bye_done
        m = _STATUS.match(data)
        c = _CALL_ID.search(data)
        if c is None:
            return
        cid = c.group(1)
        if m is None:  # a request from the node (BYE on media timeout, say)
            if not data.startswith(b"ACK "):
                s.sendto(response_to(data, 200, "OK"), addr)
            return
        if not cid.startswith(prefix.encode()):
            return
        n = int(cid[plen:])
        status = int(m.group(1))
        cs = _CSEQ.search(data)
        if cs is not None and cs.group(2) == b"BYE":
            if status >= 200 and bye_pending.pop(n, None) is not None:
                bye_done += 1
            return
        heard[n] = 1
        if status < 200:
            return
        if status == 200:
            if n not in answered_200:
                answered_200[n] = data
                bye = in_dialog("BYE", data, lport, 2, target)
                bye_pending[n] = (bye, now, 0.5)
                s.sendto(in_dialog("ACK", data, lport, 1, target), addr)
                s.sendto(bye, addr)
            else:  # a retransmitted 200: our ACK was lost (RFC 3261 13.2.2.4)
                s.sendto(in_dialog("ACK", data, lport, 1, target), addr)
        else:
            s.sendto(ack_non2xx(data, target), addr)
            if status == 503 and n not in final and b"\r\nRetry-After:" not in data:
                no_retry_after += 1
        if n not in final:
            final[n] = status
            final_at[n] = now - first_sent[n]
            if status not in (200, 503):
                others[status] += 1

    start = time.monotonic()
    start_wall = time.time()
    emit({"flood_start": start_wall})
    next_n = 0
    end_at = start + seconds
    timer_b = 32.0
    last_scan = start
    while True:
        now = time.monotonic()
        # send what is due (a millisecond's worth at a time keeps the rate smooth)
        due = min(total, int((now - start) * rate) + 1) if now < end_at + 1 else total
        while next_n < due:
            s.sendto(msg(next_n), dest)
            first_sent[next_n] = now
            heapq.heappush(retry, (now + 0.5, next_n))
            per_second[int(now - start)] += 1
            next_n += 1
        if next_n == total and flood_end is None:
            flood_end = now
        if now - last_scan > 0.05:
            last_scan = now
            while retry and retry[0][0] <= now:
                _, n = heapq.heappop(retry)
                if heard[n] or now - first_sent[n] >= timer_b:
                    continue
                s.sendto(msg(n), dest)  # timer A (RFC 3261 17.1.1.2)
                interval[n] = min(interval[n] * 2, 4.0)
                heapq.heappush(retry, (now + interval[n], n))
                retrans += 1
            for n, (bye, at, ival) in list(bye_pending.items()):
                if now - at >= ival:
                    s.sendto(bye, dest)
                    bye_pending[n] = (bye, now, min(ival * 2, 4.0))
            if flood_end is not None:
                done = len(final) == total and not bye_pending
                expired = now - flood_end > timer_b + 1
                if done or expired:
                    break
        for _ in range(256):
            try:
                data, addr = s.recvfrom(65536)
            except BlockingIOError:
                break
            handle(data, addr, now)
        try:
            while True:
                sink.recv(4096)
        except BlockingIOError:
            pass
        wait = start + next_n / rate - time.monotonic() if next_n < total else 0.02
        if wait > 0:
            select.select([s], [], [], min(wait, 0.02))
    assert flood_end is not None
    send_span = flood_end - start
    statuses = Counter(final.values())
    lat = list(final_at.values())
    out.write_text(json.dumps({
        "sent": total, "send_seconds": send_span, "achieved_rate": total / send_span,
        "start": start_wall, "end": start_wall + send_span,
        "per_second": [per_second[i] for i in range(int(seconds) + 1)],
        "retransmissions": retrans, "statuses": {str(k): v for k, v in statuses.items()},
        "no_final": total - len(final), "no_response_at_all": total - sum(heard),
        "no_retry_after": no_retry_after, "others": {str(k): v for k, v in others.items()},
        "answered_200": len(answered_200), "bye_ok": bye_done, "bye_unanswered": len(bye_pending),
        "final_p50_ms": pct(lat, 0.5) * 1000, "final_p99_ms": pct(lat, 0.99) * 1000,
        "final_max_ms": max(lat, default=float("nan")) * 1000,
        "wall": time.monotonic() - start}))
    return 0


# --- the conductor ---------------------------------------------------------------------------


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main_pid_of(popen: subprocess.Popen[str]) -> int:
    """The pid of dialtone (the child of ``timeout``)."""
    for _ in range(100):
        try:
            kids = Path(f"/proc/{popen.pid}/task/{popen.pid}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise RuntimeError("dialtone serve has no child process")


def events_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # being written
    return out


def role_cmd(cpu: int | None, role: str, *args: str) -> list[str]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return [*pin, sys.executable, str(Path(__file__).resolve()), "--role", role, *args]


def jitter(arrivals: list[list[tuple[int, int]]], lo: float, hi: float) -> dict[str, float]:
    """|interval - 20 ms| (ms) between consecutive sequence numbers that arrived in [lo, hi)
    (wall-clock seconds), and the packets per second per call received."""
    devs: list[float] = []
    counts: list[int] = []
    gaps = 0
    for pkts in arrivals:
        inside = [(seq, t) for seq, t in pkts if lo <= t / 1e9 < hi]
        counts.append(len(inside))
        for (s0, t0), (s1, t1) in itertools.pairwise(inside):
            d = (s1 - s0) & 0xFFFF
            if d == 1:
                devs.append(abs((t1 - t0) / 1e6 - 20.0))
            elif d > 1:
                gaps += d - 1
    span = max(hi - lo, 1e-9)
    return {"p50": pct(devs, 0.5), "p99": pct(devs, 0.99), "max": max(devs, default=float("nan")),
            "pps_min": min(counts) / span if counts else float("nan"),
            "pps_median": statistics.median(counts) / span if counts else float("nan"),
            "lost": gaps, "intervals": len(devs)}


def worst_second(arrivals: list[list[tuple[int, int]]], lo: float, hi: float) -> float:
    """The fewest packets any held call received in any whole second of [lo, hi)."""
    worst = float("inf")
    for pkts in arrivals:
        per: Counter[int] = Counter(int(t / 1e9 - lo) for _, t in pkts if lo <= t / 1e9 < hi)
        for sec in range(int(hi - lo)):
            worst = min(worst, per[sec])
    return worst


def conduct(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    events_path = work / "events.jsonl"
    pin = ["taskset", "-c", str(args.node_cpu)] if args.node_cpu >= 0 else []
    budget = 30 + args.seconds + 40 + args.recover + 30
    node_log = open(work / "node.log", "w")  # noqa: SIM115 - closed at the end
    # BENCH_FLOOD_NODE: another command for the node (a profiling wrapper, say)
    program = shlex.split(os.environ.get("BENCH_FLOOD_NODE", "")) or [str(DIALTONE)]
    node_cmd = [*pin, *program, "serve", "--sip", f"{HOST}:0", "--no-tcp",
                "--events", str(events_path), "--rtp-ports", args.rtp_ports,
                "--media-timeout", str(args.media_timeout),
                "--db", f"sqlite:///{work / 'node.db'}", *args.node_arg]
    env = dict(os.environ)
    node = subprocess.Popen(["timeout", "-k", "5", str(int(budget)), *node_cmd], cwd=work,
                            stdout=node_log, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    kids: list[subprocess.Popen[str]] = []
    try:
        t0 = time.monotonic()
        port = 0
        while time.monotonic() - t0 < 30 and node.poll() is None:
            started = [e for e in events_of(events_path) if e.get("type") == "node_started"]
            if started:
                port = int(started[0]["sip"].rsplit(":", 1)[1])
                break
            time.sleep(0.1)
        if not port:
            raise RuntimeError("dialtone serve did not start: "
                               + (work / "node.log").read_text()[-2000:])
        pid = main_pid_of(node)
        time.sleep(1.0)
        rss_idle = proc_status(pid, "VmRSS")
        fds_idle = fd_count(pid)
        print(f"node pid {pid} on {HOST}:{port}; RSS {rss_idle} kB, {fds_idle} fds; "
              f"work dir {work}", flush=True)

        held = subprocess.Popen(role_cmd(args.client_cpu, "held", "--port", str(port),
                                         "--held", str(args.held), "--out",
                                         str(work / "held.json")),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        kids.append(held)
        assert held.stdout is not None and held.stdin is not None
        line = json.loads(held.stdout.readline() or '{"error": "held UAC exited"}')
        if not line.get("ready"):
            raise RuntimeError(f"held calls: {line}")
        opts = subprocess.Popen(role_cmd(args.client_cpu, "options", "--port", str(port),
                                         "--interval", str(args.options_interval), "--out",
                                         str(work / "options.json")),
                                stdin=subprocess.PIPE, text=True)
        kids.append(opts)
        assert opts.stdin is not None
        pre_start = time.time()
        time.sleep(args.pre)
        rss_before = proc_status(pid, "VmRSS")
        fds_held = fd_count(pid)
        print(f"{args.held} calls up: RSS {rss_before} kB, {fds_held} fds", flush=True)
        census = os.environ.get("BENCH_FLOOD_SIGUSR1") == "1"  # for a profiling wrapper
        if census:
            os.kill(pid, signal.SIGUSR1)

        flood = subprocess.Popen(role_cmd(args.client_cpu, "flood", "--port", str(port),
                                          "--rate", str(args.rate), "--seconds",
                                          str(args.seconds), "--out", str(work / "flood.json")),
                                 stdout=subprocess.PIPE, text=True)
        kids.append(flood)
        assert flood.stdout is not None
        flood_start = float(json.loads(flood.stdout.readline())["flood_start"])
        rss_during: list[int] = []
        fds_during: list[int] = []
        while flood.poll() is None:
            rss_during.append(proc_status(pid, "VmRSS"))
            fds_during.append(fd_count(pid))
            time.sleep(0.5)
        if census:
            os.kill(pid, signal.SIGUSR1)
        fres = json.loads((work / "flood.json").read_text())
        flood_end = float(fres["end"])
        print(f"flood: {fres['sent']} INVITEs in {fres['send_seconds']:.1f} s "
              f"({fres['achieved_rate']:.0f}/s); statuses {fres['statuses']}, no final "
              f"{fres['no_final']}", flush=True)
        # the minute after the flood: RSS each second, held calls and OPTIONS still going
        rss_after: list[tuple[float, int]] = []
        while time.time() < flood_end + args.recover:
            rss_after.append((time.time() - flood_end, proc_status(pid, "VmRSS")))
            time.sleep(1.0)
        post_end = time.time()
        if census:
            os.kill(pid, signal.SIGUSR1)
        fds_after_flood = fd_count(pid)
        opts.stdin.write("stop\n")
        opts.stdin.flush()
        held.stdin.write("stop\n")
        held.stdin.flush()
        held.wait(30)
        opts.wait(30)
        # every call the node started must end: the held calls got their BYE just now
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            evs = events_of(events_path)
            started_n = sum(e.get("type") == "call_started" for e in evs)
            ended_n = sum(e.get("type") == "call_ended" for e in evs)
            if started_n == ended_n and fd_count(pid) <= fds_idle:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        evs = events_of(events_path)
        started_n = sum(e.get("type") == "call_started" for e in evs)
        ended_n = sum(e.get("type") == "call_ended" for e in evs)
        failed_n = sum(e.get("type") == "call_failed" for e in evs)
        fds_end = fd_count(pid)
        rss_end = proc_status(pid, "VmRSS")
        causes = Counter(str(e.get("cause")) for e in evs if e.get("type") == "call_ended")
    finally:
        for k in kids:
            if k.poll() is None:
                k.kill()
                k.wait(5)
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait(5)
        node_log.close()

    hres = json.loads((work / "held.json").read_text())
    ores = json.loads((work / "options.json").read_text())
    arr = hres["arrivals"]
    phases = {"before": (pre_start + 0.5, flood_start), "flood": (flood_start, flood_end),
              "after": (flood_end, post_end)}
    jit = {name: jitter(arr, lo, hi) for name, (lo, hi) in phases.items()}
    worst = {name: worst_second(arr, lo, hi) for name, (lo, hi) in phases.items()}
    opt_rows = ores["sent"]
    opt = {}
    for name, (lo, hi) in phases.items():
        rtts = [r * 1000 for _, t, r in opt_rows if lo <= t < hi and r is not None]
        missing = sum(1 for _, t, r in opt_rows if lo <= t < hi and r is None)
        over = sum(1 for r in rtts if r > 100)
        opt[name] = {"n": len(rtts) + missing, "p50": pct(rtts, 0.5), "p99": pct(rtts, 0.99),
                     "max": max(rtts, default=float("nan")), "unanswered": missing,
                     "over_100ms": over}
    rss_peak = max(rss_during, default=0)
    within = [t for t, r in rss_after if r <= rss_before * 1.10]
    rss_60 = rss_after[-1][1] if rss_after else 0
    leaked = started_n - ended_n
    live_after = (fds_end - fds_idle) // 2
    sts = fres["statuses"]
    result = {
        "label": args.label, "machine": machine(), "load_at_start": os.getloadavg()[0],
        "rate_offered": args.rate, "seconds": args.seconds, "held": args.held,
        "node_args": args.node_arg, "flood": fres, "jitter": jit, "worst_second_pps": worst,
        "options": opt, "rss_kb": {"idle": rss_idle, "before": rss_before, "peak": rss_peak,
                                   "after_series": rss_after, "at_recover": rss_60,
                                   "end": rss_end},
        "fds": {"idle": fds_idle, "held": fds_held, "peak": max(fds_during, default=0),
                "after_flood": fds_after_flood, "end": fds_end},
        "calls": {"started": started_n, "ended": ended_n, "failed": failed_n, "leaked": leaked,
                  "live_after_by_fds": live_after, "end_causes": dict(causes)},
        "held_bye_ok": hres["bye_ok"],
    }
    goals = {
        "held RTP p99 within 20 ms of the grid during the flood": jit["flood"]["p99"] <= 20.0,
        "OPTIONS answered within 100 ms throughout": all(
            o["unanswered"] == 0 and o["over_100ms"] == 0 for o in opt.values()),
        "every INVITE has a final response (200 or 503 + Retry-After)": (
            fres["no_final"] == 0 and not fres["others"] and fres["no_retry_after"] == 0),
        "RSS back within 10% of its pre-flood level within a minute": (
            bool(rss_after) and rss_60 <= rss_before * 1.10),
        "no call left behind": leaked == 0 and live_after <= 0,
    }
    result["goals"] = goals
    suffix = f"_{args.label}" if args.label else ""
    out_md = HERE / "results" / f"defences_flood{suffix}.md"
    out_md.parent.mkdir(parents=True, exist_ok=True)
    (HERE / "results" / f"defences_flood{suffix}.json").write_text(json.dumps(result, indent=1))

    node_args = " ".join(f"--node-arg={a}" for a in args.node_arg)
    lines = [
        f"### Flood run{' (' + args.label + ')' if args.label else ''}",
        "",
        (f"Command: `.venv/bin/python benchmarks/bench_defences_flood.py --rate {args.rate:g} "
         f"--seconds {args.seconds:g} --held {args.held}"
         f"{' --label ' + args.label if args.label else ''}{' ' + node_args if node_args else ''}`"
         "  "),
        (f"Machine: {machine()}, node pinned to CPU {args.node_cpu}, the three clients to CPU "
         f"{args.client_cpu}; load average at start {result['load_at_start']:.2f} (shared with "
         "other work during this session)."),
        "",
        (f"Flood: {fres['sent']:,} INVITEs in {fres['send_seconds']:.1f} s = "
         f"**{fres['achieved_rate']:,.0f}/s achieved** (offered {args.rate:g}/s; fewest in one "
         f"second {min(fres['per_second'][:int(args.seconds)], default=0):,}), "
         f"{fres['retransmissions']:,} retransmissions (timer A)."),
        "",
        "| final responses | count |",
        "|---|---:|",
        f"| 200 (ACKed, then BYE) | {sts.get('200', 0):,} |",
        f"| 503 with Retry-After | {sts.get('503', 0) - fres['no_retry_after']:,} |",
        f"| 503 without Retry-After | {fres['no_retry_after']:,} |",
        f"| other | {sum(fres['others'].values()):,} {fres['others'] or ''} |",
        f"| **no final response** | **{fres['no_final']:,}** |",
        "",
        (f"Time from first send to final response: p50 {fres['final_p50_ms']:.1f} ms, "
         f"p99 {fres['final_p99_ms']:.1f} ms, max {fres['final_max_ms']:.1f} ms. BYEs of the "
         f"answered calls answered: {fres['bye_ok']:,} of {fres['answered_200']:,}."),
        "",
        (f"Held calls ({args.held}, node RTP timed by the kernel at arrival): |interval - 20 ms| "
         "between consecutive packets, and packets per second per call."),
        "",
        ("| phase | p50 ms | p99 ms | max ms | packets/s per call (median / lowest call) | "
        "fewest in any 1 s | lost |"),
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name in phases:
        j = jit[name]
        lines.append(f"| {name} | {j['p50']:.2f} | {j['p99']:.2f} | {j['max']:.2f} | "
                     f"{j['pps_median']:.1f} / {j['pps_min']:.1f} | {worst[name]:.0f} | "
                     f"{j['lost']} |")
    lines += ["", (f"OPTIONS every {args.options_interval * 1000:.0f} ms "
              "(latency from first send, ms):"), "",
              "| phase | sent | p50 | p99 | max | over 100 ms | unanswered |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name in phases:
        o = opt[name]
        lines.append(f"| {name} | {o['n']} | {o['p50']:.1f} | {o['p99']:.1f} | {o['max']:.1f} | "
                     f"{o['over_100ms']} | {o['unanswered']} |")
    first_within = f"{within[0]:.0f} s after the flood" if within else "not within the minute"
    lines += [
        "",
        (f"Node RSS: idle {rss_idle / 1024:.1f} MiB; with {args.held} calls before the flood "
         f"**{rss_before / 1024:.1f} MiB**; peak during **{rss_peak / 1024:.1f} MiB**; "
         f"{args.recover:g} s after **{rss_60 / 1024:.1f} MiB** "
         f"({(rss_60 - rss_before) / max(rss_before, 1) * 100:+.1f}%); back within 10%: "
         f"{first_within}."),
        "",
        (f"Calls left behind: node events call_started {started_n:,}, call_ended {ended_n:,} "
         f"(+ call_failed {failed_n}) -> **{leaked} leaked**; the node's descriptors idle "
         f"{fds_idle}, with the held calls {fds_held}, peak {max(fds_during, default=0)}, "
         f"after the flood {fds_after_flood}, after the held calls' BYE {fds_end} "
         f"(**{max(live_after, 0)} calls' RTP sockets open**)."),
        "",
        "| goal (issue 12) | met |",
        "|---|---|",
        *[f"| {g} | {'yes' if ok else '**no**'} |" for g, ok in goals.items()],
        "",
    ]
    out_md.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


def repeat(args: argparse.Namespace) -> int:
    """``--repeat N``: N floods against one node (no held calls), its RSS ``--recover`` s after
    each: does the memory a flood leaves grow with every flood, or is it a high-water mark?"""
    work = Path(tempfile.mkdtemp(prefix="bench-flood-repeat-"))
    events_path = work / "events.jsonl"
    pin = ["taskset", "-c", str(args.node_cpu)] if args.node_cpu >= 0 else []
    budget = 30 + args.repeat * (args.seconds + 40 + args.recover)
    cmd = [*pin, str(DIALTONE), "serve", "--sip", f"{HOST}:0", "--no-tcp", "--events",
           str(events_path), "--rtp-ports", args.rtp_ports, "--media-timeout",
           str(args.media_timeout), "--db", f"sqlite:///{work / 'node.db'}", *args.node_arg]
    with open(work / "node.log", "w") as log:
        node = subprocess.Popen(["timeout", "-k", "5", str(int(budget)), *cmd], cwd=work,
                                stdout=log, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            port = 0
            t0 = time.monotonic()
            while not port and time.monotonic() - t0 < 30 and node.poll() is None:
                for e in events_of(events_path):
                    if e.get("type") == "node_started":
                        port = int(e["sip"].rsplit(":", 1)[1])
                time.sleep(0.1)
            if not port:
                raise RuntimeError("dialtone serve did not start")
            pid = main_pid_of(node)
            time.sleep(1.0)
            rows = [("idle", proc_status(pid, "VmRSS"), "")]
            for i in range(args.repeat):
                out = work / f"flood{i}.json"
                subprocess.run(role_cmd(args.client_cpu, "flood", "--port", str(port), "--rate",
                                        str(args.rate), "--seconds", str(args.seconds), "--out",
                                        str(out)), check=True, stdout=subprocess.DEVNULL)
                time.sleep(args.recover)
                f = json.loads(out.read_text())
                rows.append((f"{args.recover:g} s after flood {i + 1}",
                             proc_status(pid, "VmRSS"),
                             (f"{f['statuses'].get('200', 0):,} admitted, no final "
                             f"{f['no_final']}")))
        finally:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(15)
    lines = ["### Repeated floods", "",
             (f"Command: `.venv/bin/python benchmarks/bench_defences_flood.py --repeat "
              f"{args.repeat} --recover {args.recover:g}`  "),
             (f"Machine: {machine()}, node on CPU {args.node_cpu}, generator on CPU "
              f"{args.client_cpu}; load average {os.getloadavg()[0]:.2f} at the end (shared)."),
             "", "| reading | RSS MiB | change MiB | flood |", "|---|---:|---:|---|"]
    prev = None
    for name, kb, note in rows:
        change = "" if prev is None else f"{(kb - prev) / 1024:+.1f}"
        lines.append(f"| {name} | {kb / 1024:.1f} | {change} | {note} |")
        prev = kb
    lines.append("")
    (HERE / "results" / "defences_flood_repeat.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


def summary(labels: list[str]) -> int:
    """One comparison table of earlier runs (their JSON results), printed and written to
    benchmarks/results/defences_flood_summary.md."""
    rows = [("| run | load avg | INVITE/s achieved | 200 | 503 + Retry-After | no final | "
            "held RTP p99 before / during / after (ms) | held RTP max during (ms) | "
            "OPTIONS p99 / max during (ms) | OPTIONS > 100 ms (all phases) | "
            "RSS before / peak / +60 s (MiB) (change) | leaked calls |"),
            "|---|---:|---:|---:|---:|---:|---|---:|---|---:|---|---:|"]
    for label in labels:
        suffix = f"_{label}" if label else ""
        r = json.loads((HERE / "results" / f"defences_flood{suffix}.json").read_text())
        f, j, o, m = r["flood"], r["jitter"], r["options"], r["rss_kb"]
        sts = f["statuses"]
        over = sum(v["over_100ms"] + v["unanswered"] for v in o.values())
        rows.append(
            f"| {label or 'after'} | {r['load_at_start']:.1f} | {f['achieved_rate']:,.0f} | "
            f"{sts.get('200', 0):,} | {sts.get('503', 0) - f['no_retry_after']:,} | "
            f"{f['no_final']} | {j['before']['p99']:.1f} / {j['flood']['p99']:.1f} / "
            f"{j['after']['p99']:.1f} | {j['flood']['max']:.0f} | "
            f"{o['flood']['p99']:.0f} / {o['flood']['max']:.0f} | {over} | "
            f"{m['before'] / 1024:.0f} / {m['peak'] / 1024:.0f} / {m['at_recover'] / 1024:.0f} "
            f"({(m['at_recover'] - m['before']) / max(m['before'], 1) * 100:+.0f}%) | "
            f"{r['calls']['leaked']} |")
    text = "\n".join(rows) + "\n"
    (HERE / "results" / "defences_flood_summary.md").write_text(text)
    print(text)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--role", choices=("conduct", "held", "options", "flood"), default="conduct",
                    help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--interval", type=float, default=0.1, help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=2000.0, help="INVITEs per second")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the flood")
    ap.add_argument("--held", type=int, default=20, help="calls set up and held first")
    ap.add_argument("--pre", type=float, default=5.0, help="seconds measured before the flood")
    ap.add_argument("--recover", type=float, default=60.0,
                    help="seconds after the flood (RSS, held calls, OPTIONS)")
    ap.add_argument("--options-interval", type=float, default=0.1)
    ap.add_argument("--node-cpu", type=int, default=0, help="-1: not pinned")
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--rtp-ports", default="40000-50000")
    ap.add_argument("--media-timeout", type=float, default=30.0)
    ap.add_argument("--node-arg", action="append", default=[],
                    help="extra argument for dialtone serve (repeatable)")
    ap.add_argument("--label", default="", help="results file suffix (e.g. before)")
    ap.add_argument("--summary", nargs="*", metavar="LABEL", default=None,
                    help="only tabulate earlier runs with these labels ('' for the plain run)")
    ap.add_argument("--repeat", type=int, default=0, metavar="N",
                    help="only N floods against one node, RSS --recover s after each")
    args = ap.parse_args()
    if args.repeat:
        return repeat(args)
    if args.summary is not None:
        return summary(args.summary)
    if args.role == "held":
        return role_held(args.port, args.held, args.out)
    if args.role == "options":
        return role_options(args.port, args.interval, args.out)
    if args.role == "flood":
        return role_flood(args.port, args.rate, args.seconds, args.out)
    return conduct(args)


if __name__ == "__main__":
    sys.exit(main())
