"""Generate the caller utterance fixtures (deterministic).

Renders caller speech for the IVR flow tests with espeak-ng, using voices,
speeds and pitches that differ from the speech recogniser's template voices
(see ``telephony.speech.template.TemplateConfig``), adds a little line noise
(seeded per file), and passes it through G.711 mu-law, as a caller heard over
the telephone.  Output: ``audio_fixtures/utterances/<lang>/<slug>.wav`` (8 kHz
mono 16-bit) and ``audio_fixtures/utterances/manifest.json`` (file -> language,
text, expected phrase, kind, voice), which also carries the menu grammars.

Run: ``.venv/bin/python audio_fixtures/gen_utterances.py``
"""

from __future__ import annotations

import hashlib
import json
import sys
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from telephony.speech.tts import EspeakTts, TtsConfig

OUT = ROOT / "utterances"
RATE = 8000

#: Menu grammar per language: the phrases a caller may say at the main menu.
MENU: dict[str, list[str]] = {
    "en": ["billing", "technical support", "sales", "delivery status", "agent", "repeat"],
    "es": ["facturación", "soporte técnico", "ventas", "estado del envío", "agente", "repetir"],
    "fr": [
        "facturation",
        "support technique",
        "ventes",
        "suivi de livraison",
        "conseiller",
        "répéter",
    ],
}
YES_NO: dict[str, list[str]] = {"en": ["yes", "no"], "es": ["sí", "no"], "fr": ["oui", "non"]}
HELLO: dict[str, str] = {"en": "hello?", "es": "¿hola?", "fr": "allô ?"}
OUT_OF_GRAMMAR: dict[str, list[str]] = {
    "en": ["what is the weather", "my neighbour has a yellow bicycle"],
    "es": ["qué tiempo hace hoy", "mi vecino tiene una bicicleta amarilla"],
    "fr": ["quel temps fait-il", "mon voisin a un vélo jaune"],
}
DIGIT_STRINGS = ["4821", "305917", "76240938"]


@dataclass(frozen=True)
class CallerVoice:
    """A caller: an espeak variant, speed and pitch unlike the template voices."""

    variant: str
    rate_wpm: int
    pitch: int
    snr_db: float


CALLERS = [
    CallerVoice("+f3", 160, 60, 30.0),
    CallerVoice("+m3", 150, 38, 25.0),
    CallerVoice("+f4", 185, 55, 28.0),
]


def slugify(text: str) -> str:
    """ASCII slug: "estado del envío" -> "estado_del_envio"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "_".join("".join(c if c.isalnum() else " " for c in ascii_text.lower()).split())


def mulaw_encode(x: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """ITU-T G.711 mu-law encoding (segment/mantissa form, bias 0x84)."""
    v = x.astype(np.int32)
    sign = (v < 0).astype(np.int32) << 7
    mag = np.minimum(np.abs(v), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def mulaw_decode(u: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """ITU-T G.711 mu-law decoding."""
    code = ~u.astype(np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mag = (((code & 0x0F) << 3) + 0x84) << exponent
    return np.where(code & 0x80, 0x84 - mag, mag - 0x84).astype(np.int16)


def _seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def telephone(
    speech: npt.NDArray[np.int16], caller: CallerVoice, name: str
) -> npt.NDArray[np.int16]:
    """Level to about -20 dBFS, pad with 200 ms, add noise at the caller's SNR, mu-law."""
    rng = np.random.default_rng(_seed(name))
    x = speech.astype(np.float64)
    active = x[np.abs(x) > 0.02 * np.abs(x).max()]
    rms = float(np.sqrt(np.mean(active**2)))
    x *= (0.1 * 32768.0) / rms
    pad = np.zeros(int(0.2 * RATE))
    x = np.concatenate([pad, x, pad])
    noise_rms = 0.1 * 32768.0 / (10 ** (caller.snr_db / 20.0))
    x += rng.normal(0.0, noise_rms, x.size)
    pcm = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return mulaw_decode(mulaw_encode(pcm))


def write_wav(path: Path, samples: npt.NDArray[np.int16]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def main() -> None:
    tts = EspeakTts(TtsConfig(disk_cache=False))
    manifest: dict[str, object] = {
        "sample_rate": RATE,
        "grammars": {lang: {"menu": MENU[lang], "yes_no": YES_NO[lang]} for lang in MENU},
        "digit_strings": DIGIT_STRINGS,
    }
    entries: dict[str, dict[str, object]] = {}

    def say(text: str, lang: str, caller: CallerVoice) -> npt.NDArray[np.int16]:
        return tts.synthesize(
            text,
            language=lang,
            voice=caller.variant,
            rate_wpm=caller.rate_wpm,
            pitch=caller.pitch,
        )

    def add(
        lang: str,
        slug: str,
        text: str,
        spoken: str | list[str],
        expected: str | None,
        kind: str,
        caller: CallerVoice,
    ) -> None:
        rel = f"{lang}/{slug}.wav"
        if isinstance(spoken, str):
            speech = say(spoken, lang, caller)
        else:
            # A caller reading digits: one word at a time, 200-350 ms apart.
            rng = np.random.default_rng(_seed(rel + "#gaps"))
            parts: list[npt.NDArray[np.int16]] = []
            for word in spoken:
                if parts:
                    parts.append(np.zeros(int(rng.uniform(0.2, 0.35) * RATE), dtype=np.int16))
                parts.append(say(word, lang, caller))
            speech = np.concatenate(parts)
        write_wav(OUT / rel, telephone(speech, caller, rel))
        entries[rel] = {
            "language": lang,
            "text": text,
            "expected": expected,
            "kind": kind,
            "voice": caller.variant,
            "rate_wpm": caller.rate_wpm,
            "pitch": caller.pitch,
        }

    for lang, menu in MENU.items():
        for phrase in menu:
            for i, caller in enumerate(CALLERS):
                suffix = "" if i == 0 else f"_{i + 1}"
                add(lang, slugify(phrase) + suffix, phrase, phrase, phrase, "menu", caller)
        for word in YES_NO[lang]:
            for i, caller in enumerate(CALLERS[:2]):
                suffix = "" if i == 0 else f"_{i + 1}"
                add(lang, slugify(word) + suffix, word, word, word, "yes_no", caller)
        for i, digits in enumerate(DIGIT_STRINGS):
            caller = CALLERS[i % len(CALLERS)]
            add(lang, f"digits_{digits}", digits, list(digits), digits, "digits", caller)
        add(lang, "hello", HELLO[lang], HELLO[lang], None, "hello", CALLERS[1])
        for i, text in enumerate(OUT_OF_GRAMMAR[lang]):
            suffix = "" if i == 0 else f"_{i + 1}"
            add(lang, "out_of_grammar" + suffix, text, text, None, "out_of_grammar", CALLERS[i])
    manifest["utterances"] = dict(sorted(entries.items()))
    (OUT / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    total = sum(p.stat().st_size for p in OUT.rglob("*.wav"))
    print(f"wrote {len(entries)} utterances, {total / 1e6:.2f} MB, to {OUT}")


if __name__ == "__main__":
    main()
