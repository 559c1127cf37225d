"""A memory probe around ``dialtone serve`` for the flood benchmark (issue 12, memory goal).

    BENCH_FLOOD_NODE=".venv/bin/python benchmarks/flood_probe.py" BENCH_FLOOD_SIGUSR1=1 \\
        .venv/bin/python benchmarks/bench_defences_flood.py --label probe

Runs the node in this process; each SIGUSR1 (the benchmark sends one before the flood, one
at its end and one after the recovery minute) appends a JSON line to ``probe.jsonl`` in the
working directory (``PROBE_OUT`` to change it) with where the memory is:

- the kernel's view: /proc/self/smaps_rollup (Rss, Anonymous);
- glibc malloc's (mallinfo2: heap in use and free, mmapped chunks);
- CPython's small-object allocator (arenas, from ``sys._debugmallocstats``) and its blocks;
- the cyclic collector's objects by type (the 25 most numerous), and the containers of
  Dialtone's own objects holding 50 entries or more (per-call tables that outlive calls);
- the media mixer's bank (channels, live calls, bytes of its arrays);
- with ``PROBE_TRACEMALLOC=1``, tracemalloc from the first signal on (before the flood) and a
  snapshot at each later one (``probe-N.tm``): what was allocated since and is still alive;
  ``python benchmarks/flood_probe.py --top probe-2.tm`` lists it by where it was allocated
  (tracemalloc slows the node so much that admission refuses most calls: use it in process,
  not under the full flood).

``PROBE_CODE=DIR`` runs the node from another copy of the code (the packages of ``git archive
COMMIT`` unpacked in DIR) instead of the installed one, for a before/after on one machine in
one session; without ``BENCH_FLOOD_SIGUSR1`` nothing is measured inside the node.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import re
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def mallinfo() -> dict[str, int]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    fn.restype = _Mallinfo2
    info = fn()
    return {"heap_total": info.arena, "heap_in_use": info.uordblks, "heap_free": info.fordblks,
            "mmapped": info.hblkhd, "mmapped_chunks": info.hblks, "top_pad": info.keepcost}


def smaps() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            out[key] = int(rest.split()[0])
    return out


def pymalloc() -> dict[str, int]:
    """Arenas and blocks of CPython's small-object allocator (its stats go to fd 2)."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    out = {"blocks": sys.getallocatedblocks()}
    for key, pattern in (("arenas", r"# arenas allocated current\s*=\s*([\d,]+)"),
                         ("arenas_high", r"# arenas highwater mark\s*=\s*([\d,]+)"),
                         ("arena_bytes", r"\d+ arenas \* \d+ bytes/arena\s*=\s*([\d,]+)"),
                         ("free_pool_bytes", r"\d+ unused pools \* \d+ bytes\s*=\s*([\d,]+)"),
                         ("allocated_block_bytes", r"# bytes in allocated blocks\s*=\s*([\d,]+)"),
                         ("available_block_bytes", r"# bytes in available blocks\s*=\s*([\d,]+)")):
        m = re.search(pattern, text)
        if m:
            out[key] = int(m.group(1).replace(",", ""))
    return out


def _ours(obj: object) -> bool:
    mod = getattr(type(obj), "__module__", "") or ""
    return mod.split(".", 1)[0] in ("telephony", "dialtone", "dialer", "routing", "ivr_flows")


_MIXERS: list[Any] = []


