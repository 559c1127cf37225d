"""The per-call media pipeline (telephony.media) on a virtual clock: RTP in, events out."""

from __future__ import annotations

import random

import numpy as np
import pytest

from telephony.codecs.base import get_codec
from telephony.events import DtmfReceived, MediaTimeout, PromptFinished, PromptStarted
from telephony.media import FRAME, CallMedia, MediaConfig, MediaMixer, dtmf_tone
from telephony.rtp.dtmf import DtmfEventSender
from telephony.rtp.packet import RtpPacket
from telephony.rtp.stream import RtpSender

PEER = ("127.0.0.1", 40000)


class Peer:
    """The far end: sends G.711 frames and RFC 4733 events into one CallMedia every 20 ms."""

    def __init__(self, media: CallMedia, mixer: MediaMixer, codec: str = "PCMU") -> None:
        self.media = media
        self.mixer = mixer
        self.codec = get_codec(codec)
        self.sender = RtpSender(self.codec.payload_type, rng=random.Random(7))
        self.events = DtmfEventSender(self.sender, payload_type=101)
        self.now = 0.0
        self.heard: list[np.ndarray] = []
        self.got: list[object] = []

    def step(self, pcm: np.ndarray | None = None, *, send: bool = True) -> None:
        self.now += 0.020
        if send:
            if self.events.active:
                for pkt in self.events.due(now=self.now):
                    self.media.receive_rtp(pkt, PEER, now=self.now)
            else:
                frame = pcm if pcm is not None else np.zeros(FRAME, np.int16)
                pkt = self.sender.packetize(self.codec.encode(frame), timestamp_advance=FRAME)
                self.media.receive_rtp(pkt, PEER, now=self.now)
        for m, data, addr in self.mixer.tick(now=self.now):
            if 192 <= data[1] <= 223:  # RTCP, to the peer's RTCP port
                assert addr == (PEER[0], PEER[1] + 1)
                continue
            assert addr == PEER
            p = RtpPacket.parse(data)
            if p.payload_type == self.codec.payload_type:
                self.heard.append(self.codec.decode(p.payload))
        while (ev := self.media.next_event()) is not None:
            self.got.append(ev)

    def audio(self, pcm: np.ndarray) -> None:
        for k in range(0, len(pcm) - FRAME + 1, FRAME):
            self.step(pcm[k:k + FRAME])

    def silence(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.020)):
            self.step()

    def press(self, digit: str, ms: int = 100) -> None:
        self.events.start(digit, ms, now=self.now)


def make(config: MediaConfig | None = None) -> tuple[CallMedia, Peer]:
    mixer = MediaMixer()
    media = CallMedia(config or MediaConfig(), now=0.0, rng=random.Random(1), remote=PEER)
    mixer.add(media)
    return media, Peer(media, mixer)


def digits(events: list[object]) -> list[tuple[str, str]]:
    return [(e.digit, e.source) for e in events if isinstance(e, DtmfReceived)]


