"""Sans-IO RTP stream state: receive statistics, sender numbering, RTCP timing.

* :class:`RtpReceiveStats`: RFC 3550 appendix A.1 (sequence validation with
  probation and wrap-around), A.3 (expected / lost / fraction lost) and A.8
  (interarrival jitter), giving the report block for our SR/RR.
* :class:`RtpSender`: SSRC, sequence number and timestamp numbering of what we send.
* :class:`RtcpScheduler`: when to send the compound SR/RR + SDES (a simplified
  RFC 3550 6.2/6.3: a fixed interval randomised by 0.5..1.5).

Nothing here reads a clock: every call that depends on time takes ``now``
(monotonic seconds) from the caller.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from telephony.rtp.packet import RtpPacket
from telephony.rtp.rtcp import (
    SDES_CNAME,
    RtcpBye,
    RtcpPacket,
    RtcpReceiverReport,
    RtcpReportBlock,
    RtcpSdesChunk,
    RtcpSenderReport,
    RtcpSourceDescription,
    ntp_from_unix,
    ntp_middle,
    serialize_rtcp,
)

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
DUP_WINDOW = 512  # power of two: recent extended sequence numbers remembered for duplicates


class RtpReceiveStats:
    """Reception statistics for one remote source (RFC 3550 appendix A).

    Call :meth:`update` for every RTP packet of the source, in arrival order.
    ``probation`` is the number of consecutive packets needed before a new source
    (or a restarted one) counts as valid (A.1 ``MIN_SEQUENTIAL``; 0 accepts the
    first packet at once).  Duplicates are counted apart and not in ``received``.
    """

    def __init__(self, clock_rate: int = 8000, *, probation: int = MIN_SEQUENTIAL) -> None:
        self.clock_rate = clock_rate
        self.min_sequential = probation
        self.source_changes = 0
        """How many times the SSRC changed (statistics restart each time)."""
        self._reset()

    def _reset(self) -> None:
        probation = self.min_sequential
        self.ssrc: int | None = None
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = probation
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.duplicates = 0
        self.octets = 0
        self.jitter = 0.0
        """Interarrival jitter estimate, timestamp units (A.8)."""
        self._transit: float | None = None
        self._seen = [-1] * DUP_WINDOW
        self._lsr = 0
        self._lsr_arrival: float | None = None
        self.last_arrival: float | None = None
        self._started = False

    # -- A.1 -----------------------------------------------------------------------------

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._seen = [-1] * DUP_WINDOW

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            # A.1: a source is valid once MIN_SEQUENTIAL packets arrive in sequence.
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self.min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:  # in order, with permissible gap: wrapped
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A.1: a very large jump; two sequential packets mean the sender restarted.
            if seq == self.bad_seq:
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet
        self.received += 1
        return True

    def update(self, packet: RtpPacket, *, now: float) -> bool:
        """Account one received packet; False if A.1 says it is not (yet) valid."""
        return self.update_fields(packet.sequence_number, packet.ssrc, packet.timestamp,
                                  len(packet.payload), now)

    def update_fields(self, seq: int, ssrc: int, timestamp: int, payload_size: int,
                      now: float) -> bool:
        """:meth:`update` from the header fields (the receive hot path parses no object)."""
        max_seq = self.max_seq
        if (
            seq == (max_seq + 1) & 0xFFFF
            and not self.probation
            and self._started
            and ssrc == self.ssrc
        ):
            # Fast path: the next packet in sequence from a valid source (nearly every
            # packet).  The same steps as below, without the general cases.
            ext = self.cycles + max_seq + 1
            seen = self._seen
            slot = ext & (DUP_WINDOW - 1)
            if seen[slot] == ext:
                self.duplicates += 1
                return False
            if seq == 0:  # A.1: in order and wrapped
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            self.received += 1
            seen[slot] = ext
            self._account(timestamp, payload_size, now)
            return True
        if self._started and ssrc != self.ssrc:
            # A new source (RFC 3550 8.2: the peer changed SSRC): its statistics start afresh.
            self._reset()
            self.source_changes += 1
        if not self._started:
            self._started = True
            self.ssrc = ssrc
            self._init_seq(seq)
            if self.min_sequential:
                self.max_seq = (seq - 1) & 0xFFFF
                self.probation = self.min_sequential
            else:
                self.max_seq = seq
                self.received = 1
                self._remember(seq)
                self._account(timestamp, payload_size, now)
                return True
        # Duplicate detection over a window of extended sequence numbers.
        ext = self._extend(seq)
        slot = ext & (DUP_WINDOW - 1)
        if not self.probation and self._seen[slot] == ext:
            self.duplicates += 1
            return False
        valid = self._update_seq(seq)
        if valid:
            self._remember(seq)
            self._account(timestamp, payload_size, now)
        return valid

    def _remember(self, seq: int) -> None:
        ext = self._extend(seq)
        self._seen[ext & (DUP_WINDOW - 1)] = ext

    def _extend(self, seq: int) -> int:
        ref = self.cycles + self.max_seq
        delta = (seq - self.max_seq) & 0xFFFF
        if delta >= 0x8000:
            delta -= RTP_SEQ_MOD
        return ref + delta

    def _account(self, timestamp: int, payload_size: int, now: float) -> None:
        self.octets += payload_size
        self.last_arrival = now
        # A.8: D(i-1, i) from transit times in timestamp units, J += (|D| - J) / 16.
        transit = now * self.clock_rate - timestamp
        if self._transit is not None:
            d = transit - self._transit
            # Timestamps wrap at 2**32: fold the difference back into range.
            if d > 0x80000000:
                d -= 0x100000000
            elif d < -0x80000000:
                d += 0x100000000
            if d < 0:
                d = -d
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit

    # -- A.3 -----------------------------------------------------------------------------

    @property
    def extended_max_seq(self) -> int:
        """Highest extended sequence number received."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the source became valid."""
        if not self._started or self.probation:
            return 0
        return self.extended_max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3), clamped to the 24-bit signed range of RR."""
        lost = self.expected - self.received
        return max(-0x800000, min(0x7FFFFF, lost))

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter, milliseconds."""
        return self.jitter * 1000.0 / self.clock_rate

    def on_sender_report(self, report: RtcpSenderReport, *, now: float) -> None:
        """Remember the peer's SR for the LSR/DLSR fields of our next report block."""
        self._lsr = ntp_middle(report.ntp_timestamp)
        self._lsr_arrival = now

    def report_block(self, *, now: float) -> RtcpReportBlock:
        """A reception report block for this source; starts a new reporting interval."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self._lsr_arrival is not None:
            dlsr = int((now - self._lsr_arrival) * 65536) & 0xFFFFFFFF
        return RtcpReportBlock(
            ssrc=self.ssrc or 0,
            fraction_lost=fraction,
            packets_lost=self.lost,
            highest_sequence=self.extended_max_seq & 0xFFFFFFFF,
            jitter=int(self.jitter) & 0xFFFFFFFF,
            lsr=self._lsr,
            dlsr=dlsr,
        )


_RTP_HEADER = struct.Struct("!BBHII")


class RtpSender:
    """Numbering of an outgoing RTP stream (RFC 3550 5.1).

    SSRC, first sequence number and first timestamp are random (``rng`` makes them
    reproducible in tests).  :meth:`packetize` stamps the current timestamp, then
    advances it by ``timestamp_advance``; sequence numbers and timestamps wrap.
    """

    def __init__(
        self,
        payload_type: int,
        *,
        clock_rate: int = 8000,
        ssrc: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.ssrc = rng.getrandbits(32) if ssrc is None else ssrc
        self.sequence_number = rng.getrandbits(16)
        """Sequence number of the next packet."""
        self.timestamp = rng.getrandbits(32)
        """RTP timestamp of the next media sample."""
        self.packet_count = 0
        self.octet_count = 0
        self._first = True

    def packetize(
        self,
        payload: bytes,
        *,
        timestamp_advance: int,
        marker: bool = False,
        payload_type: int | None = None,
    ) -> bytes:
        """An RTP packet for ``payload`` at the current timestamp, then advance it.

        ``marker`` flags the first packet of a talkspurt (RFC 3551 4.1); the first
        packet of the stream is marked too.
        """
        data = self.packet_at(
            payload,
            timestamp=self.timestamp,
            marker=marker or self._first,
            payload_type=payload_type,
        )
        self._first = False
        self.timestamp = (self.timestamp + timestamp_advance) & 0xFFFFFFFF
        return data

    def packet_at(
        self,
        payload: bytes,
        *,
        timestamp: int,
        marker: bool = False,
        payload_type: int | None = None,
    ) -> bytes:
        """A packet with an explicit timestamp (RFC 4733 events); advances only the sequence."""
        pt = self.payload_type if payload_type is None else payload_type
        seq = self.sequence_number
        self.sequence_number = (seq + 1) & 0xFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        return (
            _RTP_HEADER.pack(0x80, pt | 0x80 if marker else pt, seq, timestamp, self.ssrc) + payload
        )

    def advance(self, samples: int) -> None:
        """Advance the timestamp without sending (silence suppressed, or after an event)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RtcpConfig:
    """RTCP timing (RFC 3550 6.2, simplified to a fixed interval)."""

    interval: float = 5.0
    """Nominal report interval, seconds (RFC 3550's minimum)."""
    first_interval_factor: float = 0.5
    """The first report goes out after half the interval (6.2 "initial" rule)."""
    wallclock_offset: float = 0.0
    """Added to ``now`` to get Unix time for SR NTP timestamps when none is passed."""


