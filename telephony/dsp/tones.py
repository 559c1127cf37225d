"""Single-tone (beep) and stable-spectrum (music, held tones) detectors, batched over calls.

Both work on 20 ms frames at 8 kHz, one numpy pass per frame for all channels:

* :class:`BeepDetector` looks for one sinusoid between 300 and 2100 Hz holding most
  of the frame's energy at a steady frequency for about 200 ms: the tone an
  answering machine plays before recording.  It reports the beep's onset.
* :class:`TonalityDetector` flags frames whose spectrum barely changes from one frame
  to the next over about 200 ms (hold music, ringback, dial and busy tones), which
  webrtcvad calls speech; the endpointer uses it as a gate.

Both grow (``grow(n_channels)``) without disturbing the channels they have: the
endpointer's bank adds calls as they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft

from telephony.dsp.bank import Channels, check_grow, check_keep, grow_channels, keep_channels
from telephony.dsp.dtmf import DBM0_REF_POWER
from telephony.errors import MediaError

SAMPLE_RATE = 8000
FRAME = 160
NFFT = 512
_BIN_HZ = SAMPLE_RATE / NFFT
_LOBE = 7
"""Half-width in bins of a 160-sample Hann window's main lobe at 512-point FFT (+-100 Hz)."""

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


def frame_spectra(frames: npt.NDArray[np.int16], pad: F32 | None = None) -> F32:
    """Hann-windowed power spectra of ``(n, 160)`` frames, ``(n, 257)`` bins of 15.6 Hz.

    The powers are float32 (the squares of scipy's float32 transform); the detectors sum
    and compare them in float64.  ``pad``, if given, is an ``(n, 512)`` float32 work array
    whose columns 160 on are zero (they stay zero): the caller that keeps one saves the
    zero-padded copy scipy would make for ``n=512`` on every frame.
    """
    x = np.asarray(frames)
    if x.dtype != np.int16:  # int16 converts exactly inside the product; others first
        x = x.astype(np.float32)
    if pad is None:
        pad = np.zeros((x.shape[0], NFFT), dtype=np.float32)
    np.multiply(x, _HANN, out=pad[:, :FRAME])
    # scipy's pocketfft runs batched float32 transforms about twice as fast as numpy's
    # (results agree to float32 rounding); each row's transform does not depend on the
    # others, so a channel's spectrum is the same in a bank of any size.
    spec = scipy.fft.rfft(pad, axis=-1)
    out: F32 = np.square(spec.real)
    out += np.square(spec.imag)
    return out


