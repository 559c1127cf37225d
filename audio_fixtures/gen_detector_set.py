"""Detector test material on real recorded speech and music (issue 17), deterministic.

    .venv/bin/python audio_fixtures/gen_detector_set.py [--seed 17] [--files 120] [--out DIR]

Everything is built in memory from the Debian Asterisk prompts
(``/usr/share/asterisk/sounds/{en,es,fr,it,ru}``), the hold music
(``/usr/share/asterisk/moh``) and espeak-ng, from a seed; the benchmark
(``benchmarks/bench_detectors.py``) and the unit tests import the builders.  ``main``
writes the DTMF files and the AMD set as WAV files with ``labels.json`` under
``audio_fixtures/generated/detectors/`` (git-ignored) for ``dialtone dtmf --json`` /
``dialtone amd --json``.

Conventions:

* levels are dBm0 with 0 dBm0 = a sine 3.14 dB below int16 full scale (G.711 mu-law's
  load capacity is +3.14 dBm0; A-law's +3.17 dBm0: 0.03 dB apart), as in
  ``telephony.dsp.dtmf.DBM0_REF_POWER``;
* a DTMF ``level`` is per tone with the twist split evenly around it, and ``twist`` dB is
  row (low group) level minus column (high group) level: positive is *reverse* twist
  (high tone weaker, Q.24 limit 8 dB), negative is *forward* twist (high tone stronger,
  Q.24 limit 4 dB);
* Q.24 durations as the detector defines them: tones of 40 ms and pauses of 40 ms must
  be accepted, tones of 20 ms rejected; frequencies within 1.5 % accepted, beyond 3.5 %
  rejected.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import wave
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from telephony.dsp.dtmf import KEYS
from telephony.dsp.testsignals import dtmf_tone, g711_round_trip

OUT = ROOT / "generated" / "detectors"
SOUNDS = Path("/usr/share/asterisk/sounds")
MOH = Path("/usr/share/asterisk/moh")
LANGS = ("en", "es", "fr", "it", "ru")
RATE = 8000
DBM0_PEAK = 32768.0 * 10 ** (-3.14 / 20)
F64 = npt.NDArray[np.float64]
I16 = npt.NDArray[np.int16]


# ----------------------------------------------------------------------------- sources


def available() -> bool:
    """Whether the Debian prompts and hold music are installed."""
    return all((SOUNDS / lang).is_dir() for lang in LANGS) and MOH.is_dir()


def read_wav(path: Path | str) -> F64:
    """Mono float samples at 8 kHz."""
    with wave.open(str(path)) as w:
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    y = x[::ch].astype(np.float64)
    if rate != RATE:
        g = int(np.gcd(rate, RATE))
        y = resample_poly(y, RATE // g, rate // g)
    return y


@cache
def prompt_files(lang: str) -> tuple[str, ...]:
    """Every distinct recorded prompt of a language (symlinked duplicates once)."""
    found = {os.path.realpath(os.path.join(d, f))
             for d, _, files in os.walk(SOUNDS / lang, followlinks=True)
             for f in files if f.endswith(".wav")}
    # The prompt sets ship real beeps and tones (beep.wav, beeperr.wav...): not speech.
    return tuple(sorted(f for f in found if not Path(f).name.startswith(("beep", "tone"))))


@cache
def _prompt(path: str) -> F64:
    x = read_wav(path)
    loud = np.flatnonzero(np.abs(x) > 100)
    return x[loud[0]:loud[-1] + 1] if loud.size else x


@cache
def music_tracks() -> tuple[F64, ...]:
    """The hold-music tracks, whole."""
    return tuple(read_wav(p) for p in sorted(MOH.glob("*.wav")))


def active_level(x: F64) -> float:
    """dBm0 of the loud half of the samples' power (a crude active speech level)."""
    p = x ** 2
    a = p[p > np.median(p)].mean() if p.size else 0.0
    return float(10 * np.log10(max(a, 1e-9) / (DBM0_PEAK ** 2 / 2)))


def at_level(x: F64, dbm0: float) -> F64:
    """``x`` scaled so that its active level is ``dbm0``."""
    return x * 10 ** ((dbm0 - active_level(x)) / 20)


