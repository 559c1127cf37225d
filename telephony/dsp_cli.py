"""``dialtone dtmf`` and ``dialtone amd``: run the detectors over WAV files.

Output with ``--json`` is one JSON object per line and per file, in the order given,
and is read by outside tools, so its keys are stable:

* dtmf: ``{"file": ..., "digits": [{"digit": "5", "start_ms": 1234, "duration_ms": 80}]}``
* amd: ``{"file": ..., "result": "human"|"machine"|"unknown", "decision_ms": 1234,
  "reason": "...", "beep_ms": 5678 or null}``, plus (added by issue 17, additions only)
  ``"late_machine_ms"`` (when a human verdict was revised to machine, its time, else null),
  ``"first_result"`` and ``"first_decision_ms"`` (the verdict first reached and its time;
  equal to ``result`` / ``decision_ms`` unless revised)

A file that cannot be read gets ``{"file": ..., "error": "..."}``; the others are still
processed and the command exits 1 at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from telephony.dsp.amd import classify_recording
from telephony.dsp.dtmf import detect_file_digits
from telephony.dsp.wavio import read_wav_8k
from telephony.errors import AudioFileError


def _run(files: list[str], analyse: Callable[[str], dict[str, Any]], json_out: bool,
         stdout: TextIO, columns: list[str]) -> int:
    rows: list[dict[str, Any]] = []
    failed = False
    for name in files:
        try:
            row = {"file": name, **analyse(name)}
        except AudioFileError as exc:
            row = {"file": name, "error": str(exc)}
            failed = True
        rows.append(row)
        if json_out:
            stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            stdout.flush()
    if not json_out:
        table = Table(*(["file"] + columns))
        for row in rows:
            if "error" in row:
                table.add_row(row["file"], f"[red]error: {row['error']}[/red]",
                              *[""] * (len(columns) - 1))
            elif "digits" in row:  # one line per digit
                for i, d in enumerate(row["digits"] or [{}]):
                    table.add_row(row["file"] if i == 0 else "",
                                  *[_cell(d.get(c)) for c in columns])
            else:
                table.add_row(row["file"], *[_cell(row[c]) for c in columns])
        Console(file=stdout, width=160).print(table)
    return 1 if failed else 0


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _dtmf(name: str) -> dict[str, Any]:
    return {"digits": detect_file_digits(read_wav_8k(name))}


def _amd(name: str) -> dict[str, Any]:
    r = classify_recording(read_wav_8k(name))
    revised = r.first_result is not None
    return {"result": r.result, "decision_ms": r.decision_ms, "reason": r.reason,
            "beep_ms": r.beep_ms,
            "late_machine_ms": r.decision_ms if revised else None,
            "first_result": r.first_result if revised else r.result,
            "first_decision_ms": r.first_decision_ms if revised else r.decision_ms}


def run_dtmf(files: list[str], *, json_out: bool, stdout: TextIO) -> int:
    """Detect in-band DTMF digits in each WAV file; 0 if every file was read, else 1."""
    return _run(files, _dtmf, json_out, stdout, ["digit", "start_ms", "duration_ms"])


def run_amd(files: list[str], *, json_out: bool, stdout: TextIO) -> int:
    """Classify each WAV file as human, machine or unknown; 0 if every file was read, else 1."""
    return _run(files, _amd, json_out, stdout, ["result", "decision_ms", "reason", "beep_ms"])


def add_parsers(subparsers: Any) -> None:
    """Register ``dtmf`` and ``amd`` on an argparse subparsers object.

    Each sets ``func(args, stdout=sys.stdout) -> int`` as its default, for the caller to
    dispatch (``args.func(args)`` prints to the process's stdout).
    """
    for name, runner, text in (
        ("dtmf", run_dtmf, "detect in-band DTMF digits in WAV files"),
        ("amd", run_amd, "answering-machine detection on WAV files (as if streamed)"),
    ):
        p: argparse.ArgumentParser = subparsers.add_parser(name, help=text, description=text)
        p.add_argument("files", metavar="FILE", nargs="+", help="WAV file (any rate, PCM or float)")
        p.add_argument("--json", action="store_true", help="one JSON object per line and file")
        p.set_defaults(func=lambda args, stdout=None, _r=runner: _r(
            args.files, json_out=args.json, stdout=stdout if stdout is not None else sys.stdout))
