"""Acoustic front end: MFCC features and energy endpointing for telephone speech.

Plain numpy/scipy, vectorised over frames: pre-emphasis, 25 ms Hamming windows at
a 10 ms hop, a mel filterbank limited to the telephone band (300-3400 Hz), log
energies, DCT-II, cepstral mean normalisation and regression deltas.  Used by the
template recogniser and the MFCC-statistics voice verifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.fft import dct
from scipy.signal import resample_poly

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "EndpointConfig",
    "MfccConfig",
    "cepstral_mean_normalise",
    "deltas",
    "frame_log_energy",
    "mfcc",
    "resample",
    "speech_mask",
    "speech_segments",
]


@dataclass(frozen=True, slots=True)
class MfccConfig:
    """Parameters of the MFCC front end."""

    frame_ms: float = 25.0
    hop_ms: float = 10.0
    pre_emphasis: float = 0.97
    n_filters: int = 24
    low_hz: float = 300.0
    high_hz: float = 3400.0
    n_ceps: int = 13
    """Cepstra kept, c0 included."""


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """Energy endpointing: which frames are speech."""

    floor_percentile: float = 10.0
    """The noise floor is this percentile of frame energies."""
    above_floor_db: float = 12.0
    """A speech frame is at least this far above the noise floor..."""
    below_peak_db: float = 40.0
    """...and no further than this below the loudest frame."""
    min_gap_frames: int = 15
    """Pauses shorter than this (150 ms) do not split segments (stop closures)."""
    min_segment_frames: int = 8
    """Segments shorter than this (80 ms) are clicks, not speech."""
    margin_frames: int = 3
    """Frames of context kept around each segment."""


def _frames(signal: FloatArray, frame_len: int, hop: int) -> FloatArray:
    if signal.size < frame_len:
        signal = np.pad(signal, (0, frame_len - signal.size))
    n = 1 + (signal.size - frame_len) // hop
    view = np.lib.stride_tricks.sliding_window_view(signal, frame_len)[::hop]
    return np.asarray(view[:n], dtype=np.float64)


def _hz_to_mel(hz: FloatArray | float) -> FloatArray:
    return np.asarray(2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0), dtype=np.float64)


def _mel_to_hz(mel: FloatArray) -> FloatArray:
    return np.asarray(700.0 * (10.0 ** (mel / 2595.0) - 1.0), dtype=np.float64)


@lru_cache(maxsize=16)
def _mel_filterbank(
    n_filters: int, n_fft: int, sample_rate: int, low_hz: float, high_hz: float
) -> FloatArray:
    """Triangular filters on the mel scale, shape (n_filters, n_fft // 2 + 1)."""
    high_hz = min(high_hz, sample_rate / 2.0)
    mels = np.linspace(_hz_to_mel(low_hz), _hz_to_mel(high_hz), n_filters + 2)
    edges = _mel_to_hz(mels)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    bank = np.clip(np.minimum(rising, falling), 0.0, None)
    bank.setflags(write=False)
    return bank


def _framing(sample_rate: int, config: MfccConfig) -> tuple[int, int, int]:
    frame_len = round(sample_rate * config.frame_ms / 1000.0)
    hop = round(sample_rate * config.hop_ms / 1000.0)
    n_fft = 1 << (frame_len - 1).bit_length()
    return frame_len, hop, n_fft


def mfcc(signal: FloatArray, sample_rate: int, config: MfccConfig = MfccConfig()) -> FloatArray:
    """MFCCs of ``signal`` (float samples), shape (frames, ``n_ceps``), c0 first.

    No mean normalisation here: see :func:`cepstral_mean_normalise`.
    """
    x = np.asarray(signal, dtype=np.float64)
    x = np.append(x[:1], x[1:] - config.pre_emphasis * x[:-1])
    frame_len, hop, n_fft = _framing(sample_rate, config)
    frames = _frames(x, frame_len, hop) * np.hamming(frame_len)
    power = np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2 / n_fft
    bank = _mel_filterbank(config.n_filters, n_fft, sample_rate, config.low_hz, config.high_hz)
    # The floor stands in for the quietest line noise, so digital silence (TTS)
    # and quiet telephone silence give similar features.
    energies = np.log(power @ bank.T + 1e-7)
    ceps: FloatArray = dct(energies, type=2, axis=1, norm="ortho")[:, : config.n_ceps]
    return ceps


def frame_log_energy(
    signal: FloatArray, sample_rate: int, config: MfccConfig = MfccConfig()
) -> FloatArray:
    """Log energy (dB) of each analysis frame, aligned with :func:`mfcc` frames."""
    frame_len, hop, _ = _framing(sample_rate, config)
    frames = _frames(np.asarray(signal, dtype=np.float64), frame_len, hop)
    power = np.mean(frames**2, axis=1)
    return np.asarray(10.0 * np.log10(power + 1e-10), dtype=np.float64)


def deltas(features: FloatArray, width: int = 2) -> FloatArray:
    """Regression deltas over +-``width`` frames (edges repeated)."""
    n = features.shape[0]
    padded = np.pad(features, ((width, width), (0, 0)), mode="edge")
    weights = np.arange(1, width + 1, dtype=np.float64)
    acc = np.zeros_like(features)
    for k, w in enumerate(weights, start=1):
        acc += w * (padded[width + k : width + k + n] - padded[width - k : width - k + n])
    return acc / (2.0 * float(np.sum(weights**2)))


def cepstral_mean_normalise(
    features: FloatArray,
    mask: npt.NDArray[np.bool_] | None = None,
    *,
    variance: bool = False,
) -> FloatArray:
    """Subtract the per-coefficient mean (over the ``mask`` frames when given).

    With ``variance`` also divide by the per-coefficient standard deviation
    (CMVN), which weighs every coefficient equally in a Euclidean distance.
    """
    ref = features if mask is None or not mask.any() else features[mask]
    out = features - ref.mean(axis=0, keepdims=True)
    if variance:
        out = out / (ref.std(axis=0, keepdims=True) + 1e-6)
    return np.asarray(out, dtype=np.float64)


def speech_mask(
    energy_db: FloatArray, config: EndpointConfig = EndpointConfig()
) -> npt.NDArray[np.bool_]:
    """Frames loud enough to be speech: above the noise floor and near the peak."""
    if energy_db.size == 0:
        return np.zeros(0, dtype=bool)
    floor = float(np.percentile(energy_db, config.floor_percentile))
    peak = float(energy_db.max())
    threshold = max(floor + config.above_floor_db, peak - config.below_peak_db)
    return np.asarray(energy_db > threshold)


def speech_segments(
    energy_db: FloatArray, config: EndpointConfig = EndpointConfig()
) -> list[tuple[int, int]]:
    """Speech segments as ``(start, stop)`` frame ranges (stop exclusive), with margins.

    Pauses shorter than ``min_gap_frames`` are bridged; segments shorter than
    ``min_segment_frames`` dropped.
    """
    mask = speech_mask(energy_db, config)
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    merged: list[list[int]] = []
    for start, stop in zip(starts.tolist(), stops.tolist()):
        if merged and start - merged[-1][1] < config.min_gap_frames:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    n = energy_db.size
    return [
        (max(0, s - config.margin_frames), min(n, e + config.margin_frames))
        for s, e in merged
        if e - s >= config.min_segment_frames
    ]


def resample(signal: FloatArray, from_rate: int, to_rate: int) -> FloatArray:
    """Polyphase resampling (scipy ``resample_poly``) between integer rates."""
    if from_rate == to_rate:
        return np.asarray(signal, dtype=np.float64)
    g = np.gcd(from_rate, to_rate)
    out = resample_poly(np.asarray(signal, dtype=np.float64), to_rate // g, from_rate // g)
    return np.asarray(out, dtype=np.float64)
