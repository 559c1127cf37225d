"""DSP figures: Q.24 DTMF battery (Dialtone vs spandsp), talk-off, throughput, AMD accuracy.

    .venv/bin/python benchmarks/bench_dsp.py [--quick]

Writes benchmarks/results/dsp.md.  Needs the Debian prompts and hold music, espeak-ng
and libspandsp.  Runs single-threaded numpy (figures are per core).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import glob
import importlib.util
import json
import subprocess
import sys
import time
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from hostinfo import machine
from spandsp_ref import load_spandsp, spandsp_digits

from telephony.dsp.amd import AmdDetector, classify_recording
from telephony.dsp.dtmf import KEYS, DtmfDetector, DtmfDetectorBank, detect_file_digits
from telephony.dsp.testsignals import dtmf_tone
from telephony.dsp.testsignals import g711_round_trip as g711
from telephony.dsp.tones import BeepDetector
from telephony.dsp.vad import EndpointerBank, vad_frames
from telephony.events import SpeechEnded

FS = 8000
RESULTS = ROOT / "benchmarks" / "results" / "dsp.md"


# ----------------------------------------------------------------------------- app_amd


@dataclass(frozen=True)
class AsteriskAmdConfig:
    """app_amd.c defaults (amd.conf.sample)."""

    initial_silence: int = 2500
    greeting: int = 1500
    after_greeting_silence: int = 800
    total_analysis_time: int = 5000
    min_word_length: int = 100
    between_words_silence: int = 50
    maximum_number_of_words: int = 2
    silence_threshold: int = 256


class AsteriskAmdReference:
    """Asterisk app_amd's decision logic on its energy silence detector (ast_dsp_silence:
    a 20 ms frame is silent when its mean absolute sample is below the threshold)."""

    def __init__(self, cfg: AsteriskAmdConfig = AsteriskAmdConfig()) -> None:
        self.c = cfg

    def run(self, pcm: np.ndarray) -> tuple[str, str, int]:
        c = self.c
        total = silence_ms = voice = consecutive = words = 0
        dsp_silence = 0
        in_silence_state, in_initial, in_greeting = True, True, False
        for i in range(len(pcm) // 160):
            frame = pcm[i * 160:(i + 1) * 160].astype(np.int32)
            total += 20
            if total >= c.total_analysis_time:
                return "unknown", "TOOLONG", total
            if np.abs(frame).mean() < c.silence_threshold:
                dsp_silence += 20
            else:
                dsp_silence = 0
            if dsp_silence > 0:
                silence_ms = dsp_silence
                if silence_ms >= c.between_words_silence:
                    in_silence_state = True
                    consecutive = 0
                if in_initial and silence_ms >= c.initial_silence:
                    return "machine", "INITIALSILENCE", total
                if silence_ms >= c.after_greeting_silence and in_greeting:
                    return "human", "HUMAN", total
            else:
                consecutive += 20
                voice += 20
                if consecutive >= c.min_word_length and in_silence_state:
                    words += 1
                    in_silence_state = False
                if words >= c.maximum_number_of_words:
                    return "machine", f"MAXWORDS-{words}", total
                if in_greeting and voice >= c.greeting:
                    return "machine", "LONGGREETING", total
                if voice >= c.min_word_length:
                    silence_ms = 0
                if consecutive >= c.min_word_length and not in_greeting:
                    in_initial, in_greeting = False, True
        return "unknown", "TOOLONG", total


# ----------------------------------------------------------------------------- signals


def key_signal(key: str, rng: np.random.Generator, *, ms: float = 50, level: float = -10,
               dev: float = 0.0, twist: float = 0.0, snr_db: float | None = None,
               law: str = "ulaw", repeat_gap_ms: float | None = None) -> np.ndarray:
    ph = rng.uniform(0, 2 * np.pi, 2)
    tone = dtmf_tone(key, ms, level=level, dev=dev, twist=twist, phases=ph)
    lead = np.zeros(int(rng.uniform(100, 140) * 8))
    parts = [lead, tone]
    if repeat_gap_ms is not None:
        parts += [np.zeros(int(repeat_gap_ms * 8)), tone]
    x = np.concatenate(parts + [np.zeros(1200)])
    if snr_db is not None:
        sig = np.mean(tone ** 2)
        x = x + rng.standard_normal(len(x)) * np.sqrt(sig / 10 ** (snr_db / 10))
    return g711(x, law)


Q24 = [
    ("frequency +1.5 %", {"dev": 0.015}, True),
    ("frequency -1.5 %", {"dev": -0.015}, True),
    ("frequency +3.5 % (reject)", {"dev": 0.035}, False),
    ("frequency -3.5 % (reject)", {"dev": -0.035}, False),
    ("twist: low group +8 dB", {"twist": 8.0, "level": -12}, True),
    ("twist: high group +4 dB", {"twist": -4.0, "level": -12}, True),
    ("duration 40 ms", {"ms": 40}, True),
    ("duration 20 ms (reject)", {"ms": 20}, False),
    ("level 0 dBm0 per tone", {"level": 0.0}, True),
    ("level -30 dBm0 per tone", {"level": -30.0}, True),
    ("SNR 15 dB (-20 dBm0)", {"snr_db": 15.0, "level": -20}, True),
    ("two presses, 40 ms pause", {"ms": 40, "repeat_gap_ms": 40}, True),
]


def q24(lib: object, trials: int) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for name, kw, accept in Q24:
        for law in ("ulaw", "alaw"):
            rng = np.random.default_rng(zlib.crc32(f"{name}|{law}".encode()))
            score = {"dt12": 0, "dtAD": 0, "sp12": 0, "spAD": 0}
            for _ in range(trials):
                for key in KEYS:
                    x = key_signal(key, rng, law=law, **kw)  # type: ignore[arg-type]
                    want = (key * (2 if "repeat_gap_ms" in kw else 1)) if accept else ""
                    group = "AD" if key in "ABCD" else "12"
                    ours = "".join(str(d["digit"]) for d in detect_file_digits(x))
                    score["dt" + group] += ours == want
                    if lib is not None:
                        score["sp" + group] += spandsp_digits(lib, x) == want  # type: ignore[arg-type]
            n12, nad = 12 * trials, 4 * trials

            def pct(v: int, n: int) -> str:
                return f"{100 * v / n:.1f} %"

            rows.append((name, law, pct(score["dt12"], n12), pct(score["dtAD"], nad),
                         pct(score["sp12"], n12) if lib else "n/a",
                         pct(score["spAD"], nad) if lib else "n/a"))
    return rows


def latency(trials: int) -> tuple[float, float, float]:
    """(median, max report latency, max onset error) in ms when streaming 20 ms frames."""
    rng = np.random.default_rng(3)
    lat, err = [], []
    for i in range(trials):
        lead = rng.uniform(100, 140)
        key = KEYS[i % 16]
        x = key_signal(key, np.random.default_rng(i), ms=60)
        # Rebuild with a known onset (key_signal draws its own lead): place the tone here.
        x = np.concatenate([np.zeros(int(lead * 8), np.int16), x[np.flatnonzero(x)[0]:]])
        onset = int(lead * 8) / FS
        det = DtmfDetector()
        for j in range(len(x) // 160):
            now = (j + 1) * 0.02
            evs = [e for e in det.process(x[j * 160:(j + 1) * 160], now=now) if e.kind == "start"]
            if evs:
                lat.append((now - onset) * 1000)
                err.append(abs(evs[0].onset - onset) * 1000)
                break
    return float(np.median(lat)), float(np.max(lat)), float(np.max(err))


def corpus() -> tuple[list[str], list[str]]:
    speech = sorted({os.path.realpath(f) for lang in ("en", "es", "fr", "it", "ru")
                     for f in glob.glob(f"/usr/share/asterisk/sounds/{lang}/**/*.wav",
                                        recursive=True)})
    music = sorted(glob.glob("/usr/share/asterisk/moh/*.wav"))
    return speech, music


def load(path: str) -> np.ndarray:
    with wave.open(path) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)[::w.getnchannels()]


def talk_off(files: list[str], lib: object) -> tuple[float, int, int, float]:
    """(hours, Dialtone false digits, spandsp false digits, Dialtone x real time)."""
    n = ours = theirs = 0
    spent = 0.0
    for f in files:
        x = load(f)
        n += len(x)
        t0 = time.perf_counter()
        ours += len(detect_file_digits(x))
        spent += time.perf_counter() - t0
        if lib is not None:
            theirs += len(spandsp_digits(lib, x))  # type: ignore[arg-type]
    return n / FS / 3600, ours, theirs, n / FS / spent


def beep_false(files: list[str]) -> tuple[float, int]:
    frames = np.concatenate([(x := load(f))[: len(x) // 160 * 160].reshape(-1, 160)
                             for f in files])
    streams = 50
    n = len(frames) // streams
    s = frames[: streams * n].reshape(streams, n, 160)
    det = BeepDetector(streams)
    found = 0
    for i in range(n):
        found += len(det.process(s[:, i], now=i * 0.02))
    return streams * n * 0.02 / 3600, found


def bank_throughput(bank: DtmfDetectorBank | EndpointerBank, n_channels: int, frames: int,
                    audio: np.ndarray, seed: int) -> float:
    """x real time of ``bank`` streaming 20 ms frames of ``n_channels`` random excerpts."""
    total = frames * 160
    offsets = np.random.default_rng(seed).integers(0, len(audio) - total, n_channels)
    block = np.stack([audio[o:o + total] for o in offsets])
    t0 = time.process_time()
    for i in range(frames):
        bank.process(block[:, i * 160:(i + 1) * 160], now=i * 0.02)
    spent = time.process_time() - t0
    return n_channels * frames * 0.02 / spent


def throughput(n_channels: int, frames: int, audio: np.ndarray) -> float:
    return bank_throughput(DtmfDetectorBank(n_channels), n_channels, frames, audio, n_channels)


def vad_throughput(n_channels: int, frames: int, audio: np.ndarray) -> float:
    return bank_throughput(EndpointerBank(n_channels), n_channels, frames, audio, 7)


def vad_gate(files: list[str], streams: int = 40) -> tuple[float, float, int, float]:
    """(hours, share of webrtcvad speech frames kept in utterances, utterances, x real time).

    The files are joined (0.5 s gaps) and cut into ``streams`` parallel calls.
    """
    gap = np.zeros(4000, dtype=np.int16)
    audio = np.concatenate([p for f in files for p in (load(f), gap)])
    n = len(audio) // (streams * 160)
    block = audio[: streams * n * 160].reshape(streams, n * 160)
    raw = sum(int(vad_frames(row).sum()) for row in block)
    bank = EndpointerBank(streams)
    kept = utterances = 0
    t0 = time.process_time()
    for i in range(n):
        for _, ev in bank.process(block[:, i * 160:(i + 1) * 160], now=(i + 1) * 0.02):
            if isinstance(ev, SpeechEnded):
                kept += ev.duration_ms // 20
                utterances += 1
    spent = time.process_time() - t0
    for ch in range(streams):
        for ev in bank.flush(ch, now=n * 0.02):
            if isinstance(ev, SpeechEnded):
                kept += ev.duration_ms // 20
                utterances += 1
    hours = streams * n * 0.02 / 3600
    return hours, kept / max(raw, 1), utterances, streams * n * 0.02 / spent


def amd_eval(items: list[tuple[np.ndarray, dict[str, object]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    ast = AsteriskAmdReference()
    for name in ("Dialtone", "app_amd (reference)"):
        ok = h2m = nh = m2h = unk = 0
        delays: list[int] = []
        mdec: list[int] = []
        beeps = found = 0
        cpu = 0.0
        audio_s = 0.0
        for x, meta in items:
            t0 = time.process_time()
            if name == "Dialtone":
                r = classify_recording(x)
                verdict, dec, beep = r.result, r.decision_ms, r.beep_ms
            else:
                verdict, _, dec = ast.run(x)
                beep = None
            cpu += time.process_time() - t0
            audio_s += dec / 1000
            label = meta["label"]
            ok += verdict == label
            unk += verdict == "unknown"
            if label == "human":
                nh += 1
                h2m += verdict == "machine"
                if verdict == "human":
                    delays.append(dec - int(meta["speech_end_ms"]))  # type: ignore[call-overload]
            else:
                m2h += verdict == "human"
                if verdict == "machine":
                    mdec.append(dec)
                if meta["beep_ms"] is not None:
                    beeps += 1
                    found += beep is not None and abs(beep - int(meta["beep_ms"])) <= 60  # type: ignore[call-overload]
        n = len(items)
        out[name] = {
            "accuracy": 100 * ok / n, "h2m": 100 * h2m / nh, "m2h": 100 * m2h / (n - nh),
            "unknown": 100 * unk / n,
            "human_p50": float(np.median(delays)) if delays else float("nan"),
            "human_p90": float(np.percentile(delays, 90)) if delays else float("nan"),
            "machine_p50": float(np.median(mdec)) if mdec else float("nan"),
            "machine_p90": float(np.percentile(mdec, 90)) if mdec else float("nan"),
            "beeps": 100 * found / beeps if beeps else float("nan"),
            "cpu_ms_per_s": 1000 * cpu / max(audio_s, 1e-9),
        }
    return out


def load_set(gen: object, quick: bool) -> tuple[list, list]:
    d = ROOT / "audio_fixtures" / "generated" / "amd"
    if not (d / "labels.json").exists():
        subprocess.run([sys.executable, str(ROOT / "audio_fixtures" / "gen_dsp.py")], check=True)
    labels = json.loads((d / "labels.json").read_text())
    if quick:
        labels = labels[::4]
    tuned = [(load(str(d / m["file"])), m) for m in labels]
    rng = np.random.default_rng(99)
    held = []
    for kind in ["human", "machine"] * (25 if quick else 100):
        x, meta = gen.human(rng) if kind == "human" else gen.machine(rng)  # type: ignore[attr-defined]
        held.append((gen.through_mulaw(x + gen.line_noise(rng, len(x))), meta))  # type: ignore[attr-defined]
    return tuned, held




def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    args = ap.parse_args()
    lib = load_spandsp()
    trials = 2 if args.quick else 6
    lines = ["## DSP: in-band DTMF, VAD, AMD", "",
             f"Command: `.venv/bin/python benchmarks/bench_dsp.py{' --quick' if args.quick else ''}`  ",
             f"Machine: {machine('numpy ' + np.__version__)}  ",
             "Single-threaded numpy (OPENBLAS_NUM_THREADS=1): throughput is per core.", ""]
    t_start = time.time()

    print("Q.24 battery ...", flush=True)
    rows = q24(lib, trials)
    lines += ["### DTMF: ITU-T Q.24 battery (share of trials with exactly the right answer)", "",
              (f"{trials} trials per key, random phases and lead-in, 20 ms blocks; through G.711. "
              "Acceptance rows: the digit is reported once; (reject) rows: nothing is reported."),
              "spandsp: Debian libspandsp `dtmf_rx` with its defaults, via ctypes, same signals.", "",
              "| test | law | Dialtone 12 keys | Dialtone A-D | spandsp 12 keys | spandsp A-D |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    med, worst, err = latency(160 if not args.quick else 48)
    lines += ["", (f"Report latency streaming 20 ms frames (tone onset to the frame that reports it): "
              f"median {med:.0f} ms, max {worst:.0f} ms; onset error max {err:.1f} ms."), ""]
    print("talk-off ...", flush=True)
    speech, music = corpus()
    if args.quick:
        speech = speech[::10]
    hs, ds, ss, xs = talk_off(speech, lib)
    hm, dm, sm, _ = talk_off(music, lib)
    lines += ["### DTMF talk-off (false digits)", "",
              "| corpus | hours | Dialtone | spandsp |", "|---|---|---|---|",
              (f"| Debian prompts en/es/fr/it/ru (distinct files) | {hs:.2f} | {ds} ({ds / hs:.1f}/h) "
              f"| {ss} ({ss / hs:.1f}/h) |"),
              f"| asterisk-moh-opsound music | {hm:.2f} | {dm} ({dm / hm:.1f}/h) | {sm} ({sm / hm:.1f}/h) |",
              "", f"Whole-file detection speed (one numpy pass per file): {xs:.0f}x real time on speech.", ""]
    print("throughput ...", flush=True)
    audio = np.concatenate([load(f) for f in speech[:200]] + [load(music[0])])
    lines += ["### Throughput, streaming 20 ms frames (process CPU time, one core)", "",
              "| detector | channels | x real time |", "|---|---|---|"]
    for n, frames in ((1, 1500), (100, 300), (1000, 100)):
        lines.append(f"| DTMF bank | {n} | {throughput(n, frames, audio):,.0f} |")
    for n, frames in ((1, 1000), (100, 100), (1000, 30)):
        lines.append(f"| EndpointerBank (webrtcvad + tone/music gates) | {n} | "
                     f"{vad_throughput(n, frames, audio):,.0f} |")
    print("VAD ...", flush=True)
    sp_files = [f for f in speech if "/digits/" not in f][::8]
    sh, skept, sutt, _ = vad_gate(sp_files)
    mh, mkept, mutt, _ = vad_gate(music)
    lines += ["", "### Endpointer gating (webrtcvad aggressiveness 2 + DTMF/tone/music gates)", "",
              ("Share of the frames webrtcvad calls speech that end up inside an utterance "
              "(SpeechStarted..SpeechEnded):"), "",
              "| audio | hours | webrtcvad speech frames kept | utterances |", "|---|---|---|---|",
              f"| Debian prompts (every 8th, 5 languages) | {sh:.2f} | {100 * skept:.1f} % | {sutt} |",
              f"| hold music | {mh:.2f} | {100 * mkept:.1f} % | {mutt} ({mutt / mh:.0f}/h) |", ""]
    print("beeps ...", flush=True)
    # The prompt sets ship real beeps (beep.wav, beeperr.wav): those are not false beeps.
    bh, bf = beep_false([f for f in speech if not Path(f).name.startswith("beep")] + music)
    print("AMD ...", flush=True)
    spec = importlib.util.spec_from_file_location("gen_dsp", ROOT / "audio_fixtures" / "gen_dsp.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    tuned, held = load_set(gen, args.quick)
    lines += ["", "### AMD on the generated labelled set (audio_fixtures/gen_dsp.py)", "",
              ("Live answers: hello / short phrases / a second hello?, espeak-ng (en, es, fr; "
              "several voices and speeds) and the Debian hello prompt.  Machines: Debian voicemail "
              "prompts (5 languages) and espeak-ng greetings, 70 % with a beep.  Line noise, mu-law. "
              "'tuning' is the set the defaults were chosen on; 'held-out' is generated from "
              "another seed.  Live-answer decision time is counted from the end of the person's "
              "first utterance; machine decision time from the answer."), "",
              ("| set | detector | n | correct | live->machine | machine->live | unknown | "
              "live p50 / p90 ms | machine p50 / p90 ms | beeps found (+-60 ms) | CPU ms per s analysed |"),
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for set_name, items in (("tuning", tuned), ("held-out", held)):
        res = amd_eval(items)
        for det, r in res.items():
            beeps = f"{r['beeps']:.1f} %" if det == "Dialtone" else "n/a"
            lines.append(
                f"| {set_name} | {det} | {len(items)} | {r['accuracy']:.1f} % | {r['h2m']:.1f} % | "
                f"{r['m2h']:.1f} % | {r['unknown']:.1f} % | {r['human_p50']:.0f} / {r['human_p90']:.0f} | "
                f"{r['machine_p50']:.0f} / {r['machine_p90']:.0f} | {beeps} | {r['cpu_ms_per_s']:.2f} |")
    lines += ["", (f"False beeps on speech and music (every prompt except beep*.wav, and the hold "
              f"music): {bf} in {bh:.2f} h ({bf / bh:.2f}/h)."), "",
              (f"AMD CPU per call: {amd_cpu(held):.2f} ms of CPU per second of call audio "
              "(streaming AmdDetector, one object per call)."), "",
              f"(benchmark wall time {time.time() - t_start:.0f} s)", ""]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return 0


def amd_cpu(items: list[tuple[np.ndarray, dict[str, object]]]) -> float:
    spent = 0.0
    audio = 0
    for x, _ in items[:40]:
        det = AmdDetector()
        t0 = time.process_time()
        for i in range(len(x) // 160):
            det.process(x[i * 160:(i + 1) * 160], now=i * 0.02)
        spent += time.process_time() - t0
        audio += len(x) // 160
    return 1000 * spent / (audio * 0.02)


if __name__ == "__main__":
    raise SystemExit(main())
