"""A caller side that goes through the real media path, in-process, on the virtual clock.

Two :class:`telephony.media.CallMedia` instances, the IVR's and the caller's, ticked
together by one :class:`telephony.media.MediaMixer`; every 20 ms the RTP packets each
produces are handed to the other (no sockets).  So a script's key press travels as
RFC 4733 events (or in-band tones found by the DTMF detector) and its utterances as
G.711 through the jitter buffer and the endpointer (VAD), exactly as on a real call.
"""

from __future__ import annotations

import numpy as np

from ivr_flows.prompts import SAMPLE_RATE
from telephony.events import CallEvent, RemoteHangup
from telephony.media import CallMedia, MediaConfig, MediaMixer

IVR_ADDR = ("127.0.0.1", 40000)
CALLER_ADDR = ("127.0.0.1", 40002)
"""Labels only: packets are passed in memory, nothing is bound or sent."""


class MediaCaller:
    """:class:`ivr_flows.harness.CallerSide` over G.711 RTP through CallMedia."""

    ENDPOINT_HANGOVER = 1.2
    """Upper bound of the endpointer's trailing silence plus jitter-buffer delay."""

    def __init__(self, config: MediaConfig | None = None) -> None:
        cfg = config or MediaConfig()
        self.ivr = CallMedia(cfg, now=0.0, remote=CALLER_ADDR)
        self.caller = CallMedia(cfg, now=0.0, remote=IVR_ADDR)
        self.mixer = MediaMixer()
        self.mixer.add(self.ivr)
        self.mixer.add(self.caller)
        self._extra: list[CallEvent] = []
        self.packets = 0

    # IVR side ------------------------------------------------------------------------------
    def play(self, prompt_id: str, pcm: np.ndarray, *, barge_in: bool, now: float) -> None:
        self.ivr.play(prompt_id, pcm, barge_in=barge_in, now=now)

    def stop_playback(self, *, now: float) -> None:
        self.ivr.stop_playback(now=now)

    def set_listening(self, enabled: bool, *, now: float) -> None:
        self.ivr.set_listening(enabled, now=now)

    # caller side ---------------------------------------------------------------------------
    def press(self, digit: str, *, how: str, now: float) -> None:
        if how == "info":
            self.ivr.receive_info_dtmf(digit, 100, now=now)
        else:
            self.caller.send_dtmf(digit, 100, inband=(how == "inband"), now=now)

    def say(self, pcm: np.ndarray, *, now: float) -> float:
        self.caller.play("caller-utterance", pcm, barge_in=False, now=now)
        return now + len(pcm) / SAMPLE_RATE + self.ENDPOINT_HANGOVER

    def hangup(self, *, now: float) -> None:
        self._extra.append(RemoteHangup("bye"))

    def caller_speaking(self, *, now: float) -> bool:
        return self.caller.is_playing

    def tick(self, *, now: float) -> list[CallEvent]:
        for media, packet, _addr in self.mixer.tick(now=now):
            self.packets += 1
            if media is self.ivr:
                self.caller.receive_rtp(packet, IVR_ADDR, now=now)
            else:
                self.ivr.receive_rtp(packet, CALLER_ADDR, now=now)
        while self.caller.next_event() is not None:
            pass  # the caller's own prompt events (its utterances) are not the IVR's
        out: list[CallEvent] = []
        while (ev := self.ivr.next_event()) is not None:
            out.append(ev)
        out.extend(self._extra)
        self._extra.clear()
        return out
