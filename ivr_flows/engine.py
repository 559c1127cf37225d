"""The sans-IO flow engine: ``FlowRunner.handle(event, now) -> list[Action]``.

The runner owns the VoiceXML input timers (``get_timer()`` / ``handle_timer(now)``), so
the media layer only reports raw events (DTMF, speech start/end, prompt start/finish)
and the runner turns them into input results, no-input and no-match (VoiceXML 2.0
sections 5.2.2 and 6.3).  No I/O, no clock: time is passed in as ``now`` (monotonic
seconds); business hours use the wall time given by :class:`CallStarted`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from ivr_flows import actions as A
from ivr_flows.calendar import is_open
from ivr_flows.inputs import luhn_ok, spoken_digits
from ivr_flows.model import (
    DEFAULT_INPUT,
    BranchNode,
    CallbackNode,
    CollectNode,
    Condition,
    EnrollVoiceNode,
    Flow,
    HandoffNode,
    HangupNode,
    HookNode,
    LanguageNode,
    MenuNode,
    PromptItemSpec,
    PromptNode,
    SurveyNode,
    TransferNode,
    VerifyVoiceNode,
    VoicemailNode,
    choice_label,
    phrases_for,
)
from telephony.events import (
    CallEvent,
    DtmfReceived,
    MediaTimeout,
    PromptFinished,
    RemoteHangup,
    SpeechEnded,
    SpeechStarted,
)

_VAR = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")
MAX_SILENT_HOPS = 64
"""Node transitions without any caller input before the runner declares a loop."""
RESULT_TIMEOUT = 15.0
"""How long to wait for a recogniser, verifier, recorder or transfer answer."""


class Phase(Enum):
    IDLE = "idle"
    RUNNING = "running"
    ENDED = "ended"


@dataclass(slots=True)
class InputValue:
    """A VoiceXML-like result: value, confidence, input mode (``dtmf`` or ``voice``)."""

    value: str
    mode: str
    confidence: float = 1.0
    utterance: str = ""
    audio: bytes = b""


@dataclass(slots=True)
class _Ask:
    """One input-collecting step (a menu, a collect, a callback question...)."""

    node_id: str
    items: list[PromptItemSpec]
    resolve: Callable[[InputValue], bool]
    """Returns False for no-match; on a match it performs the transition itself."""
    dtmf: bool = True
    speech: bool = False
    audio_only: bool = False
    single_key: bool = True
    min_len: int = 1
    max_len: int = 1
    phrases: tuple[str, ...] = ()
    barge_in: bool = True
    timeout: float = 5.0
    inter_digit: float = 3.0
    term: str = "#"
    max_speech: float = 15.0
    complete: float = 0.8
    incomplete: float = 1.5
    min_confidence: float = 0.4
    max_no_input: int = 3
    max_no_match: int = 3
    no_input: list[list[PromptItemSpec]] = field(default_factory=list)
    no_match: list[list[PromptItemSpec]] = field(default_factory=list)
    reprompt: bool = True
    on_fail: str | None = None
    digits: str = ""
    no_input_count: int = 0
    no_match_count: int = 0
    in_speech: bool = False


def _summary(action: A.Action) -> dict[str, Any]:
    out: dict[str, Any] = {"action": type(action).__name__}
    for f in fields(action):
        v = getattr(action, f.name)
        if isinstance(v, bytes):
            out[f.name + "_bytes"] = len(v)
        elif isinstance(v, tuple):
            out[f.name] = [{"key": i.key, "file": i.file, "text": i.text,
                            "language": i.language} if isinstance(i, A.PromptItem) else i
                           for i in v]
        else:
            out[f.name] = v
    return out


class FlowRunner:
    """Runs one call through a flow.  Feed it events; carry out the actions it returns."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.phase = Phase.IDLE
        self.call_id = ""
        self.language = flow.settings.language
        self.vars: dict[str, Any] = {}
        self.node_id: str | None = None
        self.path: list[str] = []
        self.edges_taken: set[tuple[str, str, str]] = set()
        """(node, label, target) of every transition taken (script coverage)."""
        self.cdr: A.Cdr | None = None
        self._out: list[A.Action] = []
        self._now = 0.0
        self._start = 0.0
        self._wall_start = 0.0
        self._seq = 0
        self._ask: _Ask | None = None
        self._playing: str | None = None
        self._playing_barge_in = False
        self._after_prompt: Callable[[], None] | None = None
        self._deadline: float | None = None
        self._on_timer: Callable[[], None] | None = None
        self._pending: str | None = None
        self._on_result: Callable[[Any], None] | None = None
        self._hops = 0
        self._typeahead = ""

    # --- public API ------------------------------------------------------------------------

    def handle(self, event: CallEvent | A.FlowEvent, *, now: float) -> list[A.Action]:
        """Process one event; return the actions to carry out, in order."""
        self._out = []
        self._now = now
        if self.phase is Phase.ENDED:
            return []
        if isinstance(event, A.CallStarted):
            self._on_call_started(event)
        elif self.phase is not Phase.RUNNING:
            pass
        elif isinstance(event, (RemoteHangup, MediaTimeout)):
            reason = event.reason if isinstance(event, RemoteHangup) else "media_timeout"
            self._log("remote_hangup", reason=reason)
            self._end("caller_hangup" if isinstance(event, RemoteHangup) else "media_timeout")
        elif isinstance(event, PromptFinished):
            self._on_prompt_finished(event)
        elif isinstance(event, DtmfReceived):
            self._on_dtmf(event)
        elif isinstance(event, SpeechStarted):
            self._on_speech_started()
        elif isinstance(event, SpeechEnded):
            self._on_speech_ended(event)
        elif isinstance(event, A.FlowEvent):
            rid = getattr(event, "request_id", None)
            if isinstance(event, A.TransferResult):
                rid = self._pending if self._pending and self._pending.startswith("xfer") else None
            if rid is not None and rid == self._pending and self._on_result is not None:
                cb, self._on_result, self._pending = self._on_result, None, None
                self._deadline = self._on_timer = None
                cb(event)
        return self._out

    def get_timer(self) -> float | None:
        """The monotonic time at which :meth:`handle_timer` must be called, if any."""
        return self._deadline if self.phase is Phase.RUNNING else None

    def handle_timer(self, *, now: float) -> list[A.Action]:
        """Fire the timer if it is due (no-input, inter-digit, hook and route timeouts)."""
        self._out = []
        self._now = now
        if self.phase is Phase.RUNNING and self._deadline is not None and now >= self._deadline:
            cb, self._on_timer, self._deadline = self._on_timer, None, None
            if cb is not None:
                cb()
        return self._out

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    # --- plumbing --------------------------------------------------------------------------

    def _t(self) -> float:
        return round(self._now - self._start, 3)

    def _log(self, type_: str, **data: Any) -> None:
        ev = {"type": type_, "call_id": self.call_id, "t": self._t(), "node": self.node_id}
        ev.update(data)
        self._out.append(A.Log(ev))

    def _emit(self, action: A.Action) -> None:
        self._out.append(action)
        self._log("action", **_summary(action))

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq}"

    def _set_timer(self, delay: float, cb: Callable[[], None]) -> None:
        self._deadline = self._now + delay
        self._on_timer = cb

    def _clear_timer(self) -> None:
        self._deadline = self._on_timer = None

    def _wait(self, request_id: str, timeout: float, on_result: Callable[[Any], None],
              on_timeout: Callable[[], None]) -> None:
        self._pending, self._on_result = request_id, on_result
        self._set_timer(timeout, on_timeout)

    def wall_time(self) -> float:
        """Unix time now (for business hours)."""
        return self._wall_start + (self._now - self._start)

    def _subst(self, text: str) -> str:
        return _VAR.sub(lambda m: str(self.vars.get(m.group(1), "")), text)

    def _resolve_items(self, items: list[PromptItemSpec]) -> tuple[A.PromptItem, ...]:
        return tuple(A.PromptItem(language=i.language or self.language, key=i.key, file=i.file,
                                  text=self._subst(i.text) if i.text is not None else None)
                     for i in items)

    def _play(self, items: list[PromptItemSpec], *, barge_in: bool,
              after: Callable[[], None] | None) -> bool:
        """Play items; ``after`` runs on PromptFinished.  False if there was nothing to play."""
        if not items:
            return False
        pid = self._next_id("p")
        self._playing, self._playing_barge_in, self._after_prompt = pid, barge_in, after
        self._emit(A.PlayPrompt(pid, self._resolve_items(items), barge_in))
        return True

    def _stop_playback(self) -> None:
        if self._playing is not None:
            self._playing = None
            self._after_prompt = None
            self._emit(A.StopPlayback())

    # --- lifecycle -------------------------------------------------------------------------

    def _on_call_started(self, ev: A.CallStarted) -> None:
        self.phase = Phase.RUNNING
        self.call_id = ev.call_id
        self._start = self._now
        self._wall_start = ev.wall_time
        self.vars.update({"call_id": ev.call_id, "caller": ev.caller, "called": ev.called,
                          "language": self.language,
                          "caller_digits": " ".join(c for c in ev.caller if c.isdigit())})
        self.cdr = A.Cdr(call_id=ev.call_id, caller=ev.caller, called=ev.called,
                         flow=self.flow.flow, started_at=self._now, wall_start=ev.wall_time)
        self._log("flow_started", caller=ev.caller, called=ev.called, flow=self.flow.flow,
                  wall_time=ev.wall_time)
        self._goto(self.flow.start, "start", from_node=None)

    def _end(self, disposition: str, hangup_reason: str | None = None) -> None:
        if self.phase is Phase.ENDED:
            return
        self._clear_timer()
        self._ask = None
        if hangup_reason is not None:
            self._emit(A.Hangup(hangup_reason))
        cdr = self.cdr
        assert cdr is not None
        cdr.ended_at = self._now
        cdr.language = self.language
        cdr.disposition = disposition
        cdr.end_node = self.node_id
        cdr.path = list(self.path)
        intent = self.vars.get("intent")
        cdr.intent = str(intent) if intent is not None else None
        verified = self.vars.get("voice.verified")
        cdr.voice_verified = verified if isinstance(verified, bool) else None
        self.phase = Phase.ENDED
        self._log("flow_ended", disposition=disposition, cdr=cdr.to_dict())

    def _goto(self, target: str, label: str, *, from_node: str | None = "") -> None:
        src = self.node_id if from_node == "" else from_node
        self.edges_taken.add((src or "<call>", label, target))
        self._ask = None
        self._clear_timer()
        self._pending = self._on_result = None
        self._hops += 1
        if self._hops > MAX_SILENT_HOPS:
            self._log("error", message="too many transitions without caller input (loop)")
            self._end("error", "flow_loop")
            return
        self.node_id = target
        self.path.append(target)
        node = self.flow.nodes[target]
        self._log("node_entered", kind=node.type, edge=label, **{"from": src})
        getattr(self, f"_enter_{node.type}")(target, node)

    def _fail(self, node_id: str, on_fail: str | None, why: str) -> None:
        """Counters ran out or a service failed: the node's branch, the flow's, or hang up."""
        target = on_fail or self.flow.settings.on_fail
        if target is not None and target != node_id:
            self._goto(target, "on_fail")
        else:
            self._end("error", why)

    def _error(self, node_id: str, on_error: str | None, why: str) -> None:
        self._log("error", message=why)
        target = on_error or self.flow.settings.on_error
        if target is not None and target != node_id:
            self._goto(target, "on_error")
        else:
            self._end("error", "error")

    # --- raw media events ------------------------------------------------------------------

    def _on_prompt_finished(self, ev: PromptFinished) -> None:
        if ev.prompt != self._playing:
            return  # a prompt we already stopped, or someone else's
        after, self._playing, self._after_prompt = self._after_prompt, None, None
        self._hops = 0
        if after is not None:
            after()

    def _on_dtmf(self, ev: DtmfReceived) -> None:
        self._hops = 0
        ask = self._ask
        self._log("input", mode="dtmf", value=ev.digit, source=ev.source)
        if ask is not None and ask.dtmf:
            if self._playing is not None:
                if not self._playing_barge_in:
                    self._log("input_ignored", reason="no barge-in", value=ev.digit)
                    return
                self._stop_playback()
            self._ask_digit(ask, ev.digit)
        elif ask is None:
            node = self.flow.nodes.get(self.node_id or "")
            if isinstance(node, PromptNode) and self._playing is not None:
                if self._playing_barge_in:  # barge-in through a plain prompt: type-ahead
                    self._typeahead += ev.digit
                    self._stop_playback()
                    self._goto(node.next, "next")
            elif isinstance(node, (HookNode, BranchNode)) and len(self._typeahead) < 16:
                self._typeahead += ev.digit  # VoiceXML type-ahead while a hook runs

    def _on_speech_started(self) -> None:
        ask = self._ask
        if ask is None or not (ask.speech or ask.audio_only):
            return
        if self._playing is not None:
            if not self._playing_barge_in:
                return
            self._stop_playback()
        ask.in_speech = True
        self._set_timer(ask.max_speech, lambda: self._no_match(ask, "max_speech_timeout"))

    def _on_speech_ended(self, ev: SpeechEnded) -> None:
        ask = self._ask
        if ask is None or not (ask.speech or ask.audio_only) or not ask.in_speech:
            return
        self._hops = 0
        ask.in_speech = False
        self._clear_timer()
        self._log("input", mode="voice", duration_ms=ev.duration_ms, audio_bytes=len(ev.audio))
        if ask.audio_only:
            self._emit(A.StopListening())
            ask.resolve(InputValue("", "voice", 1.0, "", ev.audio))
            return
        rid = self._next_id("r")
        self._emit(A.StopListening())
        digits = not ask.single_key
        self._emit(A.Recognize(rid, ev.audio, self.language, ask.phrases, digits,
                               ask.min_len, ask.max_len if digits else None))
        self._wait(rid, RESULT_TIMEOUT, lambda r: self._on_recognition(ask, r),
                   lambda: self._no_match(ask, "recognizer_timeout"))

    def _on_recognition(self, ask: _Ask, r: A.RecognitionResult) -> None:
        self._log("recognition", text=r.text, confidence=r.confidence, phrase=r.phrase)
        if not r.text.strip() and not r.phrase or r.confidence < ask.min_confidence:
            self._no_match(ask, "low_confidence" if r.text.strip() else "empty")
            return
        value = InputValue(r.phrase or r.text, "voice", r.confidence, r.text)
        if not ask.resolve(value):
            self._no_match(ask, "no_match")

    # --- asking ----------------------------------------------------------------------------

    def _make_ask(self, node_id: str, node: Any, items: list[PromptItemSpec],
                  resolve: Callable[[InputValue], bool], **kw: Any) -> _Ask:
        s, d = self.flow.settings, DEFAULT_INPUT

        def pick(name: str) -> Any:
            for src in (node, s, d):
                v = getattr(src, name, None)
                if v is not None:
                    return v
            return None

        ask = _Ask(node_id=node_id, items=items, resolve=resolve, barge_in=pick("barge_in"),
                   timeout=pick("timeout"), inter_digit=pick("inter_digit_timeout"),
                   term=pick("term_char"), max_speech=pick("max_speech_timeout"),
                   complete=pick("complete_timeout"), incomplete=pick("incomplete_timeout"),
                   min_confidence=pick("min_confidence"), max_no_input=pick("max_no_input"),
                   max_no_match=pick("max_no_match"),
                   no_input=list(getattr(node, "no_input", [])),
                   no_match=list(getattr(node, "no_match", [])),
                   reprompt=getattr(node, "reprompt", True), on_fail=getattr(node, "on_fail", None))
        for k, v in kw.items():
            setattr(ask, k, v)
        return ask

    def _start_ask(self, ask: _Ask, items: list[PromptItemSpec] | None = None) -> None:
        """Play (re)prompts and listen.  The no-input timer starts when the prompt ends."""
        self._ask = ask
        ask.digits = ""
        ask.in_speech = False
        self._clear_timer()
        typeahead, self._typeahead = self._typeahead, ""
        listen = A.StartListening(dtmf=ask.dtmf, speech=ask.speech or ask.audio_only,
                                  complete_timeout=ask.complete,
                                  incomplete_timeout=ask.incomplete)
        if typeahead and ask.dtmf:
            self._emit(listen)
            for d in typeahead:
                if self._ask is not ask:
                    break
                self._ask_digit(ask, d)
            return
        play = ask.items if items is None else items
        if ask.barge_in:
            self._emit(listen)

        def listening() -> None:
            if not ask.barge_in:
                self._emit(listen)
            self._set_timer(ask.timeout, lambda: self._no_input(ask))

        if not self._play(play, barge_in=ask.barge_in, after=listening):
            listening()

    def _ask_digit(self, ask: _Ask, digit: str) -> None:
        if ask.single_key:
            self._clear_timer()
            self._emit(A.StopListening())
            self._log("result", value=digit, mode="dtmf", confidence=1.0)
            if not ask.resolve(InputValue(digit, "dtmf")):
                self._no_match(ask, "no_match")
            return
        if digit == ask.term and ask.term:
            self._finish_digits(ask)
            return
        ask.digits += digit
        if len(ask.digits) >= ask.max_len:
            self._finish_digits(ask)
        else:
            self._set_timer(ask.inter_digit, lambda: self._finish_digits(ask))

    def _finish_digits(self, ask: _Ask) -> None:
        self._clear_timer()
        self._emit(A.StopListening())
        value = ask.digits
        self._log("result", value=value, mode="dtmf", confidence=1.0)
        if len(value) < ask.min_len or not ask.resolve(InputValue(value, "dtmf")):
            self._no_match(ask, "no_match")

    def _retry(self, ask: _Ask, kind: str, count: int, limit: int,
               prompts: list[list[PromptItemSpec]]) -> None:
        self._log(kind, count=count)
        if count >= limit:
            self._log("max_" + kind, count=count)
            self._fail(ask.node_id, ask.on_fail, "max_" + kind)
            return
        items: list[PromptItemSpec] = []
        if prompts:
            items.extend(prompts[min(count, len(prompts)) - 1])
        if ask.reprompt or not items:
            items.extend(ask.items)
        self._start_ask(ask, items)

    def _no_input(self, ask: _Ask) -> None:
        if self._ask is not ask:
            return
        ask.no_input_count += 1
        self._emit(A.StopListening())
        self._retry(ask, "no_input", ask.no_input_count, ask.max_no_input, ask.no_input)

    def _no_match(self, ask: _Ask, why: str) -> None:
        if self._ask is not ask:
            return
        ask.no_match_count += 1
        self._log("no_match_reason", reason=why)
        self._retry(ask, "no_match", ask.no_match_count, ask.max_no_match, ask.no_match)

    # --- node kinds ------------------------------------------------------------------------

    def _enter_prompt(self, nid: str, node: PromptNode) -> None:
        if not self._play(node.say, barge_in=node.barge_in,
                          after=lambda: self._goto(node.next, "next")):
            self._goto(node.next, "next")

    def _match_speech(self, text: str, options: list[tuple[list[str], Any]]) -> Any:
        low = text.lower()
        for phrases, value in options:
            if any(p.lower() == low for p in phrases):
                return value
        for phrases, value in options:
            if any(re.search(rf"\b{re.escape(p.lower())}\b", low) for p in phrases):
                return value
        return None

    def _pick_choice(self, v: InputValue, choices: Sequence[Any],
                     phrases_of: Callable[[Any], list[str]]) -> Any:
        """The choice the caller made: by key for DTMF, by phrase for speech; None: none."""
        if v.mode == "dtmf":
            return next((c for c in choices if c.dtmf == v.value), None)
        return self._match_speech(v.value, [(phrases_of(c), c) for c in choices])

    def _enter_menu(self, nid: str, node: MenuNode) -> None:
        speech = any(c.speech for c in node.choices)

        def phrases_of(c: Any) -> list[str]:
            return phrases_for(c.speech, self.language)

        def resolve(v: InputValue) -> bool:
            choice = self._pick_choice(v, node.choices, phrases_of)
            if choice is None:
                return False
            self.vars.update(choice.set)
            self._log("choice", value=v.value, mode=v.mode, confidence=v.confidence,
                      utterance=v.utterance, set=dict(choice.set))
            self._goto(choice.next, choice_label(choice))
            return True

        phrases = tuple(p for c in node.choices for p in phrases_of(c))
        self._start_ask(self._make_ask(nid, node, node.say, resolve, speech=speech,
                                       phrases=phrases))

    def _enter_language(self, nid: str, node: LanguageNode) -> None:
        speech = any(c.speech for c in node.choices)

        def phrases_of(c: Any) -> list[str]:
            # a language's own phrases when the current language has none ("español")
            return phrases_for(c.speech, self.language) or phrases_for(c.speech, c.language)

        def resolve(v: InputValue) -> bool:
            choice = self._pick_choice(v, node.choices, phrases_of)
            if choice is None:
                return False
            self.language = choice.language
            self.vars["language"] = choice.language
            self._log("language", language=choice.language, mode=v.mode)
            self._goto(node.next, "next")
            return True

        phrases = tuple(p for c in node.choices for p in phrases_of(c))
        self._start_ask(self._make_ask(nid, node, node.say, resolve, speech=speech,
                                       phrases=phrases))

    def _enter_collect(self, nid: str, node: CollectNode) -> None:
        def resolve(v: InputValue) -> bool:
            value = v.value if v.mode == "dtmf" else spoken_digits(v.utterance or v.value)
            ok = node.min_length <= len(value) <= node.max_length and value.isdigit()
            val = node.validate_
            if ok and val.pattern is not None:
                ok = re.fullmatch(val.pattern, value) is not None
            if ok and val.luhn:
                ok = luhn_ok(value)
            self._log("collect", var=node.var, valid=ok, mode=v.mode, length=len(value))
            if not ok:
                return False
            self.vars[node.var] = value
            self.vars["last_result"] = {"value": value, "confidence": v.confidence,
                                        "mode": v.mode}
            self._goto(node.next, "next")
            return True

        self._start_ask(self._make_ask(
            nid, node, node.say, resolve, single_key=False, min_len=node.min_length,
            max_len=node.max_length, dtmf=node.mode in ("dtmf", "both"),
            speech=node.mode in ("speech", "both")))

    def _cond(self, c: Condition) -> bool:
        if c.open is not None:
            return is_open(self.flow.calendars[c.open], self.wall_time())
        assert c.var is not None
        present = c.var in self.vars and self.vars[c.var] is not None
        v = str(self.vars.get(c.var, ""))
        if c.exists is not None:
            return present == c.exists
        if c.eq is not None:
            return present and v == c.eq
        if c.ne is not None:
            return v != c.ne
        return present and c.in_ is not None and v in c.in_

    def _enter_branch(self, nid: str, node: BranchNode) -> None:
        for i, case in enumerate(node.cases):
            if all(self._cond(c) for c in case.if_):
                self._log("branch", case=i)
                self._goto(case.next, f"case:{i}")
                return
        self._log("branch", case="default")
        self._goto(node.default, "default")

    def _enter_hook(self, nid: str, node: HookNode) -> None:
        rid = self._next_id("h")
        args = {k: self._subst(v) for k, v in node.args.items()}
        self._emit(A.CallHook(rid, node.call, args, node.timeout))

        def done(r: A.HookResult) -> None:
            if not r.ok:
                self._error(nid, node.on_error, f"hook {node.call} failed: {r.error}")
                return
            for k, v in (r.value or {}).items():
                self.vars[f"{node.store}.{k}" if node.store else str(k)] = v
            self._log("hook_result", hook=node.call, value=r.value)
            self._goto(node.next, "next")

        self._wait(rid, node.timeout, done, lambda: self._error(
            nid, node.on_error, f"hook {node.call} timed out after {node.timeout}s"))

    def _voice_ask(self, nid: str, node: VerifyVoiceNode | EnrollVoiceNode,
                   make: Callable[[str, str, bytes], A.Action],
                   done: Callable[[A.VoiceResult], None], on_error: Callable[[], None]) -> None:
        speaker = str(self.vars.get(node.speaker) or "")

        def resolve(v: InputValue) -> bool:
            rid = self._next_id("v")
            self._emit(make(rid, speaker, v.audio))
            self._ask = None
            self._wait(rid, RESULT_TIMEOUT, done, on_error)
            return True

        self._start_ask(self._make_ask(nid, node, node.say, resolve, dtmf=False,
                                       audio_only=True))

    def _enter_verify_voice(self, nid: str, node: VerifyVoiceNode) -> None:
        if not self.vars.get(node.speaker):
            self._log("voice", outcome="not_enrolled", reason="no speaker id")
            self._goto(node.not_enrolled, "not_enrolled")
            return

        def done(r: A.VoiceResult) -> None:
            outcome = r.outcome
            if outcome == "verified" and node.threshold is not None and (r.score or 0) < node.threshold:
                outcome = "rejected"
            self._log("voice", outcome=outcome, score=r.score)
            if outcome in ("verified", "rejected"):
                self.vars["voice.verified"] = outcome == "verified"
                self.vars["voice.score"] = r.score
            if outcome in ("verified", "rejected", "not_enrolled"):
                self._goto(getattr(node, outcome), outcome)
            else:
                self._error(nid, node.on_error or node.rejected, f"voice verification: {outcome}")

        self._voice_ask(nid, node, lambda rid, spk, audio: A.VerifyVoice(rid, spk, audio), done,
                        lambda: self._error(nid, node.on_error or node.rejected,
                                            "voice verification timed out"))

    def _enter_enroll_voice(self, nid: str, node: EnrollVoiceNode) -> None:
        def done(r: A.VoiceResult) -> None:
            self._log("voice", outcome=r.outcome, score=r.score)
            self._goto(node.enrolled if r.outcome == "enrolled" else node.failed,
                       "enrolled" if r.outcome == "enrolled" else "failed")

        self._voice_ask(nid, node, lambda rid, spk, audio: A.EnrollVoice(rid, spk, audio), done,
                        lambda: self._goto(node.failed, "failed"))

    def _enter_handoff(self, nid: str, node: HandoffNode) -> None:
        deadline = self._now + node.timeout
        intent = self.vars.get(node.intent_var)
        verified = self.vars.get("voice.verified")
        offer = {
            "call_id": self.call_id, "caller": self.vars["caller"], "called": self.vars["called"],
            "language": self.language, "intent": str(intent) if intent is not None else None,
            "menu_path": list(self.path),
            "collected": {k: str(self.vars[k]) for k in node.collected if k in self.vars},
            "customer_id": (str(self.vars["customer.id"])
                            if self.vars.get("customer.id") is not None else None),
            "customer_tier": str(self.vars.get("customer.tier") or "standard"),
            "voice_verified": verified if isinstance(verified, bool) else None,
            "voice_score": self.vars.get("voice.score"),
            "ivr_seconds": round(self._now - self._start, 3), "skills": list(node.skills),
            "timeout_s": node.timeout,
        }
        rid = self._next_id("route")
        self._log("handoff", offer=offer)

        def fallback(why: str) -> None:
            self._log("handoff_fallback", reason=why)
            self._goto(node.fallback, "fallback")

        def decided(r: A.RouteResult) -> None:
            self._log("route_decision", kind=r.kind, target=r.target, agent_id=r.agent_id,
                      queue=r.queue, reason=r.reason)
            if r.kind == "transfer" and r.target:
                assert self.cdr is not None
                self.cdr.handoff_target = r.target
                self._transfer(nid, r.target, "handoff", node.after,
                               lambda: fallback("transfer_failed"), "handed_off")
            elif r.kind == "queue" and self._now < deadline:
                self._play(node.hold, barge_in=False, after=None)
                self._wait(rid, deadline - self._now, decided, lambda: fallback("timeout"))
            elif r.kind == "callback":
                self._emit(A.CreateCallback(self.call_id, str(self.vars["caller"]), "asap",
                                            self.language, {"offer": offer}))
                fallback("callback")
            else:
                fallback(r.reason or "no_route" if r.kind is None else r.kind)

        def request() -> None:
            self._emit(A.RequestRoute(rid, offer, node.timeout))
            self._wait(rid, max(0.001, deadline - self._now), decided,
                       lambda: fallback("timeout"))

        request()
        self._play(node.say, barge_in=False, after=None)

    def _transfer(self, nid: str, uri: str, reason: str, after: str | None,
                  on_fail: Callable[[], None], disposition: str) -> None:
        self._emit(A.Transfer(uri, reason))
        xid = self._next_id("xfer")

        def result(r: A.TransferResult) -> None:
            self._log("transfer_result", ok=r.ok, returned=r.returned, uri=uri)
            if not r.ok:
                on_fail()
            elif r.returned and after is not None:
                self._goto(after, "after")
            else:
                self._end(disposition)

        self._wait(xid, RESULT_TIMEOUT * 4, result, on_fail)

    def _enter_transfer(self, nid: str, node: TransferNode) -> None:
        # the URI comes from the validated flow (its allow-list), never from caller input
        def go() -> None:
            self._transfer(nid, node.uri, "transfer", node.after,
                           lambda: self._goto(node.on_error, "on_error"), "transferred")

        if not self._play(node.say, barge_in=False, after=go):
            go()

    def _enter_voicemail(self, nid: str, node: VoicemailNode) -> None:
        def record() -> None:
            rid = self._next_id("rec")
            path = f"{self.flow.settings.recordings_dir}/{node.mailbox}/{self.call_id}.wav"
            meta = {"call_id": self.call_id, "caller": self.vars["caller"],
                    "called": self.vars["called"], "language": self.language,
                    "mailbox": node.mailbox, "wall_time": self.wall_time(),
                    "intent": self.vars.get("intent")}
            self._emit(A.Record(rid, path, node.max_seconds, node.silence_seconds,
                                node.stop_digits, meta))

            def done(r: A.RecordingFinished) -> None:
                self.vars["voicemail.path"] = r.path
                self._log("voicemail", path=r.path, duration_s=r.duration_s, reason=r.reason)
                self._goto(node.next, "next")

            self._wait(rid, node.max_seconds + RESULT_TIMEOUT, done,
                       lambda: self._error(nid, None, "recording did not finish"))

        def beep() -> None:
            if not (node.beep and self._play([PromptItemSpec(key="beep")], barge_in=False,
                                             after=record)):
                record()

        if not self._play(node.say, barge_in=False, after=beep):
            beep()

    def _enter_callback(self, nid: str, node: CallbackNode) -> None:
        self.vars["callback.number"] = self.vars["caller"]
        self.vars["callback.number_spoken"] = self.vars["caller_digits"]

        def slot_resolve(v: InputValue) -> bool:
            slot = next((s for s in node.slots if s.dtmf == v.value), None)
            if slot is None:
                return False
            number = str(self.vars["callback.number"])
            self.vars["callback.slot"] = slot.slot
            assert self.cdr is not None
            self.cdr.callback_slot = slot.slot
            self._emit(A.CreateCallback(self.call_id, number, slot.slot, self.language,
                                        {"intent": self.vars.get("intent"),
                                         "customer_id": self.vars.get("customer.id")}))
            self._ask = None
            if not self._play(node.done, barge_in=False,
                              after=lambda: self._goto(node.next, "next")):
                self._goto(node.next, "next")
            return True

        def ask_slot() -> None:
            self._start_ask(self._make_ask(nid, node, node.slots_prompt, slot_resolve))

        def number_resolve(v: InputValue) -> bool:
            if not 6 <= len(v.value) <= 15:
                return False
            self.vars["callback.number"] = v.value
            self.vars["callback.number_spoken"] = " ".join(v.value)
            ask_slot()
            return True

        def confirm_resolve(v: InputValue) -> bool:
            if v.value == "1":
                ask_slot()
            elif v.value == "2":
                self._start_ask(self._make_ask(nid, node, node.other_number, number_resolve,
                                               single_key=False, min_len=6, max_len=15))
            else:
                return False
            return True

        self._start_ask(self._make_ask(nid, node, node.say + node.confirm, confirm_resolve))

    def _enter_survey(self, nid: str, node: SurveyNode) -> None:
        answers: dict[str, int] = {}

        def ask(i: int) -> None:
            q = node.questions[i]

            def resolve(v: InputValue) -> bool:
                if not v.value.isdigit() or not q.min <= int(v.value) <= q.max:
                    return False
                answers[q.id] = int(v.value)
                if i + 1 < len(node.questions):
                    ask(i + 1)
                else:
                    assert self.cdr is not None
                    self.cdr.survey = dict(answers)
                    self._emit(A.StoreSurvey(self.call_id, dict(answers)))
                    self._goto(node.next, "next")
                return True

            items = (node.say if i == 0 else []) + q.say
            self._start_ask(self._make_ask(nid, node, items, resolve))

        ask(0)

    def _enter_hangup(self, nid: str, node: HangupNode) -> None:
        def bye() -> None:
            self._end(node.reason, node.reason)

        if not self._play(node.say, barge_in=False, after=bye):
            bye()
