"""RFC 3550 appendix A statistics, sender numbering and RTCP timing, on a fake clock."""

from __future__ import annotations

import random

import pytest

from telephony.rtp.packet import RtpPacket
from telephony.rtp.rtcp import RtcpBye, RtcpReceiverReport, RtcpSenderReport, parse_rtcp
from telephony.rtp.stream import RtcpConfig, RtcpScheduler, RtpReceiveStats, RtpSender


def _pkt(seq: int, ts: int = 0, ssrc: int = 0x1234, payload: bytes = bytes(160)) -> RtpPacket:
    return RtpPacket(
        payload_type=0,
        sequence_number=seq & 0xFFFF,
        timestamp=ts & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=payload,
    )


def test_probation_needs_two_sequential_packets() -> None:
    stats = RtpReceiveStats()
    assert stats.update(_pkt(100), now=0.0) is False
    assert stats.expected == 0
    assert stats.update(_pkt(101), now=0.02) is True
    assert (stats.base_seq, stats.received, stats.expected) == (101, 1, 1)
    # A non-sequential second packet restarts probation.
    s2 = RtpReceiveStats()
    s2.update(_pkt(5), now=0)
    assert s2.update(_pkt(9), now=0) is False
    assert s2.update(_pkt(10), now=0) is True and s2.base_seq == 10


def test_loss_and_fraction_lost_hand_computed() -> None:
    stats = RtpReceiveStats(probation=0)
    for seq in range(10):
        if seq not in (3, 7):
            stats.update(_pkt(seq, seq * 160), now=seq * 0.02)
    assert (stats.expected, stats.received, stats.lost) == (10, 8, 2)
    block = stats.report_block(now=1.0)
    assert block.fraction_lost == (2 << 8) // 10 == 51
    assert block.packets_lost == 2 and block.highest_sequence == 9 and block.ssrc == 0x1234
    for seq in range(10, 20):
        stats.update(_pkt(seq, seq * 160), now=seq * 0.02)
    block = stats.report_block(now=2.0)
    assert block.fraction_lost == 0 and block.packets_lost == 2


def test_sequence_wrap_around() -> None:
    stats = RtpReceiveStats(probation=0)
    seqs = list(range(65530, 65536)) + list(range(6))
    for i, seq in enumerate(seqs):
        assert stats.update(_pkt(seq, i * 160), now=i * 0.02)
    assert stats.cycles == 65536
    assert stats.extended_max_seq == 65536 + 5
    assert stats.expected == 12 and stats.lost == 0
    assert stats.report_block(now=1).highest_sequence == 0x1_0005


def test_reorder_duplicate_and_restart() -> None:
    stats = RtpReceiveStats(probation=0)
    for seq in (1, 2, 4, 3):
        stats.update(_pkt(seq), now=0)
    assert stats.received == 4 and stats.lost == 0
    assert stats.update(_pkt(3), now=0) is False
    assert stats.duplicates == 1 and stats.received == 4
    # A jump of more than MAX_DROPOUT is ignored once, then accepted as a restart.
    assert stats.update(_pkt(40000), now=0) is False
    assert stats.update(_pkt(40001), now=0) is True
    assert stats.base_seq == 40001 and stats.received == 1


def test_ssrc_change_restarts_statistics() -> None:
    stats = RtpReceiveStats(probation=0)
    for seq in range(5):
        stats.update(_pkt(seq), now=0)
    stats.update(_pkt(9000, ssrc=0x99), now=1)
    assert (stats.ssrc, stats.received, stats.base_seq, stats.source_changes) == (0x99, 1, 9000, 1)


def test_interarrival_jitter_hand_computed() -> None:
    stats = RtpReceiveStats(probation=0)
    # transit (timestamp units) = 0, 0, 40, 0 -> D = 0, 40, 40
    for seq, now in enumerate((0.0, 0.020, 0.045, 0.060)):
        stats.update(_pkt(seq, seq * 160), now=now)
    want = 0.0
    for d in (0, 40, 40):
        want += (d - want) / 16
    assert want == pytest.approx(4.84375)
    assert stats.jitter == pytest.approx(want)
    assert stats.jitter_ms == pytest.approx(want / 8)
    assert stats.report_block(now=1).jitter == 4


