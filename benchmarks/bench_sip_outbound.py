"""The SIP path of an outbound call attempt (issue 14): CPU per attempt, one core.

    .venv/bin/python benchmarks/bench_sip_outbound.py [--attempts 3000] [--runs 5]
                                                      [--rate 100] [--profile N]
                                                      [--ua] [--code DIR]

What an outbound attempt costs the dialer's SIP side: the SDP offer built and serialised
as ``UserAgent.dial`` does, INVITE out, 100/180/200 in (the 200 with an SDP answer, parsed
and negotiated as ``UserAgent._outbound_answered`` does), ACK out, BYE out, its 200 in,
and every timer of the attempt (timer C, the INVITE transaction's Accepted state, the
BYE's timer K, the leg's linger) fired on a virtual clock.

1. **sans-IO** (default): a :class:`SipEndpoint` (the UAC) against a byte-level UAS in the
   same process that answers as SIPp does (responses built from the request's Via, From,
   To, Call-ID and CSeq lines with a regex and one format string).  Attempts start
   ``--rate`` per second of virtual time; the 100 and 180 come 1-2 ms after the INVITE,
   the 200 1 s later, our BYE 2.4 s after the answer (the AMD verdict), so about
   3.4 * rate calls are up at once and the timer heap holds what it would in a dialer.
   Only the UAC's work is timed (``time.process_time`` around each call into the SIP
   and SDP code); the UAS's bytes cost nothing to the figure.  ``--profile N`` prints a
   cProfile of N attempts (UAS included, a few per cent).
2. **--ua**: the real :class:`UserAgent` (asyncio, UDP on 127.0.0.1, the media engine
   opening and closing an RTP port per call) dialling SIPp's built-in ``uas`` scenario
   (pinned to CPU 1; this process pinned to CPU 0), ``--lines`` calls in flight, each
   hung up as soon as it is answered.  Figure: the process's CPU time (getrusage) per
   attempt, start-up excluded.

``--code DIR`` runs the same measurement on another source tree (a "before" run:
``git archive main | tar -x -C DIR``).  Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

UAC_ADDR = ("127.0.0.1", 5061)
UAS_ADDR = ("127.0.0.1", 5062)

_LINES = re.compile(rb"^(Via|From|To|Call-ID|CSeq|v|f|t|i): [^\r\n]*\r\n",
                    re.MULTILINE | re.IGNORECASE)
_SDP_ANSWER = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
               b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
               b"a=rtpmap:0 PCMU/8000\r\n")


class MiniUas:
    """Answers as SIPp's ``uas`` does, from the raw request lines (no SIP stack)."""

    def __init__(self) -> None:
        self.n = 0

    def response(self, request: bytes, status: bytes, *, tag: bytes | None,
                 body: bytes = b"") -> bytes:
        lines = []
        for m in _LINES.finditer(request):
            line = m.group(0)
            if tag is not None and m.group(1).lower() in (b"to", b"t") and b";tag=" not in line:
                line = line[:-2] + b";tag=" + tag + b"\r\n"
            lines.append(line)
        extra = b""
        if body:
            extra = (b"Contact: <sip:127.0.0.1:5062;transport=UDP>\r\n"
                     b"Content-Type: application/sdp\r\n")
        return (b"SIP/2.0 " + status + b"\r\n" + b"".join(lines) + extra
                + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def run_sansio(attempts: int, rate: float, profile: bool = False) -> dict[str, Any]:
    import random

    from telephony.sdp import SdpSession, SessionDescription, parse_answer
    from telephony.sip.config import SipConfig
    from telephony.sip.endpoint import SipEndpoint
    from telephony.sip.events import CallAnswered, CallTerminated

    rng = random.Random(7)
    uac = SipEndpoint(SipConfig(host=UAC_ADDR[0], port=UAC_ADDR[1], username="dialtone"),
                      rng=rng)
    uas = MiniUas()
    cpu = 0.0
    clock = time.process_time
    agenda: list[tuple[float, int, str, Any]] = []
    seq = 0
    answered = terminated = 0
    offers: dict[str, Any] = {}
    invites: dict[str, bytes] = {}

    def at(t: float, what: str, arg: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(agenda, (t, seq, what, arg))

    def deliver(now: float) -> None:
        """The UAC's datagrams go to the mini UAS (untimed)."""
        nonlocal cpu
        t0 = clock()
        out = uac.datagrams_to_send(now)
        cpu += clock() - t0
        for o in out:
            data = o.data
            if data.startswith(b"INVITE "):
                tag = f"{uas.n:08x}SIPpTag".encode()
                uas.n += 1
                invites[tag.decode()] = data
                at(now + 0.001, "in", uas.response(data, b"100 Trying", tag=None))
                at(now + 0.002, "in", uas.response(data, b"180 Ringing", tag=tag))
                at(now + 1.0, "in", uas.response(data, b"200 OK", tag=tag, body=_SDP_ANSWER))
            elif data.startswith(b"BYE "):
                at(now + 0.001, "in", uas.response(data, b"200 OK", tag=None))

    def events(now: float) -> None:
        nonlocal cpu, answered, terminated
        while True:
            t0 = clock()
            ev = uac.next_event()
            if isinstance(ev, CallAnswered):
                offer = offers.pop(ev.call)
                parse_answer(offer, SessionDescription.parse(ev.body))
            cpu += clock() - t0
            if ev is None:
                return
            if isinstance(ev, CallAnswered):
                answered += 1
                at(now + 2.4, "bye", ev.call)
            elif isinstance(ev, CallTerminated):
                terminated += 1

    for i in range(attempts):
        at(i / rate, "dial", i)
    end = attempts / rate + 120.0
    at(end, "end", None)
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    wall0 = time.perf_counter()
    while agenda:
        t, _, what, arg = heapq.heappop(agenda)
        nxt = uac.get_timer()
        while nxt is not None and nxt <= t:
            t0 = clock()
            uac.handle_timer(nxt)
            cpu += clock() - t0
            deliver(nxt)
            events(nxt)
            nxt = uac.get_timer()
        if what == "end":
            break
        t0 = clock()
        if what == "dial":
            session = SdpSession(session_id=rng.getrandbits(48) or 1, username="dialtone")
            offer = session.build_offer(address="127.0.0.1", port=20000 + 2 * (arg % 10000),
                                        codecs=("PCMU", "PCMA"))
            ref = uac.invite(f"sip:+4420790{arg:05d}@{UAS_ADDR[0]}:{UAS_ADDR[1]}",
                             body=offer.serialize().encode(), now=t,
                             from_uri="sip:+442079460000@127.0.0.1:5061")
            offers[ref] = offer
        elif what == "in":
            uac.receive_datagram(arg, UAS_ADDR, t)
        elif what == "bye":
            uac.hangup(arg, now=t)
        cpu += clock() - t0
        deliver(t)
        events(t)
    wall = time.perf_counter() - wall0
    if prof is not None:
        import pstats
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(45)
    left = uac.pending()
    assert answered == attempts and terminated == attempts, (answered, terminated)
    assert left["calls"] == 0 and left["client_transactions"] == 0, left
    return {"mode": "sansio", "attempts": attempts, "rate": rate,
            "uac_cpu_us_per_attempt": round(cpu / attempts * 1e6, 1),
            "wall_us_per_attempt": round(wall / attempts * 1e6, 1),
            "stats": {k: v for k, v in uac.stats.items() if k in (
                "retransmissions", "calls_out", "responses_absorbed", "bye_sent")}}


def run_ua(attempts: int, lines: int) -> dict[str, Any]:
    import asyncio
    import logging
    import socket

    from telephony.aio.useragent import UserAgent, UserAgentConfig
    from telephony.errors import CallFailed
    from telephony.sip.config import SipConfig

    logging.basicConfig(level=logging.WARNING)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        sipp_port = s.getsockname()[1]
    sipp = subprocess.Popen(
        ["taskset", "-c", "1", "sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(sipp_port),
         "-bg", "-nostdin", "-m", str(attempts + 100)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)

    async def main() -> dict[str, Any]:
        ua = UserAgent(UserAgentConfig(sip=SipConfig(host="127.0.0.1", port=0,
                                                     username="dialtone"),
                                       listen_tcp=False))
        await ua.start()
        sem = asyncio.Semaphore(lines)
        failed = 0
        statuses: dict[int | None, int] = {}

        async def one(i: int) -> None:
            nonlocal failed
            async with sem:
                try:
                    call = await ua.dial(f"sip:+4420790{i:05d}@127.0.0.1:{sipp_port}",
                                         caller="+442079460000", timeout=10.0)
                except CallFailed as exc:
                    failed += 1
                    statuses[exc.status] = statuses.get(exc.status, 0) + 1
                    return
                await call.hangup()

        # warm-up, then measure
        await asyncio.gather(*(one(i) for i in range(min(50, attempts))))
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        w0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(attempts)))
        wall = time.perf_counter() - w0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        await ua.close()
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return {"mode": "ua", "attempts": attempts, "lines": lines, "failed": failed,
                "failed_status": statuses,
                "cpu_us_per_attempt": round(cpu / attempts * 1e6, 1),
                "user_us": round((r1.ru_utime - r0.ru_utime) / attempts * 1e6, 1),
                "sys_us": round((r1.ru_stime - r0.ru_stime) / attempts * 1e6, 1),
                "attempts_per_s": round(attempts / wall, 1)}

    try:
        return asyncio.run(main())
    finally:
        sipp.kill()
        sipp.wait()


def instructions(code: Path, attempts: int, rate: float) -> dict[str, Any]:
    import tempfile
    env = dict(os.environ, _BENCH_CHILD="1", PYTHONPATH=str(code))
    counts = []
    for n in (attempts, 3 * attempts):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cg.out"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            sys.executable, str(Path(__file__).resolve()), "--attempts", str(n),
                            "--rate", str(rate), "--code", str(code)],
                           env=env, cwd=code, check=True, capture_output=True)
            text = out.read_text(errors="replace")
            total = next(int(line.split()[1]) for line in text.splitlines()
                         if line.startswith(("summary:", "totals:")))
            counts.append(total)
    return {"mode": "instructions", "code": str(code), "attempts": [attempts, 3 * attempts],
            "instructions": counts,
            "instructions_per_attempt": round((counts[1] - counts[0]) / (2 * attempts))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attempts", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    ap.add_argument("--ua", action="store_true")
    ap.add_argument("--code", type=Path, default=None)
    ap.add_argument("--instructions", action="store_true",
                    help="sans-IO under callgrind: instructions per attempt (the difference "
                         "of a run of --attempts and one of 3x as many, so start-up and the "
                         "final timer drain cancel out; the mini UAS is included)")
    args = ap.parse_args()
    code = (args.code or ROOT).resolve()
    if args.instructions and os.environ.get("_BENCH_CHILD") != "1":
        print(json.dumps(instructions(code, args.attempts, args.rate)))
        return
    if os.environ.get("_BENCH_CHILD") != "1":
        # one child per run, pinned, importing the chosen tree
        env = dict(os.environ, _BENCH_CHILD="1", PYTHONPATH=str(code))
        cmd = ["taskset", "-c", "0", sys.executable, str(Path(__file__).resolve()),
               *sys.argv[1:]]
        results = []
        for _ in range(1 if args.profile else args.runs):
            out = subprocess.run(cmd, env=env, cwd=code, check=True, capture_output=True,
                                 text=True).stdout
            if args.profile:
                print(out)
                return
            res = json.loads(out.strip().splitlines()[-1])
            res["code"] = str(code)
            print(json.dumps(res), flush=True)
            results.append(res)
        key = "cpu_us_per_attempt" if args.ua else "uac_cpu_us_per_attempt"
        print(json.dumps({"code": str(code), "median_" + key:
                          statistics.median(r[key] for r in results),
                          "runs": [r[key] for r in results]}))
        return
    sys.path.insert(0, str(code))
    if args.ua:
        res = run_ua(args.attempts, args.lines)
    else:
        res = run_sansio(args.profile or args.attempts, args.rate, profile=bool(args.profile))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