def speech(rng: np.random.Generator, seconds: float, lang: str | None = None) -> F64:
    """Prompts of one language joined with short natural gaps, ``seconds`` long."""
    lang = lang or str(rng.choice(LANGS))
    files = prompt_files(lang)
    parts: list[F64] = []
    n = int(seconds * RATE)
    while sum(map(len, parts)) < n:
        parts.append(_prompt(files[int(rng.integers(len(files)))]))
        parts.append(np.zeros(int(rng.uniform(0.03, 0.5) * RATE)))
    return np.concatenate(parts)[:n]


def music(rng: np.random.Generator, seconds: float) -> F64:
    """An excerpt of a random hold-music track."""
    tracks = music_tracks()
    t = tracks[int(rng.integers(len(tracks)))]
    n = int(seconds * RATE)
    start = int(rng.integers(0, max(1, len(t) - n)))
    out = t[start:start + n]
    return np.pad(out, (0, n - len(out)))


def vary_speed(rng: np.random.Generator, x: F64) -> F64:
    """Resample by a few per cent (pitch and formants move: new tone combinations)."""
    up, down = [(1, 1), (19, 20), (20, 19), (10, 11), (11, 10), (24, 25), (25, 24)][
        int(rng.integers(7))]
    return x if up == down else resample_poly(x, up, down)


def line_noise(rng: np.random.Generator, n: int, lo: float = -65, hi: float = -50) -> F64:
    level = rng.uniform(lo, hi)
    return rng.standard_normal(n) * np.sqrt((DBM0_PEAK ** 2 / 2) * 10 ** (level / 10))


def law_of(rng: np.random.Generator) -> str:
    return "ulaw" if rng.random() < 0.5 else "alaw"


# ----------------------------------------------------------------------------- DTMF files


@dataclass
class DtmfFile:
    """A digit string over speech (and sometimes music), through G.711."""

    name: str
    pcm: I16
    digits: list[dict[str, object]]
    law: str
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def keys(self) -> str:
        return "".join(str(d["digit"]) for d in self.digits)


def dtmf_file(seed: int, index: int, hard: bool = False) -> DtmfFile:
    """File ``index`` of the digit-string set: 3-8 keys, each 40-200 ms at -23 to -3 dBm0
    per tone, twist from 4 dB forward to 8 dB reverse (a third of the keys weak with
    reverse twist, the issue's hard case), frequency within +-1.5 %, pauses 40-300 ms;
    under prompts of one language 3-15 dB below the weakest digit's tones (music under a quarter of
    the files), line noise, one G.711 law."""
    rng = np.random.default_rng([seed, index, 1])
    law = law_of(rng)
    parts: list[F64] = [np.zeros(int(rng.uniform(0.15, 0.6) * RATE))]
    digits: list[dict[str, object]] = []
    levels = []
    for _ in range(int(rng.integers(3, 9))):
        key = KEYS[int(rng.integers(16))]
        weak = rng.random() < 0.33
        level = rng.uniform(-23, -17) if weak else rng.uniform(-23, -3)
        twist = rng.uniform(4, 8) if weak else rng.uniform(-4, 8)
        ms = float(rng.choice([40, 45, 50, 60, 80, 100, 150, 200]))
        dev = rng.uniform(-0.015, 0.015)
        tone = dtmf_tone(key, ms, level=level, twist=twist, dev=dev,
                         phases=rng.uniform(0, 2 * np.pi, 2))
        start = sum(map(len, parts))
        digits.append({"digit": key, "start_ms": round(start * 1000 / RATE),
                       "duration_ms": round(len(tone) * 1000 / RATE),
                       "level_dbm0": round(level, 1), "twist_db": round(twist, 1)})
        levels.append(level)
        parts += [tone, np.zeros(int(float(rng.choice([40, 45, 60, 100, 200, 300])) * 8))]
    parts.append(np.zeros(int(0.4 * RATE)))
    x = np.concatenate(parts)
    # Speech under the weakest digit by 3 to 15 dB (on a lossy line the caller's voice and
    # the digits lose alike; the digits are sent louder than speech).
    bed_level = min(levels) - rng.uniform(3, 15)
    if hard:  # the harsh variant: 4-16 dB under the *mean* digit (weak digits under speech)
        bed_level = float(np.mean(levels)) - rng.uniform(4, 16)
    bed = at_level(speech(rng, len(x) / RATE + 1), bed_level)[: len(x)]
    if rng.random() < 0.25:
        m = np.resize(music(rng, len(x) / RATE + 0.1), len(x))
        bed = bed + at_level(m, bed_level - rng.uniform(3, 12))
    x = x + bed + line_noise(rng, len(x))
    return DtmfFile(f"dtmf_{index:03d}.wav", g711_round_trip(x, law), digits, law,
                    {"bed_dbm0": round(bed_level, 1)})


