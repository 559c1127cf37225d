"""Giving freed heap back to the system when a burst of calls is over (issue 12).

After an INVITE flood the node's Python objects are back to their pre-flood count, but
glibc's malloc keeps the memory it freed: the top of its heap is only returned past a
threshold that grows with the largest block ever freed (the mixer's bank arrays reach
megabytes), and free pages in the middle of the heap are never returned on their own.
``malloc_trim(0)`` returns both (glibc 2.8+ gives back every whole free page).  It walks
the heap, so it is called rarely: when the load (calls and SIP transactions held, the
lingering ones included) has fallen to half its level at the last trim or its peak since,
and stayed there for :attr:`TrimPolicy.settle` seconds.

Only on glibc (other C libraries, or none found: :func:`malloc_trim` does nothing); the
policy is sans-IO (``now`` passed in), the asyncio glue calls it every few seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["TrimPolicy", "malloc_trim", "trim_available"]


@dataclass(slots=True)
class TrimPolicy:
    """When to trim: the load fell to ``fraction`` of its peak since the last trim, by at
    least ``min_drop``, and has not risen above that since ``settle`` seconds."""

    fraction: float = 0.5
    min_drop: int = 200
    """Calls + transactions: a drop smaller than this frees too little to be worth a trim."""
    settle: float = 5.0
    peak: int = 0
    low_since: float | None = None

    def observe(self, load: int, *, now: float) -> bool:
        """Record the load at ``now``; True when it is time to trim (the peak is reset)."""
        self.peak = max(self.peak, load)
        if load > self.peak * self.fraction or self.peak - load < self.min_drop:
            self.low_since = None
            return False
        if self.low_since is None:
            self.low_since = now
        if now - self.low_since < self.settle:
            return False
        self.peak = load
        self.low_since = None
        return True


def _load_trim() -> Callable[[int], int] | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_TRIM = _load_trim()


def trim_available() -> bool:
    """``malloc_trim`` is there (glibc)."""
    return _TRIM is not None


def malloc_trim() -> float | None:
    """Return glibc malloc's free memory to the system; the seconds it took (None: not
    glibc, nothing done)."""
    if _TRIM is None:
        return None
    t0 = time.perf_counter()
    _TRIM(0)
    return time.perf_counter() - t0
