"""FlowSession: binds a sans-IO FlowRunner to an asyncio Call (the thin glue).

Call events and service results go into one inbox; the runner's single timer is the
inbox's wait timeout (aioquic's ``get_timer`` / ``handle_timer`` pattern).  Slow
services (hooks, routing, recognition, recording, transfer) run as tasks whose results
come back as flow events, so the runner keeps timing the caller meanwhile.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr_flows import actions as A
from ivr_flows.engine import FlowRunner
from ivr_flows.loader import LoadedFlow
from ivr_flows.prompts import SAMPLE_RATE, PromptRenderer
from telephony.errors import CallEnded, CallError
from telephony.events import CallEvent

log = logging.getLogger(__name__)


async def call_hook(path: str, args: dict[str, str], timeout: float) -> dict[str, Any]:
    """The default hook executor: import the coroutine function and await it."""
    module_name, _, attr = path.rpartition(".")
    fn = getattr(importlib.import_module(module_name), attr)
    result = await asyncio.wait_for(fn(**args), timeout)
    if not isinstance(result, dict):
        raise TypeError(f"hook {path} returned {type(result).__name__}, not a mapping")
    return result


@dataclass
class FlowServices:
    """What a session needs besides the call.  Unset services make their nodes fail over
    to the node's error branch (never silence)."""

    renderer: PromptRenderer
    recognizer: Any | None = None
    """telephony.speech.base.Recognizer."""
    verifier: Any | None = None
    """Voice verifier with ``verify(speaker, audio)`` and ``enroll(speaker, audio)``."""
    routing_bus: Any | None = None
    """routing.bus.RoutingBus (``request_route(offer, timeout=...)``)."""
    hooks: Callable[[str, dict[str, str], float], Any] = call_hook
    event_logger: Callable[[dict[str, Any]], None] = lambda event: None
    callback_store: Any | None = None
    """dialer.callbacks.CallbackStore."""
    survey_store: Callable[[str, dict[str, int]], None] | None = None
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    node_id: str = "local"
    recordings_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _voice_outcome(result: Any, enrolling: bool) -> tuple[str, float | None]:
    """Adapt a verifier's answer (tuple, bool, or object with outcome/accepted/score)."""
    if isinstance(result, tuple):
        return str(result[0]), (float(result[1]) if result[1] is not None else None)
    if isinstance(result, str):
        return result, None
    score = getattr(result, "score", None)
    outcome = getattr(result, "outcome", None)
    if outcome is None:
        ok = bool(getattr(result, "accepted", result))
        outcome = ("enrolled" if ok else "failed") if enrolling else (
            "verified" if ok else "rejected")
    return str(outcome), (float(score) if score is not None else None)


def _failure(action: A.Action, err: str) -> A.FlowEvent:
    """The result that tells the runner a service failed (so it takes an error branch)."""
    if isinstance(action, A.Recognize):
        return A.RecognitionResult(action.request_id, "", 0.0)
    if isinstance(action, A.CallHook):
        return A.HookResult(action.request_id, False, error=err)
    if isinstance(action, A.RequestRoute):
        return A.RouteResult(action.request_id, None, reason=err)
    if isinstance(action, A.Record):
        return A.RecordingFinished(action.request_id, "", 0.0, "error")
    if isinstance(action, (A.VerifyVoice, A.EnrollVoice)):
        return A.VoiceResult(action.request_id, "error")
    return A.TransferResult(False)


