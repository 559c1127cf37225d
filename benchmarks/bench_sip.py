"""SIP core figures: parse+serialise rate, in-memory call setup rate, memory per call.

Run: .venv/bin/python benchmarks/bench_sip.py [--quick]
Writes benchmarks/results/sip.md.  One core, no I/O: two SipEndpoints exchange datagrams
in memory (every datagram still goes through bytes -> parse -> serialise).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hostinfo import machine

from telephony.sip.config import SipConfig
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import CallAnswered, CallConfirmed, CallTerminated, IncomingCall
from telephony.sip.message import parse_datagram

UAC = ("127.0.0.1", 5061)
UAS = ("127.0.0.1", 5062)
SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\n")
FIXTURE = ROOT / "tests" / "fixtures" / "sip" / "baresip_invite.txt"




def bench_parse(runs: int, n: int) -> dict[str, float]:
    data = FIXTURE.read_bytes()

    def parse_only() -> None:
        for _ in range(n):
            parse_datagram(data)

    def parse_typed_serialize() -> None:
        for _ in range(n):
            m = parse_datagram(data)
            m.check_mandatory()  # Via, From, To, Call-ID, CSeq, Max-Forwards typed
            _ = m.contacts
            m.serialize()

    msg = parse_datagram(data)

    def serialize_only() -> None:
        for _ in range(n):
            msg.serialize()

    out = {}
    for name, fn in (("parse", parse_only), ("parse+typed+serialize", parse_typed_serialize),
                     ("serialize", serialize_only)):
        rates = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            rates.append(n / (time.perf_counter() - t0))
        out[name] = statistics.median(rates)
    return out


class Wire:
    """Passes datagrams between two endpoints immediately (no loss, no latency)."""

    def __init__(self) -> None:
        self.uac = SipEndpoint(SipConfig(port=UAC[1], username="alice"), rng=random.Random(1))
        self.uas = SipEndpoint(SipConfig(port=UAS[1], username="bob"), rng=random.Random(2))
        self.now = 0.0
        self.datagrams = 0

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for src, ep in ((UAC, self.uac), (UAS, self.uas)):
                for out in ep.datagrams_to_send(self.now):
                    dst = self.uas if out.addr == UAS else self.uac
                    dst.receive_datagram(out.data, src, self.now)
                    self.datagrams += 1
                    moved = True

    def drain(self, ep: SipEndpoint) -> list[object]:
        evs = []
        while (e := ep.next_event()) is not None:
            evs.append(e)
        return evs

    def establish(self) -> tuple[str, str]:
        call = self.uac.invite(f"sip:bob@{UAS[0]}:{UAS[1]}", body=SDP, now=self.now)
        self.pump()
        (inc,) = self.drain(self.uas)
        assert isinstance(inc, IncomingCall)
        self.uas.ringing(inc.call, now=self.now)
        self.uas.answer(inc.call, SDP, now=self.now)
        self.pump()
        assert isinstance(self.drain(self.uac)[-1], CallAnswered)
        assert isinstance(self.drain(self.uas)[-1], CallConfirmed)
        return call, inc.call

    def full_call(self) -> None:
        call, _ = self.establish()
        self.uac.hangup(call, now=self.now)
        self.pump()
        assert isinstance(self.drain(self.uas)[-1], CallTerminated)
        self.drain(self.uac)

    def settle(self, seconds: float) -> None:
        end = self.now + seconds
        while (t := min(x for x in (self.uac.get_timer(), self.uas.get_timer(), end)
                        if x is not None)) < end:
            self.now = t
            self.uac.handle_timer(t)
            self.uas.handle_timer(t)
            self.pump()
        self.now = end


def bench_calls(runs: int, n: int) -> dict[str, float]:
    rates = []
    for _ in range(runs):
        w = Wire()
        t0 = time.perf_counter()
        for i in range(n):
            w.now = i * 0.001
            w.full_call()
        rates.append(n / (time.perf_counter() - t0))
        w.settle(100.0)
        assert w.uac.pending()["calls"] == 0 and w.uas.pending()["timers"] == 0
        per_call = w.datagrams / n
    return {"calls_per_s": statistics.median(rates), "datagrams_per_call": per_call,
            "datagrams_per_s": statistics.median(rates) * per_call}


def bench_memory(n: int) -> dict[str, float]:
    gc.collect()
    tracemalloc.start()
    w = Wire()
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        w.now = i * 0.0001
        w.establish()
    gc.collect()
    fresh = tracemalloc.get_traced_memory()[0] - base
    # after 64*T1 the INVITE transactions (RFC 6026 Accepted state) are gone: steady state
    w.settle(40.0)
    gc.collect()
    steady = tracemalloc.get_traced_memory()[0] - base
    uac_before = tracemalloc.get_traced_memory()[0]
    w.uac = None  # type: ignore[assignment]
    gc.collect()
    uac_share = uac_before - tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"both_fresh": fresh / n, "both_steady": steady / n,
            "uac_steady": uac_share / n, "uas_steady": (steady - uac_share) / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = ap.parse_args()
    runs = 3 if args.quick else 5
    load = os.getloadavg()[0]
    parse = bench_parse(runs, 2000 if args.quick else 20000)
    calls = bench_calls(runs, 200 if args.quick else 2000)
    mem = bench_memory(200 if args.quick else 1000)
    cmd = "`.venv/bin/python benchmarks/bench_sip.py`" + (" --quick" if args.quick else "")
    lines = [
        "## SIP core (telephony/sip)", "",
        f"Command: {cmd}  ", f"Machine: {machine()}  ",
        (f"Median of {runs} runs, one core, no I/O; 1-min load average at start {load:.2f} "
         "(the 2 cores are shared, so rates vary by about 20% between runs)."), "",
        "| Figure | Value |", "|---|---|",
        f"| Parse a typical INVITE (baresip capture, 872 B) | {parse['parse']:,.0f} msg/s |",
        (f"| Parse + typed Via/From/To/CSeq/Call-ID/Max-Forwards/Contact + serialise | "
        f"{parse['parse+typed+serialize']:,.0f} msg/s |"),
        f"| Serialise only | {parse['serialize']:,.0f} msg/s |",
        (f"| Call setup+teardown between two endpoints in memory (INVITE/180/200/ACK/BYE/200, "
        f"{calls['datagrams_per_call']:.0f} datagrams, both ends on the same core) | "
        f"{calls['calls_per_s']:,.0f} calls/s |"),
        (f"| ... as datagrams through parse+endpoint+serialise | "
        f"{calls['datagrams_per_s']:,.0f} datagrams/s |"),
        (f"| Memory per established call, both endpoints, first 32 s (INVITE tx still in "
        f"RFC 6026 Accepted) | {mem['both_fresh'] / 1024:.1f} KiB |"),
        (f"| Memory per established call, both endpoints, steady state | "
        f"{mem['both_steady'] / 1024:.1f} KiB |"),
        (f"| ... of which UAC side / UAS side | {mem['uac_steady'] / 1024:.1f} KiB / "
        f"{mem['uas_steady'] / 1024:.1f} KiB |"),
        "",
        ("Ratio: parse+typed+serialise is "
        f"{parse['parse+typed+serialize'] / (calls['datagrams_per_s'] or 1):.1f}x the per-datagram "
        "rate of whole calls; the difference is transaction, dialog, timer and event work."),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "sip.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
