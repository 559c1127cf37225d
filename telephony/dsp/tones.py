"""Single-tone (beep) and stable-spectrum (music, held tones) detectors, batched over calls.

Both work on 20 ms frames at 8 kHz, one numpy pass per frame for all channels:

* :class:`BeepDetector` looks for one sinusoid between 300 and 2100 Hz holding most
  of the frame's energy at a steady frequency for about 200 ms: the tone an
  answering machine plays before recording.  It reports the beep's onset.
* :class:`TonalityDetector` flags frames whose spectrum barely changes from one frame
  to the next over about 200 ms (hold music, ringback, dial and busy tones), which
  webrtcvad calls speech; the endpointer uses it as a gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft

from telephony.dsp.dtmf import DBM0_REF_POWER
from telephony.errors import MediaError

SAMPLE_RATE = 8000
FRAME = 160
NFFT = 512
_BIN_HZ = SAMPLE_RATE / NFFT
_LOBE = 7
"""Half-width in bins of a 160-sample Hann window's main lobe at 512-point FFT (+-100 Hz)."""

F64 = npt.NDArray[np.float64]


def frame_spectra(frames: npt.NDArray[np.int16]) -> F64:
    """Hann-windowed power spectra of ``(n, 160)`` frames, ``(n, 257)`` bins of 15.6 Hz."""
    x = np.asarray(frames, dtype=np.float32) * _HANN
    # scipy's pocketfft runs batched float32 transforms about twice as fast as numpy's
    # (results agree to float32 rounding).
    spec = scipy.fft.rfft(x, n=NFFT, axis=-1)
    out: F64 = (spec.real ** 2 + spec.imag ** 2).astype(np.float64)
    return out


_HANN = np.hanning(FRAME + 2)[1:-1].astype(np.float32)
_HANN_POWER = float((_HANN ** 2).sum())


@dataclass(frozen=True, slots=True)
class BeepConfig:
    """What counts as an answering-machine beep."""

    low_hz: float = 300.0
    high_hz: float = 2100.0
    min_ms: float = 200.0
    """How long the tone must hold."""
    purity: float = 0.95
    """Share of the frame's energy in the tone's main lobe."""
    max_drift_hz: float = 5.0
    """Largest change of frequency from the beep's first frame."""
    max_level_change_db: float = 1.0
    """Largest fall of level below the beep's loudest frame so far."""
    min_level_dbm0: float = -40.0


@dataclass(frozen=True, slots=True)
class Beep:
    """A beep: its onset (on the clock of ``now``), frequency and channel."""

    channel: int
    onset: float
    frequency_hz: float