def dtmf_files(seed: int, n: int, hard: bool = False) -> Iterator[DtmfFile]:
    for i in range(n):
        yield dtmf_file(seed, i, hard)


# ----------------------------------------------------------------------------- Q.24 battery


@dataclass(frozen=True)
class Q24Row:
    """One row of the battery: tone parameters, whether it must be accepted, speech under."""

    name: str
    level: float = -10.0
    twist: float = 0.0
    dev: float = 0.0
    ms: float = 50.0
    pause_ms: float | None = None
    """Same key pressed twice with this pause (two digits expected)."""
    accept: bool = True
    speech_db: float | None = None
    """Speech bed this many dB below the per-tone level (None: line noise only)."""


Q24_ROWS = (
    Q24Row("level -3 dBm0", level=-3),
    Q24Row("level -23 dBm0", level=-23),
    Q24Row("level -23 dBm0, speech 10 dB under", level=-23, speech_db=10),
    Q24Row("forward twist 4 dB (high +4)", level=-12, twist=-4),
    Q24Row("reverse twist 8 dB (high -8)", level=-12, twist=8),
    Q24Row("reverse twist 6 dB, -23 dBm0, speech 10 dB under", level=-23, twist=6, speech_db=10),
    Q24Row("reverse twist 8 dB, -20 dBm0, speech 10 dB under", level=-20, twist=8, speech_db=10),
    Q24Row("frequency +1.5 %", dev=0.015),
    Q24Row("frequency -1.5 %", dev=-0.015),
    Q24Row("frequency +1.5 %, -20 dBm0, speech 10 dB under", level=-20, dev=0.015, speech_db=10),
    Q24Row("40 ms tone", ms=40),
    Q24Row("40 ms tone, -20 dBm0, speech 10 dB under", ms=40, level=-20, speech_db=10),
    Q24Row("same key twice, 40 ms tone / 40 ms pause", ms=40, pause_ms=40),
    Q24Row("same key twice, 40/40, -20 dBm0, speech 10 dB under", ms=40, pause_ms=40, level=-20,
           speech_db=10),
    Q24Row("long 300 ms, -23 dBm0, reverse 6 dB, speech 8 dB under", ms=300, level=-23, twist=6,
           speech_db=8),
    Q24Row("frequency +3.5 % (reject)", dev=0.035, accept=False),
    Q24Row("frequency -3.5 % (reject)", dev=-0.035, accept=False),
    Q24Row("20 ms tone (reject)", ms=20, accept=False),
    Q24Row("reverse twist 10 dB (reject)", level=-10, twist=10, accept=False),
    Q24Row("forward twist 6 dB (reject)", level=-10, twist=-6, accept=False),
    Q24Row("reverse twist 9.5 dB, speech under (reject)", level=-12, twist=9.5, speech_db=12,
           accept=False),
    Q24Row("forward twist 5.5 dB, speech under (reject)", level=-12, twist=-5.5, speech_db=12,
           accept=False),
)


def q24_signal(row: Q24Row, key: str, law: str, trial: int) -> tuple[I16, str]:
    """One key of one row: (samples through G.711, the digits that must be reported)."""
    rng = np.random.default_rng(zlib.crc32(f"{row.name}|{key}|{law}|{trial}".encode()))
    tone = dtmf_tone(key, row.ms, level=row.level, twist=row.twist, dev=row.dev,
                     phases=rng.uniform(0, 2 * np.pi, 2))
    parts = [np.zeros(int(rng.uniform(100, 140) * 8)), tone]
    if row.pause_ms is not None:
        parts += [np.zeros(int(row.pause_ms * 8)),
                  dtmf_tone(key, row.ms, level=row.level, twist=row.twist, dev=row.dev,
                            phases=rng.uniform(0, 2 * np.pi, 2))]
    x = np.concatenate(parts + [np.zeros(1600)])
    if row.speech_db is not None:
        x = x + at_level(speech(rng, len(x) / RATE + 0.5), row.level - row.speech_db)[: len(x)]
    x = x + line_noise(rng, len(x))
    want = (key * (2 if row.pause_ms is not None else 1)) if row.accept else ""
    return g711_round_trip(x, law), want


