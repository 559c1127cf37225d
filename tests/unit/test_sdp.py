"""SDP parse/serialize (RFC 4566): captured bodies round-trip byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.errors import SdpError
from telephony.sdp import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtcpAttribute,
    RtpMap,
    SessionDescription,
    SsrcAttribute,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sdp"
CAPTURED = sorted(FIXTURES.glob("*.sdp"))


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_fixtures_present() -> None:
    names = {p.name for p in CAPTURED}
    assert {
        "sipp_uac.sdp",
        "baresip_offer.sdp",
        "baresip_answer.sdp",
        "pyvoip_offer.sdp",
        "baresip_offer_ipv6.sdp",
    } <= names


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.name)
def test_captured_round_trip(path: Path) -> None:
    data = path.read_bytes()
    sdp = SessionDescription.parse(data)
    assert sdp.serialize().encode() == data
    assert bytes(sdp) == data
    # and through str, and with LF-only line ends (some peers send those)
    assert SessionDescription.parse(data.decode()).serialize().encode() == data
    assert SessionDescription.parse(data.replace(b"\r\n", b"\n")).serialize().encode() == data


def test_baresip_offer_fields() -> None:
    sdp = SessionDescription.parse(load("baresip_offer.sdp"))
    assert sdp.origin == Origin("-", 431985198, 1043952485, "IN", "IP4", "192.0.2.2")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("192.0.2.2", "IP4", "IN")
    assert sdp.get_attribute("tool") == "baresip 1.0.0"
    assert len(sdp.media) == 1
    audio = sdp.media[0]
    assert (audio.media, audio.port, audio.proto) == ("audio", 36010, "RTP/AVP")
    assert audio.formats == ["0", "8", "9", "96", "101"]
    assert audio.payload_types() == [0, 8, 9, 96, 101]
    maps = audio.rtpmaps()
    assert maps[96] == RtpMap(96, "opus", 48000, 2)
    assert maps[101] == RtpMap(101, "telephone-event", 8000, None)
    assert audio.fmtp() == {"96": "stereo=1;sprop-stereo=1", "101": "0-15"}
    assert audio.ptime == 20
    assert audio.maxptime is None
    assert audio.direction == "sendrecv"
    assert audio.effective_direction(sdp) == "sendrecv"
    assert audio.ssrcs == [SsrcAttribute(2187462504, "cname", "sip:bob@127.0.0.1:35081")]
    assert audio.has_attribute("rtcp-rsize")
    assert audio.get_attribute("rtcp-rsize") == ""
    assert audio.get_attribute("label") == "1"
    assert audio.rtcp is None


def test_ipv6_and_video_fixtures() -> None:
    v6 = SessionDescription.parse(load("baresip_offer_ipv6.sdp"))
    assert v6.origin.addrtype == "IP6"
    assert v6.connection is not None and v6.connection.address == "fd00::2"
    video = SessionDescription.parse(load("baresip_offer_video.sdp"))
    assert [m.media for m in video.media] == ["audio", "video"]
    assert video.media[1].rtpmaps()[96] == RtpMap(96, "VP8", 90000)
    assert video.media[1].get_attributes("rtcp-fb") == ["* nack pli"]


def test_static_payload_without_rtpmap() -> None:
    sdp = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 8 0 18\r\n"
    )
    audio = sdp.media[0]
    assert audio.rtpmaps() == {}
    assert audio.rtpmap(8) == RtpMap(8, "PCMA", 8000, 1)
    g729 = audio.rtpmap(18)
    assert g729 is not None and g729.encoding == "G729"
    assert audio.rtpmap(97) is None


def test_every_line_type_round_trips() -> None:
    text = (
        "v=0\r\n"
        "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
        "s=SDP Seminar\r\n"
        "i=A Seminar on the session description protocol\r\n"
        "u=http://www.example.com/seminars/sdp.pdf\r\n"
        "e=j.doe@example.com (Jane Doe)\r\n"
        "p=+1 617 555-6011\r\n"
        "c=IN IP4 224.2.17.12/127\r\n"
        "b=AS:256\r\n"
        "t=2873397496 2873404696\r\n"
        "r=7d 1h 0 25h\r\n"
        "z=2882844526 -1h 2898848070 0\r\n"
        "k=prompt\r\n"
        "a=recvonly\r\n"
        "y=0123456789\r\n"
        "m=audio 49170/2 RTP/AVP 0\r\n"
        "i=voice\r\n"
        "c=IN IP4 224.2.17.12/127/3\r\n"
        "b=TIAS:64000\r\n"
        "k=clear:secret\r\n"
        "a=rtcp:53020 IN IP6 2001:db8::1\r\n"
        "a=sendonly\r\n"
        "f=v/2/25\r\n"
        "m=video 51372 RTP/AVP 99\r\n"
        "a=rtpmap:99 h263-1998/90000\r\n"
    )
    sdp = SessionDescription.parse(text)
    assert sdp.serialize() == text
    assert sdp.connection == Connection("224.2.17.12", "IP4", "IN", ttl=127)
    assert sdp.timings[0].repeats == ["7d 1h 0 25h"]
    assert sdp.extra_lines == [("y", "0123456789")]
    audio = sdp.media[0]
    assert audio.port_count == 2
    assert audio.title == "voice"
    assert audio.connection == Connection("224.2.17.12", "IP4", "IN", ttl=127, count=3)
    assert audio.bandwidths[0].bwtype == "TIAS" and audio.bandwidths[0].bandwidth == 64000
    assert audio.rtcp == RtcpAttribute(53020, "IN", "IP6", "2001:db8::1")
    assert audio.extra_lines == [("f", "v/2/25")]
    # media direction overrides the session's (RFC 4566 6)
    assert sdp.direction == "recvonly"
    assert audio.effective_direction(sdp) == "sendonly"
    assert sdp.media[1].effective_direction(sdp) == "recvonly"


def test_out_of_order_lines_are_accepted_and_normalised() -> None:
    # a= before t= and c= after b= : seen from real peers; serialised in RFC order
    head = "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\n"
    text = head + "a=tool:x\r\nb=AS:64\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
    sdp = SessionDescription.parse(text)
    assert sdp.serialize() == (head + "c=IN IP4 1.2.3.4\r\nb=AS:64\r\nt=0 0\r\na=tool:x\r\n")


def test_ipv6_connection() -> None:
    assert Connection.parse("IN IP6 ::1") == Connection("::1", "IP6")
    assert Connection.parse("IN IP6 ff15::101/3") == Connection("ff15::101", "IP6", count=3)
    assert Connection.for_address("2001:db8::5").serialize() == "IN IP6 2001:db8::5"
    assert Connection.for_address("10.1.2.3").serialize() == "IN IP4 10.1.2.3"
    assert Connection.parse("IN IP6 ::").is_hold
    assert Connection.parse("IN IP4 0.0.0.0").is_hold
    assert not Connection.parse("IN IP4 host.example.com").is_hold


def test_model_edits_serialise() -> None:
    sdp = SessionDescription.parse(load("sipp_uac.sdp"))
    audio = sdp.media[0]
    audio.set_direction("sendonly")
    audio.attributes.append(Attribute("ptime", "30"))
    sdp.origin.sess_version += 1
    again = SessionDescription.parse(sdp.serialize())
    assert again.media[0].direction == "sendonly"
    assert again.media[0].ptime == 30
    assert again.origin.sess_version == 2353687638
    audio.set_direction(None)
    assert audio.direction is None
    with pytest.raises(SdpError):
        audio.set_direction("loud")  # type: ignore[arg-type]


def test_copy_is_independent() -> None:
    sdp = SessionDescription.parse(load("pyvoip_offer.sdp"))
    other = sdp.copy()
    other.media[0].port = 1
    assert sdp.media[0].port == 10000
    assert sdp.media[0].maxptime == 150


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "v=0"),
        ("v=1\r\n", "v=0"),
        ("o=- 1 1 IN IP4 a\r\nv=0\r\n", "v=0"),
        ("v=0\r\ns=-\r\n", "no o="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\n", "no s="),
        ("v=0\r\no=- x 1 IN IP4 a\r\ns=-\r\n", "sess-id"),
        ("v=0\r\no=- 1 IN IP4 a\r\ns=-\r\n", "6 fields"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio\r\n", "m="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n", "port"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1_0 RTP/AVP 0\r\n", "port"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4\r\n", "c="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nb=AS\r\n", "b="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0\r\n", "t="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nr=1d 1h\r\n", "r="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nhello\r\n", "bad SDP line"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\ns=x\r\n", "inside a media"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\no=- 1 1 IN IP4 a\r\ns=-\r\n", "more than one o="),
    ],
)
def test_parse_errors(text: str, reason: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(text)
    assert reason in info.value.reason
    assert info.value.status_hint == 400


def test_non_utf8_bytes() -> None:
    with pytest.raises(SdpError, match="UTF-8"):
        SessionDescription.parse(b"v=0\r\ns=\xff\r\n")


def test_bad_attribute_values_raise_sdp_error_lazily() -> None:
    sdp = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n"
        "a=rtpmap:x PCMU/8000\r\na=ptime:abc\r\na=rtcp:\r\na=ssrc:zz cname:x\r\n"
    )
    media = sdp.media[0]
    for read in (media.rtpmaps, lambda: media.ptime, lambda: media.rtcp, lambda: media.ssrcs):
        with pytest.raises(SdpError):
            read()


def test_media_line_helpers() -> None:
    media = MediaDescription.parse_m_line("audio 0 RTP/SAVP 0 8")
    assert media.m_line() == "audio 0 RTP/SAVP 0 8"
    assert media.connection is None
    media.connection = Connection("::1", "IP6")
    assert media.connections == [Connection("::1", "IP6")]
    media.connection = None
    assert media.connections == []


_LINE_CHARS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("vosicbtrzkamuepxy"), _LINE_CHARS), max_size=12))
def test_fuzz_only_sdp_error(lines: list[tuple[str, str]]) -> None:
    text = "v=0\r\n" + "".join(f"{k}={v}\r\n" for k, v in lines)
    try:
        sdp = SessionDescription.parse(text)
    except SdpError:
        return
    # whatever parsed must re-parse to the same serialisation, and helpers stay typed
    assert SessionDescription.parse(sdp.serialize()).serialize() == sdp.serialize()
    for media in sdp.media:
        for name in ("ptime", "maxptime", "rtcp", "ssrcs"):
            try:
                getattr(media, name)
            except SdpError:
                pass
        for read in (media.rtpmaps, media.fmtp):
            try:
                read()
            except SdpError:
                pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_bytes(data: bytes) -> None:
    try:
        SessionDescription.parse(b"v=0\r\n" + data)
    except SdpError:
        pass


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**63),
    st.integers(0, 2**63),
    st.lists(st.integers(0, 127), min_size=1, max_size=6),
    st.integers(1, 65535),
    st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]),
    st.sampled_from(["10.0.0.1", "::1", "2001:db8::7"]),
)
def test_generated_round_trip(
    sess_id: int, version: int, pts: list[int], port: int, direction: str, address: str
) -> None:
    conn = Connection.for_address(address)
    media = MediaDescription(
        "audio",
        port,
        "RTP/AVP",
        [str(p) for p in pts],
        attributes=[Attribute("rtpmap", f"{pts[0]} X/8000"), Attribute(direction)],
    )
    sdp = SessionDescription(
        Origin("-", sess_id, version, "IN", conn.addrtype, address), connection=conn, media=[media]
    )
    text = sdp.serialize()
    again = SessionDescription.parse(text)
    assert again == sdp
    assert again.serialize() == text
