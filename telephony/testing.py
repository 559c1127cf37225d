"""Test doubles for the telephony library, kept out of the production pipeline.

:class:`SimulatedCaller` is the far end of a call in process; tests and the flow harness use it
to drive a :class:`~telephony.media.CallMedia` through the real media path on a virtual clock.
Nothing that serves calls imports this module.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from telephony.codecs.base import get_codec
from telephony.errors import RtpError
from telephony.events import CallEvent
from telephony.media import (
    FRAME,
    FRAME_MS,
    SAMPLE_RATE,
    SILENCE,
    Addr,
    CallMedia,
    MediaMixer,
    Pcm,
    dtmf_tone,
)
from telephony.rtp.dtmf import DtmfEventSender
from telephony.rtp.packet import RtpPacket, is_rtcp
from telephony.rtp.stream import RtpSender

__all__ = ["SimulatedCaller"]


class SimulatedCaller:
    """The far end of a call, in process: turns caller audio, RFC 4733 key presses, in-band
    tones and SIP INFO digits into what a real peer would send, and decodes what it hears.

    Used by the flow harness (``dialtone flow run``) and tests to drive a :class:`CallMedia`
    through the real media path on a virtual clock::

        caller = SimulatedCaller()
        media = CallMedia(MediaConfig(), now=0.0, remote=caller.addr)
        mixer = MediaMixer(); mixer.add(media)
        caller.say(pcm); caller.press("5")
        for step in range(n):
            now = step * 0.020
            events = caller.step(media, mixer, now=now)
    """

    def __init__(self, codec: str = "PCMU", *, telephone_event_pt: int = 101,
                 rng: random.Random | None = None, addr: Addr = ("127.0.0.1", 40000)) -> None:
        self.codec = get_codec(codec)
        self.addr = addr
        self.sender = RtpSender(self.codec.payload_type, rng=rng or random.Random(0))
        self._events = DtmfEventSender(self.sender, payload_type=telephone_event_pt)
        # the caller's timeline: 20 ms frames, and key presses (which take no time themselves)
        self._audio: deque[Pcm | tuple[str, int, str]] = deque()
        self.heard: list[Pcm] = []
        self.keep_heard = True
        self.connected = True

    def say(self, pcm: Pcm) -> None:
        """Queue caller audio (8 kHz int16), sent frame by frame after what is queued."""
        x = np.asarray(pcm, dtype=np.int16)
        for k in range(0, len(x), FRAME):
            chunk = x[k:k + FRAME]
            if len(chunk) < FRAME:
                chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
            self._audio.append(chunk)

    def silence(self, seconds: float) -> None:
        for _ in range(round(seconds * 1000 / FRAME_MS)):
            self._audio.append(SILENCE)

    def press(self, digit: str, duration_ms: int = 100, *, mode: str = "rfc4733",
              gap_ms: int = 80) -> None:
        """Queue a key press: ``rfc4733`` events, ``inband`` tones, or ``info`` (SIP INFO)."""
        if mode == "inband":
            self.say(np.concatenate([dtmf_tone(digit, duration_ms),
                                     np.zeros(SAMPLE_RATE * gap_ms // 1000, np.int16)]))
        else:
            self._audio.append((digit, duration_ms, mode))
            self._audio.extend([SILENCE] * max(1, (duration_ms + gap_ms) // FRAME_MS))

    @property
    def busy(self) -> bool:
        """Audio or digits still queued."""
        return bool(self._audio or self._events.active)

    def step(self, media: CallMedia, mixer: MediaMixer, *, now: float) -> list[CallEvent]:
        """One 20 ms tick: send what the caller says now, tick the mixer, hear the answer;
        returns the call events the media produced."""
        if self.connected:
            frame = SILENCE
            while self._audio:
                item = self._audio.popleft()
                if isinstance(item, tuple):
                    digit, duration, mode = item
                    if mode == "info":
                        media.receive_info_dtmf(digit, duration, now=now)
                    elif not self._events.active:
                        self._events.start(digit, duration, now=now)
                    continue
                frame = item
                break
            if self._events.active:
                # RFC 4733 2.5.1.1: events replace the audio while the key is down
                for pkt in self._events.due(now=now):
                    media.receive_rtp(pkt, self.addr, now=now)
            else:
                pkt = self.sender.packetize(self.codec.encode(frame), timestamp_advance=FRAME)
                media.receive_rtp(pkt, self.addr, now=now)
        for m, data, _addr in mixer.tick(now=now):
            if m is media and self.keep_heard and not is_rtcp(data):
                try:
                    p = RtpPacket.parse(data)
                except RtpError:
                    continue
                if p.payload_type == self.codec.payload_type:
                    self.heard.append(self.codec.decode(p.payload))
        out: list[CallEvent] = []
        while (ev := media.next_event()) is not None:
            out.append(ev)
        return out

    def heard_audio(self) -> Pcm:
        return np.concatenate(self.heard) if self.heard else np.zeros(0, np.int16)