class FlowSession:
    """Runs one call through a flow: ``cdr = await FlowSession(call, flow, services).run()``."""

    def __init__(self, call: Any, flow: LoadedFlow, services: FlowServices) -> None:
        self.call = call
        self.flow = flow
        self.services = services
        self.runner = FlowRunner(flow.flow)
        self._inbox: asyncio.Queue[CallEvent | A.FlowEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> A.Cdr | None:
        s = self.services
        pump = asyncio.create_task(self._pump_call_events())
        try:
            await self._perform(self.runner.handle(
                A.CallStarted(self.call.call_id, self.call.caller, self.call.called,
                              s.wall_clock()), now=s.clock()))
            while not self.runner.ended:
                timer = self.runner.get_timer()
                timeout = None if timer is None else max(0.0, timer - s.clock())
                try:
                    ev = await asyncio.wait_for(self._inbox.get(), timeout)
                except TimeoutError:
                    await self._perform(self.runner.handle_timer(now=s.clock()))
                    continue
                await self._perform(self.runner.handle(ev, now=s.clock()))
        finally:
            pump.cancel()
            for t in list(self._tasks):
                t.cancel()
        return self.runner.cdr

    async def _pump_call_events(self) -> None:
        try:
            async for ev in self.call.events():
                await self._inbox.put(ev)
        except CallEnded:
            from telephony.events import RemoteHangup

            await self._inbox.put(RemoteHangup("ended"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, action: A.Action, coro: Any) -> None:
        """Await a service; its failure becomes the matching failed result (and a log)."""
        try:
            ev = await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a hook's or service's failure is flow data:
            # it is logged and the runner takes the node's error branch (never silence)
            err = f"{type(e).__name__}: {e}"
            self.services.event_logger({"type": "service_error", "call_id": self.call.call_id,
                                        "action": type(action).__name__, "error": err})
            ev = _failure(action, err)
        await self._inbox.put(ev)

    async def _perform(self, actions: list[A.Action]) -> None:
        s, call = self.services, self.call
        for a in actions:
            if isinstance(a, A.Log):
                s.event_logger(a.event)
            elif isinstance(a, A.PlayPrompt):
                pcm = await asyncio.to_thread(s.renderer.render, a.items)
                call.start_playback(pcm, a.prompt_id, a.barge_in)
            elif isinstance(a, A.StopPlayback):
                call.stop_playback()
            elif isinstance(a, A.StartListening):
                call.set_listening(True)
            elif isinstance(a, A.StopListening):
                call.set_listening(False)
            elif isinstance(a, A.Recognize):
                self._spawn(self._guard(a, self._recognize(a)))
            elif isinstance(a, A.CallHook):
                self._spawn(self._guard(a, self._hook(a)))
            elif isinstance(a, A.RequestRoute):
                self._spawn(self._guard(a, self._route(a)))
            elif isinstance(a, A.Transfer):
                self._spawn(self._guard(a, self._transfer(a)))
            elif isinstance(a, A.Record):
                self._spawn(self._guard(a, self._record(a)))
            elif isinstance(a, (A.VerifyVoice, A.EnrollVoice)):
                self._spawn(self._guard(a, self._voice(a)))
            elif isinstance(a, A.CreateCallback):
                if s.callback_store is not None:
                    s.callback_store.create(call_id=a.call_id, number=a.number, slot=a.slot,
                                            language=a.language, created_at=s.wall_clock(),
                                            context=a.context)
            elif isinstance(a, A.StoreSurvey):
                if s.survey_store is not None:
                    s.survey_store(a.call_id, a.answers)
            elif isinstance(a, A.Hangup):
                try:
                    await call.hangup(a.reason)
                except CallError as e:
                    log.debug("hangup after the call ended: %s", e)

    async def _hook(self, a: A.CallHook) -> A.HookResult:
        value = await self.services.hooks(a.path, a.args, a.timeout)
        return A.HookResult(a.request_id, True, value)

    async def _recognize(self, a: A.Recognize) -> A.RecognitionResult:
        rec = self.services.recognizer
        if rec is None:
            raise LookupError("no recogniser configured")
        if a.digits:
            r = await asyncio.to_thread(rec.recognize_digits, a.audio, sample_rate=SAMPLE_RATE,
                                        language=a.language, min_digits=a.min_digits,
                                        max_digits=a.max_digits)
        else:
            r = await asyncio.to_thread(rec.recognize, a.audio, sample_rate=SAMPLE_RATE,
                                        language=a.language, phrases=list(a.phrases))
        return A.RecognitionResult(a.request_id, r.text, r.confidence, r.phrase)

    async def _route(self, a: A.RequestRoute) -> A.RouteResult:
        bus = self.services.routing_bus
        if bus is None:
            raise LookupError("no routing bus configured")
        from routing.contract import HandoffOffer

        offer = HandoffOffer(node_id=self.services.node_id, sent_at=self.services.wall_clock(),
                             **a.offer)
        d = await bus.request_route(offer, timeout=a.timeout)
        if d is None:
            return A.RouteResult(a.request_id, None, reason="timeout")
        return A.RouteResult(a.request_id, d.kind, d.target, d.agent_id, d.queue, d.reason)

    async def _transfer(self, a: A.Transfer) -> A.TransferResult:
        await self.call.transfer(a.uri)
        return A.TransferResult(True, returned=False)

    async def _record(self, a: A.Record) -> A.RecordingFinished:
        path = Path(a.path)
        if self.services.recordings_dir is not None and not path.is_absolute():
            path = self.services.recordings_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        rec = await self.call.record(path, max_seconds=a.max_seconds,
                                     stop_on_silence_s=a.stop_on_silence_s,
                                     stop_digits=a.stop_digits)
        meta = dict(a.metadata, duration_s=rec.duration_s, stop_reason=rec.stop_reason)
        path.with_suffix(".json").write_text(json.dumps(meta, default=str), encoding="utf-8")
        return A.RecordingFinished(a.request_id, str(path), rec.duration_s, rec.stop_reason)

    async def _voice(self, a: A.VerifyVoice | A.EnrollVoice) -> A.VoiceResult:
        v = self.services.verifier
        if v is None:
            raise LookupError("no voice verifier configured")
        enrolling = isinstance(a, A.EnrollVoice)
        fn = v.enroll if enrolling else v.verify
        try:
            result = await asyncio.to_thread(fn, a.speaker, a.audio)
        except KeyError:
            return A.VoiceResult(a.request_id, "not_enrolled")
        outcome, score = _voice_outcome(result, enrolling)
        return A.VoiceResult(a.request_id, outcome, score)
