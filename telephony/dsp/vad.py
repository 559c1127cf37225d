"""Voice activity detection and endpointing (sans-IO): webrtcvad behind tone gates.

``webrtcvad`` (installed from the ``webrtcvad-wheels`` distribution) decides per 20 ms
frame whether it sounds like speech.  It also says yes to DTMF, beeps, call-progress
tones and hold music, so a frame only counts as speech when:

* webrtcvad says speech and the frame is above ``min_level_dbm0``;
* the caller's DTMF detector has no tone on the channel (``tone_active``);
* the frame is not a clean single tone (:class:`~telephony.dsp.tones.BeepDetector`'s
  per-frame test);
* the last second is not music: sound without the dips between syllables that speech
  has, or a spectrum that holds still (:class:`~telephony.dsp.tones.TonalityDetector`).

An utterance is confirmed ``confirm_ms`` after it starts (``SpeechStarted.at`` carries
the true start), once the spectrum has had time to show it is not a steady tone.

:class:`EndpointerBank` does the spectral work for every call in one numpy pass per
frame; only webrtcvad and the small state machine run per call.  :class:`Endpointer`
is the one-call form.  The no-speech timeout is the caller's (it knows when the prompt
ended).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import webrtcvad

from telephony.dsp.dtmf import DBM0_REF_POWER
from telephony.dsp.tones import BeepDetector, TonalityDetector, frame_spectra
from telephony.errors import MediaError
from telephony.events import CallEvent, SpeechEnded, SpeechStarted

SAMPLE_RATE = 8000
FRAME = 160


@dataclass(frozen=True, slots=True)
class EndpointerConfig:
    """Endpointing parameters (milliseconds unless named otherwise)."""

    aggressiveness: int = 2
    """webrtcvad mode, 0 (least) to 3 (most aggressive in calling frames non-speech)."""
    start_ms: int = 120
    """Speech needed within ``start_window_ms`` to start an utterance."""
    start_window_ms: int = 300
    end_silence_ms: int = 700
    """Silence that ends an utterance."""
    hangover_ms: int = 200
    """Audio kept after the last speech frame."""
    pre_roll_ms: int = 200
    """Audio kept before the first speech frame."""
    max_utterance_ms: int = 15000
    """An utterance is cut (ended) at this length."""
    min_level_dbm0: float = -45.0
    """Frames quieter than this are silence whatever webrtcvad says."""
    max_stability: float = 0.95
    """A start whose spectrum is this stable at confirmation is a tone, not speech."""
    confirm_ms: int = 300
    """``SpeechStarted`` is sent this long after the start (with the true start time in
    ``at``), once the spectrum has shown it is not a tone; 0 to send at once."""
    music_window_ms: int = 1000
    dip_db: float = 15.0
    max_dip_fraction: float = 0.05
    """Music: over the last ``music_window_ms``, no more than this share of frames dips
    ``dip_db`` below the loudest (speech dips between syllables: 1 % of 1 s windows of
    the Asterisk prompts pass, three quarters of the hold music does)."""
    max_mean_stability: float = 0.8
    """Music: mean spectral stability over ``music_window_ms`` above this."""


@dataclass(slots=True)
class _Frame:
    pcm: bytes
    voiced: bool


class _Channel:
    """One call's endpointing state machine (fed per-frame features by the bank)."""

    __slots__ = ("candidate", "config", "last_voiced_at", "last_voiced_index", "recent",
                 "silence_ms", "speaking", "start_at", "utterance", "vad")

    def __init__(self, config: EndpointerConfig) -> None:
        self.config = config
        self.vad = webrtcvad.Vad(config.aggressiveness)
        keep = (config.pre_roll_ms + config.start_window_ms + config.confirm_ms) // 20 + 1
        self.recent: deque[_Frame] = deque(maxlen=keep)
        self.utterance: list[_Frame] = []
        self.speaking = False
        self.candidate: float | None = None
        self.start_at = 0.0
        self.last_voiced_at = 0.0
        self.last_voiced_index = 0
        self.silence_ms = 0

    def step(self, pcm: bytes, speechlike: bool, held: bool, stability: float,
             now: float) -> list[CallEvent]:
        c = self.config
        voiced = speechlike and not held and self.vad.is_speech(pcm, SAMPLE_RATE)
        fr = _Frame(pcm, voiced)
        if self.speaking:
            return self._continue(fr, now)
        self.recent.append(fr)
        if self.candidate is not None:
            if now - self.candidate >= c.confirm_ms / 1000:
                start, self.candidate = self.candidate, None
                if stability < c.max_stability and not held:
                    return self._start(start, now)
                self.recent.clear()
            return []
        window = list(self.recent)[-(c.start_window_ms // 20):]
        if voiced and sum(f.voiced for f in window) * 20 >= c.start_ms:
            first = next(i for i, f in enumerate(window) if f.voiced)
            self.candidate = now - 0.020 * (len(window) - first)
            if c.confirm_ms <= 0:
                start, self.candidate = self.candidate, None
                return self._start(start, now)
        return []

    def _start(self, start: float, now: float) -> list[CallEvent]:
        frames = list(self.recent)
        lead = max(0, len(frames) - round((now - start) / 0.020) - self.config.pre_roll_ms // 20)
        self.utterance = frames[lead:]
        self.start_at = start
        self.speaking = True
        self.silence_ms = 0
        self.last_voiced_at = now
        self.last_voiced_index = len(self.utterance)
        self.recent.clear()
        return [SpeechStarted(at=start)]

    def _continue(self, fr: _Frame, now: float) -> list[CallEvent]:
        c = self.config
        self.utterance.append(fr)
        if fr.voiced:
            self.silence_ms = 0
            self.last_voiced_at = now
            self.last_voiced_index = len(self.utterance)
        else:
            self.silence_ms += 20
        length_ms = round((now - self.start_at) * 1000)
        if self.silence_ms >= c.end_silence_ms or length_ms >= c.max_utterance_ms:
            return [self.finish(now)]
        return []

    def finish(self, now: float) -> SpeechEnded:
        keep = min(len(self.utterance), self.last_voiced_index + self.config.hangover_ms // 20)
        audio = b"".join(f.pcm for f in self.utterance[:keep])
        duration = round((self.last_voiced_at - self.start_at) * 1000)
        self.speaking = False
        self.utterance = []
        self.candidate = None
        return SpeechEnded(at=now, duration_ms=duration, audio=audio)


class EndpointerBank:
    """Endpointers for ``n_channels`` calls fed in lock-step (``(n, 160)`` int16 frames).

    ``process(frames, now=..., tone_active=...)`` returns ``(channel, event)`` pairs;
    ``tone_active`` is the DTMF bank's per-channel flag (``DtmfDetectorBank.tone_active``).
    """

    def __init__(self, n_channels: int, config: EndpointerConfig = EndpointerConfig()) -> None:
        if not 0 <= config.aggressiveness <= 3:
            raise MediaError(f"webrtcvad aggressiveness is 0..3, got {config.aggressiveness}")
        self.n_channels = n_channels
        self.config = config
        self._beep = BeepDetector(n_channels)
        self._tonality = TonalityDetector(n_channels)
        self._min_pow = DBM0_REF_POWER * 10 ** (config.min_level_dbm0 / 10)
        self._min_db = 10 * np.log10(self._min_pow)
        span = max(1, config.music_window_ms // 20)
        self._levels = np.full((n_channels, span), -100.0)
        self._stab = np.zeros((n_channels, span))
        self._filled = 0
        self._i = 0
        self._channels = [_Channel(config) for _ in range(n_channels)]

    def reset_channel(self, channel: int) -> None:
        """Forget a channel's state (a new call takes the slot)."""
        self._channels[channel] = _Channel(self.config)
        self._levels[channel] = -100.0
        self._stab[channel] = 0.0
        self._beep.reset_channel(channel)

    def speaking(self, channel: int) -> bool:
        """An utterance is in progress on ``channel``."""
        return self._channels[channel].speaking

    def process(self, frames: npt.NDArray[np.int16], *, now: float,
                tone_active: npt.NDArray[np.bool_] | None = None) -> list[tuple[int, CallEvent]]:
        """Feed one 20 ms frame per channel (``now`` is the time at the frames' end)."""
        x = np.asarray(frames, dtype=np.int16)
        if x.shape != (self.n_channels, FRAME):
            raise MediaError(f"expected ({self.n_channels}, 160) int16 frames, got {x.shape}")
        spectra = frame_spectra(x)
        self._tonality.process(x, spectra)
        single, _, _ = self._beep.analyse(x, spectra)
        xf = x.astype(np.float32)
        power = np.einsum("ij,ij->i", xf, xf) / FRAME
        slot = self._i % self._levels.shape[1]
        self._i += 1
        self._levels[:, slot] = 10 * np.log10(power + 1.0)
        self._stab[:, slot] = self._tonality.similarity
        self._filled = min(self._filled + 1, self._levels.shape[1])
        c = self.config
        if self._filled == self._levels.shape[1]:
            top = self._levels.max(axis=1)
            dips = (self._levels < (top - c.dip_db)[:, None]).mean(axis=1)
            held = (((top >= self._min_db) & (dips <= c.max_dip_fraction))
                    | (self._stab.mean(axis=1) > c.max_mean_stability))
        else:
            held = np.zeros(self.n_channels, dtype=bool)
        speechlike = (power >= self._min_pow) & ~single
        if tone_active is not None:
            speechlike &= ~np.asarray(tone_active, dtype=bool)
        stability = self._tonality.similarity
        out: list[tuple[int, CallEvent]] = []
        raw = x.tobytes()
        for ch, state in enumerate(self._channels):
            pcm = raw[ch * 2 * FRAME:(ch + 1) * 2 * FRAME]
            for ev in state.step(pcm, bool(speechlike[ch]), bool(held[ch]),
                                 float(stability[ch]), now):
                out.append((ch, ev))
        return out

    def flush(self, channel: int, *, now: float) -> list[CallEvent]:
        """End of stream on ``channel`` (hang-up): close the utterance in progress, if any."""
        state = self._channels[channel]
        return [state.finish(now)] if state.speaking else []


class Endpointer:
    """Sans-IO endpointer for one call: ``process(frame, now=..., tone_active=...)``.

    ``now`` is the time at the end of the frame (seconds).  Frames are 20 ms of 8 kHz
    int16 PCM.  Returns the events the frame completes.
    """

    def __init__(self, config: EndpointerConfig = EndpointerConfig()) -> None:
        self.config = config
        self._bank = EndpointerBank(1, config)

    @property
    def speaking(self) -> bool:
        """An utterance is in progress."""
        return self._bank.speaking(0)

    def process(self, frame: npt.NDArray[np.int16], *, now: float,
                tone_active: bool = False) -> list[CallEvent]:
        """Feed one 20 ms frame; ``tone_active`` is the DTMF detector's flag for this call."""
        x = np.asarray(frame, dtype=np.int16).ravel()
        if x.size != FRAME:
            raise MediaError(f"Endpointer takes 160-sample frames, got {x.size}")
        flag = np.array([tone_active])
        return [ev for _, ev in self._bank.process(x.reshape(1, FRAME), now=now,
                                                   tone_active=flag)]

    def flush(self, *, now: float) -> list[CallEvent]:
        """End of stream (hang-up): close the utterance in progress, if any."""
        return self._bank.flush(0, now=now)


def vad_frames(pcm: npt.NDArray[np.int16], aggressiveness: int = 2) -> npt.NDArray[np.bool_]:
    """webrtcvad's raw decision for each whole 20 ms frame of a recording (no gating)."""
    vad = webrtcvad.Vad(aggressiveness)
    x = np.asarray(pcm, dtype=np.int16)
    n = len(x) // FRAME
    raw = x[: n * FRAME].tobytes()
    return np.fromiter((vad.is_speech(raw[i * 2 * FRAME:(i + 1) * 2 * FRAME], SAMPLE_RATE)
                        for i in range(n)), dtype=bool, count=n)