# ----------------------------------------------------------------------------- talk-off


def talk_off_chunk(seed: int, index: int, seconds: float = 60.0) -> tuple[I16, str]:
    """Chunk ``index`` of the no-digit stream: (samples, description).

    Each chunk varies: one language's prompts, or music alone, or speech over music; a
    speed change of up to 10 %; active level -28 to -6 dBm0; one G.711 law; line noise.
    """
    rng = np.random.default_rng([seed, index, 2])
    kind = str(rng.choice(["speech", "speech", "speech+music", "music"]))
    lang = str(rng.choice(LANGS))
    level = rng.uniform(-28, -6)
    if kind == "music":
        x = at_level(vary_speed(rng, music(rng, seconds * 1.1)), level)
    else:
        x = at_level(vary_speed(rng, speech(rng, seconds * 1.1, lang)), level)
        if kind == "speech+music":
            m = music(rng, len(x) / RATE)
            x = x + at_level(m, level - rng.uniform(6, 18))[: len(x)]
    n = int(seconds * RATE)
    x = np.pad(x[:n], (0, max(0, n - len(x))))
    law = law_of(rng)
    x = x + line_noise(rng, len(x))
    return g711_round_trip(x, law), (f"{kind} {lang if kind != 'music' else ''} {law} " \
        f"{level:.0f} dBm0")


# Synthetic speech in more languages and voices than the Debian prompts have (those are
# four women and one man): espeak-ng's formant voices, male and female variants, pitch and
# rate varied.  Not recorded speech, but voiced sounds with exact harmonics in thirteen
# languages: the talk-off case the recorded set is short of.
TTS_TEXT = {
    "de": ("Guten Tag. Bitte hinterlassen Sie eine Nachricht nach dem Signalton. Wir rufen "
           "Sie so bald wie möglich zurück. Vielen Dank für Ihren Anruf und auf Wiederhören."),
    "pt": ("Bom dia. Por favor deixe a sua mensagem depois do sinal. Entraremos em contacto "
           "consigo assim que possível. Obrigado pela sua chamada."),
    "nl": ("Goedemiddag. Laat alstublieft een bericht achter na de toon. Wij bellen u zo snel "
           "mogelijk terug. Bedankt voor uw oproep."),
    "pl": ("Dzień dobry. Proszę zostawić wiadomość po sygnale. Oddzwonimy najszybciej jak to "
           "możliwe. Dziękujemy za telefon."),
    "tr": ("İyi günler. Lütfen sinyal sesinden sonra mesajınızı bırakın. En kısa sürede sizi "
           "arayacağız. Aradığınız için teşekkürler."),
    "sv": ("God dag. Lämna ett meddelande efter tonen. Vi ringer upp så snart som möjligt. "
           "Tack för ditt samtal."),
    "el": ("Καλημέρα. Παρακαλώ αφήστε το μήνυμά σας μετά τον ήχο. Θα σας καλέσουμε το "
           "συντομότερο δυνατό. Ευχαριστούμε."),
    "hi": "नमस्ते. कृपया बीप के बाद अपना संदेश छोड़ें. हम जल्द से जल्द आपको वापस कॉल करेंगे. धन्यवाद.",
    "cmn": "你好。请在提示音后留言。我们会尽快给您回电。谢谢您的来电。",
    "ar": "مرحبا. من فضلك اترك رسالتك بعد سماع الصفارة. سنعاود الاتصال بك في أقرب وقت ممكن. شكرا لاتصالك.",
    "ja": "こんにちは。発信音の後にメッセージをどうぞ。折り返しお電話いたします。ありがとうございました。",
    "ru": ("Здравствуйте. Пожалуйста, оставьте сообщение после сигнала. Мы перезвоним вам как "
           "можно скорее. Спасибо за звонок."),
    "en-us": ("Hello. You have reached the office. Please leave your name and number after the "
              "tone and we will call you back. Thank you for calling."),
}
TTS_VARIANTS = ("", "+m1", "+m3", "+m7", "+f1", "+f3", "+Alex", "+adam", "+klatt", "+croak")


