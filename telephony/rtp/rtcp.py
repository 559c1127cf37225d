"""RTCP packets (RFC 3550 section 6.4-6.6): SR, RR, SDES, BYE and compound packets.

``parse_rtcp(data)`` splits a compound packet into typed packets; packet types this
module does not model (APP, RTPFB, PSFB, XR...) come back as :class:`RtcpUnknown`
so that a compound packet always round-trips.  ``serialize_rtcp(packets)`` builds
a compound packet.  Malformed input raises :class:`~telephony.errors.RtpError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from telephony.errors import RtpError

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1

_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IIIIII")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_U32 = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class RtcpReportBlock:
    """A reception report block (RFC 3550 6.4.1)."""

    ssrc: int
    """The source this block reports on."""
    fraction_lost: int
    """Fraction lost since the previous report, in 1/256 (0..255)."""
    packets_lost: int
    """Cumulative number lost, 24-bit signed (may be negative with duplicates)."""
    highest_sequence: int
    """Extended highest sequence number received (cycles << 16 | max_seq)."""
    jitter: int
    """Interarrival jitter in timestamp units."""
    lsr: int = 0
    """Middle 32 bits of the NTP timestamp of the last SR received (0 if none)."""
    dlsr: int = 0
    """Delay since that SR, in 1/65536 s."""

    def serialize(self) -> bytes:
        """The 24 wire octets."""
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise RtpError("RTCP report block packets_lost out of 24-bit range")
        return _REPORT_BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF),
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> RtcpReportBlock:
        """Parse the 24 octets at ``pos``."""
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """SR (RFC 3550 6.4.1)."""

    ssrc: int
    ntp_timestamp: int
    """64-bit NTP timestamp (seconds since 1900 << 32 | fraction)."""
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[RtcpReportBlock, ...] = ()
    extension: bytes = b""
    """Profile-specific extension octets, kept for round-trips."""

    packet_type = RTCP_SR

    def serialize(self) -> bytes:
        """The packet's wire octets."""
        body = _SR_INFO.pack(
            self.ssrc,
            self.ntp_timestamp >> 32,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        )
        body += b"".join(r.serialize() for r in self.reports) + self.extension
        return _pack_header(RTCP_SR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport:
    """RR (RFC 3550 6.4.2)."""

    ssrc: int
    reports: tuple[RtcpReportBlock, ...] = ()
    extension: bytes = b""

    packet_type = RTCP_RR

    def serialize(self) -> bytes:
        """The packet's wire octets."""
        body = _U32.pack(self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _pack_header(RTCP_RR, len(self.reports), body + self.extension)


@dataclass(frozen=True, slots=True)
class RtcpSdesChunk:
    """One SDES chunk: a source and its items as ``(type, value)`` pairs."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        """The CNAME item, decoded, if present."""
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class RtcpSourceDescription:
    """SDES (RFC 3550 6.5)."""

    chunks: tuple[RtcpSdesChunk, ...] = ()

    packet_type = RTCP_SDES

    def serialize(self) -> bytes:
        """The packet's wire octets."""
        parts: list[bytes] = []
        for chunk in self.chunks:
            c = bytearray(_U32.pack(chunk.ssrc))
            for kind, value in chunk.items:
                if len(value) > 255:
                    raise RtpError("RTCP SDES item longer than 255 octets")
                c += bytes((kind, len(value))) + value
            # 6.5: a null item ends the list, then null octets to the next 32-bit boundary
            c += bytes(4 - (len(c) - 4) % 4) if (len(c) - 4) % 4 else b"\x00\x00\x00\x00"
            parts.append(bytes(c))
        return _pack_header(RTCP_SDES, len(self.chunks), b"".join(parts))


@dataclass(frozen=True, slots=True)
class RtcpBye:
    """BYE (RFC 3550 6.6)."""

    sources: tuple[int, ...] = ()
    reason: bytes = b""

    packet_type = RTCP_BYE

    def serialize(self) -> bytes:
        """The packet's wire octets."""
        body = b"".join(_U32.pack(s) for s in self.sources)
        if self.reason:
            if len(self.reason) > 255:
                raise RtpError("RTCP BYE reason longer than 255 octets")
            r = bytes((len(self.reason),)) + self.reason
            body += r + bytes(-len(r) % 4)
        return _pack_header(RTCP_BYE, len(self.sources), body)


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """Any other RTCP packet (APP, feedback, XR...), kept as its header fields and body."""

    packet_type: int
    count: int
    body: bytes = field(repr=False)

    def serialize(self) -> bytes:
        """The packet's wire octets."""
        return _pack_header(self.packet_type, self.count, self.body)


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSourceDescription | RtcpBye | RtcpUnknown


def _pack_header(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise RtpError("RTCP packet count field exceeds 31")
    if len(body) % 4:
        raise RtpError("RTCP packet body is not a multiple of 4 octets")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def serialize_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """A compound RTCP packet (RFC 3550 6.1): the packets' octets concatenated."""
    return b"".join(p.serialize() for p in packets)


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Split and parse a compound RTCP packet."""
    packets: list[RtcpPacket] = []
    pos = 0
    end = len(data)
    if end == 0:
        raise RtpError("RTCP packet is empty")
    while pos < end:
        if end - pos < 4:
            raise RtpError("RTCP packet length is less than 4 bytes")
        b0, packet_type, words = _HEADER.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise RtpError(f"RTCP packet has invalid version {b0 >> 6}")
        length = 4 + 4 * words
        if pos + length > end:
            raise RtpError("RTCP packet is truncated")
        body_end = pos + length
        if b0 & 0x20:  # padding, only legal on the last packet of a compound
            pad = data[body_end - 1]
            if pad == 0 or pad > length - 4:
                raise RtpError("RTCP packet padding length is invalid")
            body_end -= pad
        body = data[pos + 4 : body_end]
        packets.append(_parse_one(packet_type, b0 & 0x1F, body))
        pos += length
    return packets


def _parse_blocks(body: bytes, start: int, count: int) -> tuple[RtcpReportBlock, ...]:
    if len(body) < start + 24 * count:
        raise RtpError("RTCP report has truncated report blocks")
    return tuple(RtcpReportBlock.parse(body, start + 24 * i) for i in range(count))


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < 24:
            raise RtpError("RTCP SR is truncated")
        ssrc, msw, lsw, rtp_ts, pkts, octets = _SR_INFO.unpack_from(body)
        reports = _parse_blocks(body, 24, count)
        ext = body[24 + 24 * count :]
        return RtcpSenderReport(ssrc, (msw << 32) | lsw, rtp_ts, pkts, octets, reports, ext)
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise RtpError("RTCP RR is truncated")
        (ssrc,) = _U32.unpack_from(body)
        reports = _parse_blocks(body, 4, count)
        return RtcpReceiverReport(ssrc, reports, body[4 + 24 * count :])
    if packet_type == RTCP_SDES:
        return RtcpSourceDescription(_parse_sdes(body, count))
    if packet_type == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtpError("RTCP BYE has truncated sources")
        sources = struct.unpack_from(f"!{count}I", body) if count else ()
        reason = b""
        pos = 4 * count
        if pos < len(body):
            n = body[pos]
            if pos + 1 + n > len(body):
                raise RtpError("RTCP BYE reason is truncated")
            reason = body[pos + 1 : pos + 1 + n]
        return RtcpBye(tuple(sources), reason)
    return RtcpUnknown(packet_type, count, body)


def _parse_sdes(body: bytes, count: int) -> tuple[RtcpSdesChunk, ...]:
    chunks: list[RtcpSdesChunk] = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtpError("RTCP SDES chunk is truncated")
        (ssrc,) = _U32.unpack_from(body, pos)
        pos += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if pos >= len(body):
                raise RtpError("RTCP SDES items are not terminated")
            kind = body[pos]
            if kind == SDES_END:
                pos += 1
                pos += -pos % 4  # skip to the next 32-bit boundary
                break
            if pos + 2 > len(body):
                raise RtpError("RTCP SDES item is truncated")
            n = body[pos + 1]
            if pos + 2 + n > len(body):
                raise RtpError("RTCP SDES item is truncated")
            items.append((kind, body[pos + 2 : pos + 2 + n]))
            pos += 2 + n
        chunks.append(RtcpSdesChunk(ssrc, tuple(items)))
    return tuple(chunks)


def ntp_from_unix(seconds: float) -> int:
    """64-bit NTP timestamp for a Unix time (RFC 3550 4: seconds since 1 Jan 1900)."""
    ntp = seconds + 2_208_988_800
    whole = int(ntp)
    return (whole << 32) | int((ntp - whole) * (1 << 32))


def ntp_middle(ntp_timestamp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as carried in LSR (RFC 3550 6.4.1)."""
    return (ntp_timestamp >> 16) & 0xFFFFFFFF
