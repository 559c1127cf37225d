"""One deadline queue for every SIP timer of an endpoint (transactions, dialogs, registrations).

A binary heap with lazy cancellation: each owner keeps ``timers: dict[name, seq]``; an entry
popped from the heap fires only if the owner still holds the same sequence number for that
name, so re-arming or cancelling a timer is O(1) and never searches the heap.

A cancelled entry still holds its owner until its deadline, and some deadlines are minutes
away (an answered call's ring guard: timer C + 64*T1, 3.5 min): every ended call's leg,
dialog and INVITE stayed alive that long (issue 12 finding 4: RSS did not come back within
a minute of an INVITE flood).  So the heap is compacted, dropping the entries no owner holds,
when it has doubled since the last compaction and every ``SWEEP_INTERVAL`` seconds of
``pop_due`` time: amortised O(1) per timer, a few milliseconds per sweep at most.
"""

from __future__ import annotations

import heapq
from itertools import count
from typing import Protocol


class TimerOwner(Protocol):
    timers: dict[str, int]

    def on_timer(self, name: str, now: float) -> None: ...


class TimerQueue:
    """Deadlines of named timers belonging to owners; see the module docstring."""

    __slots__ = ("_compact_at", "_heap", "_next_sweep", "_seq")

    SWEEP_INTERVAL = 5.0
    """Seconds (of the ``now`` given to :meth:`pop_due`) between compactions."""
    MIN_COMPACT = 256
    """Heaps smaller than this are left alone."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerOwner, str]] = []
        self._seq = count()
        self._compact_at = self.MIN_COMPACT
        self._next_sweep: float | None = None

    def set(self, owner: TimerOwner, name: str, deadline: float) -> None:
        """Arm (or re-arm) ``owner``'s timer ``name`` to fire at ``deadline``."""
        seq = next(self._seq)
        owner.timers[name] = seq
        heapq.heappush(self._heap, (deadline, seq, owner, name))
        if len(self._heap) >= self._compact_at:
            self.compact()

    def compact(self) -> None:
        """Drop the entries of cancelled or re-armed timers (and their owners with them)."""
        self._heap = [e for e in self._heap if e[2].timers.get(e[3]) == e[1]]
        heapq.heapify(self._heap)
        self._compact_at = max(self.MIN_COMPACT, 2 * len(self._heap))

    @staticmethod
    def cancel(owner: TimerOwner, name: str) -> None:
        owner.timers.pop(name, None)

    @staticmethod
    def cancel_all(owner: TimerOwner) -> None:
        owner.timers.clear()

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, seq, owner, name = heap[0]
            if owner.timers.get(name) == seq:
                return deadline
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> tuple[TimerOwner, str] | None:
        """The next timer due at ``now`` (disarmed), or None."""
        if self._next_sweep is None or now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_INTERVAL
            if len(self._heap) >= self.MIN_COMPACT:
                self.compact()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, owner, name = heapq.heappop(heap)
            if owner.timers.get(name) == seq:
                del owner.timers[name]
                return owner, name
        return None

    def __len__(self) -> int:
        return len(self._heap)
