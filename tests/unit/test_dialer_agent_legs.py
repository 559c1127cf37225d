"""The early agent leg's lifecycle (dialer/agent_legs.py): every leg dialled at answer is
bridged or ended, on every path; the agent is given back exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

from dialer.agent_legs import EarlyAgentLeg
from telephony.errors import CallFailed


class FakeLeg:
    """What EarlyAgentLeg uses of a Call: ``ended`` and ``hangup``."""

    def __init__(self) -> None:
        self.ended = False
        self.hung_up: str | None = None

    async def hangup(self, reason: str = "normal") -> None:
        self.ended, self.hung_up = True, reason


class FakeDial:
    """A dial the test answers (or fails); records whether it was cancelled (CANCEL)."""

    def __init__(self) -> None:
        self.result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.cancelled = False

    async def __call__(self) -> Any:
        try:
            return await self.result
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_machine_verdict_while_ringing_cancels_the_leg() -> None:
    dial = FakeDial()
    early = EarlyAgentLeg("agent1", dial)
    await settle()
    assert early.state == "dialling" and not early.answered
    assert await early.release("amd_machine") is True
    assert dial.cancelled and early.state == "released"
    assert await early.release("amd_machine") is False  # the agent is given back once


async def test_machine_verdict_after_answer_hangs_the_held_leg_up() -> None:
    dial, leg = FakeDial(), FakeLeg()
    early = EarlyAgentLeg("agent1", dial)
    dial.result.set_result(leg)
    await settle()
    assert early.answered and early.state == "held"
    assert await early.release("amd_machine") is True
    assert leg.hung_up == "amd_machine" and early.state == "released"


async def test_caller_hangs_up_before_the_verdict_ends_the_leg() -> None:
    dial, leg = FakeDial(), FakeLeg()
    early = EarlyAgentLeg("agent1", dial)
    dial.result.set_result(leg)
    await settle()
    # the engine's finally on the answered call, whatever ended it
    assert await early.release("caller_gone") is True
    assert leg.ended and leg.hung_up == "caller_gone"


async def test_human_verdict_takes_the_held_leg_and_release_leaves_it() -> None:
    dial, leg = FakeDial(), FakeLeg()
    early = EarlyAgentLeg("agent1", dial)
    dial.result.set_result(leg)
    await settle()
    assert await early.take(1.0) is leg
    assert early.state == "taken"
    assert await early.release("caller_gone") is False  # the bridge owns it now
    assert not leg.ended
    # the same without waiting, in the verdict's own step
    dial2, leg2 = FakeDial(), FakeLeg()
    now = EarlyAgentLeg("agent2", dial2)
    assert now.take_now() is None and now.state == "dialling"  # still ringing
    dial2.result.set_result(leg2)
    await settle()
    assert now.take_now() is leg2 and now.state == "taken"
    assert now.take_now() is None and await now.release() is False


async def test_take_waits_for_a_ringing_leg_then_gives_up_with_cancel() -> None:
    dial, leg = FakeDial(), FakeLeg()
    early = EarlyAgentLeg("agent1", dial)
    asyncio.get_running_loop().call_later(0.02, dial.result.set_result, leg)
    assert await early.take(1.0) is leg
    dial2 = FakeDial()
    slow = EarlyAgentLeg("agent2", dial2)
    assert await slow.take(0.02) is None
    assert dial2.cancelled and slow.state == "released"
    assert await slow.release() is True  # the engine then gives agent2 back


async def test_agent_refusing_or_hanging_up_while_held_is_reported() -> None:
    dial = FakeDial()
    early = EarlyAgentLeg("busy", dial)
    dial.result.set_exception(CallFailed("busy", 486))
    assert await early.take(1.0) is None
    assert early.state == "refused" and early.refused is not None
    assert early.refused.status == 486
    assert await early.release() is True
    dial2, leg = FakeDial(), FakeLeg()
    gone = EarlyAgentLeg("agent1", dial2)
    dial2.result.set_result(leg)
    await settle()
    leg.ended = True  # the agent hung up while held
    assert await gone.take(1.0) is None
    assert gone.state == "gone" and leg.hung_up is None
    assert await gone.release() is True


async def test_a_leg_answered_as_it_is_cancelled_is_still_hung_up() -> None:
    # Python 3.11's wait_for (in UserAgent.dial) can return the answered call and drop the
    # cancellation when both come in the same loop step: the leg must not stay up.
    leg = FakeLeg()
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def dial() -> Any:
        try:
            await gate
        except asyncio.CancelledError:
            return leg  # the cancel swallowed, the answer returned
        raise AssertionError

    early = EarlyAgentLeg("agent1", dial)
    await settle()
    assert await early.release("amd_machine") is True
    assert leg.hung_up == "amd_machine"
