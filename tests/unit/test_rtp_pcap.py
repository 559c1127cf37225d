"""The pcap reader on sip-tester captures and on synthetic link types."""

from __future__ import annotations

import glob

import pytest

from telephony.rtp.pcap import PcapError, read_pcap, read_pcap_file
from tests.pcaps import ipv4_udp as _ipv4_udp
from tests.pcaps import pcap_file as _pcap

CAPTURES = sorted(glob.glob("/usr/share/sip-tester/*.pcap"))


@pytest.mark.skipif(not CAPTURES, reason="sip-tester captures not installed")
def test_sip_tester_g711a_capture() -> None:
    dgrams = read_pcap_file("/usr/share/sip-tester/g711a.pcap")
    assert len(dgrams) == 236
    assert dgrams[0].src == ("10.1.3.143", 5000) and dgrams[0].dst == ("10.1.6.18", 2006)
    assert all(len(d.payload) == 252 for d in dgrams)
    assert dgrams[1].timestamp - dgrams[0].timestamp == pytest.approx(0.029968, abs=1e-6)


@pytest.mark.parametrize("linktype", [1, 101, 113, 228])
@pytest.mark.parametrize("endian", ["<", ">"])
def test_link_types(linktype: int, endian: str) -> None:
    ip = _ipv4_udp(b"hello")
    if linktype == 1:
        frame = bytes(12) + b"\x81\x00\x00\x05" + b"\x08\x00" + ip  # with a VLAN tag
    elif linktype == 113:
        frame = bytes(14) + b"\x08\x00" + ip
    else:
        frame = ip
    (d,) = list(read_pcap(_pcap(linktype, [frame], endian)))
    assert d.payload == b"hello"
    assert d.src == ("127.0.0.1", 4000) and d.dst == ("127.0.0.2", 5000)
    assert d.timestamp == 100.5


def test_non_udp_frames_are_skipped_and_bad_files_raise() -> None:
    tcp = bytearray(_ipv4_udp(b"x"))
    tcp[9] = 6
    assert list(read_pcap(_pcap(101, [bytes(tcp)]))) == []
    with pytest.raises(PcapError):
        list(read_pcap(b"\x00" * 24))
    with pytest.raises(PcapError):
        list(read_pcap(_pcap(101, [_ipv4_udp(b"abc")])[:-2]))
