"""RFC 4733 telephone-events: payload, receiver on real captures, sender."""

from __future__ import annotations

import glob
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.errors import RtpError
from telephony.events import DtmfReceived
from telephony.rtp.dtmf import (
    DtmfEventReceiver,
    DtmfEventSender,
    DtmfStarted,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
)
from telephony.rtp.packet import RtpPacket
from telephony.rtp.pcap import read_pcap_file
from telephony.rtp.stream import RtpSender

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rtp"
CAPTURES = sorted(glob.glob("/usr/share/sip-tester/dtmf_2833_*.pcap"))
NAMES = {"pound": "#", "star": "*"}


def _digit_of(path: str) -> str:
    name = Path(path).stem.rsplit("_", 1)[1]
    return NAMES.get(name, name)


def _drain(rx: DtmfEventReceiver) -> list[object]:
    out = []
    while (ev := rx.next_event()) is not None:
        out.append(ev)
    return out


def test_payload_parse_serialize() -> None:
    end = TelephoneEvent.parse((FIXTURES / "dtmf_2833_5_pkt7.bin").read_bytes()[12:])
    assert end == TelephoneEvent(event=5, end=True, volume=10, duration=2240)
    assert end.serialize() == (FIXTURES / "dtmf_2833_5_pkt7.bin").read_bytes()[12:]
    with pytest.raises(RtpError):
        TelephoneEvent.parse(b"\x01\x02")
    with pytest.raises(RtpError):
        TelephoneEvent(1, duration=70000).serialize()


def test_digit_codes() -> None:
    assert [digit_to_event(d) for d in "0159*#ABCDd"] == [0, 1, 5, 9, 10, 11, 12, 13, 14, 15, 15]
    assert event_to_digit(11) == "#" and event_to_digit(16) is None
    with pytest.raises(RtpError):
        digit_to_event("E")


@pytest.mark.skipif(not CAPTURES, reason="sip-tester captures not installed")
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: Path(p).stem)
def test_capture_decodes_to_its_digit_once(path: str) -> None:
    rx = DtmfEventReceiver()
    dgrams = read_pcap_file(path)
    for d in dgrams:
        rx.feed(RtpPacket.parse(d.payload), now=d.timestamp)
    events = _drain(rx)
    digit = _digit_of(path)
    assert events[0] == DtmfStarted(digit, "rfc4733", dgrams[0].timestamp)
    assert events[1] == DtmfReceived(digit, 280, "rfc4733", dgrams[0].timestamp)
    assert len(events) == 2 and rx.get_timer() is None


@pytest.mark.skipif(not CAPTURES, reason="sip-tester captures not installed")
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_captures_survive_loss_duplication_reordering(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(CAPTURES))
    packets = [RtpPacket.parse(d.payload) for d in read_pcap_file(path)]
    keep = data.draw(st.lists(st.booleans(), min_size=10, max_size=10))
    if not any(keep):
        keep[data.draw(st.integers(0, 9))] = True
    kept = [p for p, k in zip(packets, keep) if k]
    dups = data.draw(st.lists(st.sampled_from(kept), max_size=5))
    stream = data.draw(st.permutations(kept + dups))
    rx = DtmfEventReceiver()
    now = 0.0
    for p in stream:
        now += 0.02
        rx.feed(p, now=now)
        if (t := rx.get_timer()) is not None and t <= now:
            rx.handle_timer(now=now)
    rx.handle_timer(now=now + 1.0)
    events = _drain(rx)
    received = [e for e in events if isinstance(e, DtmfReceived)]
    started = [e for e in events if isinstance(e, DtmfStarted)]
    assert [e.digit for e in received] == [_digit_of(path)]
    assert len(started) == 1
    assert 0 <= received[0].duration_ms <= 280


def _run_sender(digit: str, duration_ms: int, **kw: object) -> tuple[list[bytes], RtpSender, int]:
    sender = RtpSender(0, rng=random.Random(5))
    ts0 = sender.timestamp
    tx = DtmfEventSender(sender, **kw)  # type: ignore[arg-type]
    tx.start(digit, duration_ms, now=10.0)
    out: list[bytes] = []
    while (t := tx.get_timer()) is not None:
        out.extend(tx.due(now=t))
    return out, sender, ts0


