"""Comfort noise payload (RFC 3389, static payload type 13) and noise generation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from telephony.codecs.base import Pcm
from telephony.errors import RtpError

CN_PAYLOAD_TYPE = 13


@dataclass(frozen=True, slots=True)
class ComfortNoise:
    """An RFC 3389 CN payload: noise level and optional spectral reflection coefficients."""

    level: int
    """Noise level in -dBov, 0..127 (RFC 3389 3.1): 30 means -30 dBov."""
    coefficients: bytes = b""
    """Quantised reflection coefficients (3.2); kept for round-trips, not used to shape."""

    @classmethod
    def parse(cls, payload: bytes) -> ComfortNoise:
        """Parse a CN payload."""
        if not payload:
            raise RtpError("comfort noise payload is empty")
        if payload[0] > 127:
            raise RtpError("comfort noise level has its reserved bit set")
        return cls(payload[0], payload[1:])

    def serialize(self) -> bytes:
        """The wire octets."""
        if not 0 <= self.level <= 127:
            raise RtpError("comfort noise level out of range 0..127")
        return bytes((self.level,)) + self.coefficients

    @property
    def rms(self) -> float:
        """RMS of the noise in int16 units: 0 dBov is a full-scale square wave (RFC 3389 3.1)."""
        return float(32767.0 * 10.0 ** (-self.level / 20.0))


def comfort_noise(level: int, n_samples: int, rng: np.random.Generator) -> Pcm:
    """White Gaussian noise of ``n_samples`` at ``level`` -dBov, int16."""
    rms = 32767.0 * 10.0 ** (-level / 20.0)
    noise = rng.standard_normal(n_samples) * rms
    out: Pcm = np.clip(np.rint(noise), -32768, 32767).astype(np.int16)
    return out
