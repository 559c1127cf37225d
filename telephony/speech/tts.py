"""Text-to-speech: the :class:`TtsEngine` interface and the espeak-ng engine.

:class:`EspeakTts` runs the ``espeak-ng`` program (22050 Hz WAV on stdout),
resamples to the telephone rate with ``scipy.signal.resample_poly`` and caches
the result twice: in an in-memory LRU and on disk (``.npy`` files keyed by a hash
of text, voice, rate, pitch and the espeak-ng version), so a prompt or a
recogniser template is rendered once per machine.
"""

from __future__ import annotations

import abc
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from telephony.speech.errors import SpeechConfigError, TtsEngineMissing, TtsError
from telephony.speech.features import resample

__all__ = [
    "ESPEAK_LANGUAGE_VOICES",
    "EspeakTts",
    "TtsConfig",
    "TtsEngine",
    "default_cache_dir",
    "espeak_voice_for",
    "parse_wav_stream",
]

Int16Array = npt.NDArray[np.int16]

#: ISO 639-1 code -> espeak-ng voice.
ESPEAK_LANGUAGE_VOICES: Mapping[str, str] = MappingProxyType(
    {
        "en": "en-us",
        "es": "es",
        "fr": "fr-fr",
        "it": "it",
        "ru": "ru",
        "de": "de",
        "pt": "pt",
        "nl": "nl",
    }
)

_INSTALL_HINT = (
    "install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng; "
    "macOS: brew install espeak-ng) or pass its path as TtsConfig(binary=...)"
)
# Bump when the cached representation changes.
_CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$DIALTONE_CACHE_DIR/tts`` when set, else ``~/.cache/dialtone/tts``."""
    base = os.environ.get("DIALTONE_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "dialtone"
    return root / "tts"


def espeak_voice_for(language: str, voice: str | None = None) -> str:
    """The espeak-ng voice for ``language`` (``"en"`` -> ``"en-us"``).

    ``voice`` overrides; a voice that starts with ``+`` is a variant appended to
    the language's voice (``"+f3"`` -> ``"en-us+f3"``).  Tags espeak knows
    directly (``"en-gb"``) pass through.
    """
    base = ESPEAK_LANGUAGE_VOICES.get(language.lower(), language.lower())
    if voice is None:
        return base
    if voice.startswith("+"):
        return base + voice
    return voice


def parse_wav_stream(data: bytes) -> tuple[npt.NDArray[np.int16], int]:
    """Samples and rate of a 16-bit mono PCM WAV as espeak-ng writes it to stdout.

    Streaming writers put 0x7FFFFFFF in the RIFF and data sizes, so the data
    chunk runs to the end of the bytes whatever its header says.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TtsError("espeak-ng output is not a WAV stream")
    pos, rate, bits, channels = 12, 0, 0, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            _fmt, channels, rate, _brate, _align, bits = struct.unpack_from("<HHIIHH", data, body)
        elif chunk_id == b"data":
            if rate == 0 or bits != 16 or channels != 1:
                raise TtsError(f"unsupported WAV format: {rate} Hz, {bits} bits, {channels} ch")
            end = min(len(data), body + size)
            end -= (end - body) % 2
            return np.frombuffer(data[body:end], dtype="<i2").astype(np.int16), rate
        pos = body + size + (size & 1)
    raise TtsError("espeak-ng WAV output has no data chunk")


@dataclass(frozen=True, slots=True)
class TtsConfig:
    """Configuration of a TTS engine."""

    cache_dir: Path | None = None
    """On-disk cache directory; ``None`` means :func:`default_cache_dir`."""
    disk_cache: bool = True
    """Set False to keep only the in-memory cache."""
    memory_items: int = 512
    """Renderings kept in the in-memory LRU."""
    sample_rate: int = 8000
    """Output sample rate."""
    binary: str = "espeak-ng"
    """The espeak-ng program (name on PATH or path)."""
    default_rate_wpm: int = 165
    timeout_s: float = 30.0


