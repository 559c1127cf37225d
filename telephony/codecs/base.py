"""Codec base class and registry (in the manner of aiortc's ``codecs.get_decoder``).

A codec turns 16-bit linear PCM (``numpy.int16``) into RTP payload bytes and back.
Codecs are stateless here (G.711 is sample-by-sample), so a single instance is
shared by every call; the batched methods let the media pipeline code the frames
of hundreds of calls in one numpy operation per 20 ms tick.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from telephony.errors import CodecError

Pcm = npt.NDArray[np.int16]
"""16-bit linear PCM samples."""
Coded = npt.NDArray[np.uint8]
"""Codec octets, one per sample for G.711."""


class Codec:
    """Base class of audio codecs.

    Subclasses set ``name`` (the SDP encoding name, e.g. ``"PCMU"``),
    ``payload_type`` (static RTP payload type, RFC 3551 table 4, or -1 if dynamic)
    and ``clock_rate``, and implement the batched methods; the single-frame methods
    are derived from them.
    """

    name: ClassVar[str] = ""
    payload_type: ClassVar[int] = -1
    clock_rate: ClassVar[int] = 8000
    channels: ClassVar[int] = 1

    def encode(self, pcm: Pcm) -> bytes:
        """Encode one frame of int16 PCM (1-D) to payload bytes."""
        return self.encode_batch(np.asarray(pcm, dtype=np.int16).reshape(1, -1)).tobytes()

    def decode(self, payload: bytes) -> Pcm:
        """Decode payload bytes to a 1-D int16 array."""
        out: Pcm = self.decode_batch(np.frombuffer(payload, dtype=np.uint8).reshape(1, -1))[0]
        return out

    def encode_batch(self, pcm2d: Pcm) -> Coded:
        """Encode an ``(n_calls, n_samples)`` int16 array to ``(n_calls, n_octets)`` uint8."""
        raise NotImplementedError

    def decode_into(self, payload: bytes, out: Pcm) -> None:
        """Decode payload bytes into ``out``, which holds exactly
        ``samples_for_payload(len(payload))`` samples (the jitter buffer's ring, no copy)."""
        out[:] = self.decode(payload)

    def decode_batch(self, coded2d: Coded) -> Pcm:
        """Decode an ``(n_calls, n_octets)`` uint8 array to ``(n_calls, n_samples)`` int16."""
        raise NotImplementedError

    def samples_for_payload(self, payload_length: int) -> int:
        """Number of samples (timestamp units) a payload of this many octets carries."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.clock_rate} pt={self.payload_type}>"


class CodecRegistry:
    """Codecs by encoding name and static payload type.

    The module keeps one default registry (filled at import by the codec modules);
    it is append-only, so it is not configuration.  Tests may build their own.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, Codec] = {}
        self._by_pt: dict[int, Codec] = {}

    def register(self, cls: type[Codec]) -> type[Codec]:
        """Register ``cls`` (usable as a class decorator); returns ``cls``."""
        if not cls.name:
            raise CodecError(f"codec class {cls.__name__} has no name")
        instance = cls()
        self._by_name[cls.name.upper()] = instance
        if cls.payload_type >= 0:
            self._by_pt[cls.payload_type] = instance
        return cls

    def get(self, name: str) -> Codec:
        """The codec whose SDP encoding name is ``name`` (case-insensitive)."""
        try:
            return self._by_name[name.upper()]
        except KeyError:
            raise CodecError(f"unknown codec {name!r}") from None

    def for_payload_type(self, pt: int) -> Codec:
        """The codec with static payload type ``pt`` (RFC 3551 table 4)."""
        try:
            return self._by_pt[pt]
        except KeyError:
            raise CodecError(f"no codec for static payload type {pt}") from None

    def names(self) -> list[str]:
        """Registered encoding names."""
        return sorted(self._by_name)


_REGISTRY = CodecRegistry()


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Register a codec class in the default registry (class decorator)."""
    return _REGISTRY.register(cls)


def get_codec(name: str) -> Codec:
    """The shared codec instance for an SDP encoding name (``"PCMU"``, ``"PCMA"``)."""
    _ensure_builtin()
    return _REGISTRY.get(name)


def codec_for_payload_type(pt: int) -> Codec:
    """The shared codec instance for a static RTP payload type (0 = PCMU, 8 = PCMA)."""
    _ensure_builtin()
    return _REGISTRY.for_payload_type(pt)


def codec_names() -> list[str]:
    """Names of every registered codec."""
    _ensure_builtin()
    return _REGISTRY.names()


def _ensure_builtin() -> None:
    # Importing the module registers its codecs (decorators run once).
    from telephony.codecs import g711  # noqa: F401