class RtcpScheduler:
    """When to send our compound RTCP report, and what it holds.

    Send an SR if we sent RTP since the previous report, else an RR; always followed
    by SDES CNAME (RFC 3550 6.1).  Drive it like aioquic: ``get_timer()`` gives the
    deadline, ``handle_timer(now=...)`` returns the datagram to send (or None).
    """

    def __init__(
        self,
        *,
        ssrc: int,
        cname: str,
        sender: RtpSender | None = None,
        stats: RtpReceiveStats | None = None,
        config: RtcpConfig | None = None,
        rng: random.Random | None = None,
        now: float = 0.0,
    ) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self.sender = sender
        self.stats = stats
        self.config = config or RtcpConfig()
        self._rng = rng or random.Random()
        self._last_packet_count = 0
        self._timer: float | None = now + self._randomised(self.config.first_interval_factor)
        self.reports_sent = 0

    def _randomised(self, factor: float = 1.0) -> float:
        # RFC 3550 6.3.1: randomise by a factor in [0.5, 1.5] to avoid synchronisation.
        return self.config.interval * factor * self._rng.uniform(0.5, 1.5)

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should next be called (None once stopped)."""
        return self._timer

    def handle_timer(self, *, now: float, wallclock: float | None = None) -> bytes | None:
        """If the timer is due: the compound RTCP report to send; re-arms the timer."""
        if self._timer is None or now < self._timer:
            return None
        self._timer = now + self._randomised()
        return self.build_report(now=now, wallclock=wallclock)

    def build_report(self, *, now: float, wallclock: float | None = None) -> bytes:
        """The compound SR/RR + SDES report for ``now`` (without touching the timer)."""
        packets: list[RtcpPacket] = [self._report(now, wallclock)]
        packets.append(self._sdes())
        self.reports_sent += 1
        return serialize_rtcp(packets)

    def bye(self, *, now: float, reason: str = "", wallclock: float | None = None) -> bytes:
        """The final compound report with BYE (RFC 3550 6.6); stops the timer."""
        self._timer = None
        packets: list[RtcpPacket] = [self._report(now, wallclock), self._sdes()]
        packets.append(RtcpBye((self.ssrc,), reason.encode("utf-8")))
        return serialize_rtcp(packets)

    def _sdes(self) -> RtcpSourceDescription:
        item = (SDES_CNAME, self.cname.encode("utf-8"))
        return RtcpSourceDescription((RtcpSdesChunk(self.ssrc, (item,)),))

    def _report(self, now: float, wallclock: float | None) -> RtcpPacket:
        blocks: tuple[RtcpReportBlock, ...] = ()
        if self.stats is not None and self.stats.ssrc is not None:
            blocks = (self.stats.report_block(now=now),)
        sender = self.sender
        if sender is not None and sender.packet_count != self._last_packet_count:
            self._last_packet_count = sender.packet_count
            unix = now + self.config.wallclock_offset if wallclock is None else wallclock
            return RtcpSenderReport(
                ssrc=self.ssrc,
                ntp_timestamp=ntp_from_unix(unix),
                rtp_timestamp=sender.timestamp,
                packet_count=sender.packet_count & 0xFFFFFFFF,
                octet_count=sender.octet_count & 0xFFFFFFFF,
                reports=blocks,
            )
        return RtcpReceiverReport(self.ssrc, blocks)
