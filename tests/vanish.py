"""Callers that vanish (issue 12, finding 3): a trunk outage, no BYE, the RTP just stops.

A :class:`VanishRig` runs Dialtone's :class:`UserAgent` (the node under test) and, in the
same process on loopback, ``n`` lightweight callers: one SIP endpoint placing every call,
and one UDP socket that is every call's SDP address (it sends each call a packet every
``rtp_interval`` seconds, and receives what the node sends).  :meth:`VanishRig.vanish`
stops the RTP of every call at once; the node must then end every call by its media
timeout, close every socket and send nothing more.  Used by
tests/layer/test_teardown.py and benchmarks/bench_callers_vanish.py.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import time
from dataclasses import dataclass, field, replace

from telephony.aio.media_engine import MediaEngineConfig
from telephony.aio.sip_transport import SipTransportLayer
from telephony.aio.useragent import UserAgent, UserAgentConfig
from telephony.eventlog import MemoryEventLog
from telephony.media import FRAME, MediaConfig
from telephony.rtp.stream import RtpSender
from telephony.sip import events as sev
from telephony.sip.admission import AdmissionConfig
from telephony.sip.endpoint import SipConfig, SipEndpoint

HOST = "127.0.0.1"


def open_fds() -> int:
    """Descriptors this process holds now."""
    return len(os.listdir("/proc/self/fd"))


@dataclass
class VanishResult:
    calls: int
    setup_s: float
    fds_baseline: int
    fds_with_calls: int
    fds_after: int
    ended: int
    left: int
    end_after_vanish_s: list[float] = field(default_factory=list)
    """Per call: seconds from the vanishing to its end on the node."""
    rtp_after_end: int = 0
    """RTP datagrams the callers' socket received after every call had ended (+ grace)."""
    causes: dict[str, int] = field(default_factory=dict)