class TtsEngine(abc.ABC):
    """A text-to-speech engine producing 16-bit samples at the configured rate."""

    @abc.abstractmethod
    def synthesize(
        self,
        text: str,
        *,
        language: str,
        voice: str | None = None,
        rate_wpm: int | None = None,
        pitch: int | None = None,
    ) -> Int16Array:
        """Render ``text`` in ``language``; returns int16 samples (mono)."""

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Rate of the samples :meth:`synthesize` returns."""


class EspeakTts(TtsEngine):
    """espeak-ng TTS with an in-memory LRU and an on-disk cache.

    ``renders`` counts espeak-ng synthesis runs (cache misses), which tests and
    benchmarks use to check the cache.
    """

    def __init__(self, config: TtsConfig = TtsConfig()) -> None:
        path = shutil.which(config.binary)
        if path is None:
            raise TtsEngineMissing("espeak-ng", _INSTALL_HINT)
        self._config = config
        self._binary = path
        self._cache_dir = (config.cache_dir or default_cache_dir()) if config.disk_cache else None
        self._memory: OrderedDict[str, Int16Array] = OrderedDict()
        self._lock = threading.Lock()
        self._version: str | None = None
        self.renders = 0

    @property
    def sample_rate(self) -> int:
        return self._config.sample_rate

    @property
    def cache_dir(self) -> Path | None:
        """Where renderings are cached on disk (None when the disk cache is off)."""
        return self._cache_dir

    def version(self) -> str:
        """The espeak-ng version string (part of every cache key)."""
        if self._version is None:
            out = self._run([self._binary, "--version"], b"")
            self._version = out.decode("utf-8", "replace").split("Data at")[0].strip()
        return self._version

    def synthesize(
        self,
        text: str,
        *,
        language: str,
        voice: str | None = None,
        rate_wpm: int | None = None,
        pitch: int | None = None,
    ) -> Int16Array:
        """Render ``text``; see :class:`TtsEngine`.  ``pitch`` is espeak's 0..99."""
        if not text.strip():
            raise SpeechConfigError("cannot synthesize empty text")
        espeak_voice = espeak_voice_for(language, voice)
        rate = rate_wpm or self._config.default_rate_wpm
        key = self._key(text, espeak_voice, rate, pitch)
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
                return hit
        samples = self._load(key)
        if samples is None:
            samples = self._render(text, espeak_voice, rate, pitch)
            self._store(key, samples)
        samples.setflags(write=False)
        with self._lock:
            self._memory[key] = samples
            while len(self._memory) > self._config.memory_items:
                self._memory.popitem(last=False)
        return samples

    # -- internals ----------------------------------------------------------------------

    def _key(self, text: str, voice: str, rate: int, pitch: int | None) -> str:
        blob = json.dumps(
            [text, voice, rate, pitch, self.version(), self._config.sample_rate, _CACHE_FORMAT],
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path | None:
        return None if self._cache_dir is None else self._cache_dir / key[:2] / f"{key}.npy"

    def _load(self, key: str) -> Int16Array | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a corrupt entry is re-rendered and overwritten
        if loaded.dtype != np.int16 or loaded.ndim != 1:
            return None
        return np.asarray(loaded, dtype=np.int16)

    def _store(self, key: str, samples: Int16Array) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, samples, allow_pickle=False)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)  # atomic: concurrent renderers never see half a file

    def _render(self, text: str, voice: str, rate: int, pitch: int | None) -> Int16Array:
        cmd = [self._binary, "-b", "1", "-v", voice, "-s", str(rate), "--stdout", "--stdin"]
        if pitch is not None:
            cmd[1:1] = ["-p", str(pitch)]
        out = self._run(cmd, text.encode("utf-8"))
        raw, rate_hz = parse_wav_stream(out)
        with self._lock:
            self.renders += 1
        if raw.size == 0:
            raise TtsError(f"espeak-ng produced no audio for {text!r} (voice {voice})")
        resampled = resample(raw.astype(np.float64), rate_hz, self._config.sample_rate)
        return np.clip(np.round(resampled), -32768, 32767).astype(np.int16)

    def _run(self, cmd: list[str], stdin: bytes) -> bytes:
        try:
            proc = subprocess.run(
                cmd, input=stdin, capture_output=True, timeout=self._config.timeout_s, check=False
            )
        except FileNotFoundError as exc:
            raise TtsEngineMissing("espeak-ng", _INSTALL_HINT) from exc
        except subprocess.TimeoutExpired as exc:
            raise TtsError(f"espeak-ng timed out after {self._config.timeout_s} s") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise TtsError(f"espeak-ng failed ({proc.returncode}): {err}")
        return proc.stdout
