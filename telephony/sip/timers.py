"""One deadline queue for every SIP timer of an endpoint (transactions, dialogs, registrations).

A binary heap with lazy cancellation: each owner keeps ``timers: dict[name, seq]``; an entry
popped from the heap fires only if the owner still holds the same sequence number for that
name, so re-arming or cancelling a timer is O(1) and never searches the heap.
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

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerOwner, str]] = []
        self._seq = count()

    def set(self, owner: TimerOwner, name: str, deadline: float) -> None:
        """Arm (or re-arm) ``owner``'s timer ``name`` to fire at ``deadline``."""
        seq = next(self._seq)
        owner.timers[name] = seq
        heapq.heappush(self._heap, (deadline, seq, owner, name))

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
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, owner, name = heapq.heappop(heap)
            if owner.timers.get(name) == seq:
                del owner.timers[name]
                return owner, name
        return None

    def __len__(self) -> int:
        return len(self._heap)
