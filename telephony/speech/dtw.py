"""Dynamic time warping for template matching, vectorised with numpy.

Two algorithms over the same local distance (Euclidean between feature frames):

* :func:`dtw_distances`: isolated-word DTW of one utterance against many
  templates at once.  The templates are stacked side by side in one state axis
  (two blocked columns between them) so each utterance frame is one vector
  operation over all templates.  The step pattern matches every utterance frame
  exactly once and lets the template advance by 0, 1 or 2 frames (local slope
  0..2, Itakura style); a Sakoe-Chiba-style band around the diagonal bounds the
  warp.  The distance is the accumulated cost divided by the utterance length.
* :func:`one_pass_dtw`: connected-word recognition (Ney's one-stage algorithm)
  for digit strings: the same within-word steps, plus word-to-word transitions
  from the best word end at the previous frame with an insertion penalty;
  traceback through recorded word boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

__all__ = ["WordHit", "dtw_distances", "local_distances", "one_pass_dtw"]

_GAP = 2  # blocked columns between stacked templates: a 2-frame skip cannot cross them


def local_distances(x: FloatArray, y: FloatArray) -> FloatArray:
    """Euclidean distances between every row of ``x`` and every row of ``y``."""
    sq = (x * x).sum(axis=1)[:, None] + (y * y).sum(axis=1)[None, :] - 2.0 * (x @ y.T)
    return np.asarray(np.sqrt(np.maximum(sq, 0.0)), dtype=np.float64)


def _stack(templates: Sequence[FloatArray]) -> tuple[FloatArray, IntArray, IntArray]:
    """Stack templates with blocked gap columns; returns (frames, starts, lengths)."""
    dim = templates[0].shape[1]
    lengths = np.array([t.shape[0] for t in templates], dtype=np.int64)
    starts = np.concatenate(([_GAP], np.cumsum(lengths + _GAP)[:-1] + _GAP)).astype(np.int64)
    total = int(starts[-1] + lengths[-1])
    stacked = np.zeros((total, dim))
    for t, s in zip(templates, starts.tolist()):
        stacked[s : s + t.shape[0]] = t
    return stacked, starts, lengths


def _shift(row: FloatArray, k: int, fill: float) -> FloatArray:
    out = np.empty_like(row)
    out[:k] = fill
    out[k:] = row[:-k]
    return out


def dtw_distances(
    utterance: FloatArray,
    templates: Sequence[FloatArray],
    *,
    band: float = 0.3,
    slack: int = 2,
) -> FloatArray:
    """Length-normalised DTW distance from ``utterance`` to each template.

    ``band`` is the half-width of the allowed region around the diagonal as a
    fraction of the template length (at least 3 frames); ``slack`` frames of
    either end of a template may be skipped, to forgive endpointing.  A template
    that cannot be aligned (longer than twice the utterance) gets ``inf``.
    """
    n = utterance.shape[0]
    if n == 0 or not templates:
        return np.full(len(templates), np.inf)
    stacked, starts, lengths = _stack(templates)
    total = stacked.shape[0]
    cost = local_distances(utterance, stacked)
    # Column -> (template, position within it); gap columns are blocked.
    owner = np.full(total, -1, dtype=np.int64)
    pos = np.zeros(total, dtype=np.float64)
    for k, (s, m) in enumerate(zip(starts.tolist(), lengths.tolist())):
        owner[s : s + m] = k
        pos[s : s + m] = np.arange(m)
    blocked = owner < 0
    m_of = np.where(blocked, 1, lengths[np.maximum(owner, 0)]).astype(np.float64)
    half = np.maximum(band * m_of, 3.0)
    # Band: frame i of n should sit near template position i * m / n.
    diag = np.arange(n, dtype=np.float64)[:, None] * (m_of[None, :] - 1) / max(n - 1, 1)
    outside = np.abs(pos[None, :] - diag) > half[None, :]
    cost[outside] = np.inf
    cost[:, blocked] = np.inf

    acc = np.full(total, np.inf)
    first = np.zeros(total, dtype=bool)
    for k in range(slack + 1):
        first[starts + np.minimum(k, lengths - 1)] = True
    acc[first] = cost[0, first]
    for i in range(1, n):
        best = np.minimum(acc, np.minimum(_shift(acc, 1, np.inf), _shift(acc, 2, np.inf)))
        acc = cost[i] + best
    ends = np.full((len(templates), slack + 1), np.inf)
    for k in range(slack + 1):
        ends[:, k] = acc[starts + np.maximum(lengths - 1 - k, 0)]
    return np.asarray(ends.min(axis=1) / n, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class WordHit:
    """One word of a one-pass DTW decoding."""

    template: int
    """Index of the template that matched."""
    start: int
    """First utterance frame of the word."""
    stop: int
    """One past the last utterance frame."""
    cost: float
    """Accumulated local cost of the word's frames."""


def one_pass_dtw(
    utterance: FloatArray,
    templates: Sequence[FloatArray],
    *,
    word_penalty: float,
) -> list[WordHit]:
    """Best sequence of templates explaining ``utterance`` (connected words).

    ``word_penalty`` is added at every word start (controls insertions).
    """
    n = utterance.shape[0]
    if n == 0 or not templates:
        return []
    stacked, starts, lengths = _stack(templates)
    total = stacked.shape[0]
    cost = local_distances(utterance, stacked)
    blocked = np.ones(total, dtype=bool)
    for s, m in zip(starts.tolist(), lengths.tolist()):
        blocked[s : s + m] = False
    cost[:, blocked] = np.inf
    ends = starts + lengths - 1
    cols = np.arange(total)

    acc = np.full(total, np.inf)
    origin = np.zeros(total, dtype=np.int64)  # frame where the current word started
    acc[starts] = cost[0, starts] + word_penalty
    end_cost = np.empty(n)
    end_word = np.empty(n, dtype=np.int64)
    end_origin = np.empty(n, dtype=np.int64)
    end_acc_origin = np.empty(n)  # accumulated cost when the word began

    def record(t: int) -> None:
        k = int(np.argmin(acc[ends]))
        end_cost[t] = acc[ends[k]]
        end_word[t] = k
        end_origin[t] = origin[ends[k]]

    word_start_acc = np.zeros(total)
    word_start_acc[starts] = 0.0
    record(0)
    end_acc_origin[0] = 0.0
    for t in range(1, n):
        cands = np.stack((acc, _shift(acc, 1, np.inf), _shift(acc, 2, np.inf)))
        choice = np.argmin(cands, axis=0)
        src = cols - choice
        new = cands[choice, cols]
        new_origin = origin[np.maximum(src, 0)]
        new_wsa = word_start_acc[np.maximum(src, 0)]
        # Entering a word: from its own first frame, or from the best word end at t-1.
        entry = end_cost[t - 1] + word_penalty
        take = entry < new[starts]
        new[starts] = np.where(take, entry, new[starts])
        new_origin[starts] = np.where(take, t, new_origin[starts])
        new_wsa[starts] = np.where(take, end_cost[t - 1], new_wsa[starts])
        acc = cost[t] + new
        origin = new_origin
        word_start_acc = new_wsa
        record(t)
        end_acc_origin[t] = word_start_acc[ends[end_word[t]]]

    hits: list[WordHit] = []
    t = n - 1
    while t >= 0:
        k, begin = int(end_word[t]), int(end_origin[t])
        hits.append(WordHit(k, begin, t + 1, float(end_cost[t] - end_acc_origin[t] - word_penalty)))
        t = begin - 1
    hits.reverse()
    return hits