def census() -> dict[str, Any]:
    objs = gc.get_objects()  # (not the frozen ones: the node's own, made before serving)
    by_type = Counter(type(o).__name__ for o in objs)
    tables = []
    for o in objs:
        if not _ours(o):
            continue
        names = list(getattr(o, "__dict__", {}))
        for cls in type(o).__mro__:
            names += [s for s in getattr(cls, "__slots__", ()) if isinstance(s, str)]
        for name in names:
            try:
                v = getattr(o, name)
            except AttributeError:
                continue
            if isinstance(v, (dict, list, set, tuple)) or hasattr(v, "__len__") and not \
                    isinstance(v, (str, bytes, np.ndarray)):
                try:
                    n = len(v)
                except TypeError:
                    continue
                if n >= 50:
                    tables.append((f"{type(o).__qualname__}.{name}", n))
    banks = []
    for m in _MIXERS:
        bank = getattr(m, "_bank", None)
        nbytes = 0
        if bank is not None:
            seen: set[int] = set()
            stack = [bank]
            while stack:
                x = stack.pop()
                if id(x) in seen:
                    continue
                seen.add(id(x))
                if isinstance(x, np.ndarray):
                    nbytes += x.nbytes if x.base is None else 0
                    continue
                if isinstance(x, (list, tuple)):
                    stack.extend(y for y in x if isinstance(y, np.ndarray))
                    continue
                if type(x).__module__.startswith("telephony"):
                    attrs = dict(getattr(x, "__dict__", {}))
                    for cls in type(x).__mro__:
                        for s in getattr(cls, "__slots__", ()):
                            if hasattr(x, s):
                                attrs[s] = getattr(x, s)
                    stack.extend(attrs.values())
        banks.append({"channels": m.channels, "calls": len(m.calls), "array_bytes": nbytes})
    return {"gc_objects": len(objs), "gc_frozen": gc.get_freeze_count(),
            "top_types": by_type.most_common(25),
            "tables": sorted(tables, key=lambda t: -t[1])[:40], "mixers": banks}


def dump(out: Path, n: int) -> None:
    t0 = time.perf_counter()
    row: dict[str, Any] = {"n": n, "time": time.time(), "smaps": smaps(), "malloc": mallinfo(),
                           "pymalloc": pymalloc(), **census()}
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot()
        snap.dump(str(out.with_name(f"probe-{n}.tm")))
        row["tracemalloc_traced"] = tracemalloc.get_traced_memory()
    row["probe_seconds"] = time.perf_counter() - t0
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def top(path: str, n: int = 40) -> None:
    snap = tracemalloc.Snapshot.load(path)
    key = os.environ.get("PROBE_KEY", "traceback")
    stats = snap.statistics(key)
    print(f"total {sum(s.size for s in stats) / 2**20:.1f} MiB in "
          f"{sum(s.count for s in stats)} blocks")
    for s in stats[:n]:
        print(f"{s.size / 1024:10.1f} KiB {s.count:8d} blocks")
        for line in s.traceback.format()[-2 * int(os.environ.get("PROBE_SHOW", "4")):]:
            print("      " + line)


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--top":
        top(sys.argv[2])
        return 0
    out = Path(os.environ.get("PROBE_OUT", "probe.jsonl")).resolve()
    code = os.environ.get("PROBE_CODE")
    if code:
        # the editable install's import hook would win over sys.path: drop it
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, code)
    trace = os.environ.get("PROBE_TRACEMALLOC") == "1"
    count = iter(range(1_000_000))

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        dump(out, next(count))
        if trace and not tracemalloc.is_tracing():
            tracemalloc.start(int(os.environ.get("PROBE_FRAMES", "8")))

    signal.signal(signal.SIGUSR1, on_signal)
    from telephony.media import MediaMixer

    init = MediaMixer.__init__

    def remember(self: MediaMixer, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _MIXERS.append(self)

    MediaMixer.__init__ = remember  # type: ignore[method-assign]
    # the heap trims and bank shrinks (INFO) into the node's log, with how long they took
    logging.getLogger("telephony.aio.useragent").setLevel(logging.INFO)
    logging.getLogger("telephony.media").setLevel(logging.INFO)
    from dialtone.cli import main as dialtone_main

    sys.argv = ["dialtone", *sys.argv[1:]]
    return dialtone_main()


if __name__ == "__main__":
    sys.exit(main())
