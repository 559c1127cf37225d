"""Group commit of call outcomes: the calls that end within a few tens of milliseconds of
each other have their outcomes written in one store transaction.

Each caller awaits its own outcome, as with one transaction per call: it returns once the
outcome is committed, and raises what :meth:`DialerStore.record_outcome` would have raised
for it alone (LeaseLost, DialerError), never another call's error.  A batch that fails as a
whole is written again one outcome at a time by the store
(:meth:`DialerStore.record_outcomes`), so a bad outcome never loses the others.  Nothing is
acknowledged before it is committed: a crash loses only outcomes whose calls are still
waiting on them, and the restart closes those attempts (``orphan_leases``) as it did with
one transaction per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dialer.store import DialerStore, Outcome

__all__ = ["OutcomeWriter"]

Runner = Callable[..., Awaitable[Any]]


class OutcomeWriter:
    """Collects outcomes for ``delay_s`` (or until ``max_batch``) and writes them together.

    ``run`` calls the store off the event loop (default :func:`asyncio.to_thread`).  One
    batch is written at a time; outcomes that arrive meanwhile form the next one.
    """

    def __init__(self, store: DialerStore, *, delay_s: float = 0.05, max_batch: int = 500,
                 run: Runner | None = None) -> None:
        self.store = store
        self.delay_s = delay_s
        self.max_batch = max_batch
        self._run: Runner = run or asyncio.to_thread
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._full = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        """Transactions written (for tests and benchmarks)."""

    async def record(self, outcome: Outcome) -> None:
        """Write ``outcome`` with the others of its batch; returns once it is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, fut))
        if len(self._pending) >= self.max_batch:
            self._full.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_loop())
        await fut

    async def _write_loop(self) -> None:
        while self._pending:
            if len(self._pending) < self.max_batch:
                self._full.clear()
                try:
                    await asyncio.wait_for(self._full.wait(), self.delay_s)
                except TimeoutError:
                    pass
            batch = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
            await self._write(batch)

    async def _write(self, batch: Sequence[tuple[Outcome, asyncio.Future[None]]]) -> None:
        try:
            errors = await self._run(self.store.record_outcomes, [o for o, _ in batch])
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as e:  # noqa: BLE001 - each caller of the batch gets it raised
            # The store hands per-outcome errors back; this is the call itself failing
            # (no thread to run it): every caller of the batch hears of it.
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        self.batches += 1
        for (_, fut), err in zip(batch, errors, strict=True):
            if fut.done():  # its caller was cancelled: the outcome is written all the same
                continue
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)
