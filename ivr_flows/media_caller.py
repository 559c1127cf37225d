"""A caller side that goes through the real media path, in-process, on the virtual clock.

Two :class:`telephony.media.CallMedia` instances, the IVR's and the caller's; every 20 ms
the RTP packets each produces are handed to the other (no sockets).  So a script's key
press travels as RFC 4733 events (or in-band tones found by the DTMF detector) and its
utterances as G.711 through the jitter buffer and the endpointer (VAD), exactly as on a
real call.

Only the IVR's side is ticked by a :class:`telephony.media.MediaMixer` (jitter buffer,
decode, DTMF detection, VAD).  The caller's side only sends: it plays its utterances and
key presses through the same ``tx_frame``/``packets`` steps the mixer would run, but
nothing the IVR plays back is decoded or analysed, as nothing on that side is checked.
"""

from __future__ import annotations

import numpy as np

from ivr_flows.prompts import SAMPLE_RATE
from telephony.events import CallEvent, RemoteHangup
from telephony.media import CallMedia, MediaConfig, MediaMixer
from telephony.rtp.packet import is_rtcp

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
        caller = self.caller
        # What the caller sends this tick (the mixer's step 3 for the caller's side alone):
        # its packets reach the IVR after the IVR's tick, as if both were in one mixer.
        frame = caller.tx_frame(now=now)
        sent = caller.packets(caller.codec.encode(frame), now=now)
        sent_by_ivr = self.mixer.tick(now=now)
        self.packets += sum(not is_rtcp(p) for _m, p, _a in sent_by_ivr) + len(sent)
        for packet in sent:
            self.ivr.receive_rtp(packet, CALLER_ADDR, now=now)
        while caller.next_event() is not None:
            pass  # the caller's own prompt events (its utterances) are not the IVR's
        out: list[CallEvent] = []
        while (ev := self.ivr.next_event()) is not None:
            out.append(ev)
        out.extend(self._extra)
        self._extra.clear()
        return out
