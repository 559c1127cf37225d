"""RTP packet parse/serialize on captured bytes, synthetic cases and fuzzing."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.errors import RtpError
from telephony.rtp.packet import RtpPacket, is_rtcp, unwrap
from telephony.rtp.pcap import read_pcap_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rtp"
CAPTURES = sorted(glob.glob("/usr/share/sip-tester/*.pcap"))


def test_fixture_dtmf_start_packet() -> None:
    data = (FIXTURES / "dtmf_2833_5_pkt0.bin").read_bytes()
    pkt = RtpPacket.parse(data)
    assert (pkt.version, pkt.marker, pkt.payload_type) == (2, True, 101)
    assert pkt.sequence_number == 8155 and pkt.timestamp == 43200
    assert pkt.ssrc == 0x0E05384E
    assert pkt.payload == bytes([5, 0x0A, 0, 0])  # event 5, volume 10, duration 0
    assert pkt.serialize() == data
    assert bytes(pkt) == data


def test_fixture_pcma_packet() -> None:
    data = (FIXTURES / "g711a_pkt0.bin").read_bytes()
    pkt = RtpPacket.parse(data)
    assert (pkt.payload_type, pkt.sequence_number, pkt.timestamp) == (8, 59133, 240)
    assert len(pkt.payload) == 240 and pkt.ssrc == 0xDEE0EE8F
    assert not pkt.padding and not pkt.extension and pkt.csrc == ()
    assert pkt.serialize() == data


@pytest.mark.parametrize("path", [p for p in FIXTURES.glob("*.bin")], ids=lambda p: p.name)
def test_fixtures_round_trip(path: Path) -> None:
    data = path.read_bytes()
    assert RtpPacket.parse(data).serialize() == data


@pytest.mark.skipif(not CAPTURES, reason="sip-tester captures not installed")
def test_every_captured_packet_round_trips() -> None:
    count = 0
    for path in CAPTURES:
        for dgram in read_pcap_file(path):
            assert not is_rtcp(dgram.payload)
            assert RtpPacket.parse(dgram.payload).serialize() == dgram.payload
            count += 1
    assert count == 12 * 10 + 236


def test_csrc_extension_padding_round_trip() -> None:
    pkt = RtpPacket(
        payload_type=0,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        payload=b"abc",
        marker=True,
        csrc=(2, 3),
        extension_profile=0xBEDE,
        extension_data=b"\x10\xff\x00\x00",
        padding_size=4,
    )
    data = pkt.serialize()
    assert data[0] == 0x80 | 0x20 | 0x10 | 2
    assert data[-1] == 4 and len(data) == 12 + 8 + 4 + 4 + 3 + 4
    again = RtpPacket.parse(data)
    assert again == pkt
    assert again.serialize() == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00" + bytes(9), "RTP packet length is less than 12 bytes"),
        (b"\x40\x00" + bytes(10), "RTP packet has invalid version 1"),
        (b"\x82\x00" + bytes(10) + bytes(4), "RTP packet has truncated CSRC"),
        (b"\x90\x00" + bytes(10) + b"\x00", "RTP packet has truncated extension profile"),
        (b"\x90\x00" + bytes(10) + b"\x00\x00\x00\x02" + bytes(4), "truncated extension value"),
        (b"\xa0\x00" + bytes(10), "padding bit set but no padding"),
        (b"\xa0\x00" + bytes(10) + b"\x00\x05", "padding length is longer than the packet"),
        (b"\xa0\x00" + bytes(10) + b"\x00\x00", "zero-length padding"),
    ],
)
def test_malformed_packets_raise_precise_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        RtpPacket.parse(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_parse_raises_only_rtp_error(data: bytes) -> None:
    try:
        pkt = RtpPacket.parse(data)
    except RtpError:
        return
    # Whatever parses re-serializes to the same bytes (padding content aside).
    if not pkt.padding:
        assert pkt.serialize() == data


@settings(max_examples=200, deadline=None)
@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext=st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12))),
    payload=st.binary(max_size=200),
    padding=st.integers(0, 255),
)
def test_generated_packets_round_trip(pt, seq, ts, ssrc, marker, csrc, ext, payload, padding):
    ext_data = b"" if ext is None else ext[1] + bytes(-len(ext[1]) % 4)
    pkt = RtpPacket(
        payload_type=pt,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        marker=marker,
        csrc=tuple(csrc),
        extension_profile=None if ext is None else ext[0],
        extension_data=ext_data,
        payload=payload,
        padding_size=padding,
    )
    data = pkt.serialize()
    assert RtpPacket.parse(data) == pkt
    # A truncated packet never raises anything but RtpError.
    for cut in (len(data) - 1, 13, 11):
        try:
            RtpPacket.parse(data[:cut])
        except RtpError:
            pass


def test_is_rtcp_rfc5761_ranges() -> None:
    assert is_rtcp(b"\x80\xc8\x00\x06")  # SR, PT 200
    assert is_rtcp(b"\x81\xc9")  # RR
    assert not is_rtcp(b"\x80\x00")  # PCMU
    assert not is_rtcp(b"\x80\xe5")  # PT 101 with marker: 0xE5 = 229 > 223
    assert not is_rtcp(b"\x80")


def test_unwrap() -> None:
    assert unwrap(2, 65534, 16) == 65538
    assert unwrap(65534, 65538, 16) == 65534
    assert unwrap(5, 0x1_0000_0000 + 0xFFFFFFF0, 32) == 0x2_0000_0005
