"""Voice verification (voice biometrics): interface, stores and two engines.

* :class:`VoiceVerifier` is the interface flows use: ``enroll`` (several
  utterances per speaker), ``verify`` and ``is_enrolled``.
* :class:`ScriptedVerifier` returns scripted outcomes (accept, reject, error)
  per speaker or per call, for flow tests.
* :class:`MfccStatsVerifier` is a real baseline: a speaker model is a
  full-covariance Gaussian of MFCC frames (accumulated as sufficient statistics
  over the enrollment utterances); the score is the mean per-frame
  log-likelihood ratio against a background model built from several espeak-ng
  voices (:func:`build_espeak_background`).  Proper engines (x-vectors, ...)
  plug in behind the same interface later.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from telephony.speech.base import pcm16_to_float
from telephony.speech.errors import SpeechConfigError, VoiceVerificationError
from telephony.speech.features import (
    EndpointConfig,
    MfccConfig,
    frame_log_energy,
    mfcc,
    resample,
    speech_mask,
)
from telephony.speech.tts import TtsEngine

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "EnrollmentResult",
    "GaussianModel",
    "InMemoryVoiceprintStore",
    "MfccStatsConfig",
    "MfccStatsVerifier",
    "NpzVoiceprintStore",
    "ScriptedVerifier",
    "VerificationResult",
    "VoiceVerifier",
    "Voiceprint",
    "VoiceprintStore",
    "build_espeak_background",
    "create_verifier",
    "register_verifier",
    "speaker_frames",
]


@dataclass(frozen=True, slots=True)
class EnrollmentResult:
    """Progress of a speaker's enrollment."""

    speaker_id: str
    utterances: int
    """Utterances accepted so far."""
    required: int
    """Utterances needed for a complete voiceprint."""

    @property
    def complete(self) -> bool:
        """True once enough utterances were enrolled."""
        return self.utterances >= self.required


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """A verification decision."""

    accepted: bool
    score: float
    """Engine score (higher = more likely the claimed speaker)."""
    threshold: float
    """Score at or above which the claim is accepted."""
    reason: str
    """``"match"``, ``"below_threshold"``, ``"not_enrolled"``, ``"too_short"`` or ``"scripted"``."""


class VoiceVerifier(abc.ABC):
    """Speaker verification: enroll a speaker, then verify claims."""

    @abc.abstractmethod
    def enroll(self, speaker_id: str, audio: bytes, *, sample_rate: int = 8000) -> EnrollmentResult:
        """Add one utterance (16-bit LE PCM) to ``speaker_id``'s voiceprint."""

    @abc.abstractmethod
    def verify(
        self, speaker_id: str, audio: bytes, *, sample_rate: int = 8000
    ) -> VerificationResult:
        """Decide whether ``audio`` was spoken by ``speaker_id``."""

    @abc.abstractmethod
    def is_enrolled(self, speaker_id: str) -> bool:
        """True when ``speaker_id`` has a complete voiceprint."""


# --- scripted ---------------------------------------------------------------------------------

_OUTCOMES = ("accept", "reject", "error")


class ScriptedVerifier(VoiceVerifier):
    """Verifier whose decisions are scripted, for flow tests.

    ``outcomes`` maps a speaker id to one outcome (every call) or a sequence
    consumed one per ``verify`` call (the last one repeats); other speakers get
    ``default``.  ``"error"`` raises :class:`VoiceVerificationError`.  Enrollment
    counts utterances; ``enrolled`` pre-enrolls speakers.  ``calls`` records
    ``(speaker_id, outcome)`` of each ``verify``.
    """

    def __init__(
        self,
        outcomes: Mapping[str, str | Sequence[str]] | None = None,
        *,
        default: str = "accept",
        required_utterances: int = 1,
        enrolled: Sequence[str] = (),
    ) -> None:
        self._scripts: dict[str, list[str]] = {}
        for speaker, outcome in (outcomes or {}).items():
            seq = [outcome] if isinstance(outcome, str) else list(outcome)
            for o in seq + [default]:
                if o not in _OUTCOMES:
                    raise SpeechConfigError(f"unknown scripted outcome {o!r} (use {_OUTCOMES})")
            self._scripts[speaker] = seq
        if default not in _OUTCOMES:
            raise SpeechConfigError(f"unknown scripted outcome {default!r} (use {_OUTCOMES})")
        self._default = default
        self._required = required_utterances
        self._counts: dict[str, int] = {s: required_utterances for s in enrolled}
        self.calls: list[tuple[str, str]] = []

    def enroll(self, speaker_id: str, audio: bytes, *, sample_rate: int = 8000) -> EnrollmentResult:
        self._counts[speaker_id] = self._counts.get(speaker_id, 0) + 1
        return EnrollmentResult(speaker_id, self._counts[speaker_id], self._required)

    def is_enrolled(self, speaker_id: str) -> bool:
        return self._counts.get(speaker_id, 0) >= self._required

    def verify(
        self, speaker_id: str, audio: bytes, *, sample_rate: int = 8000
    ) -> VerificationResult:
        script = self._scripts.get(speaker_id)
        if script:
            outcome = script.pop(0) if len(script) > 1 else script[0]
        else:
            outcome = self._default
        self.calls.append((speaker_id, outcome))
        if outcome == "error":
            raise VoiceVerificationError(f"scripted verification error for {speaker_id!r}")
        accepted = outcome == "accept"
        return VerificationResult(accepted, 1.0 if accepted else 0.0, 0.5, "scripted")


