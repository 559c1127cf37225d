"""RFC 4733 telephone-events (DTMF over RTP): payload, sans-IO receiver and sender.

Receiving (RFC 4733 2.5.2): one key press is many packets sharing one RTP
timestamp -- a first packet (marker set), updates with a growing duration, and
usually three copies of the final packet with the E bit.  :class:`DtmfEventReceiver`
collapses them into one :class:`DtmfStarted` (as soon as the press is seen, for
barge-in) and one :class:`~telephony.events.DtmfReceived` (at its end, with the
duration), survives a lost first packet, declares the end after a silence timeout
when every end packet is lost, and never reports a press twice.

Sending (RFC 4733 2.5.1): :class:`DtmfEventSender` produces that packet sequence
on the stream's own :class:`~telephony.rtp.stream.RtpSender` numbering.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from telephony.errors import RtpError
from telephony.events import CallEvent, DtmfReceived, DtmfSource
from telephony.rtp.packet import RtpPacket
from telephony.rtp.stream import RtpSender

_EVENT = struct.Struct("!BBH")

DIGITS = "0123456789*#ABCD"
"""Event codes 0..15 (RFC 4733 3.2 table 3) map to these digits by index."""
EVENT_FLASH = 16
MAX_DURATION = 0xFFFF


def digit_to_event(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit (``0-9 * # A-D``, case-insensitive)."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise RtpError(f"not a DTMF digit: {digit!r}")
    return code


def event_to_digit(code: int) -> str | None:
    """The digit of an event code, or None for non-digit events (flash, tones...)."""
    return DIGITS[code] if 0 <= code < 16 else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-octet telephone-event payload (RFC 4733 2.3)."""

    event: int
    end: bool = False
    volume: int = 10
    """Power level in -dBm0, 0..63."""
    duration: int = 0
    """Duration so far in timestamp units, 0..65535."""

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse a payload; redundant trailing events (RFC 4733 2.5.1.5) are ignored."""
        if len(payload) < 4:
            raise RtpError("telephone-event payload is shorter than 4 bytes")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        """The 4 wire octets (the R bit is always 0)."""
        if not (0 <= self.event <= 255 and 0 <= self.volume <= 63):
            raise RtpError("telephone-event field out of range")
        if not 0 <= self.duration <= MAX_DURATION:
            raise RtpError("telephone-event duration out of range")
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


@dataclass(frozen=True, slots=True)
class DtmfStarted(CallEvent):
    """A key press began (sent before its :class:`DtmfReceived`, for early barge-in)."""

    digit: str
    source: DtmfSource = "rfc4733"
    at: float = 0.0
    """Estimated onset time, seconds."""


@dataclass(frozen=True, slots=True)
class DtmfConfig:
    """Receiver parameters."""

    clock_rate: int = 8000
    end_timeout: float = 0.25
    """Seconds with no packet of an unfinished event before it is declared ended."""
    remember: int = 16
    """How many ended event timestamps to remember, against late redundant packets."""


class DtmfEventReceiver:
    """Turns telephone-event packets of one stream into digit events (sans-IO)."""

    def __init__(self, config: DtmfConfig | None = None) -> None:
        self.config = config or DtmfConfig()
        self._events: deque[CallEvent] = deque()
        self._ended: deque[int] = deque(maxlen=self.config.remember)
        self._ts: int | None = None
        """RTP timestamp of the current segment of the event in progress."""
        self._code = 0
        self._base = 0
        """Duration of earlier segments of a long event (RFC 4733 2.5.1.3)."""
        self._duration = 0
        self._seg_duration = 0
        self._onset = 0.0
        self._last_seen = 0.0

    def feed(self, packet: RtpPacket, *, now: float) -> None:
        """Account one telephone-event packet (the caller demultiplexes by payload type)."""
        ev = TelephoneEvent.parse(packet.payload)
        digit = event_to_digit(ev.event)
        if digit is None:
            return  # flash and other events: not digits
        ts = packet.timestamp
        if ts in self._ended:
            return  # redundant end packet, or a late update of a finished event
        if self._ts is not None and ts != self._ts:
            delta = (ts - self._ts) & 0xFFFFFFFF
            if delta >= 0x80000000:
                return  # older than the event in progress: stale
            if ev.event == self._code and delta == self._seg_duration == MAX_DURATION:
                # RFC 4733 2.5.1.3: a new segment of the same long event.
                self._base += MAX_DURATION
                self._ended.append(self._ts)
                self._ts = ts
                self._seg_duration = 0
            else:
                self._finish()  # its end packets were lost; a new press follows
        if self._ts is None:
            self._ts = ts
            self._code = ev.event
            self._base = 0
            self._seg_duration = 0
            self._duration = 0
            # The first packet seen may be an update: the press began `duration` ago.
            self._onset = now - ev.duration / self.config.clock_rate
            self._events.append(DtmfStarted(digit, "rfc4733", self._onset))
        self._last_seen = now
        self._seg_duration = max(self._seg_duration, ev.duration)
        self._duration = self._base + self._seg_duration
        if ev.end:
            self._finish()

    def _finish(self) -> None:
        assert self._ts is not None
        duration_ms = round(self._duration * 1000 / self.config.clock_rate)
        self._events.append(DtmfReceived(DIGITS[self._code], duration_ms, "rfc4733", self._onset))
        self._ended.append(self._ts)
        self._ts = None

    def get_timer(self) -> float | None:
        """Deadline after which an unfinished event is declared ended (None if idle)."""
        if self._ts is None:
            return None
        return self._last_seen + self.config.end_timeout

    def handle_timer(self, *, now: float) -> None:
        """End the event in progress if no packet came for ``end_timeout``."""
        if self._ts is not None and now >= self._last_seen + self.config.end_timeout:
            self._finish()

    def next_event(self) -> CallEvent | None:
        """The next :class:`DtmfStarted` / :class:`DtmfReceived`, or None."""
        return self._events.popleft() if self._events else None

    @property
    def in_progress(self) -> str | None:
        """The digit currently held, if any."""
        return DIGITS[self._code] if self._ts is not None else None


@dataclass(frozen=True, slots=True)
class _Planned:
    offset: float
    timestamp: int
    event: TelephoneEvent
    marker: bool


class DtmfEventSender:
    """Sends digits as RFC 4733 events on an existing RTP stream (sans-IO).

    ``start(digit, duration_ms, now=...)`` plans the packets; ``get_timer()`` and
    ``due(now=...)`` hand them out at their times (bytes are built when due, so
    sequence numbers stay in order with any other packet of the stream).  While
    :attr:`active`, the caller should not send audio (RFC 4733 2.5.1.1).  After the
    event the stream's timestamp has advanced by the event's duration.
    """

    def __init__(
        self,
        sender: RtpSender,
        *,
        payload_type: int = 101,
        interval: float = 0.05,
        volume: int = 10,
        end_repeats: int = 3,
        end_spacing: float = 0.02,
    ) -> None:
        self.sender = sender
        self.payload_type = payload_type
        self.interval = interval
        self.volume = volume
        self.end_repeats = end_repeats
        self.end_spacing = end_spacing
        self._plan: deque[_Planned] = deque()
        self._t0 = 0.0

    @property
    def active(self) -> bool:
        """True while packets of an event remain to be sent."""
        return bool(self._plan)

    def start(self, digit: str, duration_ms: int, *, now: float) -> None:
        """Plan the packets of one key press of ``duration_ms`` starting at ``now``."""
        if self._plan:
            raise RtpError("a DTMF event is already being sent")
        code = digit_to_event(digit)
        rate = self.sender.clock_rate
        total = max(1, round(duration_ms * rate / 1000))
        step = max(1, round(self.interval * rate))
        ts0 = self.sender.timestamp
        plan: list[_Planned] = []
        elapsed = 0
        seg_start = 0
        first = True
        # RFC 4733 2.5.1.2: first packet (marker), then updates every `interval`.
        while elapsed < total:
            while elapsed - seg_start > MAX_DURATION:
                # 2.5.1.3: report the maximum, then continue as a new segment.
                plan.append(
                    self._at(
                        seg_start + MAX_DURATION, ts0 + seg_start, code, MAX_DURATION, False, False
                    )
                )
                seg_start += MAX_DURATION
            plan.append(self._at(elapsed, ts0 + seg_start, code, elapsed - seg_start, False, first))
            first = False
            elapsed += step
        while total - seg_start > MAX_DURATION:
            plan.append(
                self._at(
                    seg_start + MAX_DURATION, ts0 + seg_start, code, MAX_DURATION, False, False
                )
            )
            seg_start += MAX_DURATION
        # 2.5.1.4: the final packet, E bit set, sent three times.
        for i in range(self.end_repeats):
            p = self._at(total, ts0 + seg_start, code, total - seg_start, True, False)
            plan.append(_Planned(p.offset + i * self.end_spacing, p.timestamp, p.event, False))
        plan.sort(key=lambda p: p.offset)
        self._plan.extend(plan)
        self._t0 = now
        self.sender.advance(total)

    def _at(self, samples: int, ts: int, code: int, dur: int, end: bool, marker: bool) -> _Planned:
        ev = TelephoneEvent(code, end, self.volume, dur)
        return _Planned(samples / self.sender.clock_rate, ts & 0xFFFFFFFF, ev, marker)

    def get_timer(self) -> float | None:
        """When the next packet is due (None if idle)."""
        return self._t0 + self._plan[0].offset if self._plan else None

    def due(self, *, now: float) -> list[bytes]:
        """The packets due by ``now``, in order."""
        out: list[bytes] = []
        while self._plan and self._t0 + self._plan[0].offset <= now + 1e-9:
            p = self._plan.popleft()
            out.append(
                self.sender.packet_at(
                    p.event.serialize(),
                    timestamp=p.timestamp,
                    marker=p.marker,
                    payload_type=self.payload_type,
                )
            )
        return out
