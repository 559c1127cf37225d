"""G.711 mu-law (PCMU, payload type 0) and A-law (PCMA, payload type 8) by lookup tables.

Bit-exact with the ITU-T G.191 software tools' ``g711.c`` (the ITU reference
implementation of G.711): negative samples are mapped with the one's complement
(``~x``), so -1 encodes to the "negative zero" codes (0x7F for mu-law, 0x55 for
A-law).  Both directions are a single numpy fancy-index per batch:

* encode: a 65536-entry ``uint8`` table indexed by the int16 sample viewed as uint16;
* decode: a 256-entry ``int16`` table indexed by the code.

No ``audioop`` (removed in Python 3.13).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from telephony.codecs.base import Codec, Coded, Pcm, register_codec
from telephony.errors import CodecError

_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)


def _bit_length(v: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Vectorised ``int.bit_length`` (0 for 0) via the binary exponent of frexp."""
    _, exp = np.frexp(v.astype(np.float64))
    return exp.astype(np.int32)


def _build_ulaw_encode() -> Coded:
    # G.191 ulaw_compress: 14-bit magnitude, bias 33, segment = position of the leading one.
    x = _ALL_INT16
    absno = np.where(x < 0, (~x) >> 2, x >> 2) + 33
    absno = np.minimum(absno, 0x1FFF)
    segno = np.maximum(1, _bit_length(absno) - 5)
    high = 8 - segno
    low = 15 - ((absno >> segno) & 0xF)
    code = (high << 4) | low
    code = np.where(x >= 0, code | 0x80, code)
    table = np.empty(65536, dtype=np.uint8)
    table[x.astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _build_alaw_encode() -> Coded:
    # G.191 alaw_compress: 12-bit magnitude (13-bit signed), segments 0 and 1 share one step.
    x = _ALL_INT16
    ix = np.where(x < 0, ~x, x) >> 4
    iexp = np.maximum(0, _bit_length(ix) - 4)
    mant = np.where(iexp > 0, (ix >> np.maximum(iexp - 1, 0)) - 16, ix)
    code = mant + (iexp << 4)
    code = np.where(x >= 0, code | 0x80, code) ^ 0x55
    table = np.empty(65536, dtype=np.uint8)
    table[x.astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _build_ulaw_decode() -> Pcm:
    # G.191 ulaw_expand: value = sign * ((0x80 << exp) + step * mant + step / 2 - 132).
    code = np.arange(256, dtype=np.int32)
    sign = np.where(code < 0x80, -1, 1)
    inv = ~code
    exponent = (inv >> 4) & 7
    mantissa = inv & 0xF
    step = 4 << (exponent + 1)
    value = sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)
    out: Pcm = value.astype(np.int16)
    return out


def _build_alaw_decode() -> Pcm:
    # G.191 alaw_expand: mantissa with leading one and half step, shifted by exponent - 1.
    code = np.arange(256, dtype=np.int32)
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0xF
    mant = np.where(iexp > 0, mant + 16, mant)
    mant = (mant << 4) + 8
    mant = np.where(iexp > 1, mant << np.maximum(iexp - 1, 0), mant)
    value = np.where(code > 127, mant, -mant)
    return value.astype(np.int16)


ULAW_ENCODE_TABLE: Coded = _build_ulaw_encode()
"""mu-law code for every int16 sample, indexed by ``sample.view(uint16)`` (read-only)."""
ALAW_ENCODE_TABLE: Coded = _build_alaw_encode()
"""A-law code for every int16 sample, indexed by ``sample.view(uint16)`` (read-only)."""
ULAW_DECODE_TABLE: Pcm = _build_ulaw_decode()
"""Linear value of every mu-law code (read-only)."""
ALAW_DECODE_TABLE: Pcm = _build_alaw_decode()
"""Linear value of every A-law code (read-only)."""
for _t in (ULAW_ENCODE_TABLE, ALAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_DECODE_TABLE):
    _t.setflags(write=False)


class _G711(Codec):
    """Shared table-driven implementation; subclasses provide the tables."""

    _enc: ClassVar[Coded]
    _dec: ClassVar[Pcm]

    def encode(self, pcm: Pcm) -> bytes:
        """Encode int16 PCM (any shape) to one octet per sample."""
        if pcm.dtype != np.int16:
            raise CodecError(f"{self.name} encodes int16 PCM, got {pcm.dtype}")
        return self._enc[pcm.view(np.uint16)].tobytes()

    def decode(self, payload: bytes) -> Pcm:
        """Decode octets to int16 PCM, one sample per octet."""
        return self._dec[np.frombuffer(payload, dtype=np.uint8)]

    def decode_into(self, payload: bytes, out: Pcm) -> None:
        """Decode octets into ``out`` (``len(payload)`` int16 samples) without a temporary."""
        # mode="clip" never clips (a uint8 code always indexes the 256-entry table) but,
        # unlike the default "raise", lets numpy write to ``out`` directly.
        self._dec.take(np.frombuffer(payload, dtype=np.uint8), out=out, mode="clip")

    def encode_batch(self, pcm2d: Pcm) -> Coded:
        """Encode ``(n_calls, n_samples)`` int16 to ``(n_calls, n_samples)`` uint8."""
        if pcm2d.dtype != np.int16:
            raise CodecError(f"{self.name} encodes int16 PCM, got {pcm2d.dtype}")
        out: Coded = self._enc[pcm2d.view(np.uint16)]
        return out

    def decode_batch(self, coded2d: Coded) -> Pcm:
        """Decode ``(n_calls, n_octets)`` uint8 to ``(n_calls, n_octets)`` int16."""
        if coded2d.dtype != np.uint8:
            raise CodecError(f"{self.name} decodes uint8 octets, got {coded2d.dtype}")
        out: Pcm = self._dec[coded2d]
        return out

    def samples_for_payload(self, payload_length: int) -> int:
        """G.711 carries one sample per octet."""
        return payload_length


@register_codec
class PcmuCodec(_G711):
    """G.711 mu-law, RTP/AVP static payload type 0 (RFC 3551 4.5.14)."""

    name = "PCMU"
    payload_type = 0
    clock_rate = 8000
    _enc = ULAW_ENCODE_TABLE
    _dec = ULAW_DECODE_TABLE


@register_codec
class PcmaCodec(_G711):
    """G.711 A-law, RTP/AVP static payload type 8 (RFC 3551 4.5.14)."""

    name = "PCMA"
    payload_type = 8
    clock_rate = 8000
    _enc = ALAW_ENCODE_TABLE
    _dec = ALAW_DECODE_TABLE


ULAW_SILENCE = 0xFF
"""mu-law code of a zero sample."""
ALAW_SILENCE = 0xD5
"""A-law code of a zero sample."""
