"""Detectors on recorded speech (issue 17): DTMF files, Q.24 battery, talk-off, AMD.

    .venv/bin/python benchmarks/bench_detectors.py [--hours 16] [--files 120] [--trials 2]
        [--tag after] [--skip-talkoff] [--no-cli] [--code DIR]

Material from audio_fixtures/gen_detector_set.py (seed 17).  Dialtone and spandsp's
``dtmf_rx`` (Debian libspandsp, defaults, via ctypes) on the same samples; AMD beside
benchmarks/bench_dsp.py's reimplementation of Asterisk app_amd with its published
defaults.  The DTMF material also goes through ``dialtone dtmf --json`` end to end (WAV
files in a temporary directory, the command run as a user would, its JSON lines scored the
same way).  ``--code DIR`` measures the Dialtone source tree in DIR instead of this one
(a "before" run: ``git archive COMMIT | tar -x -C DIR``).  Writes
benchmarks/results/detectors_<tag>.json and .md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CODE = ROOT
if "--code" in sys.argv:  # the detectors under test come from another tree ("before")
    CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(ROOT / "audio_fixtures"))

# The tree under test first: the generator and bench_dsp put this tree on the path too.
import telephony.dsp.dtmf  # noqa: I001

import gen_detector_set as gen
from bench_dsp import AsteriskAmdReference
from hostinfo import machine
from spandsp_ref import load_spandsp, spandsp_digits

from telephony.dsp.amd import classify_recording
from telephony.dsp.dtmf import KEYS, detect_file_digits

assert Path(telephony.dsp.dtmf.__file__).resolve().is_relative_to(CODE), "wrong tree"

SEED = 17
RESULTS = ROOT / "benchmarks" / "results"


def ours(x: np.ndarray) -> str:
    return "".join(str(d["digit"]) for d in detect_file_digits(x))


def cli_digits(items: Iterable[tuple[str, np.ndarray]], batch: int = 200) -> dict[str, list[Any]]:
    """``dialtone dtmf --json`` over WAV files of ``(name, samples)``: name -> digits.

    Run as ``python -m dialtone`` with the tree under test first on the path (the same
    command line as the installed ``dialtone``), ``batch`` files per run.
    """
    out: dict[str, list[Any]] = {}
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    check = subprocess.run([sys.executable, "-c", "import dialtone; print(dialtone.__file__)"],
                           capture_output=True, text=True, env=env, cwd=CODE, check=True)
    assert Path(check.stdout.strip()).resolve().is_relative_to(CODE), check.stdout
    with tempfile.TemporaryDirectory(prefix="dtmf_cli_") as tmp:
        pending: list[str] = []

        def run() -> None:
            # cwd: ``-m`` puts the working directory first on the path.
            proc = subprocess.run([sys.executable, "-m", "dialtone", "dtmf", "--json", *pending],
                                  capture_output=True, text=True, env=env, cwd=CODE,
                                  check=False)
            if proc.returncode != 0:
                raise SystemExit(f"dialtone dtmf failed ({proc.returncode}): {proc.stderr[-2000:]}")
            for line in proc.stdout.splitlines():
                row = json.loads(line)
                out[Path(row["file"]).name] = row["digits"]
            for f in pending:
                os.unlink(f)
            pending.clear()

        for name, pcm in items:
            path = os.path.join(tmp, name)
            gen.write_wav(Path(path), pcm)
            pending.append(path)
            if len(pending) >= batch:
                run()
        if pending:
            run()
    return out


def cli_dtmf_set(n: int, hard: bool) -> dict[str, Any]:
    files = list(gen.dtmf_files(SEED, n, hard))
    got = cli_digits((f.name, f.pcm) for f in files)
    r: dict[str, Any] = {"files": len(files), "digits": sum(len(f.keys) for f in files),
                         "exact": 0, "missed": 0, "extra": 0, "wrong_files": []}
    for f in files:
        keys = "".join(d["digit"] for d in got[f.name])
        if keys == f.keys:
            r["exact"] += 1
            continue
        m, e = _miss_extra(f.keys, keys)
        r["missed"] += m
        r["extra"] += e
        r["wrong_files"].append({"file": f.name, "want": f.keys, "got": keys})
    return r


def cli_battery(trials: int) -> list[dict[str, Any]]:
    items, want = [], {}
    for i, row in enumerate(gen.Q24_ROWS):
        for law in ("ulaw", "alaw"):
            for t in range(trials):
                for key in KEYS:
                    x, w = gen.q24_signal(row, key, law, t)
                    name = f"q24_{i:02d}_{law}_{t}_{KEYS.index(key):02d}.wav"
                    items.append((name, x))
                    want[name] = (i, w)
    got = cli_digits(items)
    rows = []
    for i, row in enumerate(gen.Q24_ROWS):
        names = [nm for nm, (j, _) in want.items() if j == i]
        ok = sum("".join(d["digit"] for d in got[nm]) == want[nm][1] for nm in names)
        rows.append({"row": row.name, "accept": row.accept, "n": len(names),
                     "dialtone": ok / len(names)})
    return rows


def cli_talk_off(hours: float) -> dict[str, Any]:
    chunks = round(hours * 60)
    got = cli_digits(((f"talk_{i:04d}.wav", gen.talk_off_chunk(SEED, i)[0])
                      for i in range(chunks)), batch=30)
    found = [{"chunk": int(nm[5:9]), **d} for nm, ds in sorted(got.items()) for d in ds]
    return {"hours": chunks / 60, "dialtone": found, "dialtone_per_h": len(found) * 60 / chunks}


def dtmf_set(n: int, lib: Any, hard: bool = False) -> dict[str, Any]:
    res: dict[str, Any] = {"files": 0, "digits": 0}
    for who in ("dialtone", "spandsp"):
        res[who] = {"exact": 0, "missed": 0, "extra": 0, "wrong_files": []}
    for f in gen.dtmf_files(SEED, n, hard):
        res["files"] += 1
        res["digits"] += len(f.keys)
        for who in ("dialtone", "spandsp"):
            if who == "spandsp" and lib is None:
                continue
            got = ours(f.pcm) if who == "dialtone" else spandsp_digits(lib, f.pcm)
            r = res[who]
            if got == f.keys:
                r["exact"] += 1
                continue
            # Edit distance split into misses and extras (alignment of the two strings).
            m, e = _miss_extra(f.keys, got)
            r["missed"] += m
            r["extra"] += e
            r["wrong_files"].append({"file": f.name, "want": f.keys, "got": got,
                                     "digits": f.digits, "bed_dbm0": f.meta["bed_dbm0"]})
    return res


def _miss_extra(want: str, got: str) -> tuple[int, int]:
    """(missed, extra) in an alignment of ``got`` on ``want`` (a substitution is both)."""
    d = np.zeros((len(want) + 1, len(got) + 1), dtype=int)
    d[:, 0] = np.arange(len(want) + 1)
    d[0, :] = np.arange(len(got) + 1)
    for i in range(1, len(want) + 1):
        for j in range(1, len(got) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1,
                          d[i - 1, j - 1] + (0 if want[i - 1] == got[j - 1] else 2))
    i, j, miss, extra = len(want), len(got), 0, 0
    while i or j:
        if i and j and want[i - 1] == got[j - 1] and d[i, j] == d[i - 1, j - 1]:
            i, j = i - 1, j - 1
        elif i and j and d[i, j] == d[i - 1, j - 1] + 2:
            miss, extra, i, j = miss + 1, extra + 1, i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            miss, i = miss + 1, i - 1
        else:
            extra, j = extra + 1, j - 1
    return miss, extra


def battery(trials: int, lib: Any) -> list[dict[str, Any]]:
    rows = []
    for row in gen.Q24_ROWS:
        n = ok = sp = 0
        for law in ("ulaw", "alaw"):
            for t in range(trials):
                for key in KEYS:
                    x, want = gen.q24_signal(row, key, law, t)
                    n += 1
                    ok += ours(x) == want
                    if lib is not None:
                        sp += spandsp_digits(lib, x) == want
        rows.append({"row": row.name, "accept": row.accept, "n": n, "dialtone": ok / n,
                     "spandsp": sp / n if lib is not None else None})
    return rows


def talk_off(hours: float, lib: Any) -> dict[str, Any]:
    chunks = round(hours * 60)
    found: list[dict[str, Any]] = []
    sp_found: list[dict[str, Any]] = []
    spent = 0.0
    for i in range(chunks):
        x, desc = gen.talk_off_chunk(SEED, i)
        t0 = time.perf_counter()
        for d in detect_file_digits(x):
            found.append({"chunk": i, "desc": desc, **d})
        spent += time.perf_counter() - t0
        if lib is not None:
            for ch in spandsp_digits(lib, x):
                sp_found.append({"chunk": i, "desc": desc, "digit": ch})
    h = chunks / 60
    return {"hours": h, "dialtone": found, "spandsp": sp_found if lib is not None else None,
            "dialtone_per_h": len(found) / h,
            "spandsp_per_h": len(sp_found) / h if lib is not None else None,
            "x_realtime": chunks * 60 / spent}


def amd(n_each: int) -> dict[str, Any]:
    items = gen.amd_set(SEED, n_each)
    out: dict[str, Any] = {}
    ref = AsteriskAmdReference()
    for who in ("dialtone", "app_amd"):
        ok = h2m = 0
        delays: list[int] = []
        wrong = []
        late = 0
        for x, meta in items:
            if who == "dialtone":
                r = classify_recording(x)
                verdict, dec, reason = r.result, r.decision_ms, r.reason
                # Before issue 17 AmdResult had no first_* fields (and never revised).
                first = getattr(r, "first_result", None) or verdict
                first_ms = getattr(r, "first_decision_ms", None) or dec
                late += first != verdict
            else:
                verdict, reason, dec = ref.run(x)
                first, first_ms = verdict, dec
            label = meta["label"]
            ok += verdict == label
            if label == "human":
                h2m += verdict == "machine"
                if first == "human":
                    delays.append(first_ms - int(meta["speech_end_ms"]))  # type: ignore[call-overload]
            if verdict != label:
                wrong.append({"label": label, "got": verdict, "reason": reason,
                              "decision_ms": dec, **{k: meta[k] for k in ("kind", "lang")}})
        out[who] = {"n": len(items), "correct": ok, "live_called_machine": h2m,
                    "late_machine": late,
                    "live_decision_p50_ms": float(np.median(delays)) if delays else None,
                    "wrong": wrong}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=16.0)
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--amd", type=int, default=40)
    ap.add_argument("--tag", default="after")
    ap.add_argument("--skip-talkoff", action="store_true")
    ap.add_argument("--no-cli", action="store_true", help="skip the dialtone dtmf --json runs")
    ap.add_argument("--code", type=Path, default=None,
                    help="source tree whose detectors are measured (default: this one)")
    args = ap.parse_args()
    lib = load_spandsp()
    t0 = time.time()
    res: dict[str, Any] = {"machine": machine("numpy " + np.__version__), "seed": SEED,
                           "command": "benchmarks/bench_detectors.py " + " ".join(sys.argv[1:])}
    print("DTMF files ...", flush=True)
    res["dtmf_files"] = dtmf_set(args.files, lib)
    res["dtmf_files_hard"] = dtmf_set(args.files, lib, hard=True)
    print("Q.24 battery ...", flush=True)
    res["battery"] = battery(args.trials, lib)
    print("AMD ...", flush=True)
    res["amd"] = amd(args.amd)
    if not args.skip_talkoff:
        print("talk-off ...", flush=True)
        res["talk_off"] = talk_off(args.hours, lib)
    if not args.no_cli:
        print("dialtone dtmf --json ...", flush=True)
        res["cli"] = {"dtmf_files": cli_dtmf_set(args.files, False),
                      "dtmf_files_hard": cli_dtmf_set(args.files, True),
                      "battery": cli_battery(args.trials)}
        if not args.skip_talkoff:
            res["cli"]["talk_off"] = cli_talk_off(args.hours)
    res["wall_s"] = round(time.time() - t0)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"detectors_{args.tag}.json").write_text(json.dumps(res, indent=1,
                                                                  ensure_ascii=False))
    md = report(res)
    (RESULTS / f"detectors_{args.tag}.md").write_text(md)
    print(md)
    return 0


def report(res: dict[str, Any]) -> str:
    lines = [f"Command: `.venv/bin/python {res['command']}`  ", f"Machine: {res['machine']}", "",
             "| DTMF digit strings over speech | detector | files exact | digits missed | extra |",
             "|---|---|---|---|---|"]
    for key, title in (("dtmf_files", "speech 3-15 dB under the weakest digit"),
                       ("dtmf_files_hard", "hard: speech 4-16 dB under the mean digit")):
        f = res.get(key)
        if f is None:
            continue
        for who in ("dialtone", "spandsp"):
            r = f[who]
            lines.append(f"| {title} | {who} | {r['exact']} / {f['files']} | "
                         f"{r['missed']} / {f['digits']} | {r['extra']} |")
    lines += ["", "| Q.24 row | must | n | Dialtone | spandsp |", "|---|---|---|---|---|"]
    for r in res["battery"]:
        sp = "n/a" if r["spandsp"] is None else f"{100 * r['spandsp']:.1f} %"
        lines.append(f"| {r['row']} | {'accept' if r['accept'] else 'reject'} | {r['n']} | "
                     f"{100 * r['dialtone']:.1f} % | {sp} |")
    if "talk_off" in res:
        t = res["talk_off"]
        sp = "n/a" if t["spandsp"] is None else f"{len(t['spandsp'])} ({t['spandsp_per_h']:.2f}/h)"
        lines += ["", "| talk-off (no digits) | hours | Dialtone false digits | spandsp |",
                  "|---|---|---|---|",
                  (f"| prompts 5 languages + hold music, varied | {t['hours']:.2f} | "
                  f"{len(t['dialtone'])} ({t['dialtone_per_h']:.2f}/h) | {sp} |")]
        for d in t["dialtone"]:
            lines.append(f"| false digit: chunk {d['chunk']} ({d['desc']}) | | '{d['digit']}' at "
                         f"{d['start_ms']} ms, {d['duration_ms']} ms | |")
    if "cli" in res:
        c = res["cli"]
        lines += ["", ("Through the command line (`dialtone dtmf --json` on WAV files, as the "
                       "outside test set runs it):"), "",
                  "| `dialtone dtmf --json` | files exact | digits missed | extra |",
                  "|---|---|---|---|"]
        for key, title in (("dtmf_files", "speech 3-15 dB under the weakest digit"),
                           ("dtmf_files_hard", "hard: speech 4-16 dB under the mean digit")):
            f = c[key]
            lines.append(f"| {title} | {f['exact']} / {f['files']} | {f['missed']} / "
                         f"{f['digits']} | {f['extra']} |")
        acc = [r for r in c["battery"] if r["accept"]]
        rej = [r for r in c["battery"] if not r["accept"]]
        lines.append(f"| Q.24 battery: accept rows at 100 % | {sum(r['dialtone'] == 1 for r in acc)}"
                     f" / {len(acc)} rows | worst accept row "
                     f"{100 * min(r['dialtone'] for r in acc):.1f} % | worst reject row "
                     f"{100 * min(r['dialtone'] for r in rej):.1f} % |")
        if "talk_off" in c:
            t = c["talk_off"]
            lines.append(f"| talk-off, {t['hours']:.2f} h | | | {len(t['dialtone'])} false "
                         f"({t['dialtone_per_h']:.2f}/h) |")
    a = res["amd"]
    lines += ["", ("| AMD (labelled set) | correct | live called machine | late machine | "
              "live decision p50 (ms after the greeting) |"), "|---|---|---|---|---|"]
    for who, r in a.items():
        p50 = "n/a" if r["live_decision_p50_ms"] is None else f"{r['live_decision_p50_ms']:.0f}"
        lines.append(f"| {who} | {r['correct']} / {r['n']} | {r['live_called_machine']} | "
                     f"{r['late_machine'] if who == 'dialtone' else 'n/a'} | {p50} |")
    lines += ["", f"(wall time {res['wall_s']} s)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
