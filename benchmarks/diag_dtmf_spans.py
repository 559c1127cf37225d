"""Span measurements of the DTMF detector (issue 17, fourth pass): digits against talk-off.

    .venv/bin/python benchmarks/diag_dtmf_spans.py [--hours 16] [--tts-hours 4] [--tag NAME]

Material from audio_fixtures/gen_detector_set.py (seed 17).  Two distributions of
:func:`telephony.dsp.dtmf.span_features`:

* every digit of the hard set (speech 4-16 dB under the mean digit level), measured on its
  tone with 15 ms either side (what a run of candidate windows over it holds);
* every run the detector measures over its span on the no-digit streams (recorded prompts
  and music, ``--hours``; espeak-ng, ``--tts-hours``): runs of ``span_windows`` candidate
  windows holding a window near a digit, with no digit reported over them.

Prints, for each span test, the quantiles of the digits and the talk-off runs that pass
every other span test, and writes benchmarks/results/dtmf_spans_<tag>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "audio_fixtures"))

import gen_detector_set as gen

from telephony.dsp import dtmf

SEED = 17
RESULTS = ROOT / "benchmarks" / "results"
TESTS = ("freq", "twist", "level", "stab", "core", "band")


def passes(f: dict[str, float], config: dtmf.DtmfConfig) -> dict[str, bool]:
    c = config
    return {
        "freq": max(abs(f["dfr"]), abs(f["dfc"])) <= c.span_freq_tolerance,
        "twist": -c.span_max_forward_db <= f["twist"] <= c.span_max_twist_db,
        "level": min(f["lvl_r"], f["lvl_c"]) >= c.min_level_dbm0,
        "stab": f["stab"] >= c.span_stability,
        "core": f["core"] >= dtmf.WIN_SUBS,
        "band": f["band"] >= c.span_band_purity,
    }


def digit_spans() -> list[dict[str, Any]]:
    out = []
    for f in gen.dtmf_files(SEED, 120, hard=True):
        for d in f.digits:
            a = int(d["start_ms"]) * 8 - 120  # type: ignore[call-overload]
            b = (int(d["start_ms"]) + int(d["duration_ms"])) * 8 + 120  # type: ignore[call-overload]
            feats = dtmf.span_features(f.pcm[max(a, 0):b], dtmf.KEYS.index(str(d["digit"])))
            if feats is not None:
                out.append({"file": f.name, "digit": d["digit"], **feats})
    return out


def measured_runs(chunks: list[tuple[str, np.ndarray]]) -> tuple[list[dict[str, Any]], int]:
    """The runs the detector measures over these signals, and the digits it reports."""
    log: list[dict[str, Any]] = []
    where: dict[str, str] = {}
    orig = dtmf.span_features

    def spy(x: Any, digit: int) -> dict[str, float] | None:
        feats = orig(x, digit)
        if feats is not None:
            log.append({**where, "digit": dtmf.KEYS[digit], **feats})
        return feats

    dtmf.span_features = spy  # type: ignore[assignment]
    found = 0
    try:
        for name, x in chunks:
            where["chunk"] = name
            found += len(dtmf.detect_file_digits(x))
    finally:
        dtmf.span_features = orig  # type: ignore[assignment]
    return log, found


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    q = np.percentile(values, [0, 1, 5, 50, 95, 100])
    return " / ".join(f"{v:.3g}" for v in q)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=16.0)
    ap.add_argument("--tts-hours", type=float, default=4.0)
    ap.add_argument("--tag", default="after")
    args = ap.parse_args()
    config = dtmf.DtmfConfig()
    digits = digit_spans()
    talk = [(f"rec{i}", gen.talk_off_chunk(SEED, i)[0]) for i in range(round(args.hours * 60))]
    runs, false_rec = measured_runs(talk)
    tts = [(f"tts{i}", gen.talk_off_tts_chunk(SEED, i)[0])
           for i in range(round(args.tts_hours * 60))]
    tts_runs, false_tts = measured_runs(tts)
    everything = runs + tts_runs
    lines = [(f"Digits of the hard set: {len(digits)}; talk-off runs measured over their span: "
              f"{len(runs)} in {args.hours:g} h of recordings ({false_rec} digits reported), "
              f"{len(tts_runs)} in {args.tts_hours:g} h of espeak-ng ({false_tts})."), "",
             ("Quantiles 0 / 1 / 5 / 50 / 95 / 100 %; talk-off: the runs passing every other "
              "span test."), "",
             "| test | feature | digits (hard set) | talk-off runs | talk-off runs passing the others |",
             "|---|---|---|---|---|"]
    feature = {"freq": "larger frequency offset", "twist": "twist dB", "level": "weaker tone dBm0",
               "stab": "stab", "core": "core windows", "band": "band purity"}

    def value(f: dict[str, Any], test: str) -> float:
        return {"freq": max(abs(f["dfr"]), abs(f["dfc"])), "twist": f["twist"],
                "level": min(f["lvl_r"], f["lvl_c"]), "stab": f["stab"], "core": f["core"],
                "band": f["band"]}[test]

    for test in TESTS:
        others = [f for f in everything
                  if all(ok for t, ok in passes(f, config).items() if t != test)]
        lines.append(f"| {test} | {feature[test]} | {quantiles([value(f, test) for f in digits])}"
                     f" | {quantiles([value(f, test) for f in everything])}"
                     f" | {quantiles([value(f, test) for f in others])} ({len(others)}) |")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"dtmf_spans_{args.tag}.md").write_text(text + "\n")
    (RESULTS / f"dtmf_spans_{args.tag}.json").write_text(json.dumps(
        {"digits": digits, "talk_off": runs, "talk_off_tts": tts_runs}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
