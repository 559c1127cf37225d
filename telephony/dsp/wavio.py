"""Read any PCM or float WAV file as 8 kHz mono int16 (first channel, resampled)."""

from __future__ import annotations

import math
import os
import struct
import warnings
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile
from scipy.signal import resample_poly

from telephony.errors import AudioFileError

TARGET_RATE = 8000


def _to_float(data: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """Samples scaled to int16 full scale, whatever the WAV sample format."""
    if data.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (data.astype(np.float64) - 128.0) * 256.0
    if data.dtype == np.int16:
        return data.astype(np.float64)
    if data.dtype == np.int32:  # scipy gives 24-bit samples left-justified in int32
        return data.astype(np.float64) / 65536.0
    if data.dtype.kind == "f":
        return data.astype(np.float64) * 32768.0
    raise AudioFileError(f"unsupported WAV sample type {data.dtype}")


def read_wav_8k(path: str | os.PathLike[str]) -> npt.NDArray[np.int16]:
    """Read a WAV file as 8 kHz mono int16.

    8, 16, 24 and 32-bit PCM and 32/64-bit float are accepted; the first channel is
    kept; other rates are resampled with a polyphase filter.  Raises
    :class:`AudioFileError` naming the file when it is missing, not a WAV, or empty.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():
            # Unknown chunks (LIST, cue) are harmless: scipy warns and skips them.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(p)
    except FileNotFoundError as exc:
        raise AudioFileError(f"{p}: no such file") from exc
    except (ValueError, OSError, EOFError, struct.error, wave.Error) as exc:
        raise AudioFileError(f"{p}: not a readable WAV file ({exc})") from exc
    if data.ndim > 1:
        data = data[:, 0]
    if data.size == 0:
        raise AudioFileError(f"{p}: WAV file has no samples")
    x = _to_float(data)
    if rate != TARGET_RATE:
        if rate <= 0:
            raise AudioFileError(f"{p}: bad sample rate {rate}")
        g = math.gcd(int(rate), TARGET_RATE)
        x = resample_poly(x, TARGET_RATE // g, int(rate) // g)
    out: npt.NDArray[np.int16] = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return out
