"""Bounded-memory estimators: exponentially decayed histograms, rates and means.

Each observation weighs ``1 / (1 - 1/memory)`` times the one before it, so the estimate
follows a list that changes as it is worked while its cost per update and per query never
grows (STYLE.md 13).  The decay is per observation, not per second: a quiet campaign keeps
what it learnt.  Weights grow geometrically and are renormalised when large, so an update
is O(1) and a query O(bins).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_RESCALE_AT = 1e150


class DecayedHistogram:
    """Decayed counts of values in fixed bins, for one or more series sharing one decay.

    With several series (``series=2``: "answered at x" and "ended unanswered at x"), the
    masses are fractions of all observations, so their cumulative sums are sub-distributions.
    The CDF is piecewise linear between bin edges.
    """

    def __init__(self, edges: FloatArray, *, memory: float, series: int = 1) -> None:
        if memory < 1.0:
            raise ValueError("memory must be >= 1 observation")
        self.edges = np.asarray(edges, dtype=np.float64)
        self._w = np.zeros((series, len(self.edges) - 1))
        self._grow = 1.0 / (1.0 - 1.0 / memory) if memory > 1.0 else 1.0
        self._scale = 1.0
        self._total = 0.0
        self.count = 0
        """Observations seen (not decayed)."""
        self._cum: FloatArray | None = None

    @property
    def effective_count(self) -> float:
        """The decayed number of observations (at most ``memory``)."""
        return self._total / self._scale

    def add(self, value: float, series: int = 0) -> None:
        """Count one observation of ``value`` in ``series``."""
        self._scale *= self._grow
        i = int(np.searchsorted(self.edges, value, side="right")) - 1
        i = min(max(i, 0), self._w.shape[1] - 1)
        self._w[series, i] += self._scale
        self._total += self._scale
        self.count += 1
        self._cum = None
        if self._scale > _RESCALE_AT:
            self._w /= self._scale
            self._total /= self._scale
            self._scale = 1.0

    def cumulative(self) -> FloatArray:
        """Per series, the fraction of observations at or below each edge (shape series x edges)."""
        if self._cum is None:
            cum = np.zeros((self._w.shape[0], len(self.edges)))
            if self._total > 0.0:
                np.cumsum(self._w, axis=1, out=cum[:, 1:])
                cum /= self._total
            self._cum = cum
        return self._cum

    def cdf(self, x: FloatArray | float, series: int = 0) -> FloatArray:
        """Fraction of observations in ``series`` at or below ``x`` (interpolated)."""
        out: FloatArray = np.asarray(np.interp(x, self.edges, self.cumulative()[series]))
        return out

    def quantile(self, q: float, series: int = 0) -> float:
        """The value below which fraction ``q`` of the series' mass lies (normalised to it)."""
        cum = self.cumulative()[series]
        top = cum[-1]
        if top <= 0.0:
            return float(self.edges[-1])
        return float(np.interp(q * top, cum, self.edges))


class DecayedRate:
    """A decayed proportion of successes, with a conservative upper bound for few samples."""

    def __init__(self, *, memory: float) -> None:
        self._keep = 1.0 - 1.0 / memory
        self.hits = 0.0
        self.trials = 0.0
        self.count = 0

    def add(self, hit: bool) -> None:
        """Count one trial."""
        self.hits = self.hits * self._keep + (1.0 if hit else 0.0)
        self.trials = self.trials * self._keep + 1.0
        self.count += 1

    @property
    def value(self) -> float:
        """The decayed proportion (0 before any trial)."""
        return self.hits / self.trials if self.trials > 0.0 else 0.0

    def upper(self, z: float = 1.0) -> float:
        """Wilson's upper bound at ``z`` standard errors, on the decayed trial count."""
        n = self.trials
        if n <= 0.0:
            return 1.0
        p = self.hits / n
        denom = 1.0 + z * z / n
        centre = p + z * z / (2.0 * n)
        spread = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
        return min(1.0, (centre + spread) / denom)


class DecayedMean:
    """A decayed mean (``default`` until the first value)."""

    def __init__(self, *, memory: float, default: float) -> None:
        self._keep = 1.0 - 1.0 / memory
        self._sum = 0.0
        self._weight = 0.0
        self._default = default
        self.count = 0

    def add(self, value: float) -> None:
        """Count one value."""
        self._sum = self._sum * self._keep + value
        self._weight = self._weight * self._keep + 1.0
        self.count += 1

    @property
    def value(self) -> float:
        """The decayed mean."""
        return self._sum / self._weight if self._weight > 0.0 else self._default
