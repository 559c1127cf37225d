"""The faster flow-harness caller sees what the two-sided mixer saw (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_flows.testing import CALLER_ADDR, IVR_ADDR, MediaCaller
from telephony.dsp.wavio import read_wav_8k
from telephony.events import CallEvent
from telephony.media import MediaMixer
from telephony.rtp.packet import is_rtcp

SOUNDS = Path("/usr/share/asterisk/sounds/en")
pytestmark = pytest.mark.skipif(not SOUNDS.is_dir(), reason="Debian asterisk sounds missing")


class TwoSidedCaller(MediaCaller):
    """The harness caller as it was: both sides ticked by one mixer (the reference)."""

    def __init__(self) -> None:
        super().__init__()
        self.mixer = MediaMixer()
        self.mixer.add(self.ivr)
        self.mixer.add(self.caller)

    def tick(self, *, now: float) -> list[CallEvent]:
        for media, packet, _addr in self.mixer.tick(now=now):
            self.packets += not is_rtcp(packet)  # RTP only: the one-sided caller sends no RTCP
            if media is self.ivr:
                self.caller.receive_rtp(packet, IVR_ADDR, now=now)
            else:
                self.ivr.receive_rtp(packet, CALLER_ADDR, now=now)
        while self.caller.next_event() is not None:
            pass
        out: list[CallEvent] = []
        while (ev := self.ivr.next_event()) is not None:
            out.append(ev)
        return out


def script(side: MediaCaller) -> list[tuple[int, CallEvent]]:
    prompt = read_wav_8k(SOUNDS / "vm-intro.wav")
    said = read_wav_8k(SOUNDS / "hello-world.wav")
    got: list[tuple[int, CallEvent]] = []
    side.play("menu", prompt, barge_in=True, now=0.0)
    for k in range(1, 900):
        now = k * 0.02
        if k == 60:
            side.press("3", how="rfc4733", now=now)
        if k == 150:
            side.press("7", how="inband", now=now)
        if k == 220:
            side.set_listening(True, now=now)
            side.say(said, now=now)
        if k == 500:
            side.play("again", prompt, barge_in=True, now=now)
        if k == 560:
            side.say(said, now=now)  # barges in
        if k == 700:
            side.press("#", how="info", now=now)
        got += [(k, ev) for ev in side.tick(now=now)]
    return got


def test_one_sided_caller_gives_the_same_events() -> None:
    fast, ref = MediaCaller(), TwoSidedCaller()
    got = script(fast)
    assert got == script(ref)
    assert fast.packets == ref.packets
    kinds = {type(ev).__name__ for _, ev in got}
    assert {"DtmfReceived", "SpeechStarted", "SpeechEnded", "PromptFinished"} <= kinds