def test_jitter_survives_timestamp_wrap() -> None:
    stats = RtpReceiveStats(probation=0)
    base = 0xFFFFFFFF - 320
    for i in range(6):
        stats.update(_pkt(i, base + i * 160), now=i * 0.02)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_lsr_dlsr_from_sender_report() -> None:
    stats = RtpReceiveStats(probation=0)
    stats.update(_pkt(1), now=10.0)
    sr = RtcpSenderReport(0x1234, 0x0001_2345_6789_0000, 0, 1, 160)
    stats.on_sender_report(sr, now=10.0)
    block = stats.report_block(now=10.5)
    assert block.lsr == 0x2345_6789 and block.dlsr == 32768


def test_sender_numbering_wraps_and_marks() -> None:
    sender = RtpSender(0, rng=random.Random(1))
    again = RtpSender(0, rng=random.Random(1))
    assert (sender.ssrc, sender.sequence_number, sender.timestamp) == (
        again.ssrc,
        again.sequence_number,
        again.timestamp,
    )
    sender.sequence_number = 0xFFFF
    sender.timestamp = 0xFFFFFFFF - 100
    p1 = RtpPacket.parse(sender.packetize(b"\xff" * 160, timestamp_advance=160))
    p2 = RtpPacket.parse(sender.packetize(b"\xff" * 160, timestamp_advance=160))
    p3 = RtpPacket.parse(sender.packetize(b"", timestamp_advance=160, marker=True, payload_type=13))
    assert (p1.sequence_number, p2.sequence_number, p3.sequence_number) == (0xFFFF, 0, 1)
    assert p1.timestamp == 0xFFFFFFFF - 100 and p2.timestamp == 59
    assert (p1.marker, p2.marker, p3.marker) == (True, False, True)  # first packet, talkspurt
    assert p3.payload_type == 13 and p1.ssrc == sender.ssrc
    assert sender.packet_count == 3 and sender.octet_count == 320


def test_rtcp_scheduler_rr_then_sr_then_bye() -> None:
    sender = RtpSender(0, rng=random.Random(2))
    stats = RtpReceiveStats(probation=0)
    sched = RtcpScheduler(
        ssrc=sender.ssrc,
        cname="t@127.0.0.1",
        sender=sender,
        stats=stats,
        config=RtcpConfig(interval=5.0, wallclock_offset=1e9),
        rng=random.Random(3),
        now=100.0,
    )
    first = sched.get_timer()
    assert first is not None and 101.25 <= first <= 103.75
    assert sched.handle_timer(now=first - 0.001) is None
    stats.update(_pkt(1), now=100.5)
    rr, sdes = parse_rtcp(sched.handle_timer(now=first) or b"")
    assert isinstance(rr, RtcpReceiverReport) and rr.reports[0].ssrc == 0x1234
    assert sdes.chunks[0].cname == "t@127.0.0.1"
    second = sched.get_timer()
    assert second is not None and first + 2.5 <= second <= first + 7.5
    sender.packetize(bytes(160), timestamp_advance=160)
    sr, _ = parse_rtcp(sched.handle_timer(now=second) or b"")
    assert isinstance(sr, RtcpSenderReport)
    assert sr.packet_count == 1 and sr.octet_count == 160
    assert sr.ntp_timestamp >> 32 == int(second + 1e9) + 2_208_988_800
    packets = parse_rtcp(sched.bye(now=second + 1, reason="done"))
    assert isinstance(packets[-1], RtcpBye) and packets[-1].reason == b"done"
    assert sched.get_timer() is None and sched.handle_timer(now=1e9) is None


def test_rtcp_intervals_are_randomised() -> None:
    sched = RtcpScheduler(ssrc=1, cname="x", rng=random.Random(4), now=0.0)
    gaps = []
    t = sched.get_timer()
    for _ in range(50):
        assert t is not None and sched.handle_timer(now=t) is not None
        nxt = sched.get_timer()
        assert nxt is not None
        gaps.append(nxt - t)
        t = nxt
    assert min(gaps) >= 2.5 and max(gaps) <= 7.5 and max(gaps) - min(gaps) > 1.0
