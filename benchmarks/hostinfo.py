"""The machine line every benchmark writes into its results section."""

from __future__ import annotations

import os
import platform
import subprocess


def cpu_model() -> str:
    """The CPU model name from ``lscpu`` (``platform.processor()`` if lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine(*extra: str) -> str:
    """``"<CPU model>, nproc <n>, Python <version>"`` and any ``extra`` parts (library
    versions); nproc counts the CPUs this process may run on, as ``nproc`` does."""
    parts = [cpu_model(), f"nproc {len(os.sched_getaffinity(0))}",
             f"Python {platform.python_version()}", *extra]
    return ", ".join(parts)