class VanishRig:
    def __init__(self, calls: int, *, media_timeout: float = 1.0, rtp_interval: float = 0.1,
                 sip_port: int, caller_port: int, rtp_base: int, batch: int = 10, two_way: int | None = None) -> None:
        self.n = calls
        self.two_way = calls if two_way is None else two_way
        self.batch = batch
        """INVITEs sent every 100 ms while placing the calls."""
        self.media_timeout = media_timeout
        self.rtp_interval = rtp_interval
        self.log = MemoryEventLog()
        span = 4 * calls + 100
        self.ua = UserAgent(UserAgentConfig(
            # what is measured is teardown: admission must not refuse the set-up burst on a
            # loaded machine (its own tests are tests/unit/test_sip_admission.py, test_overload)
            sip=SipConfig(host=HOST, port=sip_port,
                          admission=AdmissionConfig(max_tick_lateness=None,
                                                    calls_per_second=None)),
            media=MediaEngineConfig(host=HOST, port_min=rtp_base, port_max=rtp_base + span),
            # a long timeout while the calls are placed (on a loaded machine that can take
            # longer than the short one); every call gets the short one before vanishing
            media_defaults=MediaConfig(media_timeout=30.0),
            listen_tcp=False), events=self.log)
        self.caller_port = caller_port
        self.answered: dict[sev.CallRef, int] = {}
        self.failed: list[sev.CallRef] = []
        self.fail_status: list[int] = []
        self._sending = False
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.ua.start()
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, 0))
        self.rtp.setblocking(False)
        self.rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.endpoint = SipEndpoint(SipConfig(host=HOST, port=self.caller_port),
                                    rng=random.Random(5))
        self.sip = SipTransportLayer(self.endpoint, self._on_event)
        await self.sip.listen_udp(HOST, self.caller_port)

    def _on_event(self, ev: sev.SipEvent) -> None:
        if isinstance(ev, sev.CallAnswered):
            m = re.search(rb"m=audio (\d+)", ev.body)
            if m is not None:
                self.answered[ev.call] = int(m.group(1))
        elif isinstance(ev, sev.CallFailed):
            self.failed.append(ev.call)
            self.fail_status.append(ev.status)

    def _sdp(self, i: int) -> bytes:
        port = self.rtp.getsockname()[1]
        # the node sends RTP to the first ``two_way`` calls only (CPU: 2 shared cores)
        direction = "a=sendrecv" if i < self.two_way else "a=recvonly"
        return (f"v=0\r\no=caller {i + 1} 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\n"
                f"t=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                f"a=rtpmap:101 telephone-event/8000\r\n{direction}\r\n").encode()

    async def place_calls(self, timeout: float = 60.0) -> float:
        """Place every call (in batches, as a trunk would); returns the seconds it took."""
        t0 = time.monotonic()
        # RTP flows to each call as soon as it is answered (the media timeout runs from then)
        self._sending = True
        self._sender = asyncio.create_task(self._send_rtp())
        target = f"sip:ivr@{HOST}:{self.ua.local_addr[1]}"
        loop = asyncio.get_running_loop()
        for i in range(self.n):
            self.endpoint.invite(target, body=self._sdp(i), now=loop.time())
            if i % self.batch == self.batch - 1:
                self.sip.flush()
                await asyncio.sleep(0.1)
        self.sip.flush()
        end = t0 + timeout
        while len(self.answered) + len(self.failed) < self.n:
            if time.monotonic() > end:
                raise TimeoutError(f"{len(self.answered)} of {self.n} calls answered")
            await asyncio.sleep(0.05)
        if self.failed:
            raise RuntimeError(f"{len(self.failed)} calls failed to set up: "
                               f"{sorted(set(self.fail_status))}")
        return time.monotonic() - t0

    async def _send_rtp(self) -> None:
        senders: dict[sev.CallRef, RtpSender] = {}
        payload = b"\xff" * FRAME
        while self._sending:
            for ref, port in list(self.answered.items()):
                sender = senders.get(ref)
                if sender is None:
                    sender = senders[ref] = RtpSender(0, rng=random.Random(len(senders)))
                pkt = sender.packetize(payload, timestamp_advance=FRAME)
                try:
                    self.rtp.sendto(pkt, (HOST, port))
                except BlockingIOError:
                    pass
            self.drain_rtp()
            await asyncio.sleep(self.rtp_interval)

    def drain_rtp(self) -> int:
        n = 0
        while True:
            try:
                self.rtp.recv(4096)
            except (BlockingIOError, OSError):
                return n
            n += 1

    async def vanish(self, timeout: float) -> tuple[float, list[float]]:
        """Stop every caller's RTP at once; wait for the node to end every call.  Returns
        the moment of the vanishing and each call's end, seconds after it."""
        ends: dict[str, float] = {}
        calls = dict(self.ua.calls)
        for call in calls.values():
            media = call.media
            media.reconfigure(replace(media.config, media_timeout=self.media_timeout))
        self._sending = False
        if self._sender is not None:
            await self._sender
        t0 = time.monotonic()
        deadline = t0 + timeout
        while len(ends) < len(calls) and time.monotonic() < deadline:
            now = time.monotonic()
            for ref, call in calls.items():
                if ref not in ends and call.ended:
                    ends[ref] = now - t0
            self.drain_rtp()
            await asyncio.sleep(0.01)
        return t0, sorted(ends.values())

    async def run(self, *, grace: float = 0.5) -> VanishResult:
        fds0 = open_fds()
        setup = await self.place_calls()
        await asyncio.sleep(0.3)  # media flows both ways
        fds1 = open_fds()
        _t0, ends = await self.vanish(self.media_timeout + 5.0)
        # the BYE transactions finish; then nothing more may arrive from the node
        await asyncio.sleep(grace)
        self.drain_rtp()
        await asyncio.sleep(grace)
        after = self.drain_rtp()
        causes: dict[str, int] = {}
        for ev in self.log.events:
            if ev.get("type") == "call_ended":
                cause = str(ev.get("cause"))
                causes[cause] = causes.get(cause, 0) + 1
        return VanishResult(calls=len(self.answered), setup_s=setup, fds_baseline=fds0,
                            fds_with_calls=fds1, fds_after=open_fds(), ended=len(ends),
                            left=len(self.ua.calls), end_after_vanish_s=ends,
                            rtp_after_end=after, causes=causes)

    async def close(self) -> None:
        self._sending = False
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        await self.ua.close()
        await self.sip.close()
        self.rtp.close()
