"""Run a flow against a caller script on a virtual clock, in-process, faster than real time.

The loop advances in 20 ms steps.  The *caller side* is an interface
(:class:`CallerSide`): it plays the IVR's prompts, turns the caller's key presses and
utterances into call events, and reports what the IVR's media would see.
:class:`EventCaller` is the in-process implementation (event level: a press becomes a
``DtmfReceived``, a ``say`` a ``SpeechStarted``/``SpeechEnded`` carrying the WAV's audio,
which the real speech recogniser then hears); a media-level or SIP caller can implement
the same interface.  Services (prompt renderer, recogniser, hooks, router, voice
verifier, callback store) are the real ones or small scripted fakes chosen by the
script's header.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from ivr_flows import actions as A
from ivr_flows.engine import FlowRunner
from ivr_flows.loader import LoadedFlow
from ivr_flows.prompts import SAMPLE_RATE, PromptRenderer
from ivr_flows.scripts import CallerScript, Step
from ivr_flows.testing import KEY_MS, EventCaller, ScriptedVoice
from telephony.dsp.wavio import read_wav_8k
from telephony.errors import AudioFileError, DialtoneError
from telephony.events import (
    CallEvent,
    DtmfReceived,
)

TICK = 0.020
GAP_MS = 60


# --- the caller side -----------------------------------------------------------------------


class CallerSide(Protocol):
    """What the harness needs from 'the other end' (in-process now, SIP later)."""

    def play(self, prompt_id: str, pcm: np.ndarray, *, barge_in: bool, now: float) -> None: ...
    def stop_playback(self, *, now: float) -> None: ...
    def set_listening(self, enabled: bool, *, now: float) -> None: ...
    def press(self, digit: str, *, how: str, now: float) -> None: ...
    def say(self, pcm: np.ndarray, *, now: float) -> float:
        """Start an utterance; returns when the endpointer will have ended it."""
        ...
    def hangup(self, *, now: float) -> None: ...
    def tick(self, *, now: float) -> list[CallEvent]: ...
    def caller_speaking(self, *, now: float) -> bool: ...


def run_hook(path: str, args: dict[str, str], timeout: float) -> tuple[bool, Any]:
    """Await the hook at ``path`` with a timeout, from synchronous code."""
    module_name, _, attr = path.rpartition(".")
    fn = getattr(importlib.import_module(module_name), attr)

    async def call() -> Any:
        return await asyncio.wait_for(fn(**args), timeout)

    try:
        asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # inside an async test
            return True, pool.submit(asyncio.run, call()).result()
    except RuntimeError:
        pass
    return True, asyncio.run(call())


# --- results ---------------------------------------------------------------------------------


@dataclass
class Expectation:
    step: int
    description: str
    passed: bool
    at: float
    detail: str = ""


@dataclass
class RunResult:
    """What happened: the event log, expectations, the CDR and the edges taken."""

    script: str
    log: list[dict[str, Any]]
    expectations: list[Expectation]
    cdr: dict[str, Any] | None
    edges_taken: set[tuple[str, str, str]]
    simulated_s: float
    callbacks: list[A.CreateCallback] = field(default_factory=list)
    surveys: list[A.StoreSurvey] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(e.passed for e in self.expectations)

    def to_dict(self) -> dict[str, Any]:
        return {"script": self.script, "passed": self.passed, "error": self.error,
                "simulated_s": round(self.simulated_s, 3), "cdr": self.cdr,
                "expectations": [e.__dict__ for e in self.expectations],
                "edges_taken": sorted(list(e) for e in self.edges_taken), "log": self.log}

    def trace_lines(self) -> list[str]:
        """A readable trace: nodes, prompts with their language, inputs, actions, hand-off."""
        lines: list[str] = []
        for ev in self.log:
            t, typ = ev.get("t", 0.0), ev["type"]
            if typ == "node_entered":
                lines.append(f"{t:8.2f}  node {ev['node']} ({ev['kind']}) via {ev['edge']}")
            elif typ == "action" and ev["action"] == "PlayPrompt":
                items = ", ".join(f"{i['key'] or i['file'] or 'tts'}[{i['language']}]"
                                  for i in ev["items"])
                lines.append(f"{t:8.2f}    play {items}")
            elif typ == "action" and ev["action"] not in ("StartListening", "StopListening",
                                                          "StopPlayback", "PlayPrompt"):
                rest = {k: v for k, v in ev.items() if k not in ("type", "call_id", "t", "node",
                                                                 "action")}
                lines.append(f"{t:8.2f}    {ev['action']} {json.dumps(rest, default=str)}")
            elif typ in ("input", "recognition", "no_input", "no_match", "language", "choice"):
                rest = {k: v for k, v in ev.items() if k not in ("type", "call_id", "t", "node")}
                lines.append(f"{t:8.2f}    {typ} {json.dumps(rest, default=str)}")
            elif typ in ("handoff", "route_decision", "error", "hook_result", "flow_ended"):
                rest = {k: v for k, v in ev.items() if k not in ("type", "call_id", "t")}
                lines.append(f"{t:8.2f}  {typ.upper()} {json.dumps(rest, default=str)}")
        for e in self.expectations:
            mark = "PASS" if e.passed else "FAIL"
            lines.append(f"{mark} step {e.step} {e.description} (t={e.at:.2f}) {e.detail}")
        if self.error:
            lines.append(f"ERROR {self.error}")
        return lines


# --- the harness -----------------------------------------------------------------------------


def _subset(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _subset(v, got[k])
                                             for k, v in want.items())
    if isinstance(want, list) and isinstance(got, list):
        return all(any(_subset(w, g) for g in got) for w in want)
    return want == got or str(want) == str(got)


LOGGED_EXPECTATIONS = frozenset({"prompt", "not_prompt", "node", "handoff", "transfer",
                                 "voicemail"})
"""Expectation kinds checked against the call's event log alone (in process or over SIP)."""


