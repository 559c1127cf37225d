"""Prompt catalogues: recorded files by key per language, TTS text filling in the rest.

Recordings live at ``<flow dir>/<prompts_dir>/<lang>/<key>.wav``; text for TTS comes
from the flow's ``prompts:`` section and an optional catalogue YAML
(``{key: {lang: text}}``).  :class:`PromptRenderer` turns the engine's
:class:`~ivr_flows.actions.PromptItem` tuples into 8 kHz int16 PCM.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ivr_flows.actions import PromptItem
from ivr_flows.model import Flow
from telephony.dsp.wavio import read_wav_8k
from telephony.errors import AudioFileError

SAMPLE_RATE = 8000


@dataclass
class PromptCatalogue:
    """Which prompt keys a flow can say in which language, and how."""

    base_dir: Path
    languages: list[str]
    texts: dict[tuple[str, str], str] = field(default_factory=dict)
    """(language, key) -> text for TTS."""
    recordings: dict[tuple[str, str], Path] = field(default_factory=dict)
    """(language, key) -> recorded file."""

    @classmethod
    def for_flow(cls, flow: Flow, base_dir: Path) -> PromptCatalogue:
        """Index the flow's recordings and texts (does not read the audio)."""
        cat = cls(base_dir=base_dir, languages=list(flow.languages))
        for key, per_lang in flow.prompts.items():
            for lang, text in per_lang.items():
                cat.texts[(lang, key)] = text
        if flow.catalogue:
            extra = yaml.safe_load((base_dir / flow.catalogue).read_text(encoding="utf-8")) or {}
            for key, per_lang in extra.items():
                for lang, text in (per_lang or {}).items():
                    cat.texts.setdefault((str(lang), str(key)), str(text))
        if flow.prompts_dir:
            root = base_dir / flow.prompts_dir
            for lang in flow.languages:
                d = root / lang
                if d.is_dir():
                    for f in sorted(d.glob("*.wav")):
                        cat.recordings[(lang, f.stem)] = f
        return cat

    def has(self, key: str, language: str) -> bool:
        return (language, key) in self.recordings or (language, key) in self.texts

    def check_recordings(self) -> list[tuple[Path, str]]:
        """Every recording that is not usable audio, with the reason."""
        bad: list[tuple[Path, str]] = []
        for path in self.recordings.values():
            try:
                read_wav_8k(path)
            except AudioFileError as e:
                bad.append((path, str(e)))
        return bad

    def missing_recordings(self, keys: Iterable[str]) -> dict[str, list[str]]:
        """Per language, the keys without a recording (TTS will say them, if it has text)."""
        keys = sorted(set(keys))
        return {lang: [k for k in keys if (lang, k) not in self.recordings]
                for lang in self.languages}


class Synthesizer:
    """espeak-ng text-to-speech (telephony.speech.tts.EspeakTts, with its disk cache)."""

    def __init__(self) -> None:
        from telephony.speech.tts import EspeakTts

        self._tts = EspeakTts()

    def synthesize(self, text: str, *, language: str) -> np.ndarray:
        """8 kHz int16 speech for ``text`` in ``language``."""
        return np.asarray(self._tts.synthesize(text, language=language), dtype=np.int16)


class PromptRenderer:
    """Turns prompt items into audio: recording first, then TTS of the catalogue text.

    Rendered audio is cached per (language, item) so a call does not re-run espeak-ng."""

    def __init__(self, catalogue: PromptCatalogue, synthesizer: Synthesizer | None = None) -> None:
        self.catalogue = catalogue
        self.synth = synthesizer or Synthesizer()
        self._cache: dict[tuple[str, str, str], np.ndarray] = {}

    def render_item(self, item: PromptItem) -> np.ndarray:
        kind, value = (("key", item.key) if item.key is not None else
                       ("file", item.file) if item.file is not None else ("text", item.text))
        ck = (item.language, kind, value or "")
        if ck in self._cache:
            return self._cache[ck]
        if kind == "key":
            assert item.key is not None
            rec = self.catalogue.recordings.get((item.language, item.key))
            if rec is not None:
                pcm = read_wav_8k(rec)
            else:
                text = self.catalogue.texts.get((item.language, item.key))
                if text is None:
                    raise AudioFileError(f"prompt {item.key!r} has no recording or text in "
                                         f"{item.language!r}")
                pcm = self.synth.synthesize(text, language=item.language)
        elif kind == "file":
            pcm = read_wav_8k(self.catalogue.base_dir / (item.file or ""))
        else:
            pcm = self.synth.synthesize(item.text or "", language=item.language)
        self._cache[ck] = pcm
        return pcm

    def render(self, items: Iterable[PromptItem]) -> np.ndarray:
        parts = [self.render_item(i) for i in items]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
