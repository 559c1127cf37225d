"""Synthetic capture files for the tests: IPv4/UDP datagrams in classic libpcap framing."""

from __future__ import annotations

import struct

LINKTYPE_RAW = 101


def ipv4_udp(payload: bytes, sport: int = 4000, dport: int = 5000, *,
             src: bytes = bytes([127, 0, 0, 1]), dst: bytes = bytes([127, 0, 0, 2]),
             ident: int = 1) -> bytes:
    """An IPv4 header (no options, TTL 64, checksum 0) and a UDP header around ``payload``."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0, 64, 17, 0, src, dst)
    return ip + udp


def pcap_file(linktype: int, frames: list[bytes], endian: str = "<", *, first_second: int = 100,
              usec: int = 500000) -> bytes:
    """A libpcap file (version 2.4, snaplen 65535); frame ``i`` is stamped
    ``first_second + i`` seconds and ``usec`` microseconds."""
    out = struct.pack(endian + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        out += struct.pack(endian + "IIII", first_second + i, usec, len(f), len(f)) + f
    return out
