"""G.711 against an oracle written from the classic reference algorithm (segment search)."""

from __future__ import annotations

import numpy as np
import pytest

from telephony.codecs.base import codec_for_payload_type, codec_names, get_codec
from telephony.codecs.g711 import PcmaCodec, PcmuCodec
from telephony.errors import CodecError

# -- oracle: the classic per-sample algorithm with segment end points -------------------------
# mu-law works on 14-bit magnitudes with bias 33, A-law on 13-bit; negative inputs use the
# one's complement as in ITU-T G.191 (so -1 is the "negative zero").
SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _search(value: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if value <= end:
            return i
    return len(table)


def oracle_ulaw(sample: int) -> int:
    if sample < 0:
        mag, mask = (~sample) >> 2, 0x7F
    else:
        mag, mask = sample >> 2, 0xFF
    mag = min(mag, 8158) + 33
    seg = _search(mag, SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((mag >> (seg + 1)) & 0xF)) ^ mask


def oracle_alaw(sample: int) -> int:
    if sample >= 0:
        mag, mask = sample >> 3, 0xD5
    else:
        mag, mask = (~sample) >> 3, 0x55
    seg = _search(mag, SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (mag >> 1) & 0xF if seg < 2 else (mag >> seg) & 0xF
    return aval ^ mask


def oracle_ulaw_decode(code: int) -> int:
    u = ~code & 0xFF
    t = ((u & 0xF) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return 0x84 - t if u & 0x80 else t - 0x84


def oracle_alaw_decode(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0xF) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


ALL = np.arange(-32768, 32768, dtype=np.int16)


@pytest.mark.parametrize(
    ("codec", "oracle"), [(PcmuCodec(), oracle_ulaw), (PcmaCodec(), oracle_alaw)]
)
def test_encode_matches_oracle_for_all_65536_inputs(codec, oracle) -> None:
    got = np.frombuffer(codec.encode(ALL), dtype=np.uint8)
    want = np.array([oracle(int(x)) for x in ALL], dtype=np.uint8)
    mismatches = np.nonzero(got != want)[0]
    assert mismatches.size == 0, f"first mismatch at sample {int(ALL[mismatches[0]])}"


@pytest.mark.parametrize(
    ("codec", "oracle"),
    [(PcmuCodec(), oracle_ulaw_decode), (PcmaCodec(), oracle_alaw_decode)],
)
def test_decode_matches_oracle_for_all_256_codes(codec, oracle) -> None:
    got = codec.decode(bytes(range(256)))
    assert got.tolist() == [oracle(c) for c in range(256)]


def test_known_values_from_g711_tables() -> None:
    u, a = PcmuCodec(), PcmaCodec()
    x = np.array([0, -1, 32767, -32768], dtype=np.int16)
    assert list(u.encode(x)) == [0xFF, 0x7F, 0x80, 0x00]
    assert list(a.encode(x)) == [0xD5, 0x55, 0xAA, 0x2A]
    assert u.decode(b"\x80\x00\xff\x7f").tolist() == [32124, -32124, 0, 0]
    assert a.decode(b"\xaa\x2a\xd5\x55").tolist() == [32256, -32256, 8, -8]


def test_decode_of_encode_is_identity_on_codes() -> None:
    # Every code's decoded value re-encodes to itself, except the zero duplicates.
    for codec in (PcmuCodec(), PcmaCodec()):
        codes = bytes(range(256))
        again = codec.encode(codec.decode(codes))
        differing = [c for c, d in zip(codes, again) if c != d]
        if codec.name == "PCMU":
            assert differing == [0x7F]  # -0 decodes to 0 which encodes as +0 (0xFF)
        else:
            assert differing == []


def test_roundtrip_error_bounds() -> None:
    x = ALL.astype(np.int32)
    mag = np.abs(x)
    u_err = np.abs(PcmuCodec().decode(PcmuCodec().encode(ALL)).astype(np.int32) - x)
    # mu-law step is 8 << segment in 16-bit units; half a step plus the 2 truncated bits.
    seg = np.clip(np.floor(np.log2((mag >> 2) + 33)).astype(int) - 5, 0, 7)
    inside = mag < 32124
    assert np.all(u_err[inside] <= (4 << seg[inside]) + 4)
    assert u_err[~inside].max() <= 32768 - 32124
    a_err = np.abs(PcmaCodec().decode(PcmaCodec().encode(ALL)).astype(np.int32) - x)
    aseg = np.clip(np.floor(np.log2(np.maximum(mag >> 4, 1))).astype(int) - 3, 0, 7)
    inside = mag < 32256
    assert np.all(a_err[inside] <= (8 << aseg[inside]) + 8)
    assert a_err[~inside].max() <= 32768 - 32256
    # relative error of a loud sample stays below 1/16 (4-bit mantissa)
    loud = mag > 1024
    assert np.all(u_err[loud] / mag[loud] < 1 / 16)
    assert np.all(a_err[loud] / mag[loud] < 1 / 16)


def test_batch_equals_per_frame() -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32767, size=(5, 160), dtype=np.int16)
    for codec in (PcmuCodec(), PcmaCodec()):
        coded = codec.encode_batch(pcm)
        assert coded.shape == (5, 160) and coded.dtype == np.uint8
        for row in range(5):
            assert coded[row].tobytes() == codec.encode(pcm[row])
        decoded = codec.decode_batch(coded)
        assert decoded.dtype == np.int16
        assert np.array_equal(decoded[2], codec.decode(coded[2].tobytes()))


def test_registry() -> None:
    assert get_codec("pcmu").payload_type == 0
    assert get_codec("PCMA").payload_type == 8
    assert codec_for_payload_type(8).name == "PCMA"
    assert {"PCMU", "PCMA"} <= set(codec_names())
    with pytest.raises(CodecError):
        get_codec("opus-not-here")
    with pytest.raises(CodecError):
        codec_for_payload_type(96)
    with pytest.raises(CodecError):
        PcmuCodec().encode(np.zeros(4, dtype=np.float32))  # type: ignore[arg-type]