_HANN = np.hanning(FRAME + 2)[1:-1].astype(np.float32)
_HANN_POWER = float((_HANN ** 2).sum())
_LOBE_OFFSETS = np.arange(-_LOBE, _LOBE + 1)[None, :]


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

    def grow(self, n_channels: int) -> None:
        """Add channels, each as a new detector's; the others keep their state."""
        if not check_grow(self.n_channels, n_channels):
            return
        n = n_channels
        self._run = grow_channels(self._run, n, 0)
        self._freq = grow_channels(self._freq, n, 0.0)
        self._level = grow_channels(self._level, n, 0.0)
        self._reported = grow_channels(self._reported, n, False)
        self.tone = grow_channels(self.tone, n, False)
        self.n_channels = n

    def keep_channels(self, keep: Channels, n_channels: int) -> None:
        """Resize to ``n_channels``: channel ``keep[i]`` becomes channel ``i`` with its
        state; the others start as a new detector's."""
        idx = check_keep(self.n_channels, keep, n_channels)
        n = n_channels
        self._run = keep_channels(self._run, idx, n, 0)
        self._freq = keep_channels(self._freq, idx, n, 0.0)
        self._level = keep_channels(self._level, idx, n, 0.0)
        self._reported = keep_channels(self._reported, idx, n, False)
        self.tone = keep_channels(self.tone, idx, n, False)
        self.n_channels = n

    def _peak(self, p: F32, total: F64) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_],
                                                  F64]:
        """(peak bin, is a clean tone in band, mean power) from spectra and their sums."""
        # The strongest peak of the whole voice band must fall inside the beep band, so
        # a bass note just below it does not pass for a beep at the band's edge.
        k = np.argmax(p[:, self._wide_lo:], axis=-1)
        k += self._wide_lo
        idx = k[:, None] + _LOBE_OFFSETS
        np.clip(idx, 0, p.shape[1] - 1, out=idx)
        lobe = np.take_along_axis(p, idx, axis=-1).sum(-1, dtype=np.float64)
        # Parseval: sum of |X|^2 over the full spectrum = NFFT * sum (x w)^2.
        power = 2 * total / (NFFT * _HANN_POWER)
        is_tone = ((lobe >= self.config.purity * total) & (power >= self._min_pow)
                   & (k >= self._lo) & (k <= self._hi))
        return k, is_tone, power

    def analyse(self, frames: npt.NDArray[np.int16], spectra: F32 | None = None
                ) -> tuple[npt.NDArray[np.bool_], F64, F64]:
        """Per frame: (is a clean tone in band, its frequency in Hz, its mean power)."""
        p = frame_spectra(np.asarray(frames)) if spectra is None else spectra
        total = p.sum(-1, dtype=np.float64) + 1e-9
        k, is_tone, power = self._peak(p, total)
        # Parabolic interpolation of the peak on a log scale.
        rows = np.arange(p.shape[0])
        lp = np.log(p[rows[:, None], np.clip(k[:, None] + np.arange(-1, 2), 0, p.shape[1] - 1)]
                    .astype(np.float64) + 1e-9)
        den = lp[:, 0] - 2 * lp[:, 1] + lp[:, 2]
        delta = np.zeros_like(den)
        np.divide(0.5 * (lp[:, 0] - lp[:, 2]), den, out=delta, where=np.abs(den) > 1e-12)
        freq = (k + np.clip(delta, -0.5, 0.5)) * _BIN_HZ
        return is_tone, freq, power

    def is_tone(self, spectra: F32, spectra_sum: F64) -> npt.NDArray[np.bool_]:
        """Per frame: a clean tone in band (``analyse``'s first result, without the
        frequency); ``spectra_sum`` is ``spectra.sum(-1, dtype=np.float64)``."""
        return self._peak(spectra, spectra_sum + 1e-9)[1]

    def process(self, frames: npt.NDArray[np.int16], *, now: float,
                spectra: F32 | None = None) -> list[Beep]:
        """Feed one 20 ms frame per channel (``now`` is the time at the frames' end);
        ``spectra``: the frames' :func:`frame_spectra`, if the caller has them."""
        frames = np.asarray(frames).reshape(self.n_channels, -1)
        if frames.shape[1] != FRAME:
            raise MediaError(f"BeepDetector takes 160-sample frames, got {frames.shape}")
        is_tone, freq, power = self.analyse(frames, spectra)
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
        self._born = np.zeros(n_channels, dtype=np.int64)
        """Per channel: the frame count when it started.  A channel's similarities go
        round ``_sims`` from its own start, so their mean adds them in the order a new
        detector would (a float sum depends on the order)."""
        self._rows = np.arange(n_channels)
        self.similarity = np.zeros(n_channels)
        self._min_pow = DBM0_REF_POWER * 10 ** (config.min_level_dbm0 / 10)
        # Work arrays, reused from frame to frame (fresh ones would be page-faulted in).
        self._mag = np.empty((n_channels, hi - lo))
        self._tmp = np.empty((n_channels, hi - lo))

    def reset_channel(self, channel: int) -> None:
        """Forget a channel's history: it then behaves as a new detector's channel."""
        self._prev[:, channel] = 0.0
        self._sims[:, channel] = 0.0
        self.similarity[channel] = 0.0
        self._born[channel] = self._i

    def grow(self, n_channels: int) -> None:
        """Add channels, each as a new detector's; the others keep their history."""
        if not check_grow(self.n_channels, n_channels):
            return
        n = n_channels
        self._prev = grow_channels(self._prev, n, 0.0, axis=1)
        self._sims = grow_channels(self._sims, n, 0.0, axis=1)
        self.similarity = grow_channels(self.similarity, n, 0.0)
        self._born = grow_channels(self._born, n, self._i)
        self._rows = np.arange(n)
        self._mag = np.empty((n, self._mag.shape[1]))
        self._tmp = np.empty((n, self._tmp.shape[1]))
        self.n_channels = n

    def keep_channels(self, keep: Channels, n_channels: int) -> None:
        """Resize to ``n_channels``: channel ``keep[i]`` becomes channel ``i`` with its
        history; the others start as a new detector's."""
        idx = check_keep(self.n_channels, keep, n_channels)
        n = n_channels
        self._prev = keep_channels(self._prev, idx, n, 0.0, axis=1)
        self._sims = keep_channels(self._sims, idx, n, 0.0, axis=1)
        self.similarity = keep_channels(self.similarity, idx, n, 0.0)
        self._born = keep_channels(self._born, idx, n, self._i)
        self._rows = np.arange(n)
        self._mag = np.empty((n, self._mag.shape[1]))
        self._tmp = np.empty((n, self._tmp.shape[1]))
        self.n_channels = n

    def process(self, frames: npt.NDArray[np.int16], spectra: F32 | None = None,
                spectra_sum: F64 | None = None) -> npt.NDArray[np.bool_]:
        """Feed one frame per channel; return the per-channel "stable spectrum" flag.

        ``spectra`` (:func:`frame_spectra`) and ``spectra_sum`` (their float64 sums) may be
        passed when the caller has them."""
        frames = np.asarray(frames).reshape(self.n_channels, -1)
        p = frame_spectra(frames) if spectra is None else spectra
        if spectra_sum is None:
            spectra_sum = p.sum(-1, dtype=np.float64)
        # The fourth root (faster than ** 0.25), in float64, then the unit vector: the
        # operations of ``mag / (np.linalg.norm(mag, axis=-1) + 1e-9)``, in place.
        mag, tmp = self._mag, self._tmp
        np.sqrt(p[:, self._band], out=mag, dtype=np.float64)
        np.sqrt(mag, out=mag)
        np.multiply(mag, mag, out=tmp)
        norm = np.add.reduce(tmp, axis=-1, keepdims=True)
        np.sqrt(norm, out=norm)
        norm += 1e-9
        cur = np.divide(mag, norm, out=mag)
        slot = self._i % self.config.lag_frames
        prev = self._prev[slot]
        sim = np.multiply(cur, prev, out=tmp).sum(-1)
        power = 2 * spectra_sum / (NFFT * _HANN_POWER)
        sim[~(power >= self._min_pow)] = 0.0
        prev[...] = cur
        self._sims[(self._i - self._born) % self.config.span_frames, self._rows] = sim
        self._i += 1
        # The mean slot by slot (what ``mean(0)`` does for two or more channels, but not
        # for one), so a channel's value does not depend on the size of its bank.
        total = self._sims[0].copy()
        for row in self._sims[1:]:
            total += row
        total /= self.config.span_frames
        self.similarity = total
        """Per channel: the running mean similarity behind the flag."""
        flag: npt.NDArray[np.bool_] = self.similarity >= self.config.similarity
        return flag