def _logged_predicate(kind: str, want: Any) -> Callable[[dict[str, Any]], bool]:
    if kind == "prompt":
        key = want if isinstance(want, str) else want.get("key")
        lang = None if isinstance(want, str) else want.get("language")
        return lambda e: (e.get("type") == "action" and e.get("action") == "PlayPrompt"
                          and any(i["key"] == key and (lang is None or i["language"] == lang)
                                  for i in e["items"]))
    if kind == "not_prompt":
        return lambda e: (e.get("type") == "action" and e.get("action") == "PlayPrompt"
                          and any(i["key"] == want for i in e["items"]))
    if kind == "node":
        return lambda e: e.get("type") == "node_entered" and e.get("node") == want
    if kind == "handoff":
        return lambda e: e.get("type") == "handoff" and _subset(want or {}, e.get("offer", {}))
    if kind == "transfer":
        return lambda e: (e.get("type") == "action" and e.get("action") == "Transfer"
                          and (want in (True, None) or e.get("uri") == want))
    if kind == "voicemail":
        return lambda e: e.get("type") == "voicemail"
    raise ValueError(f"{kind!r} is not checked against the event log")


def find_logged(log: list[dict[str, Any]], start: int, kind: str, want: Any) -> int | None:
    """The index of the first event at or after ``start`` in ``log`` that shows the
    expectation ``kind`` (one of :data:`LOGGED_EXPECTATIONS`; for ``not_prompt``, the
    prompt that must not be there), or None."""
    pred = _logged_predicate(kind, want)
    return next((i for i in range(start, len(log)) if pred(log[i])), None)


def check_logged(log: list[dict[str, Any]], start: int, kind: str, want: Any,
                 found: dict[str, int]) -> bool:
    """Whether the expectation ``kind`` (one of :data:`LOGGED_EXPECTATIONS`) holds in ``log``
    from ``start``; where it is an event, its index goes into ``found[kind]``."""
    idx = find_logged(log, start, kind, want)
    if kind == "not_prompt":
        return idx is None
    if idx is None:
        return False
    found[kind] = idx
    return True


class FlowHarness:
    """Runs caller scripts against a loaded flow.  Reuse one harness for several scripts so
    rendered prompts and recogniser templates are cached."""

    def __init__(self, loaded: LoadedFlow, *, renderer: PromptRenderer | None = None,
                 recognizer: Any | None = None, base_dir: Path | None = None,
                 recordings_dir: Path | None = None,
                 caller_factory: Callable[[], CallerSide] = EventCaller) -> None:
        self.loaded = loaded
        self.renderer = renderer or PromptRenderer(loaded.catalogue)
        self._recognizer = recognizer
        self.base_dir = base_dir or Path.cwd()
        self.recordings_dir = recordings_dir
        self.caller_factory = caller_factory

    @property
    def recognizer(self) -> Any:
        if self._recognizer is None:
            from telephony.speech.base import create_recognizer

            self._recognizer = create_recognizer("template")
        return self._recognizer

    def run(self, script: CallerScript) -> RunResult:
        return _Run(self, script).execute()


