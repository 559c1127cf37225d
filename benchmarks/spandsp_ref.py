"""ctypes wrapper around spandsp's DTMF receiver (Debian libspandsp), for side-by-side figures.

Only what the benchmark needs: create a receiver, set its twist/threshold, feed int16
samples, collect the digits.  Not part of the package.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import numpy as np
import numpy.typing as npt

_CANDIDATES = ["/usr/lib/x86_64-linux-gnu/libspandsp.so.2", "/usr/lib/x86_64-linux-gnu/libspandsp.so"]


def load_spandsp() -> ctypes.CDLL | None:
    """The spandsp library, or None when it is not installed."""
    found = ctypes.util.find_library("spandsp")
    for path in [p for p in _CANDIDATES if Path(p).exists()] + ([found] if found else []):
        if True:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            lib.dtmf_rx_init.restype = ctypes.c_void_p
            lib.dtmf_rx_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            lib.dtmf_rx.restype = ctypes.c_int
            lib.dtmf_rx.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16), ctypes.c_int]
            lib.dtmf_rx_get.restype = ctypes.c_size_t
            lib.dtmf_rx_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
            lib.dtmf_rx_parms.restype = None
            lib.dtmf_rx_parms.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                          ctypes.c_int, ctypes.c_int]
            lib.dtmf_rx_free.restype = ctypes.c_int
            lib.dtmf_rx_free.argtypes = [ctypes.c_void_p]
            return lib
    return None


class SpandspDtmf:
    """One spandsp ``dtmf_rx`` receiver with its default parameters."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._state = lib.dtmf_rx_init(None, None, None)
        if not self._state:
            raise RuntimeError("dtmf_rx_init failed")
        self._buf = ctypes.create_string_buffer(256)

    def feed(self, pcm: npt.NDArray[np.int16], block: int = 160) -> str:
        """Feed samples in ``block``-sized pieces (as a media path would); return new digits."""
        x = np.ascontiguousarray(pcm, dtype=np.int16)
        out = []
        for i in range(0, len(x), block):
            chunk = x[i:i + block]
            self._lib.dtmf_rx(self._state, chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
                              len(chunk))
            n = self._lib.dtmf_rx_get(self._state, self._buf, 255)
            if n:
                out.append(self._buf.raw[:n].decode("ascii"))
        return "".join(out)

    def close(self) -> None:
        if self._state:
            self._lib.dtmf_rx_free(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


def spandsp_digits(lib: ctypes.CDLL, pcm: npt.NDArray[np.int16], block: int = 160) -> str:
    """All digits spandsp hears in a recording (fresh receiver, 20 ms blocks)."""
    rx = SpandspDtmf(lib)
    try:
        return rx.feed(np.concatenate([pcm, np.zeros(800, dtype=np.int16)]), block)
    finally:
        rx.close()
