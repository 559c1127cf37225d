#!/usr/bin/env python3
"""Makes the generated audio the tests and benchmarks use (idempotent; `make fixtures`).

- audio_fixtures/utterances/: caller utterances (espeak-ng voices through mu-law), committed;
  regenerated only when missing (`gen_utterances.py`).
- audio_fixtures/generated/amd, generated/dtmf: the labelled AMD and DTMF sets (`gen_dsp.py`),
  git-ignored; made when missing or with --force.

Both generators are deterministic from their seeds.  Needs espeak-ng and the Debian
asterisk-core-sounds packages (`make test` installs them as root).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str, quiet: bool) -> int:
    cmd = [sys.executable, str(HERE / script), *args]
    out = subprocess.DEVNULL if quiet else None
    return subprocess.call(cmd, stdout=out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--force", action="store_true", help="regenerate everything")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        print("make_fixtures: espeak-ng is missing; skipping generated audio", file=sys.stderr)
        return 0
    rc = 0
    if args.force or not (HERE / "utterances" / "manifest.json").exists():
        rc |= run("gen_utterances.py", quiet=args.quiet)
    if args.force or not (HERE / "generated" / "amd").exists():
        rc |= run("gen_dsp.py", quiet=args.quiet)
    return rc


if __name__ == "__main__":
    sys.exit(main())