@cache
def _espeak_tts(voice: str, pitch: int, speed: int, text: str) -> F64:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w",
                        tmp.name, text], check=True, capture_output=True)
        return read_wav(tmp.name)


def talk_off_tts_chunk(seed: int, index: int, seconds: float = 60.0) -> tuple[I16, str]:
    """Chunk ``index`` of the synthetic no-digit stream: espeak-ng sentences in random
    languages and voice variants (pitch 20-80, 130-190 words a minute), short gaps, active
    level -28 to -6 dBm0, line noise, one G.711 law."""
    rng = np.random.default_rng([seed, index, 3])
    parts: list[F64] = []
    n = int(seconds * RATE)
    while sum(map(len, parts)) < n:
        lang = list(TTS_TEXT)[int(rng.integers(len(TTS_TEXT)))]
        variant = TTS_VARIANTS[int(rng.integers(len(TTS_VARIANTS)))]
        pitch, speed = int(rng.integers(20, 80)), int(rng.integers(130, 190))
        parts.append(_espeak_tts(lang + variant, pitch, speed, TTS_TEXT[lang]))
        parts.append(np.zeros(int(rng.uniform(0.05, 0.5) * RATE)))
    level = rng.uniform(-28, -6)
    x = at_level(np.concatenate(parts)[:n], level)
    law = law_of(rng)
    return g711_round_trip(x + line_noise(rng, n), law), f"espeak-ng {law} {level:.0f} dBm0"


# ----------------------------------------------------------------------------- AMD set


@cache
def espeak(voice: str, speed: int, text: str) -> F64:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", tmp.name, text],
                       check=True, capture_output=True)
        x = read_wav(tmp.name)
    loud = np.flatnonzero(np.abs(x) > 200)
    return x[loud[0]:loud[-1] + 1] if loud.size else x


VOICES = {"en": ["en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-us+m3"],
          "es": ["es", "es-419"], "fr": ["fr", "fr-be"]}
HELLOS = {"en": ["Hello?", "Yes?", "Hi.", "Hello, who's this?", "Yeah, hello?", "Speaking."],
          "es": ["¿Hola?", "¿Diga?", "¿Sí?", "Bueno."],
          "fr": ["Allô ?", "Oui ?", "Allô, oui ?", "Bonjour."]}
OPENERS = {"en": ["Hello.", "Hi.", "Hey."], "es": ["Hola."], "fr": ["Bonjour."]}
REST = {"en": [("You've reached the voicemail of Sarah. I can't take your call right now. "
               "Please leave a message after the tone."),
               ("This is Mark. Sorry I missed you. Leave your name and number and I'll call "
               "you back.")],
        "es": [("Has llamado a María. Ahora no puedo atenderte. Deja tu mensaje después de la "
               "señal.")],
        "fr": [("Vous êtes bien sur la messagerie de Pierre. Je ne suis pas disponible. "
               "Laissez un message après le bip.")]}


