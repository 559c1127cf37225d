"""Speech benchmark: recognition accuracy and latency, TTS cache, verifier EER.

Run: ``.venv/bin/python benchmarks/bench_speech.py`` (about a minute).  Prints the
figures and writes ``benchmarks/results/speech.md``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hostinfo import machine

from telephony.speech.base import Recognizer, create_recognizer
from telephony.speech.tts import EspeakTts, TtsConfig
from telephony.speech.voice import MfccStatsVerifier, build_espeak_background

UTT = ROOT / "audio_fixtures" / "utterances"
MANIFEST = json.loads((UTT / "manifest.json").read_text("utf-8"))


def load(rel: str) -> bytes:
    with wave.open(str(UTT / rel)) as w:
        return w.readframes(w.getnframes())




def eval_engine(rec: Recognizer, languages: list[str]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for lang in languages:
        g = MANIFEST["grammars"][lang]
        menu_ok = menu_n = rej_ok = rej_n = str_ok = dig_ok = dig_n = str_n = 0
        lat: list[float] = []
        for rel, e in MANIFEST["utterances"].items():
            if e["language"] != lang:
                continue
            audio = load(rel)
            t0 = time.perf_counter()
            if e["kind"] == "digits":
                res = rec.recognize_digits(audio, language=lang)
                str_n += 1
                str_ok += res.text == e["expected"]
                dig_n += len(e["expected"])
                dig_ok += sum(a == b for a, b in zip(res.text, e["expected"]))
            else:
                phrases = g["yes_no"] if e["kind"] == "yes_no" else g["menu"]
                res = rec.recognize(audio, language=lang, phrases=phrases)
                if e["expected"] is None:
                    rej_n += 1
                    rej_ok += not res.is_match
                else:
                    menu_n += 1
                    menu_ok += res.phrase == e["expected"]
                    lat.append(time.perf_counter() - t0)
        out[lang] = {
            "menu": f"{menu_ok}/{menu_n} ({100 * menu_ok / menu_n:.0f}%)",
            "reject": f"{rej_ok}/{rej_n}",
            "digit strings": f"{str_ok}/{str_n}",
            "digits": f"{dig_ok}/{dig_n} ({100 * dig_ok / dig_n:.0f}%)",
            "median ms": f"{1000 * statistics.median(lat):.1f}",
        }
    return out


def eer(targets: list[float], impostors: list[float]) -> tuple[float, float]:
    """Equal error rate (mean of FRR and FAR where they are closest) and its threshold."""
    tg, im = np.array(targets), np.array(impostors)
    best = (2.0, 0.0, 0.0)
    for th in np.sort(np.concatenate([tg, im])):
        frr, far = float(np.mean(tg < th)), float(np.mean(im >= th))
        if abs(frr - far) < best[0]:
            best = (abs(frr - far), (frr + far) / 2, float(th))
    return best[1], best[2]


def synthesis_times(tts: EspeakTts, texts: list[str]) -> list[float]:
    """Seconds ``tts`` takes to synthesise each of ``texts`` in English, in order."""
    times = []
    for t in texts:
        s = time.perf_counter()
        tts.synthesize(t, language="en")
        times.append(time.perf_counter() - s)
    return times


def main() -> None:
    lines = [
        "## Speech (telephony/speech)",
        "",
        "Command: `.venv/bin/python benchmarks/bench_speech.py`",
        f"Machine: {machine()}",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tts = EspeakTts(TtsConfig(cache_dir=Path(tmp) / "tts"))
        # --- recognition
        template = create_recognizer("template", tts=tts)
        t0 = time.perf_counter()
        for lang in ("en", "es", "fr"):
            g = MANIFEST["grammars"][lang]
            template.warm_up(lang, g["menu"] + g["yes_no"], digits=True)  # type: ignore[attr-defined]
        warm = time.perf_counter() - t0
        results = {"template": eval_engine(template, ["en", "es", "fr"])}
        sphinx = create_recognizer("pocketsphinx")
        results["pocketsphinx"] = eval_engine(sphinx, ["en"])
        lines += [
            "### Recognition on audio_fixtures/utterances (G.711 mu-law, unseen espeak voices)",
            "",
            "| engine | lang | menu+yes/no top-1 | OOG/hello rejected | digit strings exact | digits | median latency per menu utterance |",
            "|---|---|---|---|---|---|---|",
        ]
        for engine, per in results.items():
            for lang, r in per.items():
                lines.append(
                    f"| {engine} | {lang} | {r['menu']} | {r['reject']} | {r['digit strings']} "
                    f"| {r['digits']} | {r['median ms']} ms |"
                )
        lines += [
            "",
            (
                "Template warm-up (render + features of 3 x (8 phrases + 10 digits) x 12 "
                f"templates, cold TTS cache): {warm:.2f} s"
            ),
            "",
        ]
        # --- TTS
        texts = [f"please hold, your call is number {i} in the queue" for i in range(20)]
        cold_dir = Path(tmp) / "tts-bench"
        t_cold = synthesis_times(EspeakTts(TtsConfig(cache_dir=cold_dir)), texts)
        disk = EspeakTts(TtsConfig(cache_dir=cold_dir))
        t_disk = synthesis_times(disk, texts)  # a new engine: from the on-disk cache
        t_mem = synthesis_times(disk, texts)  # the same engine again: from memory
        mc, md, mm = (statistics.median(x) * 1000 for x in (t_cold, t_disk, t_mem))
        lines += [
            "### TTS (espeak-ng -> 8 kHz), 20 prompts of ~3 s",
            "",
            "| path | median ms | vs cold |",
            "|---|---|---|",
            f"| cold (espeak-ng run + resample) | {mc:.2f} | 1x |",
            f"| disk cache (.npy) | {md:.3f} | {mc / md:.0f}x faster |",
            f"| memory LRU | {mm:.4f} | {mc / mm:.0f}x faster |",
            "",
        ]
        assert disk.renders == 0
        # --- verifier
        bg = build_espeak_background(
            tts,
            language="en",
            variants=["", "+m1", "+f1", "+m5", "+f5", "+m6"],
            texts=[
                "the quick brown fox jumps over the lazy dog",
                "please call me back tomorrow morning",
            ],
        )
        voices = ["+f3", "+m3", "+f4", "+m2", "+m7", "+f2", "+m4", "+m8"]
        enroll = [
            "my voice is my password",
            "I would like to check my account balance",
            "one two three four five six",
        ]
        test = [
            "please verify my identity now",
            "what time does the office open",
            "I never received my parcel",
        ]
        v = MfccStatsVerifier(bg)
        pcm = {
            (t, vo): tts.synthesize(t, language="en", voice=vo).astype("<i2").tobytes()
            for vo in voices
            for t in enroll + test
        }
        for vo in voices:
            for t in enroll:
                v.enroll(vo, pcm[(t, vo)])
        tgt, imp = [], []
        for claim in voices:
            for actual in voices:
                for t in test:
                    s = v.score(claim, pcm[(t, actual)])
                    assert s is not None
                    (tgt if claim == actual else imp).append(s)
        rate, th = eer(tgt, imp)
        lines += [
            "### Voice verifier (MfccStats: full-covariance Gaussian vs espeak background)",
            "",
            (
                f"{len(voices)} espeak-ng voices (en), 3 enrollment + 3 test utterances each: "
                f"{len(tgt)} target and {len(imp)} impostor trials."
            ),
            "",
            (
                f"EER {100 * rate:.1f}% at threshold {th:.2f} (median target score "
                f"{statistics.median(tgt):.2f}, median impostor {statistics.median(imp):.2f})."
            ),
            "",
            (
                "Note: rejection thresholds of the template engine were tuned on this same "
                "fixture set, and espeak voices are far more alike than real callers, so these "
                "figures hold for synthetic callers, not as a claim about real speech."
            ),
            "",
        ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "speech.md"
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
