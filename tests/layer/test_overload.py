"""Overload over loopback (issue 12 finding 4): a burst of INVITEs from a Python UDP client
against a live UserAgent.  Every INVITE gets a final response (200 or 503 + Retry-After),
OPTIONS keep answering quickly throughout, and calls already up keep their RTP."""

from __future__ import annotations

import asyncio
import re
import socket
import statistics
import time
from dataclasses import replace

import pytest

from telephony.aio.call import Call
from telephony.aio.sip_transport import is_new_call
from telephony.aio.useragent import UserAgent
from telephony.sip.admission import AdmissionConfig
from tests.conftest import free_port
from tests.layer.test_call_api import ua_config

N_INVITES = 2000
RATE = 2000.0  # INVITE/s
_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")
_CALL_ID = re.compile(rb"\r\nCall-ID: *([^\r]+)", re.IGNORECASE)


def flood_invite(n: int, port: int, target_port: int) -> bytes:
    return (f"INVITE sip:ivr@127.0.0.1:{target_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-flood-{n};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:flood@127.0.0.1>;tag=f{n}\r\n"
            f"To: <sip:ivr@127.0.0.1:{target_port}>\r\nCall-ID: flood-{n}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:flood@127.0.0.1:{port}>\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def options(n: int, port: int, target_port: int) -> bytes:
    return (f"OPTIONS sip:ivr@127.0.0.1:{target_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-opt-{n};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:mon@127.0.0.1>;tag=m{n}\r\n"
            f"To: <sip:ivr@127.0.0.1:{target_port}>\r\nCall-ID: opt-{n}\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def ack_for(response: bytes) -> bytes:
    """The ACK of a non-2xx final response: its Via, From, To, Call-ID; CSeq method ACK."""
    head = response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    keep = [h for h in head if h.split(b":", 1)[0].strip().lower()
            in (b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i")]
    to = next(h for h in keep if h.lower().startswith((b"to:", b"t:")))
    uri = to.split(b"<", 1)[1].split(b">", 1)[0]
    return b"\r\n".join([b"ACK " + uri + b" SIP/2.0", *keep, b"Max-Forwards: 70",
                           b"CSeq: 1 ACK", b"Content-Length: 0", b"", b""])


class Flood(asyncio.DatagramProtocol):
    """Sends the burst, retransmits INVITEs that got no response at all (as RFC 3261 17.1.1.2
    timer A would), and records each INVITE's final status."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.final: dict[bytes, int] = {}
        self.heard: set[bytes] = set()
        self.retry_after_missing = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        status_m, cid_m = _STATUS.match(data), _CALL_ID.search(data)
        if status_m is None or cid_m is None:
            return  # a BYE for a call we never ACKed, for instance
        cid, status = cid_m.group(1), int(status_m.group(1))
        self.heard.add(cid)
        if status >= 300 and self.transport is not None:
            # RFC 3261 17.1.1.3: ACK the non-2xx final (or it is retransmitted until timer H)
            self.transport.sendto(ack_for(data), addr)
        if status >= 200 and cid not in self.final:
            self.final[cid] = status
            if status == 503 and b"\r\nRetry-After:" not in data:
                self.retry_after_missing += 1


class Monitor(asyncio.DatagramProtocol):
    """A dispatcher's health check: OPTIONS every 50 ms, each retransmitted after 0.5 s
    (RFC 3261 17.1.2.2 timer E) until answered; latency counts from the first send."""

    def __init__(self) -> None:
        self.sent: dict[bytes, float] = {}
        self.rtt: list[float] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        cid_m = _CALL_ID.search(data)
        if cid_m is not None and data.startswith(b"SIP/2.0 200") and cid_m.group(1) in self.sent:
            self.rtt.append(time.monotonic() - self.sent.pop(cid_m.group(1)))


@pytest.mark.asyncio
async def test_invite_burst_gets_503_options_answer_held_calls_keep_rtp() -> None:
    loop = asyncio.get_running_loop()
    sport = free_port()
    cfg = ua_config(sport, 26000)
    cfg = replace(cfg, sip=replace(cfg.sip, t1=0.05, admission=AdmissionConfig(
        max_calls=40, calls_per_second=200.0)))

    async def app(call: Call) -> None:
        await call.wait_ended()

    server = UserAgent(cfg, handler=app)
    client = UserAgent(ua_config(free_port(), 26400))
    await server.start()
    await client.start()
    flood_t: asyncio.DatagramTransport | None = None
    mon_t: asyncio.DatagramTransport | None = None
    try:
        held = [await client.dial(f"sip:ivr@127.0.0.1:{sport}") for _ in range(2)]
        await asyncio.sleep(0.5)
        flood_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        flood_sock.bind(("127.0.0.1", 0))
        flood_t, flood = await loop.create_datagram_endpoint(Flood, sock=flood_sock)
        mon_t, mon = await loop.create_datagram_endpoint(Monitor, local_addr=("127.0.0.1", 0))
        fport = flood_t.get_extra_info("sockname")[1]
        mport = mon_t.get_extra_info("sockname")[1]
        rx_before = [c.media.counters["rx_packets"] for c in held]
        began = time.monotonic()
        sent_at: dict[int, float] = {}
        n_opt = 0
        next_opt = began
        # the burst, paced at RATE with OPTIONS every 50 ms, then retransmissions
        for n in range(N_INVITES):
            due = began + n / RATE
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            elif n % 50 == 0:
                await asyncio.sleep(0)
            flood_t.sendto(flood_invite(n, fport, sport), ("127.0.0.1", sport))
            sent_at[n] = time.monotonic()
            if time.monotonic() >= next_opt:
                mon.sent[f"opt-{n_opt}".encode()] = time.monotonic()
                mon_t.sendto(options(n_opt, mport, sport), ("127.0.0.1", sport))
                n_opt += 1
                next_opt += 0.05
        flood_seconds = time.monotonic() - began
        deadline = time.monotonic() + 30
        while (len(flood.final) < N_INVITES or mon.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for n, at in list(sent_at.items()):
                cid = f"flood-{n}".encode()
                if cid in flood.final:
                    del sent_at[n]
                elif cid not in flood.heard and now - at > 0.5:
                    flood_t.sendto(flood_invite(n, fport, sport), ("127.0.0.1", sport))
                    sent_at[n] = now
            for cid, at in list(mon.sent.items()):
                if now - at > 0.5:
                    k = int(cid.split(b"-")[1])
                    mon_t.sendto(options(k, mport, sport), ("127.0.0.1", sport))
            if time.monotonic() >= next_opt and len(flood.final) < N_INVITES:
                mon.sent[f"opt-{n_opt}".encode()] = time.monotonic()
                mon_t.sendto(options(n_opt, mport, sport), ("127.0.0.1", sport))
                n_opt += 1
                next_opt = time.monotonic() + 0.05
        rx = [c.media.counters["rx_packets"] - b for c, b in zip(held, rx_before, strict=True)]
        elapsed = time.monotonic() - began

        # every INVITE got a final response: 200 (admitted) or 503 with Retry-After
        assert len(flood.final) == N_INVITES
        counts = {s: list(flood.final.values()).count(s) for s in set(flood.final.values())}
        assert set(counts) <= {200, 503}, counts
        assert counts.get(503, 0) > N_INVITES // 2 and counts.get(200, 0) >= 1
        assert flood.retry_after_missing == 0
        assert server.endpoint.stats["overload_503"] >= counts[503]
        # OPTIONS answered throughout (the node looks loaded, not dead)
        await asyncio.sleep(0.3)
        assert n_opt >= flood_seconds / 0.05 - 2 and len(mon.rtt) == n_opt
        # (the flood client, the monitor and the node share one process and loop here, on
        # a shared 2-core machine: the tight 100 ms figure is the benchmark's, out of process)
        assert statistics.median(mon.rtt) < 0.25 and max(mon.rtt) < 2.0, sorted(mon.rtt)[-5:]
        # the held calls kept their audio (50 packets/s; generous on a shared 2-core box)
        for got in rx:
            assert got >= 0.8 * 50 * elapsed, (rx, elapsed)
        assert all(not c.ended for c in held)
        # the INVITE queue drained, and its Call-ID index with it (bounded bookkeeping)
        assert not server.transport._new_calls and not server.transport._queued_ids
    finally:
        for t in (flood_t, mon_t):
            if t is not None:
                t.close()
        await client.close()
        await server.close()


def test_new_call_classification() -> None:
    assert is_new_call(flood_invite(1, 5060, 5080))
    reinvite = flood_invite(1, 5060, 5080).replace(b"To: <sip:ivr@127.0.0.1:5080>",
                                                   b"t: <sip:ivr@127.0.0.1:5080> ;TAG=abc")
    assert not is_new_call(reinvite)
    assert not is_new_call(options(1, 5060, 5080))
    assert not is_new_call(b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n")