class _Run:
    def __init__(self, h: FlowHarness, script: CallerScript) -> None:
        self.h = h
        self.script = script
        self.flow = h.loaded.flow
        self.runner = FlowRunner(self.flow)
        self.caller: CallerSide = h.caller_factory()
        self.now = 0.0
        self.log: list[dict[str, Any]] = []
        self.expectations: list[Expectation] = []
        self.cursor = 0
        self.started = False
        self.wall = datetime(2026, 11, 23, 10, 0, tzinfo=self._zone()).timestamp()
        self.caller_number = "+34600333444"
        self.called = "+34910000000"
        self.voice = ScriptedVoice()
        self.agents: list[dict[str, Any]] | None = [
            {"id": "agent1", "uri": "sip:agent1@contact-centre.example"}]
        self.hook_faults: dict[str, str] = {}
        self.transfer_ok = True
        self.agent_returns = True
        self.agent_seconds = 2.0
        self.pending_results: list[tuple[float, A.FlowEvent]] = []
        self.recording: dict[str, Any] | None = None
        self.said: list[np.ndarray] = []
        self.callbacks: list[A.CreateCallback] = []
        self.surveys: list[A.StoreSurvey] = []
        self.prompts_played: list[A.PlayPrompt] = []
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self._oracle_text: str | None = None
        self._last_speech_end = 0.0

    def _zone(self) -> ZoneInfo:
        cals = list(self.flow.calendars.values())
        return ZoneInfo(cals[0].timezone if cals else "UTC")

    # --- driving -------------------------------------------------------------------------

    def feed(self, event: CallEvent | A.FlowEvent) -> None:
        self.perform(self.runner.handle(event, now=self.now))

    def advance(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        end = self.now + seconds
        while self.now < end - 1e-9:
            if until is not None and until():
                return True
            self.now = round(self.now + TICK, 6)
            for cev in self.caller.tick(now=self.now):
                if self.recording is not None and isinstance(cev, DtmfReceived) \
                        and cev.digit in self.recording["action"].stop_digits:
                    self._finish_recording("digit")
                self.feed(cev)
            due = [r for r in self.pending_results if r[0] <= self.now]
            if due:
                self.pending_results = [r for r in self.pending_results if r[0] > self.now]
                for _, ev in due:
                    self.feed(ev)
            timer = self.runner.get_timer()
            if timer is not None and timer <= self.now:
                self.perform(self.runner.handle_timer(now=self.now))
            self._check_recording()
        return until() if until is not None else True

    def perform(self, actions: list[A.Action]) -> None:
        for a in actions:
            if isinstance(a, A.Log):
                self.log.append(a.event)
            elif isinstance(a, A.PlayPrompt):
                self.prompts_played.append(a)
                pcm = self.h.renderer.render(a.items)
                self.caller.play(a.prompt_id, pcm, barge_in=a.barge_in, now=self.now)
            elif isinstance(a, A.StopPlayback):
                self.caller.stop_playback(now=self.now)
            elif isinstance(a, A.StartListening):
                self.caller.set_listening(True, now=self.now)
            elif isinstance(a, A.StopListening):
                self.caller.set_listening(False, now=self.now)
            elif isinstance(a, A.Recognize):
                self.pending_results.append((self.now, self._recognize(a)))
            elif isinstance(a, A.CallHook):
                self.pending_results.append((self.now, self._hook(a)))
            elif isinstance(a, A.RequestRoute):
                res = self._route(a)
                if res is not None:
                    self.pending_results.append((self.now + 0.5, res))
            elif isinstance(a, A.Transfer):
                delay = self.agent_seconds if self.transfer_ok else 0.5
                self.pending_results.append((self.now + delay, A.TransferResult(
                    self.transfer_ok, self.agent_returns and self.transfer_ok)))
            elif isinstance(a, A.VerifyVoice):
                outcome, score = self.voice.verify(a.speaker, a.audio)
                self.pending_results.append((self.now + 0.2,
                                             A.VoiceResult(a.request_id, outcome, score)))
            elif isinstance(a, A.EnrollVoice):
                self.pending_results.append((self.now + 0.2, A.VoiceResult(
                    a.request_id, self.voice.enroll(a.speaker, a.audio))))
            elif isinstance(a, A.Record):
                self.recording = {"action": a, "start": self.now}
            elif isinstance(a, A.CreateCallback):
                self.callbacks.append(a)
            elif isinstance(a, A.StoreSurvey):
                self.surveys.append(a)
            elif isinstance(a, A.Hangup):
                self.caller.stop_playback(now=self.now)

    def _recognize(self, a: A.Recognize) -> A.RecognitionResult:
        oracle = self._oracle_text
        if oracle is not None:
            self._oracle_text = None
            return A.RecognitionResult(a.request_id, oracle, 1.0, oracle)
        rec = self.h.recognizer
        if a.digits:
            r = rec.recognize_digits(a.audio, sample_rate=SAMPLE_RATE, language=a.language,
                                     min_digits=a.min_digits, max_digits=a.max_digits)
        else:
            r = rec.recognize(a.audio, sample_rate=SAMPLE_RATE, language=a.language,
                              phrases=list(a.phrases))
        return A.RecognitionResult(a.request_id, r.text, r.confidence, r.phrase)

    def _hook(self, a: A.CallHook) -> A.HookResult:
        fault = self.hook_faults.get(a.path)
        if fault == "error":
            return A.HookResult(a.request_id, False, error="injected error")
        if fault == "timeout":
            return A.HookResult(a.request_id, False, error="timeout")
        try:
            _, value = run_hook(a.path, a.args, a.timeout)
        except TimeoutError:
            return A.HookResult(a.request_id, False, error=f"timed out after {a.timeout}s")
        except Exception as e:  # noqa: BLE001 - a hook's failure is data for the flow
            return A.HookResult(a.request_id, False, error=f"{type(e).__name__}: {e}")
        if not isinstance(value, dict):
            return A.HookResult(a.request_id, False, error="hook did not return a mapping")
        return A.HookResult(a.request_id, True, value)

    def _route(self, a: A.RequestRoute) -> A.RouteResult | None:
        lang = a.offer.get("language")
        for agent in self.agents or []:
            if not agent.get("languages") or lang in agent["languages"]:
                return A.RouteResult(a.request_id, "transfer", agent["uri"], agent.get("id"))
        return None  # nothing arrives: the runner's timer takes the fallback

    def _check_recording(self) -> None:
        rec = self.recording
        if rec is None:
            return
        a: A.Record = rec["action"]
        elapsed = self.now - rec["start"]
        speaking_end = self._last_speech_end
        if elapsed >= a.max_seconds:
            self._finish_recording("max_length")
        elif not self.caller.caller_speaking(now=self.now) and \
                self.now - max(speaking_end, rec["start"]) >= a.stop_on_silence_s:
            self._finish_recording("silence")

    def _finish_recording(self, reason: str) -> None:
        rec = self.recording
        assert rec is not None
        self.recording = None
        a: A.Record = rec["action"]
        out_dir = self.h.recordings_dir
        if out_dir is None:
            self.tmp = self.tmp or tempfile.TemporaryDirectory(prefix="dialtone-vm-")
            out_dir = Path(self.tmp.name)
        path = out_dir / Path(a.path).name
        path.parent.mkdir(parents=True, exist_ok=True)
        import wave

        said = rec.get("pcm", [])
        pcm = np.concatenate(said) if said else np.zeros(0, np.int16)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.astype("<i2").tobytes())
        path.with_suffix(".json").write_text(json.dumps(a.metadata, default=str))
        self.feed(A.RecordingFinished(a.request_id, str(path), self.now - rec["start"], reason))

    # --- steps ---------------------------------------------------------------------------

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.feed(A.CallStarted(f"sim-{self.script.name}", self.caller_number, self.called,
                                    self.wall))

    def header(self, step: Step) -> None:
        v = step.value
        if step.kind == "clock":
            dt = datetime.fromisoformat(str(v))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=self._zone())
            self.wall = dt.timestamp()
        elif step.kind == "caller":
            self.caller_number = str(v)
        elif step.kind == "called":
            self.called = str(v)
        elif step.kind == "voice":
            self.voice = ScriptedVoice(set(map(str, v.get("enrolled", []))),
                                       str(v.get("outcome", "verified")),
                                       float(v.get("score", 0.9)),
                                       str(v.get("enroll", "ok")) == "ok")
        elif step.kind == "agents":
            self.agents = None if v in (None, "none", []) else list(v)
        elif step.kind == "hooks":
            self.hook_faults = {str(k): str(x) for k, x in dict(v).items()}
        elif step.kind == "transfer_ok":
            self.transfer_ok = bool(v)
        elif step.kind == "agent_returns":
            self.agent_returns = bool(v)
        elif step.kind == "agent_seconds":
            self.agent_seconds = float(v)

    def execute(self) -> RunResult:
        error = None
        try:
            for step in self.script.steps:
                if self.runner.ended and step.kind == "hangup":
                    continue
                if step.kind in ("clock", "caller", "called", "voice", "agents", "hooks",
                                 "transfer_ok", "agent_returns", "agent_seconds"):
                    if self.started and step.kind in ("clock", "caller", "called"):
                        raise DialtoneError(f"step {step.index}: {step.kind} after the call "
                                            "started")
                    self.header(step)
                    continue
                self.start()
                self.do(step)
            if not self.runner.ended:
                self.advance(0.2)
                if not self.runner.ended:
                    self.caller.hangup(now=self.now)
                    self.advance(0.1)
        except (DialtoneError, OSError) as e:
            error = str(e)
        if self.tmp is not None:
            self.tmp.cleanup()
        return RunResult(self.script.name, self.log, self.expectations,
                         self.runner.cdr.to_dict() if self.runner.cdr else None,
                         set(self.runner.edges_taken), self.now, self.callbacks, self.surveys,
                         error)

    def _wav(self, rel: str) -> np.ndarray:
        p = Path(rel)
        candidates = [p] if p.is_absolute() else [self.h.base_dir / p]
        if self.script.path is not None and not p.is_absolute():
            candidates.append(self.script.path.parent / p)
        for c in candidates:
            if c.is_file():
                return read_wav_8k(c)
        raise AudioFileError(f"caller audio {rel!r} not found")

    def do(self, step: Step) -> None:
        if step.kind == "press":
            for d in step.value:
                self.caller.press(d, how=step.options["as"], now=self.now)
                self.advance((KEY_MS + GAP_MS) / 1000)
        elif step.kind == "say":
            spec = step.value
            if "wav" in spec:
                pcm = self._wav(spec["wav"])
            else:  # oracle mode: a second of voice-like noise, recognised as the given text
                rng = np.random.default_rng(len(self.said))
                pcm = (rng.standard_normal(SAMPLE_RATE) * 3000).astype(np.int16)
                self._oracle_text = str(spec["text"])
            self.said.append(pcm)
            if self.recording is not None:
                self.recording.setdefault("pcm", []).append(pcm)
            end = self.caller.say(pcm, now=self.now)
            self._last_speech_end = end
            self.advance(end - self.now + TICK)
        elif step.kind == "silence":
            self.advance(step.value)
        elif step.kind == "hangup":
            if not self.runner.ended:
                self.caller.hangup(now=self.now)
                self.advance(TICK * 2)
        elif step.kind == "expect":
            self.expect(step)

    def expect(self, step: Step) -> None:
        checks: dict[str, Any] = step.value
        found: dict[str, int] = {}

        def holds() -> bool:
            return all(self._check(k, v, found) for k, v in checks.items())

        ok = holds() or self.advance(step.options["within"],
                                     lambda: holds() or self.runner.ended and not holds()
                                     and self._ended_settled())
        ok = holds()
        detail = "" if ok else f"not seen within {step.options['within']}s"
        if ok and found:
            self.cursor = max(self.cursor, max(found.values()) + 1)
        self.expectations.append(Expectation(step.index, step.describe(), ok, self.now, detail))

    def _ended_settled(self) -> bool:
        return not self.pending_results

    def _check(self, kind: str, want: Any, found: dict[str, int]) -> bool:
        r = self.runner
        if kind in LOGGED_EXPECTATIONS:
            return check_logged(self.log, self.cursor, kind, want, found)
        if kind == "language":
            return bool(r.language == want)
        elif kind == "hangup":
            if not r.ended or r.cdr is None:
                return False
            return want in (True, None) or want in (r.cdr.disposition,)
        elif kind == "var":
            return _subset(want, r.vars)
        elif kind == "callback":
            return any(_subset(want or {}, {"number": c.number, "slot": c.slot,
                                            "language": c.language}) for c in self.callbacks)
        elif kind == "survey":
            return any(_subset(want or {}, s.answers) for s in self.surveys)
        elif kind == "cdr":
            return r.cdr is not None and r.ended and _subset(want, r.cdr.to_dict())
        return False


def all_edges(loaded: LoadedFlow) -> set[tuple[str, str, str]]:
    """Every (node, label, target) edge declared in the flow."""
    from ivr_flows.model import edges

    out = {(nid, label, target) for nid, node in loaded.flow.nodes.items()
           for label, target in edges(nid, node)}
    out.add(("<call>", "start", loaded.flow.start))
    return out


def uncovered_edges(loaded: LoadedFlow, results: list[RunResult]) -> list[tuple[str, str, str]]:
    """The flow's edges that no script exercised (``dialtone flow run --coverage``)."""
    taken: set[tuple[str, str, str]] = set()
    for r in results:
        taken |= r.edges_taken
    return sorted(all_edges(loaded) - taken)
