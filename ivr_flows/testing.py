"""The flow harness's test doubles, kept out of the serving path: the caller sides
(:class:`EventCaller` at the event level, :class:`MediaCaller` through the real media path) and
the scripted voice service (:class:`ScriptedVoice`).

:class:`MediaCaller`: a caller side that goes through the real media path, in-process, on the
virtual clock.

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

from dataclasses import dataclass

import numpy as np

from ivr_flows.prompts import SAMPLE_RATE
from telephony.events import (
    CallEvent,
    DtmfReceived,
    PromptFinished,
    PromptStarted,
    RemoteHangup,
    SpeechEnded,
    SpeechStarted,
)
from telephony.media import CallMedia, MediaConfig, MediaMixer
from telephony.rtp.packet import is_rtcp
from telephony.speech.errors import VoiceVerificationError
from telephony.speech.voice import ScriptedVerifier

KEY_MS = 100
"""How long a scripted key press lasts."""

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


# --- the event-level caller -------------------------------------------------------------


@dataclass
class _Playing:
    prompt_id: str
    duration: float
    barge_in: bool
    started_at: float | None = None


class EventCaller:
    """In-process caller at the event level (no RTP): presses and utterances become events.

    Prompt playout is timed from the rendered audio's length; barge-in by DTMF or speech
    stops a barge-in prompt as the media layer would; speech is only reported while the
    IVR listens (or a barge-in prompt plays), like the endpointer."""

    TRAILING_SILENCE = 0.6
    """Endpointer hang-over after the last voiced frame."""

    def __init__(self) -> None:
        self._queue: list[_Playing] = []
        self._events: list[tuple[float, CallEvent]] = []
        self.listening = False
        self._speech_until = -1.0

    def play(self, prompt_id: str, pcm: np.ndarray, *, barge_in: bool, now: float) -> None:
        self._queue.append(_Playing(prompt_id, len(pcm) / SAMPLE_RATE, barge_in))

    def stop_playback(self, *, now: float) -> None:
        if self._queue and self._queue[0].started_at is not None:
            self._events.append((now, PromptFinished(self._queue[0].prompt_id, True, now)))
        self._queue.clear()

    def set_listening(self, enabled: bool, *, now: float) -> None:
        self.listening = enabled

    def _barge(self, now: float) -> None:
        if self._queue and self._queue[0].barge_in and self._queue[0].started_at is not None:
            self.stop_playback(now=now)

    def press(self, digit: str, *, how: str, now: float) -> None:
        self._barge(now)
        self._events.append((now, DtmfReceived(digit, KEY_MS, how, at=now)))  # type: ignore[arg-type]

    def say(self, pcm: np.ndarray, *, now: float) -> float:
        end = now + len(pcm) / SAMPLE_RATE + self.TRAILING_SILENCE
        self._speech_until = now + len(pcm) / SAMPLE_RATE
        head = self._queue[0] if self._queue else None
        if self.listening or (head is not None and head.barge_in):
            self._barge(now)
            self._events.append((now + 0.1, SpeechStarted(at=now + 0.1)))
            self._events.append((end, SpeechEnded(at=end, duration_ms=int(len(pcm) / 8),
                                                  audio=np.asarray(pcm, "<i2").tobytes())))
        return end

    def hangup(self, *, now: float) -> None:
        self._events.append((now, RemoteHangup("bye")))

    def caller_speaking(self, *, now: float) -> bool:
        return now < self._speech_until

    def tick(self, *, now: float) -> list[CallEvent]:
        out: list[CallEvent] = []
        if self._queue:
            head = self._queue[0]
            if head.started_at is None:
                head.started_at = now
                out.append(PromptStarted(head.prompt_id, at=now))
            elif now >= head.started_at + head.duration:
                self._queue.pop(0)
                out.append(PromptFinished(head.prompt_id, False, at=now))
        due = [e for e in self._events if e[0] <= now + 1e-9]
        if due:
            self._events = [e for e in self._events if e[0] > now + 1e-9]
            out.extend(ev for _, ev in sorted(due, key=lambda x: x[0]))
        return out


# --- scripted services ------------------------------------------------------------------


_SCRIPTED_DECISION = {"verified": "accept", "error": "error"}
"""A script's ``voice: {outcome: ...}`` as a :class:`ScriptedVerifier` outcome (any other
outcome, "rejected" included, is a rejection reported under its own name)."""


class ScriptedVoice:
    """The harness's voice service: a :class:`ScriptedVerifier` (enrolment bookkeeping and the
    scripted decision) presented the way flows ask, with the rules scripts rely on: an
    unknown or unenrolled speaker is ``not_enrolled``, under 0.1 s of audio is an ``error``
    (and fails enrolment), a verified caller scores ``score``, a rejected one at most 0.2."""

    def __init__(self, enrolled: set[str] | None = None, outcome: str = "verified",
                 score: float = 0.9, enroll_ok: bool = True) -> None:
        self.outcome = outcome
        self.score = score
        self.enroll_ok = enroll_ok
        self.verifier = ScriptedVerifier(default=_SCRIPTED_DECISION.get(outcome, "reject"),
                                         enrolled=sorted(enrolled or ()))

    def verify(self, speaker: str, audio: bytes) -> tuple[str, float | None]:
        if not speaker or not self.verifier.is_enrolled(speaker):
            return "not_enrolled", None
        if len(audio) < 1600:
            return "error", None
        try:
            result = self.verifier.verify(speaker, audio)
        except VoiceVerificationError:
            return "error", None
        if result.accepted:
            return "verified", self.score
        return self.outcome, min(self.score, 0.2)

    def enroll(self, speaker: str, audio: bytes) -> str:
        if not speaker or len(audio) < 1600 or not self.enroll_ok:
            return "failed"
        return "enrolled" if self.verifier.enroll(speaker, audio).complete else "failed"
