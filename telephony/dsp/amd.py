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

Two parts: :class:`AmdFeatures` computes each frame's features (power, noise floor,
webrtcvad's voice flag, the beep detector) for any number of calls in one numpy pass, and
:class:`AmdDecider` is one call's word/silence/decision state machine fed those features.
:class:`AmdDetector` is both for one call; :class:`~telephony.dsp.amdbank.AmdBank` runs the
features of all calls together and steps each call's own decider.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import webrtcvad

from telephony.dsp.bank import check_grow, grow_channels
from telephony.dsp.dtmf import DBM0_REF_POWER
from telephony.dsp.tones import NFFT, BeepConfig, BeepDetector, frame_spectra
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


class AmdDecider:
    """The word, silence and decision state machine of one call (app_amd's state), fed one
    20 ms frame's features at a time: whether the frame is voice, and a beep's onset.

    The features come from :class:`AmdDetector` (one call) or
    :class:`~telephony.dsp.amdbank.AmdBank` (every call in one numpy pass per frame); both
    hand them to :meth:`step`, so a call's results do not depend on which one fed it.
    """

    def __init__(self, config: AmdConfig = AmdConfig()) -> None:
        self.config = config
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

    def step(self, voiced: bool, beep_ms: int | None, tone: bool = False
             ) -> AmdResult | None:
        """One frame's features: ``voiced`` (see :class:`AmdFeatures`), ``beep_ms``, the
        stream time of a beep's onset when the beep detector reported one at this frame,
        and ``tone``: a tone is in progress (a beep being timed, or DTMF).  Returns the decision once, then a ``beep`` or ``late_machine``
        result if one comes."""
        self._t += FRAME_MS
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
                return self._late(voiced, beep_ms)
            return None
        if beep_ms is not None:
            self.beep_ms = beep_ms
            return self._decide("machine", "BEEP", beep_ms)
        self._track(voiced)
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

    def _late(self, voiced: bool, beep_ms: int | None) -> AmdResult | None:
        """After a human decision: a beep, or a monologue, revises it to a machine."""
        assert self.decision is not None
        human = self.decision
        reason = ""
        if beep_ms is not None:
            self.beep_ms = beep_ms
            reason = "LATE-BEEP"
        else:
            words = self._words
            self._track(voiced)
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


