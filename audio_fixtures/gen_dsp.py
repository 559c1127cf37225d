"""Generate the labelled AMD and DTMF sets (deterministic from a seed).

    .venv/bin/python audio_fixtures/gen_dsp.py [--seed 20240] [--humans 160] [--machines 160]

Writes ``audio_fixtures/generated/amd/*.wav`` with ``labels.json`` and
``audio_fixtures/generated/dtmf/*.wav`` with ``labels.json`` (git-ignored; see
``audio_fixtures/amd/README.md``).  Every file is 8 kHz mono int16 that went through
G.711 mu-law, with line noise.  Speech comes from the Debian Asterisk prompts and from
espeak-ng (several voices, speeds, languages).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import wave
from functools import cache
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "generated"
SOUNDS = Path("/usr/share/asterisk/sounds")
RATE = 8000
DBM0 = 32768.0 * 10 ** (-3.14 / 20)
"""Peak amplitude of a 0 dBm0 sine."""

sys.path.insert(0, str(ROOT.parent))
from telephony.codecs.g711 import ULAW_DECODE_TABLE, ULAW_ENCODE_TABLE

VOICES = {
    "en": ["en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-us+m3", "en-gb+f2"],
    "es": ["es", "es-419", "es+f3"],
    "fr": ["fr", "fr-be", "fr+f2"],
}
HELLOS = {
    "en": ["Hello?", "Hello.", "Yes?", "Hi.", "Hello, who's this?", "Yeah, hello?", "Speaking.",
           "Hello, John speaking."],
    "es": ["¿Hola?", "¿Diga?", "¿Sí?", "Bueno.", "Hola, ¿quién es?"],
    "fr": ["Allô ?", "Oui ?", "Allô, oui ?", "Bonjour.", "Oui, allô, c'est qui ?"],
}
GREETINGS = {
    "en": ["Hi, you've reached the voicemail of Sarah. I can't take your call right now. "
           "Please leave a message after the tone.",
           "Hello, this is Mark. Sorry I missed you. Leave your name and number and I'll "
           "call you back.",
           "You have reached 5 5 5, 0 1 4 2. Nobody is available to take your call. "
           "Please leave a message.",
           "Thank you for calling Smith and Partners. Our office is now closed. "
           "Our opening hours are nine to five, Monday to Friday.",
           "Hey, it's Dave, leave a message."],
    "es": ["Hola, has llamado a María. Ahora no puedo atenderte. Deja tu mensaje después "
           "de la señal.",
           "El número al que llama no está disponible. Por favor, deje su mensaje después "
           "del tono."],
    "fr": ["Bonjour, vous êtes bien sur la messagerie de Pierre. Je ne suis pas disponible. "
           "Laissez un message après le bip.",
           "Vous êtes sur le répondeur du cabinet Martin. Nos bureaux sont fermés. Merci de "
           "rappeler plus tard."],
}
PROMPT_LANGS = ["en", "es", "fr", "it", "ru"]
BEEP_FREQS = [425.0, 440.0, 700.0, 850.0, 950.0, 1000.0, 1400.0, 1800.0, 2000.0]


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    x = x[::ch].astype(np.float64)
    if rate != RATE:
        g = np.gcd(rate, RATE)
        x = resample_poly(x, RATE // g, rate // g)
    return x


@cache
def espeak(voice: str, speed: int, text: str) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", tmp.name, text],
                       check=True, capture_output=True)
        x = read_wav(Path(tmp.name))
    # Trim espeak's leading/trailing silence so placement is ours.
    loud = np.flatnonzero(np.abs(x) > 200)
    return x[loud[0]:loud[-1] + 1] if loud.size else x


@cache
def prompt(lang: str, name: str) -> np.ndarray:
    x = read_wav(SOUNDS / lang / f"{name}.wav")
    loud = np.flatnonzero(np.abs(x) > 200)
    return x[loud[0]:loud[-1] + 1] if loud.size else x


def set_level(x: np.ndarray, dbm0: float) -> np.ndarray:
    """Scale speech so its active (loud half) power sits at ``dbm0``."""
    p = x ** 2
    active = p[p > np.median(p)].mean() if p.size else 1.0
    target = (DBM0 ** 2 / 2) * 10 ** (dbm0 / 10)
    return x * np.sqrt(target / max(active, 1e-9))


def line_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    level = rng.uniform(-62, -45)
    noise = rng.standard_normal(n) * np.sqrt((DBM0 ** 2 / 2) * 10 ** (level / 10))
    if rng.random() < 0.3:  # mains hum
        t = np.arange(n) / RATE
        noise += DBM0 * 10 ** (rng.uniform(-60, -45) / 20) * np.sin(2 * np.pi * 50 * t)
    return noise


def through_mulaw(x: np.ndarray) -> np.ndarray:
    pcm = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return ULAW_DECODE_TABLE[ULAW_ENCODE_TABLE[pcm.view(np.uint16)]]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)))


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype(np.int16).tobytes())


def human(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, object]]:
    lang = str(rng.choice(list(HELLOS)))
    voice = str(rng.choice(VOICES[lang]))
    speed = int(rng.choice([130, 160, 190]))
    level = rng.uniform(-26, -12)
    if lang in ("en", "fr") and rng.random() < 0.15:
        first = prompt(lang, "hello")
        text = "hello (prompt)"
    else:
        text = str(rng.choice(HELLOS[lang]))
        first = espeak(voice, speed, text)
    parts = [silence(rng.uniform(0.2, 1.5)), set_level(first, level)]
    speech_end = sum(len(p) for p in parts)
    second = rng.random() < 0.4
    if second:  # nobody answered: "Hello?" again
        parts += [silence(rng.uniform(1.0, 2.0)),
                  set_level(espeak(voice, speed, HELLOS[lang][0]), level + rng.uniform(-2, 3))]
    x = np.concatenate(parts + [silence(0)])
    x = np.concatenate([x, silence(max(0.5, 6.0 - len(x) / RATE))])
    return x, {"label": "human", "lang": lang, "voice": voice, "speed": speed, "text": text,
               "speech_end_ms": round(speech_end * 1000 / RATE), "second_hello": second,
               "beep_ms": None}


def machine(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, object]]:
    level = rng.uniform(-24, -12)
    if rng.random() < 0.45:
        lang = str(rng.choice(PROMPT_LANGS))
        digits = [prompt(lang, f"digits/{d}") for d in rng.integers(0, 10, 4)]
        gap = silence(0.08)
        pieces = [prompt(lang, "vm-theperson"), gap, prompt(lang, "vm-extension"), gap]
        pieces += [p for d in digits for p in (d, gap)]
        pieces += [prompt(lang, "vm-isunavail")]
        if rng.random() < 0.5:
            pieces += [silence(0.3), prompt(lang, "vm-intro")]
        greeting = np.concatenate(pieces)
        source, voice = "prompts", lang
    else:
        lang = str(rng.choice(list(GREETINGS)))
        voice = str(rng.choice(VOICES[lang]))
        greeting = espeak(voice, int(rng.choice([140, 170, 200])), str(rng.choice(GREETINGS[lang])))
        source = "espeak"
    parts = [silence(rng.uniform(0.1, 0.9)), set_level(greeting, level)]
    beep_ms: int | None = None
    if rng.random() < 0.7:
        parts.append(silence(rng.uniform(0.1, 0.7)))
        beep_ms = round(sum(len(p) for p in parts) * 1000 / RATE)
        f = float(rng.choice(BEEP_FREQS)) * rng.uniform(0.99, 1.01)
        dur = rng.uniform(0.25, 1.0)
        t = np.arange(int(dur * RATE)) / RATE
        amp = DBM0 * 10 ** (rng.uniform(-25, -8) / 20)
        ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
        parts.append(amp * ramp * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)))
    parts.append(silence(1.5))
    x = np.concatenate(parts)
    return x, {"label": "machine", "lang": lang, "voice": voice, "source": source,
               "beep_ms": beep_ms, "speech_end_ms": None}


def dtmf_file(rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, object]]]:
    keys = "123A456B789C*0#D"
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    parts = [silence(rng.uniform(0.1, 0.5))]
    digits = []
    for _ in range(int(rng.integers(3, 9))):
        k = int(rng.integers(0, 16))
        dur = rng.uniform(0.05, 0.2)
        lvl = rng.uniform(-25, -6)
        t = np.arange(int(dur * RATE)) / RATE
        a = DBM0 * 10 ** (lvl / 20)
        tone = a * (np.sin(2 * np.pi * rows[k // 4] * t) + 10 ** (-rng.uniform(0, 3) / 20)
                    * np.sin(2 * np.pi * cols[k % 4] * t + 1.0))
        start = sum(len(p) for p in parts)
        digits.append({"digit": keys[k], "start_ms": round(start * 1000 / RATE),
                       "duration_ms": round(len(t) * 1000 / RATE)})
        parts += [tone, silence(rng.uniform(0.06, 0.3))]
    return np.concatenate(parts + [silence(0.3)]), digits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, default=20240)
    ap.add_argument("--humans", type=int, default=160)
    ap.add_argument("--machines", type=int, default=160)
    ap.add_argument("--dtmf", type=int, default=24)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    amd_dir, dtmf_dir = args.out / "amd", args.out / "dtmf"
    amd_dir.mkdir(parents=True, exist_ok=True)
    dtmf_dir.mkdir(parents=True, exist_ok=True)
    labels = []
    kinds = ["human"] * args.humans + ["machine"] * args.machines
    for i, kind in enumerate(kinds):
        x, meta = human(rng) if kind == "human" else machine(rng)
        pcm = through_mulaw(x + line_noise(rng, len(x)))
        name = f"{kind}_{i:04d}.wav"
        write_wav(amd_dir / name, pcm)
        labels.append({"file": name, **meta})
    (amd_dir / "labels.json").write_text(json.dumps(labels, indent=1))
    dlabels = []
    for i in range(args.dtmf):
        x, digits = dtmf_file(rng)
        snr_db = rng.uniform(18, 40)
        sig = np.mean(x[x != 0] ** 2)
        x = x + rng.standard_normal(len(x)) * np.sqrt(sig / 10 ** (snr_db / 10))
        name = f"dtmf_{i:03d}.wav"
        write_wav(dtmf_dir / name, through_mulaw(x))
        dlabels.append({"file": name, "digits": digits})
    (dtmf_dir / "labels.json").write_text(json.dumps(dlabels, indent=1))
    print(f"wrote {len(labels)} AMD files to {amd_dir} and {len(dlabels)} DTMF files to {dtmf_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