def _beep(rng: np.random.Generator) -> F64:
    f = float(rng.choice([440.0, 850.0, 1000.0, 1400.0])) * rng.uniform(0.99, 1.01)
    t = np.arange(int(rng.uniform(0.3, 0.8) * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    out: F64 = DBM0_PEAK * 10 ** (rng.uniform(-20, -8) / 20) * ramp * np.sin(2 * np.pi * f * t)
    return out


def amd_item(seed: int, index: int, label: str) -> tuple[I16, dict[str, object]]:
    """One labelled answer (mu-law, line noise).

    ``human``: a short answer (espeak-ng or the recorded ``hello`` prompt), a third of them
    saying it again 1-2 s later.  ``machine``: a third are the issue's hard case, a short
    word then a pause of 0.8-1.3 s then the rest of the greeting; the others a greeting
    from the recorded voicemail prompts (5 languages) or espeak-ng; 70 % end in a beep.
    """
    rng = np.random.default_rng([seed, index, 3])
    level = rng.uniform(-24, -12)
    meta: dict[str, object] = {"label": label, "beep_ms": None, "speech_end_ms": None}
    parts: list[F64] = [np.zeros(int(rng.uniform(0.2, 1.2) * RATE))]
    if label == "human":
        lang = str(rng.choice(list(HELLOS)))
        voice = str(rng.choice(VOICES[lang]))
        speed = int(rng.choice([140, 170, 190]))
        if lang == "en" and rng.random() < 0.25:
            first, text = _prompt(str(SOUNDS / "en" / "hello.wav")), "hello (prompt)"
        else:
            text = str(rng.choice(HELLOS[lang]))
            first = espeak(voice, speed, text)
        parts.append(at_level(first, level))
        meta["speech_end_ms"] = round(sum(map(len, parts)) * 1000 / RATE)
        if rng.random() < 0.33:
            parts += [np.zeros(int(rng.uniform(1.0, 2.0) * RATE)),
                      at_level(espeak(voice, speed, HELLOS[lang][0]), level)]
            text += " / again"
        parts.append(np.zeros(int(max(0.5, 7.0 - sum(map(len, parts)) / RATE) * RATE)))
        meta.update(lang=lang, voice=voice, text=text, kind="live")
    else:
        kind = ["pause", "prompts", "espeak"][index % 3]
        if kind == "pause":
            lang = str(rng.choice(list(OPENERS)))
            voice = str(rng.choice(VOICES[lang]))
            speed = int(rng.choice([150, 170, 190]))
            opener = espeak(voice, speed, str(rng.choice(OPENERS[lang])))
            pause = rng.uniform(0.8, 1.3)
            greeting = np.concatenate([opener, np.zeros(int(pause * RATE)),
                                       espeak(voice, speed, str(rng.choice(REST[lang])))])
            meta.update(pause_s=round(pause, 2))
        elif kind == "prompts":
            lang = str(rng.choice(LANGS))
            voice = lang
            gap = np.zeros(int(0.08 * RATE))
            names = ["vm-theperson", "vm-extension"] + [
                f"digits/{d}" for d in rng.integers(0, 10, 4)] + ["vm-isunavail"]
            pieces = [p for nm in names for p in (_prompt(str(SOUNDS / lang / f"{nm}.wav")), gap)]
            greeting = np.concatenate(pieces)
        else:
            lang = str(rng.choice(list(REST)))
            voice = str(rng.choice(VOICES[lang]))
            greeting = espeak(voice, int(rng.choice([150, 180])),
                              str(rng.choice(OPENERS[lang])) + " " + str(rng.choice(REST[lang])))
        parts.append(at_level(greeting, level))
        if rng.random() < 0.7 or kind == "pause":
            parts.append(np.zeros(int(rng.uniform(0.2, 0.7) * RATE)))
            meta["beep_ms"] = round(sum(map(len, parts)) * 1000 / RATE)
            parts.append(_beep(rng))
        parts.append(np.zeros(int(1.5 * RATE)))
        meta.update(lang=lang, voice=voice, kind=kind)
    x = np.concatenate(parts)
    return g711_round_trip(x + line_noise(rng, len(x), -62, -48), "ulaw"), meta


def amd_set(seed: int, n_each: int = 40) -> list[tuple[I16, dict[str, object]]]:
    """``n_each`` live answers then ``n_each`` machines."""
    return ([amd_item(seed, i, "human") for i in range(n_each)]
            + [amd_item(seed, i, "machine") for i in range(n_each)])


# ----------------------------------------------------------------------------- files


def write_wav(path: Path, pcm: I16) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--files", type=int, default=120, help="DTMF digit-string files")
    ap.add_argument("--amd", type=int, default=40, help="live answers and machines, each")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    dtmf_dir, amd_dir = args.out / "dtmf", args.out / "amd"
    dtmf_dir.mkdir(parents=True, exist_ok=True)
    amd_dir.mkdir(parents=True, exist_ok=True)
    labels = []
    for f in dtmf_files(args.seed, args.files):
        write_wav(dtmf_dir / f.name, f.pcm)
        labels.append({"file": f.name, "law": f.law, "digits": f.digits, **f.meta})
    (dtmf_dir / "labels.json").write_text(json.dumps(labels, indent=1))
    alabels = []
    for i, (pcm, meta) in enumerate(amd_set(args.seed, args.amd)):
        name = f"{meta['label']}_{i:03d}.wav"
        write_wav(amd_dir / name, pcm)
        alabels.append({"file": name, **meta})
    (amd_dir / "labels.json").write_text(json.dumps(alabels, indent=1, ensure_ascii=False))
    print(f"wrote {len(labels)} DTMF files to {dtmf_dir}, {len(alabels)} AMD files to {amd_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