def frame_power(frames: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """Mean square of each of ``(n, 160)`` int16 frames.

    Exact: float64 holds every product and every partial sum of 160 int16 squares as an
    integer, so the order of the sum does not matter and a call's power is the same
    whether its frame came alone or in a bank of any size."""
    x = frames.astype(np.float64)
    power: npt.NDArray[np.float64] = np.einsum("ij,ij->i", x, x) / FRAME
    return power


_FLOOR_RISE = 1.0116
"""The noise floor follows drops at once and rises by at most 0.05 dB a frame (1 dB/400 ms)."""


class AmdFeatures:
    """The per-frame features AMD decides on, for ``n_channels`` calls in one numpy pass:
    frame power, the noise floor, the voice flag (webrtcvad, asked only past the level,
    floor and tone gates: one C call per such frame) and the beep detector's output.

    :class:`AmdDetector` runs one channel; :class:`~telephony.dsp.amdbank.AmdBank` one per
    call.  A channel's features depend only on its own frames (the power is exact, each
    row's spectrum is computed alone), so they are the same in a bank of any size.
    """

    def __init__(self, n_channels: int, config: AmdConfig = AmdConfig()) -> None:
        self.n_channels = n_channels
        self.config = config
        self._beeps = BeepDetector(n_channels, config.beep)
        self._min_pow = DBM0_REF_POWER * 10 ** (config.min_level_dbm0 / 10)
        self._margin = 10 ** (config.noise_margin_db / 10)
        self._floor = np.full(n_channels, -1.0)
        """Per channel: the noise floor's power (< 0: no frame yet)."""
        self._vads = [webrtcvad.Vad(config.vad_aggressiveness) for _ in range(n_channels)]
        self.power = np.zeros(n_channels)
        self.tone = np.zeros(n_channels, dtype=bool)
        """Per channel: the power of its last frame."""
        self._pad = np.zeros((n_channels, NFFT), dtype=np.float32)
        """frame_spectra's zero-padded input, kept from frame to frame (a fresh one, 1 MB
        for 500 calls, would be page-faulted in on every frame)."""

    def reset_channel(self, channel: int) -> None:
        """Leave ``channel`` as a new call's (fresh floor, webrtcvad and beep state)."""
        self._floor[channel] = -1.0
        self._vads[channel] = webrtcvad.Vad(self.config.vad_aggressiveness)
        self._beeps.reset_channel(channel)
        self.power[channel] = 0.0

    def grow(self, n_channels: int) -> None:
        """Room for ``n_channels``; the channels added start as new calls', the others keep
        their state."""
        extra = check_grow(self.n_channels, n_channels)
        if not extra:
            return
        self._beeps.grow(n_channels)
        self._floor = grow_channels(self._floor, n_channels, -1.0)
        self.tone = grow_channels(self.tone, n_channels, False)
        self.power = grow_channels(self.power, n_channels, 0.0)
        self._pad = np.zeros((n_channels, NFFT), dtype=np.float32)
        self._vads.extend(webrtcvad.Vad(self.config.vad_aggressiveness) for _ in range(extra))
        self.n_channels = n_channels

    def process(self, frames: npt.NDArray[np.int16], fed: npt.NDArray[np.bool_] | None = None,
                tone_active: npt.NDArray[np.bool_] | None = None
                ) -> tuple[npt.NDArray[np.bool_], dict[int, int]]:
        """One ``(n, 160)`` int16 frame per channel: ``(voiced, beeps)``, the voice flag per
        channel and, for channels where a beep was reported at this frame, how long ago it
        began (ms before the frame's end).

        Only channels in ``fed`` (all if None) have a frame: the others keep their floor and
        webrtcvad state and are never voiced; the beep detector sees every row (keep the
        rows of channels not fed silent).  ``tone_active``: per channel, a tone heard by
        someone else (in-band DTMF) that makes the frame not voice."""
        x = np.asarray(frames, dtype=np.int16)
        if x.shape != (self.n_channels, FRAME):
            raise MediaError(f"expected ({self.n_channels}, 160) int16 frames, got {x.shape}")
        found = self._beeps.process(x, now=0.0, spectra=frame_spectra(x, self._pad))
        beeps = {b.channel: round(-b.onset * 1000) for b in found}
        power = frame_power(x)
        floor = np.minimum(power, np.where(self._floor < 0, power, self._floor) * _FLOOR_RISE)
        if fed is None:
            self._floor = floor
            self.power = power
            gate = ~self._beeps.tone
        else:
            np.copyto(self._floor, floor, where=fed)
            np.copyto(self.power, power, where=fed)
            gate = fed & ~self._beeps.tone
        if tone_active is not None:
            gate &= ~tone_active
        self.tone = self._beeps.tone if tone_active is None else self._beeps.tone | tone_active
        """Per channel: a tone in progress at this frame (the decider gives no human verdict
        while one lasts)."""
        gate &= (power >= self._min_pow) & (power >= self._floor * self._margin)
        voiced = np.zeros(self.n_channels, dtype=bool)
        ask = np.flatnonzero(gate).tolist()
        if ask:
            raw = x.tobytes()
            vads = self._vads
            step = 2 * FRAME
            voiced[[ch for ch in ask
                    if vads[ch].is_speech(raw[ch * step:(ch + 1) * step], SAMPLE_RATE)]] = True
        return voiced, beeps


class AmdDetector(AmdDecider):
    """Streaming AMD for one call: feed 20 ms frames of 8 kHz int16 from the answer on.

    The frame's :class:`AmdFeatures` for this one call, then the :class:`AmdDecider`
    state machine; many calls are cheaper together in an
    :class:`~telephony.dsp.amdbank.AmdBank`.
    """

    def __init__(self, config: AmdConfig = AmdConfig()) -> None:
        super().__init__(config)
        self._features = AmdFeatures(1, config)
        self._tone = np.zeros(1, dtype=bool)

    def process(self, frame: npt.NDArray[np.int16], *, now: float = 0.0,
                tone_active: bool = False) -> AmdResult | None:
        """Feed one frame; returns the decision once, then a ``beep`` result if one is heard.

        ``now`` is accepted for symmetry with the other detectors; times in results are
        stream milliseconds so they do not depend on the caller's clock.
        """
        x = np.asarray(frame, dtype=np.int16).ravel()
        if x.size != FRAME:
            raise MediaError(f"AmdDetector takes 160-sample frames, got {x.size}")
        self._tone[0] = tone_active
        # The features of every frame, also once the decider no longer asks for the voice
        # flag (after a machine verdict): as in a bank, which computes them for all calls.
        voiced, beeps = self._features.process(x.reshape(1, FRAME), tone_active=self._tone)
        ago = beeps.get(0)
        return self.step(bool(voiced[0]),
                         None if ago is None else self._t + FRAME_MS - ago,
                         bool(self._features.tone[0]))


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
