"""Growing a bank's per-channel state (the DSP banks add channels as calls arrive)."""

from __future__ import annotations

from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from telephony.errors import MediaError

ArrayT = TypeVar("ArrayT", bound=npt.NDArray[Any])


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
