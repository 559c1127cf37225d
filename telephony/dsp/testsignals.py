"""Synthetic test signals shared by the DSP tests and benchmarks.

DTMF pairs as ITU-T Q.24 describes them (level in dBm0 per tone, twist, frequency
deviation) and the G.711 round trip a signal takes through a telephone line.  Not used by
the call path: these build the inputs that the detectors in this package are measured on.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from telephony.codecs.g711 import (
    ALAW_DECODE_TABLE,
    ALAW_ENCODE_TABLE,
    ULAW_DECODE_TABLE,
    ULAW_ENCODE_TABLE,
)
from telephony.dsp.dtmf import COL_FREQS, KEYS, ROW_FREQS

SAMPLE_RATE = 8000


def g711_round_trip(x: npt.ArrayLike, law: str = "ulaw") -> npt.NDArray[np.int16]:
    """``x`` rounded and clipped to int16, encoded with G.711 ``law`` ("ulaw" or "alaw")
    and decoded again: the samples a detector sees after a G.711 line."""
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)
    if law == "ulaw":
        decoded: npt.NDArray[np.int16] = ULAW_DECODE_TABLE[ULAW_ENCODE_TABLE[pcm.view(np.uint16)]]
    else:
        decoded = ALAW_DECODE_TABLE[ALAW_ENCODE_TABLE[pcm.view(np.uint16)]]
    return decoded


def dtmf_tone(key: str, ms: float, *, level: float = -10.0, dev: float = 0.0,
              twist: float = 0.0,
              phases: tuple[float, float] | npt.NDArray[np.float64] = (0.3, 1.1),
              ) -> npt.NDArray[np.float64]:
    """The DTMF pair for ``key`` lasting ``ms`` milliseconds at 8 kHz (float samples).

    ``level`` is dBm0 per tone (0 dBm0 = 3.14 dB below a full-scale sine, ITU-T G.711),
    ``twist`` dB = row level - column level (split evenly between the two tones), ``dev`` a
    relative frequency deviation applied to both tones, ``phases`` the (row, column) start
    phases in radians.
    """
    i = KEYS.index(key)
    n = round(ms * SAMPLE_RATE / 1000)
    t = np.arange(n) / SAMPLE_RATE
    a = 32768 * 10 ** ((level - 3.14) / 20)
    row = a * 10 ** (twist / 40) * np.sin(2 * np.pi * ROW_FREQS[i // 4] * (1 + dev) * t
                                          + phases[0])
    col = a * 10 ** (-twist / 40) * np.sin(2 * np.pi * COL_FREQS[i % 4] * (1 + dev) * t
                                           + phases[1])
    out: npt.NDArray[np.float64] = row + col
    return out
