"""RTP latching under a policy (issue 12): strict (default), sdp-only, symmetric.

Sans-IO: CallMedia on a virtual clock; addresses are documentation ranges (RFC 5737) and
RFC 1918 strings, never sent to.
"""

from __future__ import annotations

import random

import pytest

from telephony.errors import ConfigError
from telephony.media import FRAME, CallMedia, MediaConfig
from telephony.rtp.latch import get_latch_mode, latch_modes
from telephony.rtp.stream import RtpSender

SIP_PEER = "198.51.100.7"  # the caller's public (NAT) address, where its SIP came from
NAT_SRC = (SIP_PEER, 31000)  # where its RTP really comes from
PRIVATE_SDP = ("192.168.1.20", 4000)
PUBLIC_SDP = ("198.51.100.7", 4000)
STRANGER = ("203.0.113.66", 5000)


def media(latch: str = "strict", sdp: tuple[str, int] = PRIVATE_SDP, **kw: object) -> CallMedia:
    m = CallMedia(MediaConfig(latch=latch, **kw), now=0.0)  # type: ignore[arg-type]
    m.set_remote(sdp, signalling_host=SIP_PEER)
    return m


def stream(m: CallMedia, src: tuple[str, int], n: int, *, pt: int = 0, seed: int = 1,
           t0: float = 0.0) -> None:
    sender = RtpSender(pt, rng=random.Random(seed))
    for k in range(n):
        m.receive_rtp(sender.packetize(b"\xff" * FRAME, timestamp_advance=FRAME), src,
                      now=t0 + k * 0.02)


def test_modes_are_registered_and_unknown_is_a_config_error() -> None:
    assert latch_modes() == ["sdp-only", "strict", "symmetric"]
    with pytest.raises(ConfigError):
        get_latch_mode("first-packet")
    with pytest.raises(ConfigError):
        CallMedia(MediaConfig(latch="nope"), now=0.0)


def test_strict_behind_nat_latches_to_the_sip_peers_host_after_plausible_packets() -> None:
    m = media()
    stream(m, NAT_SRC, 1)
    assert m.remote == PRIVATE_SDP  # one packet is not enough
    stream(m, NAT_SRC, 1, seed=1)  # (a new sender: same SSRC, the same first seq again)
    assert m.remote == PRIVATE_SDP
    m2 = media()
    stream(m2, NAT_SRC, 2)
    assert m2.remote == NAT_SRC
    assert m2.counters["rx_wrong_source"] == 1  # the first packet, before the latch


def test_strict_never_latches_to_another_host_even_behind_nat() -> None:
    m = media()
    stream(m, STRANGER, 20)
    assert m.remote == PRIVATE_SDP
    assert m.counters["rx_wrong_source"] == 20
    assert m.counters["rx_packets"] == 0


def test_strict_with_a_reachable_sdp_address_accepts_only_it() -> None:
    m = media(sdp=PUBLIC_SDP)
    stream(m, (SIP_PEER, 31000), 10)  # the SIP peer's host, another port: not the SDP's
    assert m.remote == PUBLIC_SDP and m.counters["rx_wrong_source"] == 10
    stream(m, PUBLIC_SDP, 3, seed=2)
    assert m.counters["rx_packets"] == 3


def test_latch_nat_option_allows_the_port_rewriting_nat_case() -> None:
    m = media(sdp=PUBLIC_SDP, latch_nat=True)
    stream(m, (SIP_PEER, 31000), 3)
    assert m.remote == (SIP_PEER, 31000)


def test_strict_latches_only_to_negotiated_payload_types_in_sequence() -> None:
    m = media()
    stream(m, NAT_SRC, 5, pt=96)  # not negotiated (PCMU 0, telephone-event 101, CN 13)
    assert m.remote == PRIVATE_SDP
    # same SSRC, but sequence numbers jumping: not one plausible stream
    sender = RtpSender(0, rng=random.Random(5))
    for _ in range(5):
        sender.sequence_number = (sender.sequence_number + 1000) & 0xFFFF
        m.receive_rtp(sender.packetize(b"\xff" * FRAME, timestamp_advance=FRAME), NAT_SRC,
                      now=0.1)
    assert m.remote == PRIVATE_SDP
    # RTCP from the candidate is not RTP: no latch
    m.receive_rtp(bytes((0x80, 200)) + bytes(26), NAT_SRC, now=0.2)
    assert m.remote == PRIVATE_SDP


def test_the_sdp_address_takes_the_call_back_and_closes_the_latch() -> None:
    m = media(latch_nat=True)
    stream(m, NAT_SRC, 3)
    assert m.remote == NAT_SRC
    stream(m, PRIVATE_SDP, 2, seed=9, t0=0.1)  # the caller is at its SDP address after all
    assert m.remote == PRIVATE_SDP
    stream(m, NAT_SRC, 3, seed=10, t0=0.2)
    assert m.remote == PRIVATE_SDP  # no more latching once the SDP address has spoken


def test_a_reinvite_with_the_same_address_keeps_the_latch() -> None:
    m = media()
    stream(m, NAT_SRC, 2)
    m.set_remote(PRIVATE_SDP, signalling_host=SIP_PEER)  # hold / unhold re-INVITE
    assert m.remote == NAT_SRC
    m.set_remote(("192.168.1.21", 4100), signalling_host=SIP_PEER)  # a new address
    assert m.remote == ("192.168.1.21", 4100)


def test_sdp_only_never_latches() -> None:
    m = media("sdp-only")
    stream(m, NAT_SRC, 10)
    assert m.remote == PRIVATE_SDP and m.counters["rx_wrong_source"] == 10


def test_symmetric_latches_to_any_plausible_source_and_relatches_within_the_window() -> None:
    m = media("symmetric", latch_seconds=1.0)
    stream(m, STRANGER, 2)
    assert m.remote == STRANGER
    stream(m, NAT_SRC, 2, seed=3, t0=0.5)  # NAT rebinding within the window
    assert m.remote == NAT_SRC
    stream(m, STRANGER, 3, seed=4, t0=2.0)  # after the window: rejected
    assert m.remote == NAT_SRC


def test_no_sdp_yet_strict_accepts_only_the_sip_peer_host() -> None:
    m = CallMedia(MediaConfig(), now=0.0)
    stream(m, STRANGER, 5)
    assert m.remote is None and m.counters["rx_wrong_source"] == 5


def test_candidate_table_is_bounded_under_a_port_scan() -> None:
    m = media()
    sender = RtpSender(0, rng=random.Random(1))
    for port in range(2000, 3000):
        m.receive_rtp(sender.packetize(b"\xff" * FRAME, timestamp_advance=FRAME),
                      (SIP_PEER, port), now=0.0)
    assert len(m._latch._candidates) <= 8
    assert len(m._latch.rejected_sources) <= 8
