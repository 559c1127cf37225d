"""RTCP SR, RR, SDES, BYE and compound packets."""

from __future__ import annotations

import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.errors import RtpError
from telephony.rtp.packet import is_rtcp
from telephony.rtp.rtcp import (
    RtcpBye,
    RtcpReceiverReport,
    RtcpReportBlock,
    RtcpSdesChunk,
    RtcpSenderReport,
    RtcpSourceDescription,
    RtcpUnknown,
    ntp_from_unix,
    ntp_middle,
    parse_rtcp,
    serialize_rtcp,
)
from tests.conftest import require_tool
from tests.pcaps import LINKTYPE_RAW, ipv4_udp, pcap_file

BLOCK = RtcpReportBlock(0x11223344, 25, -3, 0x1_0005, 120, 0xAABBCCDD, 65536)
SR = RtcpSenderReport(0xDEADBEEF, ntp_from_unix(1_700_000_000.5), 160_000, 1000, 160_000, (BLOCK,))
SDES = RtcpSourceDescription((RtcpSdesChunk(0xDEADBEEF, ((1, b"dialtone@127.0.0.1"),)),))
BYE = RtcpBye((0xDEADBEEF,), b"hangup")


def test_compound_round_trip() -> None:
    packets = [SR, SDES, BYE]
    data = serialize_rtcp(packets)
    assert is_rtcp(data)
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == packets
    assert serialize_rtcp(parse_rtcp(data)) == data


def test_hand_assembled_receiver_report() -> None:
    # RR from SSRC 1 with one block about SSRC 2: 10% lost (25/256), 7 lost in all.
    data = (
        b"\x81\xc9\x00\x07"
        + struct.pack("!I", 1)
        + struct.pack("!IIIIII", 2, (25 << 24) | 7, 70000, 33, 0, 0)
    )
    (rr,) = parse_rtcp(data)
    assert rr == RtcpReceiverReport(1, (RtcpReportBlock(2, 25, 7, 70000, 33, 0, 0),))
    assert rr.serialize() == data


def test_sdes_padding_and_cname() -> None:
    for name in (b"a", b"ab", b"abc", b"abcd", b"abcdefgh"):
        pkt = RtcpSourceDescription((RtcpSdesChunk(7, ((1, name),)),))
        data = pkt.serialize()
        assert len(data) % 4 == 0
        (again,) = parse_rtcp(data)
        assert again == pkt and again.chunks[0].cname == name.decode()


def test_unknown_packets_are_kept() -> None:
    app = RtcpUnknown(204, 1, b"\x00\x00\x00\x01name" + b"data")
    data = serialize_rtcp([RtcpReceiverReport(5), app])
    assert parse_rtcp(data) == [RtcpReceiverReport(5), app]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x80\xc8\x00", "less than 4 bytes"),
        (b"\x40\xc9\x00\x01\x00\x00\x00\x01", "invalid version"),
        (b"\x80\xc9\x00\x05\x00\x00\x00\x01", "truncated"),
        (b"\x81\xc9\x00\x01\x00\x00\x00\x01", "truncated report blocks"),
        (b"\x80\xc8\x00\x01\x00\x00\x00\x01", "SR is truncated"),
        (b"\x81\xca\x00\x01\x00\x00\x00\x01", "not terminated"),
        (b"\x81\xcb\x00\x00", "BYE has truncated sources"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse_rtcp(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_raises_only_rtp_error(data: bytes) -> None:
    try:
        parse_rtcp(b"\x80" + data)
    except RtpError:
        pass


def test_ntp_helpers() -> None:
    ntp = ntp_from_unix(0.25)
    assert ntp >> 32 == 2_208_988_800 and ntp & 0xFFFFFFFF == 1 << 30
    assert ntp_middle(0x0123456789ABCDEF) == 0x456789AB


def test_tshark_decodes_our_compound(tmp_path) -> None:
    """An independent decoder reads the SR + SDES + BYE we write."""
    require_tool("tshark")
    payload = serialize_rtcp([SR, SDES, BYE])
    ip = ipv4_udp(payload, 5005, 5007, dst=bytes([127, 0, 0, 1]), ident=0)
    pcap = pcap_file(LINKTYPE_RAW, [ip], first_second=1, usec=0)
    path = tmp_path / "rtcp.pcap"
    path.write_bytes(pcap)
    out = (
        subprocess.run(
            [
                "tshark",
                "-r",
                str(path),
                "-d",
                "udp.port==5005,rtcp",
                "-T",
                "fields",
                "-e",
                "rtcp.senderssrc",
                "-e",
                "rtcp.sender.packetcount",
                "-e",
                "rtcp.ssrc.fraction",
                "-e",
                "rtcp.ssrc.cum_nr",
                "-e",
                "rtcp.ssrc.jitter",
                "-e",
                "rtcp.sdes.text",
                "-e",
                "rtcp.bye_reason_not_padded",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        .stdout.strip()
        .split("\t")
    )
    assert int(out[0].split(",")[0], 16 if out[0].startswith("0x") else 10) == 0xDEADBEEF
    assert out[1] == "1000"
    assert out[2] == "25" and out[3] == "-3" and out[4] == "120"
    assert out[5] == "dialtone@127.0.0.1,hangup"  # tshark shows the BYE reason here too
    assert out[6:] in ([], ["", ""], [""])  # no malformed-packet or expert notes
