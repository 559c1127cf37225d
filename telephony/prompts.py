"""Prompt audio for the Call API: WAV files of any rate and width, arrays, or text (TTS).

Files are converted to 8 kHz int16 (``scipy.signal.resample_poly``) once and cached by
path and modification time; text goes through the TTS engine (espeak-ng by default),
which has its own cache.  A file that is not usable audio raises
:class:`~telephony.errors.AudioFileError` naming it: flows check their prompts when they
load, so this never happens in the middle of a call.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from telephony.dsp.wavio import read_wav_8k

if TYPE_CHECKING:
    from telephony.speech.tts import TtsEngine

Pcm = npt.NDArray[np.int16]


class PromptLibrary:
    """Resolves what ``call.play()`` is given into 8 kHz PCM, with an LRU of decoded files."""

    def __init__(self, tts: TtsEngine | None = None, *, max_cached: int = 512) -> None:
        self._tts = tts
        self._files: OrderedDict[tuple[str, float], Pcm] = OrderedDict()
        self._max = max_cached

    @property
    def tts(self) -> TtsEngine:
        if self._tts is None:
            from telephony.speech.tts import EspeakTts

            self._tts = EspeakTts()
        return self._tts

    def load_file(self, path: str | os.PathLike[str]) -> Pcm:
        p = str(path)
        key = (p, os.stat(p).st_mtime if os.path.exists(p) else 0.0)
        cached = self._files.get(key)
        if cached is not None:
            self._files.move_to_end(key)
            return cached
        pcm = read_wav_8k(p)
        self._files[key] = pcm
        if len(self._files) > self._max:
            self._files.popitem(last=False)
        return pcm

    def speak(self, text: str, *, language: str = "en") -> Pcm:
        return self.tts.synthesize(text, language=language)

    def resolve(self, prompt: str | os.PathLike[str] | Pcm, *, language: str = "en"
                ) -> tuple[Pcm, str]:
        """``(pcm, name)``: an array plays as is, a path (or a string naming an existing file
        or ending in .wav) is loaded, any other string is spoken by the TTS engine."""
        if isinstance(prompt, np.ndarray):
            return prompt.astype(np.int16, copy=False), "audio"
        if isinstance(prompt, Path) or (isinstance(prompt, str) and (
                prompt.lower().endswith(".wav") or os.path.isfile(prompt))):
            return self.load_file(prompt), Path(prompt).stem
        text = str(prompt)
        return self.speak(text, language=language), f"tts:{text[:40]}"