def test_sender_packet_sequence_rfc4733_2_5() -> None:
    out, sender, ts0 = _run_sender("7", 200)
    pkts = [RtpPacket.parse(b) for b in out]
    evs = [TelephoneEvent.parse(p.payload) for p in pkts]
    assert [p.marker for p in pkts] == [True] + [False] * (len(pkts) - 1)
    assert {p.timestamp for p in pkts} == {ts0}
    assert {p.payload_type for p in pkts} == {101}
    seqs = [p.sequence_number for p in pkts]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    assert [e.duration for e in evs] == [0, 400, 800, 1200, 1600, 1600, 1600]
    assert [e.end for e in evs] == [False] * 4 + [True] * 3
    assert {e.event for e in evs} == {7}
    assert sender.timestamp == (ts0 + 1600) & 0xFFFFFFFF  # the stream continues after it


def test_sender_to_receiver_and_timing() -> None:
    sender = RtpSender(0, rng=random.Random(6))
    tx = DtmfEventSender(sender, interval=0.05)
    rx = DtmfEventReceiver()
    tx.start("#", 120, now=1.0)
    assert tx.active and tx.get_timer() == 1.0
    assert len(tx.due(now=1.0)) == 1
    assert tx.get_timer() == pytest.approx(1.05)
    now = 1.0
    while (t := tx.get_timer()) is not None:
        now = t
        for b in tx.due(now=now):
            rx.feed(RtpPacket.parse(b), now=now)
    assert not tx.active
    assert _drain(rx) == [DtmfStarted("#", "rfc4733", 1.0), DtmfReceived("#", 120, "rfc4733", 1.0)]
    with pytest.raises(RtpError):
        tx.start("5", 100, now=now)
        tx.start("6", 100, now=now)


def test_long_event_is_segmented_and_reassembled() -> None:
    out, _, ts0 = _run_sender("1", 10_000, interval=0.5)  # 80000 samples > 0xFFFF
    pkts = [RtpPacket.parse(b) for b in out]
    evs = [TelephoneEvent.parse(p.payload) for p in pkts]
    assert max(e.duration for e in evs) == 0xFFFF
    assert {p.timestamp for p in pkts} == {ts0, (ts0 + 0xFFFF) & 0xFFFFFFFF}
    assert evs[-1].end and evs[-1].duration == 80000 - 0xFFFF
    rx = DtmfEventReceiver()
    for i, p in enumerate(pkts):
        rx.feed(p, now=i * 0.5)
    received = [e for e in _drain(rx) if isinstance(e, DtmfReceived)]
    assert received == [DtmfReceived("1", 10_000, "rfc4733", 0.0)]


def test_lost_end_packets_end_after_timeout_and_late_end_is_ignored() -> None:
    mk = lambda dur, end=False, ts=800: RtpPacket(
        payload_type=101, timestamp=ts, payload=TelephoneEvent(3, end, 10, dur).serialize()
    )
    rx = DtmfEventReceiver()
    rx.feed(mk(400), now=5.0)  # the start packet was lost: this is an update
    assert _drain(rx) == [DtmfStarted("3", "rfc4733", 4.95)]
    rx.feed(mk(800), now=5.05)
    assert rx.get_timer() == pytest.approx(5.30)
    rx.handle_timer(now=5.2)
    assert _drain(rx) == []
    rx.handle_timer(now=5.31)
    assert _drain(rx) == [DtmfReceived("3", 100, "rfc4733", 4.95)]
    rx.feed(mk(1200, end=True), now=5.4)  # late end packet of the same press
    assert _drain(rx) == []
    # A new press whose predecessor never ended ends that one first.
    rx.feed(mk(160, ts=5000), now=6.0)
    rx.feed(
        RtpPacket(
            payload_type=101, timestamp=9000, payload=TelephoneEvent(4, False, 10, 160).serialize()
        ),
        now=6.5,
    )
    evs = _drain(rx)
    assert [type(e).__name__ for e in evs] == ["DtmfStarted", "DtmfReceived", "DtmfStarted"]
    assert evs[1] == DtmfReceived("3", 20, "rfc4733", 6.0 - 0.02)
    # Flash (event 16) is ignored.
    rx.feed(
        RtpPacket(
            payload_type=101, timestamp=20000, payload=TelephoneEvent(16, True, 10, 800).serialize()
        ),
        now=7.0,
    )
    assert rx.in_progress == "4"