def test_prompt_is_heard_in_full_and_reported() -> None:
    media, peer = make()
    tone = (3000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
    media.play("welcome", tone, barge_in=False, now=0.0)
    peer.silence(1.2)
    heard = np.concatenate(peer.heard).astype(float)
    xc = np.correlate(heard, tone.astype(float), mode="valid")
    start = int(np.argmax(xc))
    got = heard[start:start + 8000]
    # what the caller hears is the prompt through G.711 (correlation ~1, not just "some sound")
    corr = np.corrcoef(got, tone.astype(float))[0, 1]
    assert corr > 0.99
    kinds = [type(e) for e in peer.got if isinstance(e, PromptStarted | PromptFinished)]
    assert kinds == [PromptStarted, PromptFinished]
    assert not next(e for e in peer.got if isinstance(e, PromptFinished)).interrupted


def test_rfc4733_digit_barges_in_and_is_reported_once() -> None:
    media, peer = make()
    media.play("menu", np.full(8000 * 5, 1000, np.int16), barge_in=True, now=0.0)
    peer.silence(0.5)
    peer.press("7", 120)
    peer.silence(0.6)
    assert digits(peer.got) == [("7", "rfc4733")]
    finished = [e for e in peer.got if isinstance(e, PromptFinished)]
    assert len(finished) == 1 and finished[0].interrupted
    assert not media.is_playing


def test_no_barge_in_prompt_keeps_playing() -> None:
    media, peer = make()
    media.play("legal", np.full(8000 * 2, 1000, np.int16), barge_in=False, now=0.0)
    peer.silence(0.3)
    peer.press("1")
    peer.silence(0.4)
    assert digits(peer.got) == [("1", "rfc4733")]
    assert media.is_playing


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_inband_digits_through_g711(codec: str) -> None:
    pt = 0 if codec == "PCMU" else 8
    _media, peer = make(MediaConfig(codec=codec, payload_type=pt))
    peer.codec = get_codec(codec)
    peer.sender.payload_type = pt
    gap = np.zeros(FRAME * 4, np.int16)
    for d in "159#":
        peer.audio(np.concatenate([dtmf_tone(d, 80), gap]))
    peer.silence(0.4)
    assert digits(peer.got) == [(d, "inband") for d in "159#"]


def test_same_press_by_rfc4733_and_info_is_one_digit() -> None:
    media, peer = make()
    peer.press("3", 100)
    peer.silence(0.05)
    media.receive_info_dtmf("3", 100, now=peer.now - 0.06)
    peer.silence(0.4)
    # whichever path reports the press first wins; the other is the same press
    assert [d for d, _ in digits(peer.got)] == ["3"]


def test_packets_from_another_source_are_ignored_after_latching() -> None:
    media, peer = make(MediaConfig(latch_seconds=0.2))
    peer.silence(0.5)
    rogue = RtpSender(0, rng=random.Random(3)).packetize(b"\xff" * 160, timestamp_advance=160)
    media.receive_rtp(rogue, ("127.0.0.1", 50000), now=peer.now)
    assert media.counters["rx_wrong_source"] == 1
    assert media.remote == PEER


def test_truncated_and_garbage_packets_are_counted_and_dropped() -> None:
    media, peer = make()
    for junk in (b"", b"\x80", b"\x00" * 12, b"\x80\x00\x00"):
        media.receive_rtp(junk, PEER, now=0.0)
    assert media.counters["rx_bad"] == 4
    peer.silence(0.1)  # and the pipeline carries on


def test_media_timeout_fires_once() -> None:
    _media, peer = make(MediaConfig(media_timeout=0.5))
    peer.silence(0.2)
    for _ in range(60):
        peer.step(send=False)
    timeouts = [e for e in peer.got if isinstance(e, MediaTimeout)]
    assert len(timeouts) == 1


def test_recording_captures_both_directions() -> None:
    media, peer = make()
    rec = media.start_recording(now=0.0)
    media.play("p", np.full(1600, 2000, np.int16), barge_in=False, now=0.0)
    peer.audio(np.full(FRAME * 20, 1500, np.int16))
    media.stop_recording(rec, now=peer.now)
    assert rec.duration_s == pytest.approx(0.4, abs=0.021)
    tx = np.concatenate(rec.tx)
    assert (np.abs(tx) > 1500).sum() >= 1500  # the prompt we played
    rx = rec.caller_audio()
    assert (np.abs(rx) > 1000).sum() > 1600  # the caller's audio (after the jitter buffer)


def test_mixer_reuses_detector_slots() -> None:
    mixer = MediaMixer()
    calls = [CallMedia(MediaConfig(), now=0.0, remote=PEER) for _ in range(70)]
    for c in calls:
        mixer.add(c)
    assert len({c.slot for c in calls}) == 70
    freed = {c.slot for c in calls[:10]}
    for c in calls[:10]:
        mixer.remove(c)
        assert c.slot is None
    fresh = CallMedia(MediaConfig(), now=0.0, remote=PEER)
    mixer.add(fresh)
    assert fresh.slot in freed
    assert len(mixer.tick(now=0.02)) == 61


def test_simulated_caller_keeps_the_order_of_presses_across_methods() -> None:
    from telephony.testing import SimulatedCaller

    caller = SimulatedCaller()
    mixer = MediaMixer()
    media = CallMedia(MediaConfig(), now=0.0, remote=caller.addr)
    mixer.add(media)
    caller.silence(0.2)
    for digit, mode in (("4", "rfc4733"), ("2", "inband"), ("#", "info"), ("7", "rfc4733")):
        caller.press(digit, mode=mode)
    got = []
    t = 0.0
    while caller.busy or t < 1.5:
        t += 0.020
        got += [e for e in caller.step(media, mixer, now=t) if isinstance(e, DtmfReceived)]
    assert [(e.digit, e.source) for e in got] == [
        ("4", "rfc4733"), ("2", "inband"), ("#", "info"), ("7", "rfc4733")]
    assert got[0].at == pytest.approx(0.22, abs=0.03)


def test_rtcp_sender_report_and_bye_are_received() -> None:
    from telephony.rtp.stream import RtcpScheduler

    media, peer = make()
    peer.silence(0.4)  # audio from the peer's SSRC
    theirs = RtcpScheduler(ssrc=peer.sender.ssrc, cname="peer", sender=peer.sender, now=0.0)
    media.receive_rtcp(theirs.build_report(now=peer.now, wallclock=1_800_000_000.0), PEER,
                       now=peer.now)
    assert media.rx_stats.report_block(now=peer.now + 1.0).lsr != 0
    media.receive_rtcp(theirs.bye(now=peer.now, reason="bye"), PEER, now=peer.now)
    media.receive_rtcp(b"\x81\xcb\x00", PEER, now=peer.now)  # truncated: counted, dropped
    assert media.counters["rx_rtcp"] == 2
    assert media.counters["rx_rtcp_bye"] == 1
    assert media.counters["rx_bad"] == 1


def test_rtcp_reports_are_due_to_the_peers_rtcp_port() -> None:
    media, peer = make()
    sent = []
    for _ in range(250):  # 5 s
        peer.now += 0.020
        sent += [(d, a) for _m, d, a in peer.mixer.tick(now=peer.now) if 192 <= d[1] <= 223]
    assert sent and all(a == (PEER[0], PEER[1] + 1) for _d, a in sent)
    assert media.rtcp_bye(now=peer.now) is not None
    assert media.rtcp_bye(now=peer.now) is None  # once