class BeepDetector:
    """Single-tone detector for ``n_channels`` calls (``process`` takes ``(n, 160)`` int16).

    A beep is reported once, as soon as it has held ``min_ms``; another beep on the
    same channel needs the tone to stop first.
    """

    def __init__(self, n_channels: int = 1, config: BeepConfig = BeepConfig()) -> None:
        self.n_channels = n_channels
        self.config = config
        self._lo = int(np.ceil(config.low_hz / _BIN_HZ))
        self._hi = int(np.floor(config.high_hz / _BIN_HZ))
        self._wide_lo = int(80 / _BIN_HZ)
        self._min_frames = int(np.ceil(config.min_ms / 20.0))
        self._min_pow = DBM0_REF_POWER * 10 ** (config.min_level_dbm0 / 10)
        self._level_tol = 10 ** (config.max_level_change_db / 10)
        self._run = np.zeros(n_channels, dtype=np.int64)
        self._freq = np.zeros(n_channels)
        self._level = np.zeros(n_channels)
        self._reported = np.zeros(n_channels, dtype=bool)
        self.tone = np.zeros(n_channels, dtype=bool)
        """Per channel: the last frame was a clean single tone (any duration)."""

    def reset_channel(self, channel: int) -> None:
        """Forget a channel's state (a new call takes the slot)."""
        self._run[channel] = 0
        self._reported[channel] = False

    def analyse(self, frames: npt.NDArray[np.int16], spectra: F64 | None = None
                ) -> tuple[npt.NDArray[np.bool_], F64, F64]:
        """Per frame: (is a clean tone in band, its frequency in Hz, its mean power)."""
        p = frame_spectra(frames) if spectra is None else spectra
        total = p.sum(-1) + 1e-9
        # The strongest peak of the whole voice band must fall inside the beep band, so
        # a bass note just below it does not pass for a beep at the band's edge.
        k = np.argmax(p[:, self._wide_lo:], axis=-1) + self._wide_lo
        idx = np.clip(k[:, None] + np.arange(-_LOBE, _LOBE + 1)[None, :], 0, p.shape[1] - 1)
        lobe = np.take_along_axis(p, idx, axis=-1).sum(-1)
        # Parabolic interpolation of the peak on a log scale.
        rows = np.arange(p.shape[0])
        lp = np.log(p[rows[:, None], np.clip(k[:, None] + np.arange(-1, 2), 0, p.shape[1] - 1)]
                    + 1e-9)
        den = lp[:, 0] - 2 * lp[:, 1] + lp[:, 2]
        delta = np.zeros_like(den)
        np.divide(0.5 * (lp[:, 0] - lp[:, 2]), den, out=delta, where=np.abs(den) > 1e-12)
        freq = (k + np.clip(delta, -0.5, 0.5)) * _BIN_HZ
        # Parseval: sum of |X|^2 over the full spectrum = NFFT * sum (x w)^2.
        power = 2 * total / (NFFT * _HANN_POWER)
        is_tone = ((lobe >= self.config.purity * total) & (power >= self._min_pow)
                   & (k >= self._lo) & (k <= self._hi))
        return is_tone, freq, power

    def process(self, frames: npt.NDArray[np.int16], *, now: float) -> list[Beep]:
        """Feed one 20 ms frame per channel (``now`` is the time at the frames' end)."""
        frames = np.asarray(frames).reshape(self.n_channels, -1)
        if frames.shape[1] != FRAME:
            raise MediaError(f"BeepDetector takes 160-sample frames, got {frames.shape}")
        is_tone, freq, power = self.analyse(frames)
        # A machine's beep is one steady oscillator: same pitch and same level throughout,
        # where a sustained note drifts, decays or carries its accompaniment.
        ratio = power / np.maximum(self._level, 1e-9)
        steady = (is_tone & (self._run > 0)
                  & (np.abs(freq - self._freq) <= self.config.max_drift_hz)
                  & (ratio >= 1 / self._level_tol))
        fresh = is_tone & ~steady
        self._run = np.where(steady, self._run + 1, np.where(fresh, 1, 0))
        self._freq = np.where(fresh, freq, self._freq)
        self._level = np.where(fresh, power, np.where(steady, np.maximum(self._level, power), 0.0))
        # A tone that starts inside a frame leaves that frame less pure; look at the frame's
        # share of the steady level to place the onset within it.
        self._reported &= self._run > 0
        self.tone = is_tone
        out: list[Beep] = []
        due = (self._run >= self._min_frames) & ~self._reported
        for ch in np.flatnonzero(due):
            onset = now - 0.020 * float(self._run[ch])
            out.append(Beep(int(ch), onset, float(self._freq[ch])))
            self._reported[ch] = True
        return out


@dataclass(frozen=True, slots=True)
class TonalityConfig:
    """What counts as a stable spectrum (music, call-progress tones)."""

    similarity: float = 0.90
    """Mean cosine similarity of compressed spectra ``lag_frames`` apart, over ``span_frames``
    (0.90 flags about 1 % of speech frames and two thirds of hold-music frames)."""
    lag_frames: int = 5
    span_frames: int = 10
    min_level_dbm0: float = -50.0


class TonalityDetector:
    """Flags channels whose spectrum holds still (music, tones), batched over channels."""

    def __init__(self, n_channels: int = 1, config: TonalityConfig = TonalityConfig()) -> None:
        self.n_channels = n_channels
        self.config = config
        lo, hi = int(250 / _BIN_HZ), int(3400 / _BIN_HZ)
        self._band = slice(lo, hi)
        self._prev = np.zeros((config.lag_frames, n_channels, hi - lo))
        self._sims = np.zeros((config.span_frames, n_channels))
        self._i = 0
        self.similarity = np.zeros(n_channels)
        self._min_pow = DBM0_REF_POWER * 10 ** (config.min_level_dbm0 / 10)

    def reset_channel(self, channel: int) -> None:
        """Forget a channel's history: it then behaves as a new detector's channel."""
        self._prev[:, channel] = 0.0
        self._sims[:, channel] = 0.0
        self.similarity[channel] = 0.0

    def process(self, frames: npt.NDArray[np.int16], spectra: F64 | None = None
                ) -> npt.NDArray[np.bool_]:
        """Feed one frame per channel; return the per-channel "stable spectrum" flag."""
        frames = np.asarray(frames).reshape(self.n_channels, -1)
        p = frame_spectra(frames) if spectra is None else spectra
        mag = np.sqrt(np.sqrt(p[:, self._band]))  # the fourth root, faster than ** 0.25
        norm = np.linalg.norm(mag, axis=-1, keepdims=True) + 1e-9
        cur = mag / norm
        slot = self._i % self.config.lag_frames
        sim = (cur * self._prev[slot]).sum(-1)
        power = 2 * p.sum(-1) / (NFFT * _HANN_POWER)
        sim = np.where(power >= self._min_pow, sim, 0.0)
        self._prev[slot] = cur
        self._sims[self._i % self.config.span_frames] = sim
        self._i += 1
        self.similarity = self._sims.mean(0)
        """Per channel: the running mean similarity behind the flag."""
        flag: npt.NDArray[np.bool_] = self.similarity >= self.config.similarity
        return flag
