"""DTMF talk-off on synthetic speech in thirteen languages (issue 17): espeak-ng voices.

    .venv/bin/python benchmarks/bench_talkoff_tts.py [--hours 4] [--code DIR] [--tag after]

The Debian prompt sets are five voices (one of them a man); this adds espeak-ng's formant
voices, male and female variants, in thirteen languages
(``audio_fixtures/gen_detector_set.py: talk_off_tts_chunk``, seed 17).  Dialtone in-process
and through ``dialtone dtmf --json``, and spandsp's ``dtmf_rx``, on the same samples.
``--code DIR`` measures another tree (as in bench_detectors.py).  Writes
benchmarks/results/talkoff_tts_<tag>.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_detectors as bd  # noqa: I001  (puts the tree under test first on the path)

from hostinfo import machine
from spandsp_ref import load_spandsp, spandsp_digits

from telephony.dsp.dtmf import detect_file_digits


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=4.0)
    ap.add_argument("--code", type=Path, default=None)
    ap.add_argument("--tag", default="after")
    args = ap.parse_args()
    lib = load_spandsp()
    chunks = [bd.gen.talk_off_tts_chunk(bd.SEED, i) for i in range(round(args.hours * 60))]
    ours = [(i, d) for i, (x, _) in enumerate(chunks) for d in detect_file_digits(x)]
    sp = [(i, c) for i, (x, _) in enumerate(chunks) for c in spandsp_digits(lib, x)] \
        if lib is not None else None
    cli = bd.cli_digits(((f"tts_{i:04d}.wav", x) for i, (x, _) in enumerate(chunks)), batch=30)
    cli_n = sum(len(v) for v in cli.values())
    h = len(chunks) / 60
    lines = [f"Command: `.venv/bin/python benchmarks/bench_talkoff_tts.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {machine()}", "",
             ("| talk-off on espeak-ng speech, 13 languages x 10 voice variants, tree | hours | "
              "Dialtone | `dialtone dtmf --json` | spandsp |"), "|---|---|---|---|---|",
             (f"| {bd.CODE} | {h:.2f} | {len(ours)} | {cli_n} | "
              f"{'n/a' if sp is None else len(sp)} |"), ""]
    lines += [f"- Dialtone: chunk {i} ({chunks[i][1]}): '{d['digit']}' at {d['start_ms']} ms, "
              f"{d['duration_ms']} ms" for i, d in ours]
    lines += [f"- spandsp: chunk {i} ({chunks[i][1]}): '{c}'" for i, c in sp or []]
    md = "\n".join(lines) + "\n"
    (bd.RESULTS / f"talkoff_tts_{args.tag}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
