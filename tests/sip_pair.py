"""Two SIP endpoints wired in memory on a fake clock (aioquic's client_and_server pattern).

``uac_and_uas()`` returns a :class:`SipPair`; its :class:`Link` carries every datagram the
endpoints queue, with configurable loss, duplication, reordering (random extra delay) and
one-way latency.  ``pair.run(seconds)`` advances the fake clock event by event (the next
delivery or the next endpoint timer), so timer behaviour is exact and fast.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import count

from telephony.sip.config import SipConfig
from telephony.sip.core import Outgoing
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.events import SipEvent

UAC_ADDR = ("127.0.0.1", 5061)
UAS_ADDR = ("127.0.0.1", 5062)


@dataclass
class Link:
    """The in-memory network: ``loss``, ``duplication``, ``reorder`` are probabilities."""

    loss: float = 0.0
    duplication: float = 0.0
    reorder: float = 0.0
    latency: float = 0.005
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    drop_next: dict[tuple[str, int], int] = field(default_factory=dict)
    """Drop the next N datagrams sent *to* an address (deterministic loss)."""
    drop_filter: Callable[[Outgoing], bool] | None = None
    """Drop every datagram for which this returns True."""
    log: list[tuple[float, tuple[str, int], bytes]] = field(default_factory=list)
    delivered: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        self._queue: list[tuple[float, int, tuple[str, int], tuple[str, int], Outgoing]] = []
        self._seq = count()

    def send(self, now: float, src: tuple[str, int], out: Outgoing) -> None:
        self.log.append((now, out.addr, out.data))
        if self.drop_next.get(out.addr, 0) > 0:
            self.drop_next[out.addr] -= 1
            self.dropped += 1
            return
        if self.drop_filter is not None and self.drop_filter(out):
            self.dropped += 1
            return
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 2 if self.duplication and self.rng.random() < self.duplication else 1
        for _ in range(copies):
            delay = self.latency
            if self.reorder and self.rng.random() < self.reorder:
                delay += self.rng.uniform(0.0, 0.2)
            heapq.heappush(self._queue, (now + delay, next(self._seq), src, out.addr, out))

    def next_delivery(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now: float) -> list[tuple[tuple[str, int], tuple[str, int], Outgoing]]:
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, _, src, dst, msg = heapq.heappop(self._queue)
            out.append((src, dst, msg))
        return out


class SipPair:
    """Two endpoints, a link and a clock; events are collected per endpoint."""

    def __init__(self, uac: SipEndpoint, uas: SipEndpoint, link: Link, now: float = 1000.0):
        self.uac = uac
        self.uas = uas
        self.link = link
        self.now = now
        self.endpoints = {UAC_ADDR: uac, UAS_ADDR: uas}
        self.events: dict[int, list[SipEvent]] = {id(uac): [], id(uas): []}

    def addr_of(self, ep: SipEndpoint) -> tuple[str, int]:
        return UAC_ADDR if ep is self.uac else UAS_ADDR

    def flush(self) -> None:
        """Move whatever the endpoints queued onto the link, collect their events."""
        for addr, ep in self.endpoints.items():
            for out in ep.datagrams_to_send(self.now):
                self.link.send(self.now, addr, out)
            while (ev := ep.next_event()) is not None:
                self.events[id(ep)].append(ev)

    def step(self) -> bool:
        """Advance to the next delivery or timer; False if nothing is pending."""
        self.flush()
        candidates = [t for t in (self.link.next_delivery(), self.uac.get_timer(),
                                  self.uas.get_timer()) if t is not None]
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        for src, dst, out in self.link.pop_due(self.now):
            ep = self.endpoints.get(dst)
            if ep is not None:
                self.link.delivered += 1
                ep.receive_datagram(out.data, src, self.now, out.transport)
        for ep in self.endpoints.values():
            t = ep.get_timer()
            if t is not None and t <= self.now:
                ep.handle_timer(self.now)
        self.flush()
        return True

    def run(self, seconds: float, *, max_steps: int = 100_000) -> None:
        """Run until ``seconds`` of fake time have passed (or nothing is left to do)."""
        end = self.now + seconds
        for _ in range(max_steps):
            self.flush()
            nxt = [t for t in (self.link.next_delivery(), self.uac.get_timer(),
                               self.uas.get_timer()) if t is not None]
            if not nxt or min(nxt) > end:
                self.now = max(self.now, end)
                return
            self.step()
        raise AssertionError("pair did not settle")

    def run_until(self, predicate: Callable[[], bool], *, timeout: float = 60.0) -> None:
        end = self.now + timeout
        while not predicate():
            if self.now > end or not self.step():
                self.flush()
                if predicate():
                    return
                raise AssertionError(f"condition not met by t={self.now - 1000.0:.3f}")

    def events_of(self, ep: SipEndpoint, kind: type | None = None) -> list[SipEvent]:
        self.flush()
        evs = self.events[id(ep)]
        return [e for e in evs if kind is None or isinstance(e, kind)]

    def take(self, ep: SipEndpoint, kind: type) -> SipEvent:
        """The first collected event of ``kind`` (removed), waiting for it if needed."""
        self.run_until(lambda: any(isinstance(e, kind) for e in self.events[id(ep)]))
        evs = self.events[id(ep)]
        for i, e in enumerate(evs):
            if isinstance(e, kind):
                del evs[i]
                return e
        raise AssertionError("unreachable")


def uac_and_uas(*, link: Link | None = None, uac_config: SipConfig | None = None,
                uas_config: SipConfig | None = None, seed: int = 1,
                **config: object) -> SipPair:
    """A pair of endpoints at 127.0.0.1:5061 (uac) and :5062 (uas)."""
    base = SipConfig(**config)  # type: ignore[arg-type]
    uac = SipEndpoint(uac_config or replace(base, port=UAC_ADDR[1], username="alice"),
                      rng=random.Random(seed))
    uas = SipEndpoint(uas_config or replace(base, port=UAS_ADDR[1], username="bob"),
                      rng=random.Random(seed + 1000))
    return SipPair(uac, uas, link or Link())


SDP_OFFER = (b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n")
SDP_ANSWER = (b"v=0\r\no=bob 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              b"m=audio 40002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n")
TARGET = f"sip:bob@{UAS_ADDR[0]}:{UAS_ADDR[1]}"
REVERSE_TARGET = f"sip:alice@{UAC_ADDR[0]}:{UAC_ADDR[1]}"
