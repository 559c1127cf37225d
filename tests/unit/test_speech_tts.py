"""espeak-ng TTS: output format, caches, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from telephony.errors import DialtoneError
from telephony.speech.errors import SpeechConfigError, TtsEngineMissing, TtsError
from telephony.speech.tts import (
    EspeakTts,
    TtsConfig,
    default_cache_dir,
    espeak_voice_for,
    parse_wav_stream,
)


def test_synthesize_8k_int16_and_caches(tmp_path: Path) -> None:
    tts = EspeakTts(TtsConfig(cache_dir=tmp_path))
    a = tts.synthesize("soporte técnico", language="es")
    assert a.dtype == np.int16 and a.ndim == 1 and tts.sample_rate == 8000
    assert 0.5 < a.size / 8000 < 3.0 and np.abs(a).max() > 1000
    assert tts.renders == 1
    again = tts.synthesize("soporte técnico", language="es")
    assert again is a and tts.renders == 1  # memory LRU
    assert len(list(tmp_path.rglob("*.npy"))) == 1
    fresh = EspeakTts(TtsConfig(cache_dir=tmp_path))
    from_disk = fresh.synthesize("soporte técnico", language="es")
    assert fresh.renders == 0 and np.array_equal(from_disk, a)  # disk cache, no espeak run
    slower = fresh.synthesize("soporte técnico", language="es", rate_wpm=100)
    assert fresh.renders == 1 and slower.size > a.size


def test_memory_only_and_lru_bound(tmp_path: Path) -> None:
    tts = EspeakTts(TtsConfig(cache_dir=tmp_path, disk_cache=False, memory_items=1))
    tts.synthesize("oui", language="fr")
    tts.synthesize("non", language="fr")
    tts.synthesize("oui", language="fr")
    assert tts.renders == 3 and not list(tmp_path.iterdir())


def test_voice_mapping_and_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert espeak_voice_for("en") == "en-us"
    assert espeak_voice_for("fr", "+f3") == "fr-fr+f3"
    assert espeak_voice_for("es", "es-419") == "es-419"
    monkeypatch.setenv("DIALTONE_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "tts"


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(TtsEngineMissing) as exc:
        EspeakTts(TtsConfig(binary="no-such-espeak-binary"))
    assert isinstance(exc.value, DialtoneError) and "apt-get install espeak-ng" in str(exc.value)
    tts = EspeakTts(TtsConfig(cache_dir=tmp_path))
    with pytest.raises(TtsError):
        tts.synthesize("hello", language="xx-nonexistent")
    with pytest.raises(SpeechConfigError):
        tts.synthesize("  ", language="en")


def test_parse_wav_stream_streaming_sizes() -> None:
    samples = np.arange(-5, 5, dtype="<i2")
    header = (
        b"RIFF"
        + (0x7FFFFFFF).to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + (22050).to_bytes(4, "little")
        + (44100).to_bytes(4, "little")
        + (2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data"
        + (0x7FFFFFFF).to_bytes(4, "little")
    )
    out, rate = parse_wav_stream(header + samples.tobytes())
    assert rate == 22050 and out.tolist() == samples.tolist()
    with pytest.raises(TtsError):
        parse_wav_stream(b"not a wav")
