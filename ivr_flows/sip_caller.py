"""Run a caller script as a real SIP call against a serving Dialtone node.

The same YAML scripts that :mod:`ivr_flows.harness` runs in process on a virtual clock
can drive a real call: the harness dials the node (``dialtone serve --flow ... --events
PATH``) as a SIP user agent, presses keys (RFC 4733, SIP INFO or in-band tones), speaks
WAVs into the call, and checks each expectation against the node's event log, following
the lines of this one call (matched by SIP Call-ID).  Real time, real network (loopback).

What a SIP caller cannot set, it does not pretend to: scripts whose header fixes the
clock, the agents, hook faults or transfer outcomes need the virtual clock and in-process
services, and are reported as skipped with that reason.  ``var`` expectations (the flow's
internal variables) are not in the event log and fail with that reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from ivr_flows.harness import (
    LOGGED_EXPECTATIONS,
    Expectation,
    RunResult,
    _subset,
    check_logged,
)
from ivr_flows.prompts import SAMPLE_RATE
from ivr_flows.scripts import CallerScript, Step
from telephony.dsp.wavio import read_wav_8k

IN_PROCESS_ONLY = ("clock", "agents", "hooks", "transfer_ok", "agent_returns", "agent_seconds",
                   "voice")


class SkipScript(Exception):
    """The script needs the virtual clock or in-process services."""


class EventTail:
    """Follows a JSON-lines event log from its current end, keeping one call's lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = ""
        self.lines: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        new: list[dict[str, Any]] = []
        with open(self.path, encoding="utf-8") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        text = self._partial + chunk
        *complete, self._partial = text.split("\n")
        for line in complete:
            if line.strip():
                try:
                    new.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        self.lines.extend(new)
        return new


class SipScriptRun:
    def __init__(self, script: CallerScript, ua: Any, target: str, tail: EventTail) -> None:
        self.script = script
        self.ua = ua
        self.target = target
        self.tail = tail
        self.server_call_id: str | None = None
        self.log: list[dict[str, Any]] = []
        self.cursor = 0
        self.expectations: list[Expectation] = []
        self.t0 = 0.0

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _refresh(self, sip_call_id: str) -> None:
        for ev in self.tail.poll():
            if self.server_call_id is None and ev.get("type") == "call_started" \
                    and ev.get("sip_call_id") == sip_call_id:
                self.server_call_id = ev.get("call_id")
        if self.server_call_id is not None:
            self.log = [e for e in self.tail.lines if e.get("call_id") == self.server_call_id]

    async def run(self) -> RunResult:
        header = {s.kind: s.value for s in self.script.steps if s.kind in IN_PROCESS_ONLY}
        if header:
            raise SkipScript(f"sets {', '.join(header)}: needs the in-process harness")
        caller = next((str(s.value) for s in self.script.steps if s.kind == "caller"), None)
        self.t0 = time.monotonic()
        call = await self.ua.dial(self.target, caller=caller, timeout=10)
        error = None
        try:
            for step in self.script.steps:
                if call.ended and step.kind not in ("expect", "hangup"):
                    break
                await self._step(call, step)
        except Exception as exc:  # noqa: BLE001 - a failing step is the run's result, not a crash
            error = f"{type(exc).__name__}: {exc}"
        finally:
            if not call.ended:
                await call.hangup()
            await asyncio.sleep(0.3)
            self._refresh(call.sip_call_id)
        cdr = next((e for e in self.log if e.get("type") == "cdr"), None)
        return RunResult(self.script.name, self.log, self.expectations, cdr, set(),
                         self._now(), error=error)

    async def _step(self, call: Any, step: Step) -> None:
        if step.kind == "press":
            await call.send_dtmf(step.value, method=step.options.get("as", "rfc4733"))
        elif step.kind == "say":
            value = step.value
            if "wav" in value:
                pcm = read_wav_8k(value["wav"])
            else:
                pcm = self.ua.prompts.speak(value["text"], language=value.get("language", "en"))
            call.start_playback(pcm, "caller-says", False)
            await asyncio.sleep(len(pcm) / SAMPLE_RATE + 0.1)
        elif step.kind == "silence":
            await asyncio.sleep(step.value)
        elif step.kind == "hangup":
            await call.hangup()
        elif step.kind == "expect":
            await self._expect(call, step)

    async def _expect(self, call: Any, step: Step) -> None:
        within = float(step.options.get("within", 30))
        deadline = time.monotonic() + within
        found: dict[str, int] = {}
        detail = ""
        while True:
            self._refresh(call.sip_call_id)
            try:
                ok = all(self._check(k, v, found) for k, v in step.value.items())
            except _NotObservable as exc:
                ok, detail = False, str(exc)
                break
            if ok or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        if not ok and not detail:
            detail = f"not seen within {within:g}s"
        if ok and found:
            self.cursor = max(self.cursor, max(found.values()) + 1)
        self.expectations.append(Expectation(step.index, step.describe(), ok, self._now(), detail))

    def _check(self, kind: str, want: Any, found: dict[str, int]) -> bool:
        if kind in LOGGED_EXPECTATIONS:
            return check_logged(self.log, self.cursor, kind, want, found)
        if kind == "language":
            langs = [e for e in self.log if e.get("type") == "language"]
            return bool(langs) and any(str(e.get("language", e.get("value"))) == str(want)
                                       for e in langs[-1:])
        elif kind == "hangup":
            ended = [e for e in self.log if e.get("type") == "flow_ended"]
            return bool(ended) and (want in (True, None) or ended[-1].get("disposition") == want)
        elif kind == "survey":
            return any(e.get("type") == "survey" and _subset(want or {}, e.get("answers", {}))
                       for e in self.log)
        elif kind == "callback":
            return any(e.get("type") == "action" and e.get("action") == "CreateCallback"
                       and _subset(want or {}, e) for e in self.log)
        elif kind == "cdr":
            cdrs = [e for e in self.log if e.get("type") == "cdr"]
            return bool(cdrs) and _subset(want, cdrs[-1])
        raise _NotObservable(f"{kind!r} is not in the event log: not observable over SIP")


class _NotObservable(Exception):
    pass


async def run_scripts_over_sip(scripts: list[CallerScript], *, target: str, events: Path,
                               host: str = "127.0.0.1") -> list[RunResult | str]:
    """Run each script as its own call; a skipped script is returned as its reason."""
    import socket

    from telephony.aio.media_engine import MediaEngineConfig
    from telephony.aio.useragent import UserAgent, UserAgentConfig
    from telephony.sip.endpoint import SipConfig

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    ua = UserAgent(UserAgentConfig(sip=SipConfig(host=host, port=port),
                                   media=MediaEngineConfig(host=host, port_min=40000,
                                                           port_max=41000),
                                   listen_tcp=False))
    await ua.start()
    out: list[RunResult | str] = []
    try:
        for script in scripts:
            tail = EventTail(events)
            try:
                out.append(await SipScriptRun(script, ua, target, tail).run())
            except SkipScript as exc:
                out.append(f"{script.name}: skipped ({exc})")
    finally:
        await ua.close()
    return out
