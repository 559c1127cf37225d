"""A tiny reader of classic libpcap files: the UDP datagrams they hold.

Enough for tests and the flow harness to replay captured RTP: link types Ethernet
(1, with 802.1Q tags), raw IP (101, 228) and Linux cooked v1 (113); IPv4 only,
unfragmented UDP.  Other frames are skipped.  No I/O beyond reading the bytes
given (``read_pcap_file`` is the convenience that opens a file).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from telephony.errors import MediaError

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228

_ETH_IPV4 = 0x0800
_ETH_VLAN = 0x8100


class PcapError(MediaError):
    """A pcap file that cannot be read."""


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """One captured UDP datagram."""

    timestamp: float
    """Capture time, seconds since the epoch."""
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes = field(repr=False)


def read_pcap(data: bytes) -> Iterator[UdpDatagram]:
    """The IPv4 UDP datagrams in a classic pcap file's bytes, in file order."""
    if len(data) < 24:
        raise PcapError("pcap file is shorter than its 24-byte header")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise PcapError(f"not a classic pcap file (magic {magic.hex()})")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(endian + "IIII")
    pos = 24
    divisor = 1e9 if nano else 1e6
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = record.unpack_from(data, pos)
        pos += 16
        if pos + incl > len(data):
            raise PcapError("pcap record is truncated")
        frame = data[pos : pos + incl]
        pos += incl
        ip = _ip_of(frame, linktype)
        if ip is None:
            continue
        datagram = _udp_of(ip, sec + frac / divisor)
        if datagram is not None:
            yield datagram


def read_pcap_file(path: str | Path) -> list[UdpDatagram]:
    """Every IPv4 UDP datagram of a pcap file."""
    return list(read_pcap(Path(path).read_bytes()))


def _ip_of(frame: bytes, linktype: int) -> bytes | None:
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        pos = 12
        ethertype = struct.unpack_from("!H", frame, pos)[0]
        while ethertype == _ETH_VLAN and len(frame) >= pos + 6:
            pos += 4
            ethertype = struct.unpack_from("!H", frame, pos)[0]
        return frame[pos + 2 :] if ethertype == _ETH_IPV4 else None
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        return frame[16:] if struct.unpack_from("!H", frame, 14)[0] == _ETH_IPV4 else None
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
        return frame
    raise PcapError(f"unsupported pcap link type {linktype}")


def _udp_of(ip: bytes, timestamp: float) -> UdpDatagram | None:
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    flags_frag = struct.unpack_from("!H", ip, 6)[0]
    if flags_frag & 0x3FFF:  # a fragment (MF set or non-zero offset)
        return None
    if len(ip) < ihl + 8:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", ip, ihl)
    end = min(ihl + ulen, total if total else len(ip), len(ip))
    src = str(ipaddress.IPv4Address(ip[12:16]))
    dst = str(ipaddress.IPv4Address(ip[16:20]))
    return UdpDatagram(timestamp, (src, sport), (dst, dport), ip[ihl + 8 : end])
