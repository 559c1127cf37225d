"""An agent's leg dialled while AMD listens (issue 14: a person reaches an agent within
the rule's 2 s of the end of their greeting; in practice a few ms after the verdict).

Dialling the agent only once AMD has said "human" puts the whole INVITE / 200 / ACK round
trip (70-200 ms on loopback, often a second on a PBX that rings the phone) between the
verdict and the bridge.  A predictive dialer does it earlier: at answer, an agent is
reserved and their leg dialled in parallel with AMD; the answered leg is held (the agent
hears silence) until the verdict.  A human verdict takes the held leg and bridges it at
once (a media switch); a machine verdict, or a callee who hangs up first, ends it (BYE,
or CANCEL while it still rings) and the agent is free again.

:class:`EarlyAgentLeg` is that one leg's lifecycle.  It knows nothing of agents' states
or the pacer: the engine reserves the agent before, and gives it back (``ready``, or
``away`` when :attr:`refused`) after :meth:`release`.  The engine releases every early
leg in a ``finally`` of the answered call, so no path (machine, late machine, hang-up,
agent refusing, an error, the engine stopping) leaves one up; :meth:`release` after
:meth:`take` is a no-op (the leg then belongs to the bridge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeVar

from telephony.aio.call import Call
from telephony.errors import CallFailed

__all__ = ["EarlyAgentLeg", "EarlyLegState"]

log = logging.getLogger(__name__)

A = TypeVar("A")
EarlyLegState = Literal["dialling", "held", "refused", "gone", "taken", "released"]


class EarlyAgentLeg(Generic[A]):
    """One agent's leg dialled at answer and held until AMD's verdict.

    ``dial`` places the leg (``UserAgent.dial`` to the agent's URI); it starts at once.
    States: ``dialling`` -> ``held`` (answered, waiting for the verdict) -> ``taken`` (the
    engine bridged it) or ``released`` (ended by us); ``refused`` (the agent's leg failed:
    busy, no answer) and ``gone`` (the agent hung up while held) end it from their side.
    """

    def __init__(self, agent: A, dial: Callable[[], Awaitable[Call]]) -> None:
        self.agent = agent
        self.state: EarlyLegState = "dialling"
        self.leg: Call | None = None
        self._given_back = False
        self.refused: CallFailed | None = None
        """Why the agent's leg failed, when it did (the engine then marks the agent away)."""
        self._task: asyncio.Task[Call] = asyncio.ensure_future(dial())
        self._task.add_done_callback(lambda _t: self._settle())

    def _settle(self) -> None:
        """Move on from ``dialling`` once the dial has finished (whichever looks first)."""
        task = self._task
        if self.state != "dialling" or not task.done() or task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self.leg = task.result()
            self.state = "held"
            return
        self.state = "refused"
        self.refused = exc if isinstance(exc, CallFailed) else CallFailed(str(exc), 500)
        log.info("early agent leg refused: %s", exc)

    @property
    def answered(self) -> bool:
        """The leg is up and held (ready to bridge at once)."""
        self._settle()
        return self.state == "held" and self.leg is not None and not self.leg.ended

    def take_now(self) -> Call | None:
        """The held leg at once when it is answered (the bridge is then made in the same
        step as the verdict), else None and nothing changes (:meth:`take` may wait)."""
        if not self.answered:
            return None
        self.state = "taken"
        return self.leg

    async def take(self, timeout: float) -> Call | None:
        """The answered leg for a human verdict, waiting at most ``timeout`` s for it to be
        answered; None when the agent refused, hung up while held, or did not answer in
        time (the leg is then released).  Cancelling ``take`` leaves the leg to
        :meth:`release`."""
        if self.state == "dialling" and not self._task.done():
            with contextlib.suppress(TimeoutError, CallFailed):
                await asyncio.wait_for(asyncio.shield(self._task), max(0.0, timeout))
        self._settle()
        if self.state == "held" and self.leg is not None and self.leg.ended:
            self.state = "gone"
        if self.state != "held" or self.leg is None:
            if self.state == "dialling":
                await self._close("agent_too_slow")
            return None
        self.state = "taken"
        return self.leg

    async def release(self, reason: str = "normal") -> bool:
        """End the leg unless it was taken or has ended from the agent's side: CANCEL
        while it rings, BYE once answered.  The state then says what happened
        (``released``, or ``refused`` / ``gone``: the engine marks that agent away).

        True the first time it is called on a leg that was not taken: the caller then
        gives the agent back (exactly once, whichever path gets here first)."""
        first = not self._given_back
        self._given_back = True
        await self._close(reason)
        return first and self.state != "taken"

    async def _close(self, reason: str) -> None:
        self._settle()
        if self.state == "held" and self.leg is not None and self.leg.ended:
            self.state = "gone"  # the agent hung up while held
        if self.state in ("taken", "released", "refused", "gone"):
            return
        self.state = "released"
        if not self._task.done():
            # UserAgent.dial sends CANCEL (or BYE, if the 200 crossed) when cancelled.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, CallFailed):
                await self._task
        leg = self.leg
        task = self._task
        if leg is None and task.done() and not task.cancelled() and task.exception() is None:
            # The answer won the race with our cancel (Python 3.11's wait_for returns the
            # result and drops the cancellation): the leg is up and must not stay so.
            leg = task.result()
        if leg is not None and not leg.ended:
            await leg.hangup(reason)