# --- Gaussian models and stores ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GaussianModel:
    """A full-covariance Gaussian over feature frames."""

    mean: FloatArray
    cov: FloatArray

    @classmethod
    def fit(cls, frames: FloatArray, *, floor: float = 1e-3) -> GaussianModel:
        """Maximum-likelihood fit with a diagonal floor."""
        return Voiceprint.from_frames("", frames).model(floor=floor)

    def log_likelihood(self, frames: FloatArray) -> FloatArray:
        """Per-frame log density."""
        d = self.mean.size
        chol = np.linalg.cholesky(self.cov)
        diff = np.linalg.solve(chol, (frames - self.mean).T)
        maha = np.sum(diff * diff, axis=0)
        logdet = 2.0 * np.sum(np.log(np.diag(chol)))
        return np.asarray(-0.5 * (maha + logdet + d * np.log(2 * np.pi)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Voiceprint:
    """Sufficient statistics of a speaker's enrollment frames."""

    speaker_id: str
    frames: int
    total: FloatArray
    """Sum of frames."""
    scatter: FloatArray
    """Sum of outer products of frames."""
    utterances: int = 0

    @classmethod
    def from_frames(cls, speaker_id: str, frames: FloatArray) -> Voiceprint:
        return cls(speaker_id, frames.shape[0], frames.sum(axis=0), frames.T @ frames, 1)

    def add(self, other: Voiceprint) -> Voiceprint:
        """Pool the statistics of two voiceprints."""
        return Voiceprint(
            self.speaker_id,
            self.frames + other.frames,
            self.total + other.total,
            self.scatter + other.scatter,
            self.utterances + other.utterances,
        )

    def model(self, *, floor: float = 1e-3) -> GaussianModel:
        """The Gaussian these statistics describe."""
        if self.frames < 2:
            raise VoiceVerificationError(f"voiceprint of {self.speaker_id!r} has too few frames")
        mean = self.total / self.frames
        cov = self.scatter / self.frames - np.outer(mean, mean)
        cov = cov + np.eye(mean.size) * (floor + 1e-3 * np.trace(cov) / mean.size)
        return GaussianModel(mean, cov)


class VoiceprintStore(abc.ABC):
    """Where voiceprints live (memory, files, a database later)."""

    @abc.abstractmethod
    def load(self, speaker_id: str) -> Voiceprint | None:
        """The speaker's voiceprint, or None."""

    @abc.abstractmethod
    def save(self, voiceprint: Voiceprint) -> None:
        """Store (replace) a voiceprint."""

    @abc.abstractmethod
    def delete(self, speaker_id: str) -> None:
        """Forget a speaker (no error if unknown)."""


@dataclass(slots=True)
class InMemoryVoiceprintStore(VoiceprintStore):
    """Voiceprints in a dict (tests, single-process deployments)."""

    items: dict[str, Voiceprint] = field(default_factory=dict)

    def load(self, speaker_id: str) -> Voiceprint | None:
        return self.items.get(speaker_id)

    def save(self, voiceprint: Voiceprint) -> None:
        self.items[voiceprint.speaker_id] = voiceprint

    def delete(self, speaker_id: str) -> None:
        self.items.pop(speaker_id, None)


class NpzVoiceprintStore(VoiceprintStore):
    """One ``.npz`` file per speaker in ``directory`` (named by a hash of the id)."""

    def __init__(self, directory: str | Path) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)

    def _path(self, speaker_id: str) -> Path:
        # Hashing keeps arbitrary ids (phone numbers, "../x") out of the file system.
        return self._dir / (hashlib.sha256(speaker_id.encode("utf-8")).hexdigest()[:32] + ".npz")

    def load(self, speaker_id: str) -> Voiceprint | None:
        path = self._path(speaker_id)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return Voiceprint(
                    str(data["speaker_id"]),
                    int(data["frames"]),
                    np.asarray(data["total"], dtype=np.float64),
                    np.asarray(data["scatter"], dtype=np.float64),
                    int(data["utterances"]),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise VoiceVerificationError(f"corrupt voiceprint file {path}: {exc}") from exc

    def save(self, voiceprint: Voiceprint) -> None:
        path = self._path(voiceprint.speaker_id)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            speaker_id=np.array(voiceprint.speaker_id),
            frames=np.array(voiceprint.frames),
            total=voiceprint.total,
            scatter=voiceprint.scatter,
            utterances=np.array(voiceprint.utterances),
        )
        tmp.replace(path)

    def delete(self, speaker_id: str) -> None:
        self._path(speaker_id).unlink(missing_ok=True)


# --- MFCC statistics verifier -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MfccStatsConfig:
    """Configuration of :class:`MfccStatsVerifier`."""

    threshold: float = 0.0
    """Accept when the mean log-likelihood ratio per frame is at least this (0.0 is
    near the equal-error point on espeak voices; see benchmarks/results/speech.md)."""
    required_utterances: int = 3
    min_frames: int = 30
    """Speech frames (10 ms) an utterance needs to count."""
    n_ceps: int = 13
    mfcc: MfccConfig = field(default_factory=MfccConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


def speaker_frames(
    audio: bytes, sample_rate: int, config: MfccStatsConfig = MfccStatsConfig()
) -> FloatArray:
    """Speech frames' c1..c12 (no mean normalisation: the mean carries the voice)."""
    signal = pcm16_to_float(audio)
    if sample_rate != 8000:
        signal = resample(signal, sample_rate, 8000)
    ceps = mfcc(signal, 8000, config.mfcc)
    energy = frame_log_energy(signal, 8000, config.mfcc)[: ceps.shape[0]]
    return np.asarray(ceps[speech_mask(energy, config.endpoint)][:, 1 : config.n_ceps])


def build_espeak_background(
    tts: TtsEngine,
    *,
    language: str,
    variants: Sequence[str],
    texts: Sequence[str],
    config: MfccStatsConfig = MfccStatsConfig(),
) -> GaussianModel:
    """Background model pooled over espeak-ng voice ``variants`` reading ``texts``."""
    frames = []
    for variant in variants:
        for text in texts:
            pcm = tts.synthesize(text, language=language, voice=variant or None)
            frames.append(speaker_frames(pcm.astype("<i2").tobytes(), tts.sample_rate, config))
    return GaussianModel.fit(np.concatenate(frames))


class MfccStatsVerifier(VoiceVerifier):
    """Gaussian speaker model vs background model, scored by log-likelihood ratio."""

    def __init__(
        self,
        background: GaussianModel,
        *,
        store: VoiceprintStore | None = None,
        config: MfccStatsConfig | None = None,
    ) -> None:
        self._background = background
        self._store = store if store is not None else InMemoryVoiceprintStore()
        self._config = config or MfccStatsConfig()

    def enroll(self, speaker_id: str, audio: bytes, *, sample_rate: int = 8000) -> EnrollmentResult:
        frames = speaker_frames(audio, sample_rate, self._config)
        current = self._store.load(speaker_id)
        done = 0 if current is None else current.utterances
        if frames.shape[0] < self._config.min_frames:
            return EnrollmentResult(speaker_id, done, self._config.required_utterances)
        new = Voiceprint.from_frames(speaker_id, frames)
        merged = new if current is None else current.add(new)
        self._store.save(merged)
        return EnrollmentResult(speaker_id, merged.utterances, self._config.required_utterances)

    def is_enrolled(self, speaker_id: str) -> bool:
        vp = self._store.load(speaker_id)
        return vp is not None and vp.utterances >= self._config.required_utterances

    def score(self, speaker_id: str, audio: bytes, *, sample_rate: int = 8000) -> float | None:
        """Mean per-frame log-likelihood ratio, or None (not enrolled / too short)."""
        vp = self._store.load(speaker_id)
        if vp is None or vp.utterances < self._config.required_utterances:
            return None
        frames = speaker_frames(audio, sample_rate, self._config)
        if frames.shape[0] < self._config.min_frames:
            return None
        llr = vp.model().log_likelihood(frames) - self._background.log_likelihood(frames)
        return float(np.mean(llr))

    def verify(
        self, speaker_id: str, audio: bytes, *, sample_rate: int = 8000
    ) -> VerificationResult:
        threshold = self._config.threshold
        if not self.is_enrolled(speaker_id):
            return VerificationResult(False, float("-inf"), threshold, "not_enrolled")
        score = self.score(speaker_id, audio, sample_rate=sample_rate)
        if score is None:
            return VerificationResult(False, float("-inf"), threshold, "too_short")
        accepted = score >= threshold
        return VerificationResult(
            accepted, score, threshold, "match" if accepted else "below_threshold"
        )


# --- registry ---------------------------------------------------------------------------------

VerifierFactory = Callable[..., VoiceVerifier]


@dataclass(slots=True)
class _Registry:
    factories: dict[str, VerifierFactory] = field(default_factory=dict)


_REGISTRY = _Registry({"scripted": ScriptedVerifier, "mfcc_stats": MfccStatsVerifier})


def register_verifier(name: str, factory: VerifierFactory) -> None:
    """Make a verifier available to :func:`create_verifier` under ``name``."""
    _REGISTRY.factories[name] = factory


def create_verifier(name: str, **options: object) -> VoiceVerifier:
    """Build the verifier registered as ``name``; :class:`SpeechConfigError` if unknown."""
    try:
        factory = _REGISTRY.factories[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY.factories))
        raise SpeechConfigError(f"unknown voice verifier {name!r} (known: {known})") from None
    return factory(**options)
