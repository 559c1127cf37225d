#!/usr/bin/env python3
"""Runs every benchmark (or the ones named) and assembles BENCHMARKS.md from their results.

    .venv/bin/python benchmarks/run_all.py                 # all, then assemble
    .venv/bin/python benchmarks/run_all.py sip rtp         # some
    .venv/bin/python benchmarks/run_all.py --assemble-only

Each benchmark writes benchmarks/results/<name>.md (command, machine, medians); this script
concatenates them in a fixed order under a short header.  Long runs live here, never in the
timed test suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ORDER = ["sip", "sip_load", "sip_memory", "fuzz", "sdp", "rtp", "media", "dsp", "speech", "flows", "routing",
         "dialer_pacing", "dialer_pacing_tables"]
SCRIPTS = {
    "sip": ["bench_sip.py"], "sip_load": ["bench_sip_load.py"],
    "sip_memory": ["bench_sip_memory.py"], "fuzz": ["fuzz_sip.py"], "rtp": ["bench_rtp.py"],
    "media": ["bench_media_inprocess.py", "bench_media_capacity.py", "bench_jitter_netem.py"],
    "dsp": ["bench_dsp.py"],
    "speech": ["bench_speech.py"], "flows": ["bench_flows.py"], "routing": ["bench_routing.py"],
    "dialer_pacing": ["bench_dialer_pacing.py"],
}

HEADER = """# Benchmarks

Every figure here comes from a script in `benchmarks/`; each section names its command and the
machine it ran on.  Machines are noisy (this one has 2 cores shared with other work): read the
medians and the ratios, and re-run a section before trusting a small difference.
Regenerate: `.venv/bin/python benchmarks/run_all.py` (or one section: `... run_all.py rtp`).

"""


def assemble() -> None:
    parts = [HEADER]
    results = HERE / "results"
    seen = set()
    for name in ORDER + sorted(p.stem for p in results.glob("*.md")):
        path = results / f"{name}.md"
        if name in seen or not path.exists():
            continue
        seen.add(name)
        text = path.read_text(encoding="utf-8").strip()
        # demote the section's own top heading so BENCHMARKS.md has one title
        if text.startswith("# "):
            # a section with its own title: every heading one level down
            text = "\n".join("#" + line if line.startswith("#") else line
                              for line in text.splitlines())
        parts.append(text + "\n\n")
    (REPO / "BENCHMARKS.md").write_text("".join(parts), encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"some of: {', '.join(SCRIPTS)}")
    ap.add_argument("--assemble-only", action="store_true")
    args = ap.parse_args()
    rc = 0
    if not args.assemble_only:
        for name in args.names or list(SCRIPTS):
            for script in SCRIPTS[name]:
                print(f"== {script}", flush=True)
                rc |= subprocess.call([sys.executable, str(HERE / script)], cwd=REPO)
    assemble()
    return rc


if __name__ == "__main__":
    sys.exit(main())
