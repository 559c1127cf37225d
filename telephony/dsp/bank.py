"""Resizing a bank's per-channel state (the DSP banks add channels as calls arrive, and give
them back, compacted, when the calls have gone)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from telephony.errors import MediaError

ArrayT = TypeVar("ArrayT", bound=npt.NDArray[Any])
T = TypeVar("T")
Channels = Sequence[int] | npt.NDArray[np.intp]
"""Channels of a bank to keep, in their new order (see :func:`keep_channels`)."""


def grow_channels(a: ArrayT, n: int, fill: object, axis: int = 0) -> ArrayT:
    """A copy of a bank's per-channel array ``a`` with its channel ``axis`` extended to
    ``n`` entries, the new ones set to ``fill``."""
    shape = list(a.shape)
    old, shape[axis] = shape[axis], n
    out = np.empty(shape, dtype=a.dtype)  # each byte written once: old rows, then new
    index: list[slice] = [slice(None)] * a.ndim
    index[axis] = slice(0, old)
    out[tuple(index)] = a
    index[axis] = slice(old, n)
    out[tuple(index)] = fill
    return cast(ArrayT, out)


def check_grow(current: int, n_channels: int) -> int:
    """How many channels ``grow(n_channels)`` adds to a bank of ``current`` (0: no-op)."""
    if n_channels < current:
        raise MediaError(f"a bank cannot shrink: {current} channels, asked for {n_channels}")
    return n_channels - current


def check_keep(current: int, keep: Channels, n_channels: int) -> npt.NDArray[np.intp]:
    """``keep`` as an index array, checked for ``keep_channels(keep, n_channels)`` on a bank
    of ``current`` channels: distinct channels of the bank, no more than ``n_channels``."""
    idx = np.asarray(keep, dtype=np.intp).reshape(-1)
    if idx.shape[0] > n_channels:
        raise MediaError(f"cannot keep {idx.shape[0]} channels in {n_channels}")
    if idx.shape[0] and (idx.min() < 0 or idx.max() >= current):
        raise MediaError(f"channels to keep must be in 0..{current - 1}: {idx.tolist()}")
    if np.unique(idx).shape[0] != idx.shape[0]:
        raise MediaError(f"channels to keep must be distinct: {idx.tolist()}")
    return idx


def keep_channels(a: ArrayT, keep: npt.NDArray[np.intp], n: int, fill: object,
                  axis: int = 0) -> ArrayT:
    """A copy of a bank's per-channel array ``a`` with ``n`` channels on ``axis``: channel
    ``keep[i]`` of ``a`` becomes channel ``i``, the channels after them are set to ``fill``
    (so ``keep_channels(a, arange(old), n, fill)`` is ``grow_channels(a, n, fill)``, and a
    shorter ``keep`` compacts and shrinks the bank)."""
    shape = list(a.shape)
    shape[axis] = n
    out = np.empty(shape, dtype=a.dtype)
    k = keep.shape[0]
    index: list[slice] = [slice(None)] * a.ndim
    index[axis] = slice(0, k)
    out[tuple(index)] = np.take(a, keep, axis=axis)
    index[axis] = slice(k, n)
    out[tuple(index)] = fill
    return cast(ArrayT, out)


def keep_items(items: list[T], keep: npt.NDArray[np.intp], n: int, fresh: Any) -> list[T]:
    """The per-channel list ``items`` rearranged as :func:`keep_channels` does an array; the
    channels after the kept ones get ``fresh()``."""
    out = [items[i] for i in keep.tolist()]
    out.extend(fresh() for _ in range(n - len(out)))
    return out
