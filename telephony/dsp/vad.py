"""Voice activity detection and endpointing (sans-IO): webrtcvad behind tone gates.

``webrtcvad`` (installed from the ``webrtcvad-wheels`` distribution) decides per 20 ms
frame whether it sounds like speech.  It also says yes to DTMF, beeps, call-progress
tones and hold music, so a frame only counts as speech when:

* webrtcvad says speech and the frame is above ``min_level_dbm0``;
* the caller's DTMF detector has no tone on the channel (``tone_active`` argument);
* the frame is not a clean single tone (:class:`~telephony.dsp.tones.BeepDetector`'s
  per-frame test);
and the recent spectrum is not held still (:class:`~telephony.dsp.tones.TonalityDetector`:
music and tones).  An utterance is confirmed ``confirm_ms`` after it starts, when the
spectrum has had time to show whether it is music.

The :class:`Endpointer` turns those frames into ``SpeechStarted`` / ``SpeechEnded``
events; the no-speech timeout is the caller's (it knows when the prompt ended).
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
    max_mean_stability: float = 0.8
    """Music: mean spectral stability over ``music_window_ms`` above this."""
    dip_db: float = 15.0
    max_dip_fraction: float = 0.05
    """Music: over the last ``music_window_ms``, no more than this share of frames dips
    ``dip_db`` below the loudest (speech dips between syllables: 1 % of 1 s windows of
    the Asterisk prompts pass, three quarters of the hold music does)."""


@dataclass(slots=True)
class _Frame:
    pcm: bytes
    voiced: bool
    tonal: float
    """Spectral stability of the frame (0 silence or changing, 1 held still)."""


class Endpointer:
    """Sans-IO endpointer for one call: ``process(frame, now=..., tone_active=...)``.

    ``now`` is the time at the end of the frame (seconds).  Frames are 20 ms of 8 kHz
    int16 PCM.  Returns the events the frame completes (at most one of each kind).
    """

    def __init__(self, config: EndpointerConfig = EndpointerConfig()) -> None:
        if not 0 <= config.aggressiveness <= 3:
            raise MediaError(f"webrtcvad aggressiveness is 0..3, got {config.aggressiveness}")
        self.config = config
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._beep = BeepDetector(1)
        self._tonality = TonalityDetector(1)
        self._min_pow = DBM0_REF_POWER * 10 ** (config.min_level_dbm0 / 10)
        keep = (config.pre_roll_ms + config.start_window_ms + config.confirm_ms) // 20 + 1
        self._recent: deque[_Frame] = deque(maxlen=keep)
        self._utterance: list[_Frame] = []
        self._levels: deque[float] = deque(maxlen=max(1, config.music_window_ms // 20))
        self._min_db = 10 * np.log10(self._min_pow)
        self._stability: deque[float] = deque(maxlen=max(1, config.music_window_ms // 20))
        self._candidate: float | None = None
        self._speaking = False
        self._start_at = 0.0
        self._last_voiced_at = 0.0
        self._last_voiced_index = 0
        self._silence_ms = 0

    @property
    def speaking(self) -> bool:
        """An utterance is in progress."""
        return self._speaking

    def classify(self, frame: npt.NDArray[np.int16], *, tone_active: bool = False
                 ) -> tuple[bool, float]:
        """(speech, spectral stability) for one frame, updating the tonality tracker."""
        x = np.asarray(frame, dtype=np.int16).reshape(1, FRAME)
        spectra = frame_spectra(x)
        self._tonality.process(x, spectra)
        tonal = float(self._tonality.similarity[0])
        power = float(np.mean(x.astype(np.float32) ** 2))
        if tone_active or power < self._min_pow:
            return False, tonal
        single, _, _ = self._beep.analyse(x)
        if single[0]:
            return False, 1.0
        return self._vad.is_speech(x.tobytes(), SAMPLE_RATE), tonal

    def process(self, frame: npt.NDArray[np.int16], *, now: float,
                tone_active: bool = False) -> list[CallEvent]:
        """Feed one 20 ms frame; ``tone_active`` is the DTMF detector's flag for this call."""
        x = np.asarray(frame, dtype=np.int16).ravel()
        if x.size != FRAME:
            raise MediaError(f"Endpointer takes 160-sample frames, got {x.size}")
        voiced, tonal = self.classify(x, tone_active=tone_active)
        fr = _Frame(x.tobytes(), voiced, tonal)
        c = self.config
        self._levels.append(10 * np.log10(float(np.mean(x.astype(np.float32) ** 2)) + 1.0))
        self._stability.append(tonal)
        held = self._held() or (
            sum(self._stability) / len(self._stability) > c.max_mean_stability)
        if self._speaking:
            return self._continue(fr, voiced and not held, now)
        self._recent.append(fr)
        if self._candidate is not None:
            # Confirm the start only once the spectrum has had time to show it is not music.
            if now - self._candidate >= c.confirm_ms / 1000:
                start, self._candidate = self._candidate, None
                if tonal < c.max_stability and not held:
                    return self._start(start, now)
                self._recent.clear()
            return []
        window = list(self._recent)[-(c.start_window_ms // 20):]
        n_voiced = sum(f.voiced for f in window)
        if voiced and not held and n_voiced * 20 >= c.start_ms:
            first = next(i for i, f in enumerate(window) if f.voiced)
            self._candidate = now - 0.020 * (len(window) - first)
            if c.confirm_ms <= 0:
                start, self._candidate = self._candidate, None
                return self._start(start, now)
        return []

    def _held(self) -> bool:
        """Music: a full window of sound without the dips between syllables that speech has."""
        c = self.config
        if len(self._levels) < self._levels.maxlen:  # type: ignore[operator]
            return False
        lv = np.fromiter(self._levels, dtype=np.float64)
        top = float(lv.max())
        if top < self._min_db:
            return False
        return float(np.mean(lv < top - c.dip_db)) <= c.max_dip_fraction

    def _start(self, start: float, now: float) -> list[CallEvent]:
        c = self.config
        frames = list(self._recent)
        lead = max(0, len(frames) - round((now - start) / 0.020) - c.pre_roll_ms // 20)
        self._utterance = frames[lead:]
        self._start_at = start
        self._speaking = True
        self._silence_ms = 0
        self._last_voiced_at = now
        self._last_voiced_index = len(self._utterance)
        self._recent.clear()
        return [SpeechStarted(at=start)]

    def _continue(self, fr: _Frame, voiced: bool, now: float) -> list[CallEvent]:
        c = self.config
        self._utterance.append(fr)
        if voiced:
            self._silence_ms = 0
            self._last_voiced_at = now
            self._last_voiced_index = len(self._utterance)
        else:
            self._silence_ms += 20
        length_ms = round((now - self._start_at) * 1000)
        if self._silence_ms >= c.end_silence_ms or length_ms >= c.max_utterance_ms:
            return [self._finish(now)]
        return []

    def flush(self, *, now: float) -> list[CallEvent]:
        """End of stream (hang-up): close the utterance in progress, if any."""
        return [self._finish(now)] if self._speaking else []

    def _finish(self, now: float) -> SpeechEnded:
        keep = min(len(self._utterance), self._last_voiced_index + self.config.hangover_ms // 20)
        audio = b"".join(f.pcm for f in self._utterance[:keep])
        duration = round((self._last_voiced_at - self._start_at) * 1000)
        self._speaking = False
        self._utterance = []
        return SpeechEnded(at=now, duration_ms=duration, audio=audio)


def vad_frames(pcm: npt.NDArray[np.int16], aggressiveness: int = 2) -> npt.NDArray[np.bool_]:
    """webrtcvad's raw decision for each whole 20 ms frame of a recording (no gating)."""
    vad = webrtcvad.Vad(aggressiveness)
    x = np.asarray(pcm, dtype=np.int16)
    n = len(x) // FRAME
    raw = x[: n * FRAME].tobytes()
    return np.fromiter((vad.is_speech(raw[i * 2 * FRAME:(i + 1) * 2 * FRAME], SAMPLE_RATE)
                        for i in range(n)), dtype=bool, count=n)
