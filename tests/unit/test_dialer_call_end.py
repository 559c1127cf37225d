"""Every call the engine dials ends for the pacer exactly once, whatever way its task ends
(the outcome written, the store failing, the task cancelled before it ran, shutdown): a
call that never ended held a line in the pacer's count for ever (``in_flight`` stale, no
new call placed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dialer.engine import CampaignEngine, EngineConfig
from dialer.errors import DialerError
from dialer.pacing import CallEnded
from dialer.store import Lease, Outcome
from telephony.media import MediaConfig
from tests.unit.dialer_helpers import new_store


def lease(n: int) -> Lease:
    return Lease(campaign="c1", campaign_id=1, contact_id=n, attempt_id=n,
                 e164=f"+4420794600{n:02d}", label="", zones=(), fields={}, language=None,
                 attempt=1, callback=False, owner="me", until=1e12)


class Harness:
    """A real engine over a real (empty) store; leases and calls stubbed."""

    def __init__(self, tmp: Path) -> None:
        store = new_store(tmp, caller_id="+442079460999", pacing="progressive")
        ua = SimpleNamespace(config=SimpleNamespace(media_defaults=MediaConfig()))
        self.engine = CampaignEngine(store, "c1", ua,  # type: ignore[arg-type]
                                     EngineConfig(trunk="sip:127.0.0.1:5060", owner="me"))
        self.ended: list[str] = []
        self.leases = [lease(1), lease(2)]
        pacer_on_event = self.engine.pacer.on_event

        def on_event(ev: Any, *, now: float) -> Any:
            if isinstance(ev, CallEnded):
                self.ended.append(ev.call_id)
            return pacer_on_event(ev, now=now)

        self.engine.pacer.on_event = on_event  # type: ignore[method-assign,assignment]

        async def db(fn: Any, *args: Any, **kw: Any) -> Any:
            if fn == self.engine.store.lease:
                return self.leases[:kw["count"]]
            if fn == self.engine.store.write_engine_status:
                return None
            raise AssertionError(fn)

        self.engine._db = db  # type: ignore[method-assign]
        for i in range(2):
            self.engine._agent_event(_ev("AgentLoggedIn", f"sip:a{i}@x"))
            self.engine._agent_event(_ev("AgentReady", f"sip:a{i}@x"))

    async def place(self) -> int:
        n = await self.engine._place(0.0)
        assert self.engine.pacer.state.in_flight == n == 2
        return n


def _ev(name: str, uri: str) -> Any:
    import dialer.pacing as p
    return getattr(p, name)(uri)


async def settle(engine: CampaignEngine) -> None:
    for _ in range(50):
        if not engine._calls:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("call tasks still running")


async def test_a_store_error_writing_the_outcome_still_ends_the_call_for_the_pacer(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def handled(call_id: str, lease: Lease, out: dict[str, Any]) -> str:
        return "busy"

    async def record(outcome: Outcome) -> None:
        if outcome.lease.attempt_id == 1:
            raise OSError("database is locked")  # the store's own error, not a DialerError
        raise DialerError("attempt 2 already has outcome failed")  # a recovery raced us

    h.engine._dial_and_handle = handled  # type: ignore[method-assign]
    h.engine._outcomes.record = record  # type: ignore[method-assign]
    await h.place()
    await settle(h.engine)
    assert sorted(h.ended) == ["c1-1", "c1-2"]  # once each
    assert h.engine.pacer.state.in_flight == 0


async def test_a_call_cancelled_before_it_ran_or_while_dialling_ends_once(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    started = asyncio.Event()

    async def stuck(call_id: str, lease: Lease, out: dict[str, Any]) -> str:
        started.set()
        await asyncio.Event().wait()  # a dial that never resolves
        raise AssertionError

    h.engine._dial_and_handle = stuck  # type: ignore[method-assign]
    await h.place()
    first, second = list(h.engine._calls.values())
    second.cancel()  # before its first step
    await started.wait()
    first.cancel()
    await settle(h.engine)
    assert sorted(h.ended) == ["c1-1", "c1-2"]
    assert h.engine.pacer.state.in_flight == 0


async def test_shutdown_hangs_up_a_stuck_call_writes_its_outcome_and_returns_in_time(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    written: list[tuple[int, str]] = []
    h.leases = [lease(1)]

    async def stuck(call_id: str, lease: Lease, out: dict[str, Any]) -> str:
        out["amd"] = "human"  # a person heard, waiting for an agent that never comes
        await asyncio.Event().wait()
        raise AssertionError

    async def record(outcome: Outcome) -> None:
        written.append((outcome.lease.attempt_id, outcome.disposition))

    h.engine._dial_and_handle = stuck  # type: ignore[method-assign]
    h.engine._outcomes.record = record  # type: ignore[method-assign]
    await h.engine._place(0.0)
    await asyncio.sleep(0.01)
    h.engine.shutdown()
    await settle(h.engine)
    # a person hung up on without an agent: abandoned (counted against the cap)
    assert written == [(1, "abandoned")]
    assert h.ended == ["c1-1"]
    # A call whose outcome the store never takes does not hold run()'s end either.

    async def never(outcome: Outcome) -> None:
        await asyncio.Event().wait()

    h.leases = [lease(2)]
    h.engine._shutting_down = False
    h.engine._outcomes.record = never  # type: ignore[method-assign]
    await h.engine._place(0.0)
    await asyncio.sleep(0.01)
    h.engine.shutdown()
    h.engine.shutdown_grace_s = 0.2
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await h.engine._wind_down()
    assert loop.time() - t0 < 1.0
    assert list(h.engine._calls) == ["c1-2"]  # left open: the restart recovers it


async def test_a_cancelled_inner_task_fails_the_call_with_its_outcome(tmp_path: Path) -> None:
    # A CancelledError out of an awaited task (a claim or an agent's dial cancelled) is not
    # the call's own cancellation: the call ends failed, outcome written, pacer told.
    h = Harness(tmp_path)
    h.leases = [lease(1)]
    written: list[tuple[int, str]] = []

    async def inner() -> None:
        await asyncio.Event().wait()

    async def handled(call_id: str, lease: Lease, out: dict[str, Any]) -> str:
        task = asyncio.ensure_future(inner())
        await asyncio.sleep(0)
        task.cancel()
        await task  # raises CancelledError here, in the call's task
        raise AssertionError

    async def record(outcome: Outcome) -> None:
        written.append((outcome.lease.attempt_id, outcome.disposition))

    h.engine._dial_and_handle = handled  # type: ignore[method-assign]
    h.engine._outcomes.record = record  # type: ignore[method-assign]
    await h.engine._place(0.0)
    await settle(h.engine)
    assert written == [(1, "failed")]
    assert h.ended == ["c1-1"]
