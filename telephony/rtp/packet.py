"""RTP packets (RFC 3550 section 5.1): parse and serialize.

The parse path is the hottest code in the media plane (50 packets/s per call and
direction), so :meth:`RtpPacket.parse` uses one precompiled ``struct.Struct``,
``__slots__`` and a fast path for the common header (no CSRC, no extension, no
padding).  Every malformed packet raises :class:`~telephony.errors.RtpError` with
a message naming the problem, never another exception.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from telephony.errors import RtpError

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

_HEADER = struct.Struct("!BBHII")
RTP_HEADER = _HEADER
"""The fixed header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC (network order)."""
_EXT_HEADER = struct.Struct("!HH")
_unpack_header = _HEADER.unpack_from
_pack_header = _HEADER.pack


def is_rtcp(data: bytes) -> bool:
    """True if a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 section 4).

    RTCP packet types 192..223 occupy the second octet where RTP has marker +
    payload type; RFC 5761 forbids RTP payload types 64..95 so the ranges never collide.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


class RtpPacket:
    """One RTP packet.

    ``csrc`` is a tuple of contributing sources; ``extension_profile`` is ``None``
    when the X bit is clear, otherwise the 16-bit profile and ``extension_data`` the
    extension words (length a multiple of 4); ``padding_size`` is the number of
    padding octets including the count octet (0 when the P bit is clear).
    """

    __slots__ = (
        "csrc",
        "extension_data",
        "extension_profile",
        "marker",
        "padding_size",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    csrc: tuple[int, ...]
    extension_profile: int | None
    extension_data: bytes
    padding_size: int

    version = RTP_VERSION

    def __init__(
        self,
        *,
        payload_type: int = 0,
        sequence_number: int = 0,
        timestamp: int = 0,
        ssrc: int = 0,
        payload: bytes = b"",
        marker: bool = False,
        csrc: tuple[int, ...] = (),
        extension_profile: int | None = None,
        extension_data: bytes = b"",
        padding_size: int = 0,
    ) -> None:
        self.marker = marker
        self.payload_type = payload_type
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.csrc = csrc
        self.extension_profile = extension_profile
        self.extension_data = extension_data
        self.padding_size = padding_size

    @property
    def padding(self) -> bool:
        """The P bit."""
        return self.padding_size > 0

    @property
    def extension(self) -> bool:
        """The X bit."""
        return self.extension_profile is not None

    @classmethod
    def parse(
        cls,
        data: bytes,
        _unpack: Callable[[bytes], tuple[int, int, int, int, int]] = _unpack_header,
        _new: Callable[[type[RtpPacket]], RtpPacket] = object.__new__,
    ) -> RtpPacket:
        """Parse one RTP packet; raises :class:`RtpError` if it is malformed."""
        # (the underscore parameters are bound once so the hot path reads locals)
        if len(data) < 12:
            raise RtpError(f"RTP packet length is less than {RTP_HEADER_SIZE} bytes")
        b0, b1, seq, ts, ssrc = _unpack(data)
        pkt = _new(cls)
        pkt.marker = b1 > 127
        pkt.payload_type = b1 & 0x7F
        pkt.sequence_number = seq
        pkt.timestamp = ts
        pkt.ssrc = ssrc
        if b0 == 0x80:  # RFC 3550 5.1: V=2, P=0, X=0, CC=0 -- the common case
            pkt.payload = data[12:]
            pkt.csrc = ()
            pkt.extension_profile = None
            pkt.extension_data = b""
            pkt.padding_size = 0
            return pkt
        return _parse_slow(pkt, data, b0)

    def serialize(self) -> bytes:
        """The packet's wire bytes."""
        b1 = (self.payload_type & 0x7F) | (0x80 if self.marker else 0)
        if not self.csrc and self.extension_profile is None and not self.padding_size:
            return (
                _pack_header(0x80, b1, self.sequence_number, self.timestamp, self.ssrc)
                + self.payload
            )
        return self._serialize_slow(b1)

    __bytes__ = serialize

    def _serialize_slow(self, b1: int) -> bytes:
        if len(self.csrc) > 15:
            raise RtpError("RTP packet has more than 15 CSRC")
        b0 = 0x80 | len(self.csrc)
        if self.padding_size:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        parts = [_pack_header(b0, b1, self.sequence_number, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            if len(self.extension_data) % 4:
                raise RtpError("RTP header extension length is not a multiple of 4")
            parts.append(_EXT_HEADER.pack(self.extension_profile, len(self.extension_data) // 4))
            parts.append(self.extension_data)
        parts.append(self.payload)
        if self.padding_size:
            if not 1 <= self.padding_size <= 255:
                raise RtpError("RTP padding size must be 1..255")
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RtpPacket(seq={self.sequence_number}, ts={self.timestamp}, "
            f"ssrc={self.ssrc:#010x}, pt={self.payload_type}, m={int(self.marker)}, "
            f"payload={len(self.payload)} bytes)"
        )


_FIELDS = (
    "marker",
    "payload_type",
    "sequence_number",
    "timestamp",
    "ssrc",
    "payload",
    "csrc",
    "extension_profile",
    "extension_data",
    "padding_size",
)


def _parse_slow(pkt: RtpPacket, data: bytes, b0: int) -> RtpPacket:
    version = b0 >> 6
    if version != RTP_VERSION:
        raise RtpError(f"RTP packet has invalid version {version}")
    pos = RTP_HEADER_SIZE
    end = len(data)
    pkt.csrc = ()
    pkt.extension_profile = None
    pkt.extension_data = b""
    pkt.padding_size = 0
    cc = b0 & 0x0F
    if cc:
        if end < pos + 4 * cc:
            raise RtpError("RTP packet has truncated CSRC")
        pkt.csrc = struct.unpack_from(f"!{cc}I", data, pos)
        pos += 4 * cc
    if b0 & 0x10:  # RFC 3550 5.3.1
        if end < pos + 4:
            raise RtpError("RTP packet has truncated extension profile / length")
        profile, words = _EXT_HEADER.unpack_from(data, pos)
        pos += 4
        if end < pos + 4 * words:
            raise RtpError("RTP packet has truncated extension value")
        pkt.extension_profile = profile
        pkt.extension_data = data[pos : pos + 4 * words]
        pos += 4 * words
    if b0 & 0x20:  # RFC 3550 5.1: the last octet counts the padding, itself included
        if end == pos:
            raise RtpError("RTP packet has padding bit set but no padding")
        padding = data[-1]
        if padding == 0:
            raise RtpError("RTP packet has zero-length padding")
        if padding > end - pos:
            raise RtpError("RTP packet padding length is longer than the packet")
        pkt.padding_size = padding
        end -= padding
    pkt.payload = data[pos:end]
    return pkt


def unwrap(value: int, reference: int, bits: int) -> int:
    """Extend a wrapping ``bits``-bit counter to the integer closest to ``reference``.

    ``reference`` is an already-extended value (e.g. the highest sequence number seen);
    used for 16-bit sequence numbers and 32-bit timestamps.
    """
    modulus = 1 << bits
    half = modulus >> 1
    delta = (value - reference) & (modulus - 1)
    if delta >= half:
        delta -= modulus
    return reference + delta
