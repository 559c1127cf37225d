"""Offline small-vocabulary recogniser: MFCC + DTW against synthesised templates.

For a menu grammar the recogniser renders every phrase with espeak-ng in the
call's language (several voices and speeds per phrase; renderings cached on
disk by :class:`~telephony.speech.tts.EspeakTts`, features in memory), then
matches the caller's utterance against all templates at once with
:func:`~telephony.speech.dtw.dtw_distances`.  A phrase scores the mean of its two
closest templates.  The confidence combines the margin between the best and
second-best phrase with the absolute distance; an utterance too far from every
template, or too close to call, is a no-match.

Digit strings are split on pauses; each stretch of speech is decoded by one-pass
DTW over digit templates, so "four eight two one" works with or without pauses.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from telephony.speech.base import Recognizer, SpeechAlternative, SpeechResult, pcm16_to_float
from telephony.speech.dtw import dtw_distances, one_pass_dtw
from telephony.speech.errors import SpeechConfigError
from telephony.speech.features import (
    EndpointConfig,
    MfccConfig,
    cepstral_mean_normalise,
    deltas,
    frame_log_energy,
    mfcc,
    resample,
    speech_mask,
    speech_segments,
)
from telephony.speech.tts import EspeakTts, TtsEngine

FloatArray = npt.NDArray[np.float64]

__all__ = ["TemplateConfig", "TemplateRecognizer", "feature_matrix", "utterance_features"]

_DIGIT_NAMES = "0123456789"
_DEFAULT_MFCC = MfccConfig()
_DEFAULT_ENDPOINT = EndpointConfig()


@dataclass(frozen=True, slots=True)
class TemplateConfig:
    """Configuration of the template recogniser."""

    variants: tuple[str, ...] = ("", "+f2", "+m2")
    """espeak-ng voice variants used as templates ("" is the language's default voice)."""
    rates_wpm: tuple[int, ...] = (140, 180)
    """Speaking rates of the templates."""
    pitches: tuple[int | None, ...] = (35, 65)
    """espeak-ng pitches (0..99) of the templates; None is the voice's own."""
    digit_variants: tuple[str, ...] = ("", "+f2", "+m2")
    digit_rates_wpm: tuple[int, ...] = (150, 190)
    mfcc: MfccConfig = field(default_factory=MfccConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    band: float = 0.35
    """DTW band half-width as a fraction of the template length."""
    max_distance: float = 10.0
    """Best phrase distance above which the utterance is a no-match."""
    distance_span: float = 3.0
    """Confidence fades linearly to 0 over this span below ``max_distance``."""
    min_margin: float = 0.09
    """Relative margin (second - best) / best below which the result is a no-match."""
    confidence_scale: float = 0.15
    """Relative margin giving a margin factor of ~0.63 (1 - exp(-margin / scale))."""
    min_confidence: float = 0.19
    """Results below this confidence become no-matches (tuned on the fixture set)."""
    digit_word_penalty: float = 40.0
    """One-pass DTW insertion penalty (accumulated-distance units)."""
    max_digit_distance: float = 10.0
    """Mean per-frame distance of a digit above which the digit string is a no-match."""


def utterance_features(
    signal: FloatArray,
    sample_rate: int,
    mfcc_config: MfccConfig = _DEFAULT_MFCC,
    endpoint: EndpointConfig = _DEFAULT_ENDPOINT,
) -> tuple[FloatArray, FloatArray]:
    """Endpointed, mean-normalised features and the frame energies (dB).

    Features are c1..c12 plus the deltas of c0..c12, for the frames between the
    first and last speech segment.  Returns empty arrays for silence.
    """
    if sample_rate != 8000:
        # The filterbank stops at 3400 Hz anyway; one rate keeps templates comparable.
        signal = resample(signal, sample_rate, 8000)
        sample_rate = 8000
    ceps = mfcc(signal, sample_rate, mfcc_config)
    energy = frame_log_energy(signal, sample_rate, mfcc_config)[: ceps.shape[0]]
    segments = speech_segments(energy, endpoint)
    if not segments:
        return np.zeros((0, 2 * mfcc_config.n_ceps - 1)), np.zeros(0)
    lo, hi = segments[0][0], segments[-1][1]
    ceps, energy = ceps[lo:hi], energy[lo:hi]
    return feature_matrix(ceps, speech_mask(energy, endpoint)), energy


def feature_matrix(ceps: FloatArray, mask: npt.NDArray[np.bool_]) -> FloatArray:
    """c1..c12 and deltas of c0..c12, mean normalised over the ``mask`` frames."""
    feats = np.hstack([ceps[:, 1:], deltas(ceps)])
    return cepstral_mean_normalise(feats, mask)


class TemplateRecognizer(Recognizer):
    """Grammar recogniser matching utterances to espeak-ng renderings with DTW."""

    name = "template"

    def __init__(self, config: TemplateConfig | None = None, tts: TtsEngine | None = None) -> None:
        self._config = config or TemplateConfig()
        self._tts = tts if tts is not None else EspeakTts()
        self._templates: dict[tuple[str, str], list[FloatArray]] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> TemplateConfig:
        """The configuration in use."""
        return self._config

    def templates_for(
        self, language: str, phrase: str, *, digits: bool = False
    ) -> list[FloatArray]:
        """Feature templates of ``phrase`` in ``language`` (rendered once, then cached)."""
        key = (language, ("#" if digits else "") + phrase)
        with self._lock:
            cached = self._templates.get(key)
        if cached is not None:
            return cached
        cfg = self._config
        variants = cfg.digit_variants if digits else cfg.variants
        rates = cfg.digit_rates_wpm if digits else cfg.rates_wpm
        out: list[FloatArray] = []
        for variant, rate, pitch in itertools.product(variants, rates, cfg.pitches):
            pcm = self._tts.synthesize(
                phrase, language=language, voice=variant or None, rate_wpm=rate, pitch=pitch
            )
            feats, _ = utterance_features(
                pcm.astype(np.float64) / 32768.0, self._tts.sample_rate, cfg.mfcc, cfg.endpoint
            )
            if feats.shape[0]:
                out.append(feats)
        if not out:
            raise SpeechConfigError(f"espeak-ng rendered no speech for {phrase!r} ({language})")
        with self._lock:
            self._templates[key] = out
        return out

    def warm_up(self, language: str, phrases: Sequence[str] = (), *, digits: bool = False) -> None:
        """Render and cache templates ahead of the first call."""
        for phrase in phrases:
            self.templates_for(language, phrase)
        if digits:
            for d in _DIGIT_NAMES:
                self.templates_for(language, d, digits=True)

    def phrase_distances(
        self, audio: bytes, *, sample_rate: int = 8000, language: str, phrases: Sequence[str]
    ) -> dict[str, float]:
        """Distance of the utterance to each phrase (mean of its two closest templates)."""
        feats, _ = utterance_features(
            pcm16_to_float(audio), sample_rate, self._config.mfcc, self._config.endpoint
        )
        if feats.shape[0] == 0:
            return {p: float("inf") for p in phrases}
        all_templates: list[FloatArray] = []
        owners: list[int] = []
        for idx, phrase in enumerate(phrases):
            tpls = self.templates_for(language, phrase)
            all_templates.extend(tpls)
            owners.extend([idx] * len(tpls))
        dists = dtw_distances(feats, all_templates, band=self._config.band)
        owner = np.asarray(owners)
        out: dict[str, float] = {}
        for idx, phrase in enumerate(phrases):
            mine = np.sort(dists[owner == idx])
            out[phrase] = float(np.mean(mine[:2]))
        return out

    def recognize(
        self,
        audio: bytes,
        *,
        sample_rate: int = 8000,
        language: str,
        phrases: Sequence[str] | None = None,
    ) -> SpeechResult:
        """Best grammar phrase with a confidence, or a no-match; see :class:`Recognizer`."""
        if not phrases:
            raise SpeechConfigError("the template recogniser needs a grammar (phrases)")
        unique = list(dict.fromkeys(phrases))
        dist = self.phrase_distances(
            audio, sample_rate=sample_rate, language=language, phrases=unique
        )
        ranked = sorted(unique, key=lambda p: dist[p])
        confidences = [self._confidence(dist, ranked, i) for i in range(len(ranked))]
        alternatives = tuple(
            SpeechAlternative(p, c) for p, c in zip(ranked, confidences) if np.isfinite(dist[p])
        )
        best = ranked[0]
        conf = confidences[0]
        cfg = self._config
        if (
            not np.isfinite(dist[best])
            or dist[best] > cfg.max_distance
            or conf < cfg.min_confidence
        ):
            return SpeechResult.no_match(self.name, alternatives)
        return SpeechResult(
            text=best, confidence=conf, phrase=best, alternatives=alternatives[1:], engine=self.name
        )

    def _confidence(self, dist: dict[str, float], ranked: list[str], i: int) -> float:
        cfg = self._config
        d = dist[ranked[i]]
        if not np.isfinite(d):
            return 0.0
        if len(ranked) == 1:
            rival = cfg.max_distance
        elif i == 0:
            rival = dist[ranked[1]]
        else:
            rival = dist[ranked[0]]
        margin = (min(rival, 2 * cfg.max_distance) - d) / d
        if margin <= cfg.min_margin:
            return 0.0
        margin_conf = 1.0 - np.exp(-margin / cfg.confidence_scale)
        # Fade out as the absolute distance nears the rejection threshold.
        closeness = float(np.clip((cfg.max_distance - d) / cfg.distance_span, 0.0, 1.0))
        return float(np.clip(margin_conf * closeness, 0.0, 1.0))

    def recognize_digits(
        self,
        audio: bytes,
        *,
        sample_rate: int = 8000,
        language: str,
        min_digits: int = 1,
        max_digits: int | None = None,
    ) -> SpeechResult:
        """Spoken digit string -> ``"4821"``; see :class:`Recognizer`."""
        cfg = self._config
        signal = pcm16_to_float(audio)
        if sample_rate != 8000:
            signal = resample(signal, sample_rate, 8000)
        ceps = mfcc(signal, 8000, cfg.mfcc)
        energy = frame_log_energy(signal, 8000, cfg.mfcc)[: ceps.shape[0]]
        segments = speech_segments(energy, cfg.endpoint)
        if not segments:
            return SpeechResult.no_match(self.name)
        mask = speech_mask(energy, cfg.endpoint)
        templates: list[FloatArray] = []
        labels: list[str] = []
        for d in _DIGIT_NAMES:
            tpls = self.templates_for(language, d, digits=True)
            templates.extend(tpls)
            labels.extend([d] * len(tpls))
        owner = np.array([_DIGIT_NAMES.index(label) for label in labels])
        digits: list[str] = []
        per_frame: list[float] = []
        for lo, hi in segments:
            # Normalise each stretch on its own, as each template was.
            feats = feature_matrix(ceps[lo:hi], mask[lo:hi])
            hits = one_pass_dtw(feats, templates, word_penalty=cfg.digit_word_penalty)
            if len(hits) == 1:
                # One digit in this stretch: whole-word DTW scores it better.
                dists = dtw_distances(feats, templates, band=cfg.band)
                per_digit = [
                    float(np.mean(np.sort(dists[owner == k])[:2])) for k in range(len(_DIGIT_NAMES))
                ]
                best = int(np.argmin(per_digit))
                digits.append(_DIGIT_NAMES[best])
                per_frame.append(per_digit[best])
                continue
            for hit in hits:
                digits.append(labels[hit.template])
                per_frame.append(hit.cost / max(hit.stop - hit.start, 1))
        text = "".join(digits)
        worst = max(per_frame) if per_frame else float("inf")
        if worst > cfg.max_digit_distance:  # also the case when nothing was found
            return SpeechResult.no_match(self.name)
        conf = float(
            np.clip((cfg.max_digit_distance - worst) / (0.5 * cfg.max_digit_distance), 0, 1)
        )
        return SpeechResult.digit_string(text, conf, self.name, min_digits=min_digits,
                                         max_digits=max_digits)
