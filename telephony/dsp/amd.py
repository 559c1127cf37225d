"""Answering-machine detection (AMD) for outbound calls, streaming and sans-IO.

The timing logic starts from Asterisk's ``app_amd`` (initial silence, greeting length,
silence after the greeting, word count, total analysis time), but a frame counts as
voice only when webrtcvad says speech *and* it stands above an adaptive noise floor
*and* it is not a clean single tone: app_amd's fixed energy threshold (256) turns line
noise into words and a short live "Hello?" into a "long greeting".  A beep heard
before the decision means a machine; after a machine decision the detector keeps
listening for the beep so a message can be left after it.

A "human" decision is not final either (issue 17): a greeting that opens with a short
word and a pause ("Hello. ... You've reached ...") looks like a person until the rest
of it comes.  For ``listen_after_human_ms`` after a human decision the detector keeps
listening and reports a *late machine* (``kind == "late_machine"``) when a beep or a
continuing monologue (``late_monologue_ms`` of speech without a pause a person would
leave for an answer) follows; the dialer can then act on the live call.

Every parameter is in :class:`AmdConfig`, one per campaign.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import webrtcvad

from telephony.dsp.dtmf import DBM0_REF_POWER
from telephony.dsp.tones import BeepConfig, BeepDetector
from telephony.errors import MediaError

SAMPLE_RATE = 8000
FRAME = 160
FRAME_MS = 20

AmdVerdict = Literal["human", "machine", "unknown"]


@dataclass(frozen=True, slots=True)
class AmdConfig:
    """AMD parameters in milliseconds (app_amd's names; defaults tuned on the labelled set)."""

    initial_silence_ms: int = 2500
    """No speech for this long after answer: ``initial_silence_verdict``."""
    greeting_ms: int = 2000
    """Speech (from the first word, pauses included) longer than this: machine (app_amd: 1500)."""
    after_greeting_silence_ms: int = 600
    """Silence after some speech that means a person waiting for an answer (app_amd: 800).
    600 ms (700 before issue 17): a greeting that pauses this long after its first words
    is now caught by the late-machine watch, so the live answer's decision can come
    sooner."""
    short_greeting_ms: int = 1000
    """A first utterance at most this long (first word to last, pauses included), of at
    most ``short_greeting_words`` words, is what a person says on answering ("Hello?",
    "Yes?"): it needs only ``short_greeting_silence_ms`` of silence after it (0: off)."""
    short_greeting_words: int = 2
    short_greeting_silence_ms: int = 400
    """The silence after a short first utterance that means a person waiting for an answer.
    A machine whose greeting opens with a short word and a pause ("Hello. ... You've
    reached ...") is called human by it, then revised by the late-machine watch
    (``listen_after_human_ms``, ``late_monologue_ms``) when the rest of its greeting comes."""
    total_analysis_ms: int = 5000
    """No decision by then: unknown."""
    min_word_ms: int = 100
    between_words_ms: int = 100
    """Silence that separates words (app_amd: 50)."""
    max_words: int = 4
    """This many words before a pause: machine (app_amd: 2 or 3)."""
    initial_silence_verdict: AmdVerdict = "machine"
    vad_aggressiveness: int = 3
    min_level_dbm0: float = -45.0
    """Frames quieter than this are silence."""
    noise_margin_db: float = 8.0
    """Voice must stand this far above the tracked noise floor."""
    beep_watch_ms: int = 30000
    """After a machine decision, look for the beep this long."""
    listen_after_human_ms: int = 10000
    """After a human decision, keep listening this long for a late machine (0: never).
    A campaign sets it to what its callers allow (the agent may already be talking)."""
    late_monologue_ms: int = 2500
    """After a human decision: speech this long (from its first word, with no pause of
    ``after_greeting_silence_ms``) means a machine's greeting going on."""
    beep: BeepConfig = field(default_factory=BeepConfig)


@dataclass(frozen=True, slots=True)
class AmdResult:
    """A verdict (``kind == "decision"``), a human verdict revised (``kind ==
    "late_machine"``) or, later, a machine's beep (``kind == "beep"``)."""

    result: AmdVerdict
    reason: str
    """``HUMAN``, ``LONGGREETING``, ``MAXWORDS``, ``INITIALSILENCE``, ``BEEP``, ``TOOLONG``;
    a late machine's is ``LATE-BEEP`` or ``LATE-LONGGREETING``."""
    decision_ms: int
    """Stream time of the verdict in ``result``, from the first frame fed."""
    beep_ms: int | None = None
    """Stream time of the beep's onset, when one was heard."""
    kind: Literal["decision", "beep", "late_machine"] = "decision"
    words: int = 0
    first_result: AmdVerdict | None = None
    """When the verdict was revised (a late machine): the first verdict (``human``)."""
    first_decision_ms: int | None = None
    """When the verdict was revised: the stream time of the first verdict."""


class AmdDetector:
    """Streaming AMD for one call: feed 20 ms frames of 8 kHz int16 from the answer on."""

    def __init__(self, config: AmdConfig = AmdConfig()) -> None:
        self.config = config
        self._vad = webrtcvad.Vad(config.vad_aggressiveness)
        self._beeps = BeepDetector(1, config.beep)
        self._min_pow = DBM0_REF_POWER * 10 ** (config.min_level_dbm0 / 10)
        self._margin = 10 ** (config.noise_margin_db / 10)
        self._floor = -1.0
        self._t = 0
        self._words = 0
        self._in_word = False
        self._voice_run = 0
        self._silence_run = 0
        self._greeting_start = -1
        self._last_voice_end = 0
        self._late_start = -1
        self.decision: AmdResult | None = None
        """The current verdict (a late machine replaces the human one)."""
        self.first_decision: AmdResult | None = None
        """The first verdict, as returned when it was reached."""
        self.beep_ms: int | None = None

    @property
    def elapsed_ms(self) -> int:
        """Stream time fed so far."""
        return self._t

    def is_voice(self, frame: npt.NDArray[np.int16], *, tone: bool = False) -> bool:
        """Whether one frame counts as voice (and update the noise floor)."""
        x = frame.astype(np.float32)
        power = float(np.dot(x, x)) / FRAME
        if self._floor < 0:
            self._floor = power
        # The floor follows drops at once and rises by at most 0.05 dB a frame (1 dB/400 ms).
        self._floor = min(power, self._floor * 1.0116)
        if tone or power < self._min_pow or power < self._floor * self._margin:
            return False
        return bool(self._vad.is_speech(frame.tobytes(), SAMPLE_RATE))

    def process(self, frame: npt.NDArray[np.int16], *, now: float = 0.0,
                tone_active: bool = False) -> AmdResult | None:
        """Feed one frame; returns the decision once, then a ``beep`` result if one is heard.

        ``now`` is accepted for symmetry with the other detectors; times in results are
        stream milliseconds so they do not depend on the caller's clock.
        """
        x = np.asarray(frame, dtype=np.int16).ravel()
        if x.size != FRAME:
            raise MediaError(f"AmdDetector takes 160-sample frames, got {x.size}")
        self._t += FRAME_MS
        beeps = self._beeps.process(x.reshape(1, FRAME), now=self._t / 1000)
        beep_ms = round(beeps[0].onset * 1000) if beeps else None
        c = self.config
        if self.decision is not None:
            if (beep_ms is not None and self.beep_ms is None and self.decision.result == "machine"
                    and self._t - self.decision.decision_ms <= c.beep_watch_ms):
                self.beep_ms = beep_ms
                return AmdResult("machine", "BEEP", self.decision.decision_ms, beep_ms, "beep",
                                 self._words, self.decision.first_result,
                                 self.decision.first_decision_ms)
            if (self.decision.result == "human"
                    and self._t - self.decision.decision_ms <= c.listen_after_human_ms):
                return self._late(x, beep_ms, tone_active)
            return None
        if beep_ms is not None:
            self.beep_ms = beep_ms
            return self._decide("machine", "BEEP", beep_ms)
        tone = tone_active or bool(self._beeps.tone[0])
        self._track(self.is_voice(x, tone=tone))
        if self._words == 0 and self._t >= c.initial_silence_ms:
            return self._decide(c.initial_silence_verdict, "INITIALSILENCE")
        if self._words >= c.max_words:
            return self._decide("machine", f"MAXWORDS-{self._words}")
        if self._words and self._last_voice_end - self._greeting_start >= c.greeting_ms:
            return self._decide("machine", "LONGGREETING")
        # A tone in progress is not a person waiting for an answer (a beep is being timed).
        if self._words and not tone and self._silence_run >= self._silence_needed():
            return self._decide("human", f"HUMAN-{self._words}-{self._silence_run}")
        if self._t >= c.total_analysis_ms:
            return self._decide("unknown", "TOOLONG")
        return None

    def _silence_needed(self) -> int:
        """The silence after speech that makes a human verdict: shorter after one short
        utterance (a person's "Hello?") than after a longer opening."""
        c = self.config
        if (c.short_greeting_ms and self._words <= c.short_greeting_words
                and self._last_voice_end - self._greeting_start <= c.short_greeting_ms):
            return min(c.short_greeting_silence_ms, c.after_greeting_silence_ms)
        return c.after_greeting_silence_ms

    def _late(self, x: npt.NDArray[np.int16], beep_ms: int | None, tone_active: bool
              ) -> AmdResult | None:
        """After a human decision: a beep, or a monologue, revises it to a machine."""
        assert self.decision is not None
        human = self.decision
        reason = ""
        if beep_ms is not None:
            self.beep_ms = beep_ms
            reason = "LATE-BEEP"
        else:
            words = self._words
            self._track(self.is_voice(x, tone=tone_active or bool(self._beeps.tone[0])))
            if self._words > words and self._late_start < 0:
                self._late_start = self._t - self._voice_run
            if self._silence_run >= self.config.after_greeting_silence_ms:
                self._late_start = -1  # a pause a person leaves for an answer
            elif (self._late_start >= 0 and self._last_voice_end - self._late_start
                  >= self.config.late_monologue_ms):
                reason = "LATE-LONGGREETING"
        if not reason:
            return None
        self.decision = AmdResult("machine", reason, self._t, self.beep_ms, "late_machine",
                                  self._words, human.result, human.decision_ms)
        return self.decision

    def _track(self, voiced: bool) -> None:
        """Word and silence bookkeeping for one frame (app_amd's state)."""
        c = self.config
        if voiced:
            self._voice_run += FRAME_MS
            if self._voice_run >= c.min_word_ms:
                if not self._in_word:
                    self._in_word = True
                    self._words += 1
                    if self._greeting_start < 0:
                        self._greeting_start = self._t - self._voice_run
                self._silence_run = 0
                self._last_voice_end = self._t
        else:
            self._silence_run += FRAME_MS
            if self._silence_run >= c.between_words_ms:
                self._in_word = False
                self._voice_run = 0

    def _decide(self, verdict: AmdVerdict, reason: str, beep_ms: int | None = None) -> AmdResult:
        self.decision = AmdResult(verdict, reason, self._t, beep_ms, "decision", self._words)
        self.first_decision = self.decision
        return self.decision


def classify_recording(pcm: npt.NDArray[np.int16], config: AmdConfig = AmdConfig()
                       ) -> AmdResult:
    """Run AMD over a whole recording as if it streamed; the final verdict (a late machine
    replaces a human decision, with ``first_result`` / ``first_decision_ms`` set), with
    the beep if heard."""
    det = AmdDetector(config)
    x = np.asarray(pcm, dtype=np.int16)
    n = len(x) // FRAME
    decision: AmdResult | None = None
    for i in range(n):
        out = det.process(x[i * FRAME:(i + 1) * FRAME], now=(i + 1) * FRAME_MS / 1000)
        if out is not None and out.kind in ("decision", "late_machine"):
            decision = out
        if decision is None:
            continue
        if decision.result == "machine" and det.beep_ms is not None:
            break
        if decision.result == "unknown" or (
                decision.result == "human"
                and det.elapsed_ms - decision.decision_ms >= det.config.listen_after_human_ms):
            break
    if decision is None:
        decision = AmdResult("unknown", "TOOLONG" if n else "EMPTY", det.elapsed_ms)
    if det.beep_ms is not None and decision.beep_ms is None:
        decision = dataclasses.replace(decision, beep_ms=det.beep_ms)
    return dataclasses.replace(decision, kind="decision")
