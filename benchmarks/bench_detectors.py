"""Detectors on recorded speech (issue 17): DTMF files, Q.24 battery, talk-off, AMD.

    .venv/bin/python benchmarks/bench_detectors.py [--hours 3] [--files 120] [--trials 2]
        [--tag after] [--skip-talkoff]

Material from audio_fixtures/gen_detector_set.py (seed 17).  Dialtone and spandsp's
``dtmf_rx`` (Debian libspandsp, defaults, via ctypes) on the same samples; AMD beside
benchmarks/bench_dsp.py's reimplementation of Asterisk app_amd with its published
defaults.  Writes benchmarks/results/detectors_<tag>.json and .md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "audio_fixtures"))

import gen_detector_set as gen
from bench_dsp import AsteriskAmdReference
from hostinfo import machine
from spandsp_ref import load_spandsp, spandsp_digits

from telephony.dsp.amd import classify_recording
from telephony.dsp.dtmf import KEYS, detect_file_digits

SEED = 17
RESULTS = ROOT / "benchmarks" / "results"


def ours(x: np.ndarray) -> str:
    return "".join(str(d["digit"]) for d in detect_file_digits(x))


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
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--amd", type=int, default=40)
    ap.add_argument("--tag", default="after")
    ap.add_argument("--skip-talkoff", action="store_true")
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
