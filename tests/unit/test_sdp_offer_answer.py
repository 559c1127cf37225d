"""RFC 3264 offer/answer on captured offers and hand-made edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from telephony.errors import SdpError
from telephony.sdp import (
    NegotiatedMedia,
    SdpSession,
    SessionDescription,
    answer_offer,
    build_offer,
    parse_answer,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sdp"


def load(name: str) -> SessionDescription:
    return SessionDescription.parse((FIXTURES / name).read_bytes())


def answer(offer: SessionDescription, **kw: object) -> tuple[SessionDescription, NegotiatedMedia]:
    args: dict[str, object] = {"address": "127.0.0.1", "port": 20000, "session_id": 7, "version": 1}
    args.update(kw)
    return answer_offer(offer, **args)  # type: ignore[arg-type]


def offer_text(
    media: str, session_extra: str = "", conn: str = "IN IP4 10.0.0.9"
) -> SessionDescription:
    return SessionDescription.parse(
        f"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc={conn}\r\nt=0 0\r\n{session_extra}{media}"
    )


def test_build_offer_exact_text() -> None:
    offer = build_offer(address="192.0.2.10", port=4000, session_id=42, version=1)
    assert offer.serialize() == (
        "v=0\r\no=- 42 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        "a=ptime:20\r\na=sendrecv\r\n"
    )


def test_build_offer_ipv6_dynamic_codecs_no_dtmf() -> None:
    offer = build_offer(
        address="2001:db8::1",
        port=5000,
        session_id=1,
        version=2,
        codecs=("opus/48000/2", "G722", "PCMA"),
        telephone_event_pt=96,
        ptime=None,
        direction="sendonly",
        rtcp_port=5003,
    )
    assert offer.origin.addrtype == "IP6" and offer.connection is not None
    assert offer.connection.serialize() == "IN IP6 2001:db8::1"
    audio = offer.media[0]
    assert audio.formats == ["97", "9", "8", "96"]  # 96 is taken by telephone-event
    assert audio.rtpmaps()[97].encoding == "opus" and audio.rtpmaps()[97].channels == 2
    assert audio.ptime is None and audio.direction == "sendonly"
    assert audio.rtcp is not None and audio.rtcp.port == 5003
    no_dtmf = build_offer(
        address="10.0.0.1", port=1, session_id=1, version=1, telephone_event_pt=None
    )
    assert no_dtmf.media[0].formats == ["0", "8"]
    with pytest.raises(SdpError):
        build_offer(address="10.0.0.1", port=1, session_id=1, version=1, codecs=("opus",))
    with pytest.raises(SdpError):
        build_offer(address="10.0.0.1", port=1, session_id=1, version=1, codecs=())


def test_answer_baresip_offer() -> None:
    offer = load("baresip_offer.sdp")
    ans, media = answer(offer)
    assert media == NegotiatedMedia(
        remote_address="192.0.2.2",
        remote_port=36010,
        remote_rtcp_port=36011,
        codec="PCMU",
        payload_type=0,
        clock_rate=8000,
        telephone_event_pt=101,
        ptime=20,
        direction="sendrecv",
        on_hold=False,
        channels=1,
        remote_rtcp_address="192.0.2.2",
        media_index=0,
        telephone_event_fmtp="0-15",
    )
    assert ans.serialize() == (
        "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 20000 RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        "a=ptime:20\r\na=sendrecv\r\n"
    )
    # the offerer's view of our answer agrees
    assert parse_answer(offer, ans).codec == "PCMU"


def test_answer_prefers_offer_order_or_ours() -> None:
    offer = load("baresip_offer.sdp")  # 0 8 9 96 101
    _, media = answer(offer, supported=("PCMA", "opus/48000/2"))
    assert (media.codec, media.payload_type) == ("PCMA", 8)
    _, media = answer(offer, supported=("opus/48000/2", "PCMA"), prefer="local")
    assert (media.codec, media.payload_type, media.clock_rate, media.channels) == (
        "opus",
        96,
        48000,
        2,
    )
    # no telephone-event at 48 kHz in the offer: DTMF events not negotiated for opus
    assert media.telephone_event_pt is None
    ans, media = answer(offer, supported=("G722",))
    assert media.codec == "G722" and media.clock_rate == 8000
    assert ans.media[0].formats == ["9", "101"]


def test_answer_sipp_and_pyvoip_offers() -> None:
    _, sipp = answer(load("sipp_uac.sdp"))
    assert (sipp.codec, sipp.telephone_event_pt, sipp.remote_port) == ("PCMU", None, 6000)
    _, pyvoip = answer(load("pyvoip_offer.sdp"), supported=("PCMA",))
    assert (pyvoip.codec, pyvoip.payload_type, pyvoip.telephone_event_pt) == ("PCMA", 8, 101)


def test_answer_ipv6_offer() -> None:
    ans, media = answer(load("baresip_offer_ipv6.sdp"), address="::1")
    assert media.remote_address == "fd00::2"
    assert ans.connection is not None and ans.connection.addrtype == "IP6"
    assert ans.origin.serialize() == "- 7 1 IN IP6 ::1"


def test_video_line_rejected_with_port_zero() -> None:
    offer = load("baresip_offer_video.sdp")
    ans, media = answer(offer)
    assert len(ans.media) == 2
    assert ans.media[1].m_line() == "video 0 RTP/AVP 96"
    assert ans.media[1].attributes == []
    assert media.media_index == 0
    assert parse_answer(offer, ans).remote_port == 20000


def test_static_pt_without_rtpmap_and_dynamic_by_name() -> None:
    offer = offer_text("m=audio 3000 RTP/AVP 18 8 110\r\na=rtpmap:110 telephone-event/8000\r\n")
    _, media = answer(offer)
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMA", 8, 110)
    assert media.telephone_event_fmtp is None
    dyn = offer_text(
        "m=audio 3000 RTP/AVP 98 99\r\na=rtpmap:98 speex/16000\r\na=rtpmap:99 pcmu/8000\r\n"
    )
    _, media = answer(dyn)
    assert (media.codec, media.payload_type) == ("pcmu", 99)


@pytest.mark.parametrize(
    ("offered", "ours", "expected", "hold"),
    [
        ("sendrecv", "sendrecv", "sendrecv", False),
        ("sendonly", "sendrecv", "recvonly", True),
        ("recvonly", "sendrecv", "sendonly", False),
        ("inactive", "sendrecv", "inactive", True),
        ("sendrecv", "sendonly", "sendonly", False),
        ("sendrecv", "recvonly", "recvonly", False),
        ("sendonly", "sendonly", "inactive", True),
    ],
)
def test_direction_answer_rfc3264_6_1(offered: str, ours: str, expected: str, hold: bool) -> None:
    offer = offer_text(f"m=audio 3000 RTP/AVP 0\r\na={offered}\r\n")
    ans, media = answer(offer, direction=ours)
    assert ans.media[0].direction == expected
    assert media.direction == expected
    assert media.on_hold is hold


def test_session_level_direction_and_media_override() -> None:
    held = offer_text("m=audio 3000 RTP/AVP 0\r\n", session_extra="a=sendonly\r\n")
    assert answer(held)[1].direction == "recvonly"
    overridden = offer_text(
        "m=audio 3000 RTP/AVP 0\r\na=sendrecv\r\n", session_extra="a=inactive\r\n"
    )
    assert answer(overridden)[1].direction == "sendrecv"


def test_old_style_hold_zero_address() -> None:
    offer = offer_text("m=audio 3000 RTP/AVP 0\r\n", conn="IN IP4 0.0.0.0")
    ans, media = answer(offer)
    assert media.on_hold and media.direction == "recvonly"
    assert ans.media[0].direction == "recvonly"
    offer = offer_text("m=audio 3000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\n")
    assert answer(offer)[1].direction == "recvonly"


def test_ptime_honoured_and_default() -> None:
    offer = offer_text("m=audio 3000 RTP/AVP 8\r\na=ptime:30\r\n")
    ans, media = answer(offer, ptime=20)
    assert media.ptime == 30 and ans.media[0].ptime == 30
    assert answer(offer_text("m=audio 3000 RTP/AVP 8\r\n"), ptime=40)[1].ptime == 40


def test_rtcp_attribute_rfc3605() -> None:
    offer = offer_text("m=audio 3000 RTP/AVP 0\r\na=rtcp:3005 IN IP4 10.0.0.77\r\n")
    media = answer(offer)[1]
    assert (media.remote_rtcp_port, media.remote_rtcp_address) == (3005, "10.0.0.77")
    media = answer(offer_text("m=audio 3000 RTP/AVP 0\r\na=rtcp:3009\r\n"))[1]
    assert (media.remote_rtcp_port, media.remote_rtcp_address) == (3009, "10.0.0.9")


def test_first_audio_without_common_codec_falls_to_second() -> None:
    offer = offer_text("m=audio 3000 RTP/AVP 18\r\nm=audio 3002 RTP/AVP 8\r\n")
    ans, media = answer(offer)
    assert media.media_index == 1 and media.codec == "PCMA"
    assert [m.port for m in ans.media] == [0, 20000]
    assert ans.media[0].formats == ["18"]


def test_srtp_and_zero_port_audio_not_accepted() -> None:
    offer = offer_text("m=audio 3000 RTP/SAVP 0\r\nm=audio 0 RTP/AVP 0\r\n")
    with pytest.raises(SdpError) as info:
        answer(offer)
    assert info.value.status_hint == 488


@pytest.mark.parametrize(
    "media",
    ["m=video 3000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n", "m=audio 3000 RTP/AVP 18 101\r\n"],
)
def test_488_when_nothing_in_common(media: str) -> None:
    with pytest.raises(SdpError) as info:
        answer(offer_text(media))
    assert info.value.status_hint == 488


def test_no_connection_is_400() -> None:
    offer = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n"
    )
    with pytest.raises(SdpError) as info:
        answer(offer)
    assert info.value.status_hint == 400


def test_parse_baresip_answer_to_our_offer() -> None:
    offer = load("answered_offer.sdp")
    media = parse_answer(offer, load("baresip_answer.sdp"))
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMU", 0, 101)
    assert (media.remote_address, media.remote_port, media.ptime) == ("192.0.2.2", 36028, 20)
    assert media.direction == "sendrecv" and not media.on_hold
    sipp = parse_answer(offer, load("sipp_uas_answer.sdp"))
    assert (sipp.codec, sipp.remote_port, sipp.telephone_event_pt) == ("PCMU", 6000, None)


def test_parse_answer_checks() -> None:
    offer = build_offer(address="10.0.0.1", port=4000, session_id=1, version=1)
    base = "v=0\r\no=- 2 2 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
    with pytest.raises(SdpError, match="not offered") as info:
        parse_answer(offer, SessionDescription.parse(base + "m=audio 5 RTP/AVP 18\r\n"))
    assert info.value.status_hint == 488
    with pytest.raises(SdpError, match="rejected"):
        parse_answer(offer, SessionDescription.parse(base + "m=audio 0 RTP/AVP 0\r\n"))
    with pytest.raises(SdpError, match="m-lines"):
        parse_answer(offer, SessionDescription.parse(base))
    held = parse_answer(
        offer, SessionDescription.parse(base + "m=audio 5 RTP/AVP 8\r\na=sendonly\r\n")
    )
    assert held.direction == "recvonly" and held.on_hold and held.codec == "PCMA"
    ours_held = build_offer(
        address="10.0.0.1", port=4000, session_id=1, version=2, direction="sendonly"
    )
    answered = parse_answer(
        ours_held, SessionDescription.parse(base + "m=audio 5 RTP/AVP 0\r\na=recvonly\r\n")
    )
    assert answered.direction == "sendonly" and not answered.on_hold


def test_sdp_session_version_only_moves_on_change() -> None:
    session = SdpSession(session_id=9000, version=5)
    first = session.build_offer(address="10.0.0.1", port=4000)
    assert (first.origin.sess_id, first.origin.sess_version) == (9000, 5)
    again = session.build_offer(address="10.0.0.1", port=4000)
    assert again.origin.sess_version == 5 and again.serialize() == first.serialize()
    hold = session.build_offer(address="10.0.0.1", port=4000, direction="sendonly")
    assert hold.origin.sess_version == 6
    resume = session.build_offer(address="10.0.0.1", port=4000)
    assert resume.origin.sess_version == 7
    ans, media = session.answer_offer(load("pyvoip_offer.sdp"), address="10.0.0.1", port=4000)
    assert ans.origin.sess_id == 9000 and ans.origin.sess_version == 8
    assert media.codec == "PCMU"
    # stamping does not alter the caller's object
    raw = build_offer(address="10.0.0.1", port=1, session_id=1, version=1)
    session.stamp(raw)
    assert raw.origin.sess_id == 1
