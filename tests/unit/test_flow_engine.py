"""The sans-IO flow engine: VoiceXML-style timers, counters, results and actions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_flows import actions as A
from ivr_flows.engine import FlowRunner
from ivr_flows.inputs import luhn_ok, spoken_digits
from ivr_flows.model import Flow
from telephony.events import (
    DtmfReceived,
    PromptFinished,
    RemoteHangup,
    SpeechEnded,
    SpeechStarted,
)

ROOT = Path(__file__).parents[2]


async def slow_hook(caller: str = "") -> dict[str, Any]:
    await asyncio.sleep(10)
    return {}


def make_flow(nodes: dict[str, Any], **top: Any) -> Flow:
    doc: dict[str, Any] = {"flow": "t", "languages": ["en", "es"], "start": "menu",
                           "nodes": nodes}
    doc.update(top)
    return Flow.model_validate(doc)


MENU = {
    "menu": {"type": "menu", "say": [{"text": "press 1"}], "timeout": 4, "max_no_input": 2,
             "max_no_match": 2, "no_input": [[{"text": "hello?"}], [{"text": "still?"}]],
             "no_match": [{"text": "wrong"}],
             "choices": [{"dtmf": "1", "speech": {"en": ["billing"], "es": ["facturación"]},
                          "set": {"intent": "billing"}, "next": "bye"}],
             "on_fail": "fail"},
    "bye": {"type": "hangup", "reason": "completed"},
    "fail": {"type": "hangup", "reason": "gave_up"},
}


class Driver:
    """Feeds a runner and keeps every action and log record."""

    def __init__(self, flow: Flow) -> None:
        self.r = FlowRunner(flow)
        self.now = 0.0
        self.actions: list[A.Action] = []
        self.logs: list[dict[str, Any]] = []

    def feed(self, ev: Any, dt: float = 0.0) -> list[A.Action]:
        self.now += dt
        return self._keep(self.r.handle(ev, now=self.now))

    def timer(self) -> list[A.Action]:
        t = self.r.get_timer()
        assert t is not None
        self.now = t
        return self._keep(self.r.handle_timer(now=t))

    def _keep(self, acts: list[A.Action]) -> list[A.Action]:
        for a in acts:
            (self.logs.append(a.event) if isinstance(a, A.Log) else self.actions.append(a))
        return [a for a in acts if not isinstance(a, A.Log)]

    def last_prompt(self) -> A.PlayPrompt:
        return [a for a in self.actions if isinstance(a, A.PlayPrompt)][-1]

    def finish_prompt(self, dt: float = 1.0) -> list[A.Action]:
        return self.feed(PromptFinished(self.last_prompt().prompt_id), dt)

    def start(self, caller: str = "+34600111222", wall: float = 0.0) -> list[A.Action]:
        return self.feed(A.CallStarted("c1", caller, "100", wall))


def texts(p: A.PlayPrompt) -> list[str | None]:
    return [i.text for i in p.items]


def test_menu_no_input_timer_starts_after_prompt_and_escalates() -> None:
    d = Driver(make_flow(MENU))
    acts = d.start()
    assert isinstance(acts[0], A.StartListening) and isinstance(acts[1], A.PlayPrompt)
    assert d.r.get_timer() is None  # VoiceXML: the timeout starts when prompts end
    d.finish_prompt(dt=2.0)
    assert d.r.get_timer() == pytest.approx(6.0)
    d.timer()
    assert texts(d.last_prompt()) == ["hello?", "press 1"]  # escalating + reprompt
    d.finish_prompt()
    d.timer()
    assert d.r.ended and d.r.cdr is not None
    assert d.r.cdr.disposition == "gave_up" and d.r.cdr.end_node == "fail"
    assert [e["count"] for e in d.logs if e["type"] == "no_input"] == [1, 2]


def test_menu_dtmf_barge_in_and_choice_sets_variables() -> None:
    d = Driver(make_flow(MENU))
    d.start()
    acts = d.feed(DtmfReceived("1", 80, "rfc4733"), 0.5)
    assert isinstance(acts[0], A.StopPlayback)
    assert d.r.vars["intent"] == "billing"
    assert ("menu", "choice:1", "bye") in d.r.edges_taken
    # the stopped prompt's late PromptFinished is ignored
    d.feed(PromptFinished("p1", interrupted=True))
    assert d.r.node_id == "bye"


def test_no_match_counts_and_wrong_key() -> None:
    d = Driver(make_flow(MENU))
    d.start()
    d.feed(DtmfReceived("7", 80, "rfc4733"), 0.5)
    assert texts(d.last_prompt()) == ["wrong", "press 1"]
    d.feed(DtmfReceived("8", 80, "rfc4733"), 0.5)
    assert d.r.ended and d.r.cdr is not None and d.r.cdr.disposition == "gave_up"


def test_speech_is_recognised_in_the_current_language() -> None:
    flow = make_flow({"lang": {"type": "language", "say": [{"text": "1 or 2"}],
                               "choices": [{"dtmf": "1", "language": "en"},
                                           {"dtmf": "2", "language": "es"}], "next": "menu"},
                      **MENU}, start="lang")
    d = Driver(flow)
    d.start()
    d.feed(DtmfReceived("2", 80, "rfc4733"), 0.2)
    assert d.r.language == "es" and d.last_prompt().items[0].language == "es"
    d.feed(SpeechStarted(), 0.5)
    acts = d.feed(SpeechEnded(duration_ms=600, audio=b"\x01\x00" * 4800), 0.8)
    rec = next(a for a in acts if isinstance(a, A.Recognize))
    assert rec.language == "es" and rec.phrases == ("facturación",) and len(rec.audio) == 9600
    d.feed(A.RecognitionResult(rec.request_id, "facturación", 0.7, "facturación"))
    assert d.r.vars["intent"] == "billing"
    choice = next(e for e in d.logs if e["type"] == "choice")
    assert choice["mode"] == "voice" and choice["confidence"] == 0.7


def test_low_confidence_is_a_no_match() -> None:
    d = Driver(make_flow(MENU, settings={"min_confidence": 0.5}))
    d.start()
    d.feed(SpeechStarted(), 0.5)
    rec = next(a for a in d.feed(SpeechEnded(audio=b"\0\0" * 800), 1.0)
           if isinstance(a, A.Recognize))
    d.feed(A.RecognitionResult(rec.request_id, "billing", 0.2, "billing"))
    assert "intent" not in d.r.vars
    assert [e["count"] for e in d.logs if e["type"] == "no_match"] == [1]


COLLECT = {
    "menu": {"type": "collect", "say": [{"text": "card"}], "var": "card", "min_length": 4,
             "max_length": 16, "inter_digit_timeout": 2, "validate": {"luhn": True},
             "max_no_match": 3, "next": "bye", "on_fail": "bye"},
    "bye": {"type": "hangup"},
}


def test_collect_terminator_inter_digit_timeout_and_luhn() -> None:
    d = Driver(make_flow(COLLECT))
    d.start()
    d.finish_prompt()
    for k in "4243":
        d.feed(DtmfReceived(k, 80, "rfc4733"), 0.2)
    assert d.r.get_timer() == pytest.approx(d.now + 2.0)  # inter-digit timeout
    d.timer()  # 4243 fails the Luhn check -> no-match, reprompt
    assert [e["valid"] for e in d.logs if e["type"] == "collect"] == [False]
    d.finish_prompt()
    for k in "79927398713#":
        d.feed(DtmfReceived(k, 80, "rfc4733"), 0.1)
    assert d.r.vars["card"] == "79927398713"
    assert d.r.vars["last_result"] == {"value": "79927398713", "confidence": 1.0,
                                       "mode": "dtmf"}


def test_collect_spoken_digits() -> None:
    nodes = {**COLLECT, "menu": {**COLLECT["menu"], "mode": "speech"}}
    d = Driver(make_flow(nodes))
    d.start()
    d.feed(SpeechStarted(), 0.5)
    rec = next(a for a in d.feed(SpeechEnded(audio=b"\0\0" * 800), 1.0)
           if isinstance(a, A.Recognize))
    assert rec.digits and rec.min_digits == 4
    d.feed(A.RecognitionResult(rec.request_id, "seven nine nine two seven three nine eight "
                                                "seven one three", 0.8))
    assert d.r.vars["card"] == "79927398713"


def test_no_barge_in_ignores_digits_during_the_prompt() -> None:
    nodes = {**MENU, "menu": {**MENU["menu"], "barge_in": False}}
    d = Driver(make_flow(nodes))
    acts = d.start()
    assert not any(isinstance(a, A.StartListening) for a in acts)
    d.feed(DtmfReceived("1", 80, "rfc4733"), 0.3)
    assert d.r.node_id == "menu"
    acts = d.finish_prompt()
    assert isinstance(acts[0], A.StartListening)
    d.feed(DtmfReceived("1", 80, "rfc4733"), 0.3)
    assert d.r.node_id == "bye"


HOOKS = {
    "menu": {"type": "hook", "call": "tests.unit.test_flow_engine.slow_hook",
             "args": {"caller": "${caller}"}, "timeout": 1.5, "store": "customer",
             "next": "tier"},
    "tier": {"type": "branch", "cases": [{"if": {"var": "customer.tier", "eq": "vip"},
                                          "next": "vip"}], "default": "bye"},
    "vip": {"type": "hangup", "reason": "vip"},
    "bye": {"type": "hangup", "reason": "standard"},
    "sorry": {"type": "hangup", "say": [{"text": "technical difficulties"}], "reason": "error"},
}


def test_hook_result_stored_and_branch_taken() -> None:
    d = Driver(make_flow(HOOKS, settings={"on_error": "sorry"}))
    hook = d.start()[0]
    assert isinstance(hook, A.CallHook) and hook.args == {"caller": "+34600111222"}
    d.feed(A.HookResult(hook.request_id, True, {"tier": "vip", "id": "C1"}), 0.1)
    assert d.r.ended and d.r.cdr is not None and d.r.cdr.disposition == "vip"
    assert d.r.vars["customer.id"] == "C1"


def test_hook_timeout_takes_the_flow_error_branch_and_is_logged() -> None:
    d = Driver(make_flow(HOOKS, settings={"on_error": "sorry"}))
    d.start()
    assert d.r.get_timer() == pytest.approx(1.5)
    d.timer()
    assert d.r.node_id == "sorry"
    assert any(e["type"] == "error" and "timed out" in e["message"] for e in d.logs)
    assert texts(d.last_prompt()) == ["technical difficulties"]  # never silence
    d.finish_prompt()
    assert isinstance(d.actions[-1], A.Hangup) and d.r.cdr is not None


def test_hook_error_without_any_branch_hangs_up() -> None:
    d = Driver(make_flow(HOOKS))
    hook = d.start()[0]
    assert isinstance(hook, A.CallHook)
    d.feed(A.HookResult(hook.request_id, False, error="boom"))
    assert d.r.ended and isinstance(d.actions[-1], A.Hangup)


HANDOFF = {
    "menu": {"type": "handoff", "skills": ["spanish"], "collected": ["account"],
             "timeout": 5, "fallback": "busy", "after": "bye"},
    "busy": {"type": "hangup", "reason": "busy"},
    "bye": {"type": "hangup", "reason": "completed"},
}


def test_handoff_offer_carries_context_and_falls_back_on_timeout() -> None:
    d = Driver(make_flow(HANDOFF))
    acts = d.start()
    req = next(a for a in acts if isinstance(a, A.RequestRoute))
    assert req.offer["skills"] == ["spanish"] and req.offer["customer_tier"] == "standard"
    assert req.timeout == 5
    handoff_log = next(e for e in d.logs if e["type"] == "handoff")
    assert handoff_log["offer"] == req.offer
    d.feed(A.RouteResult(req.request_id, "queue", queue="general"), 1.0)
    assert d.r.get_timer() == pytest.approx(5.0)  # the original deadline, not a new one
    d.timer()
    assert d.r.cdr is not None and d.r.cdr.disposition == "busy"


def test_handoff_transfer_then_return_for_survey() -> None:
    d = Driver(make_flow(HANDOFF))
    req = next(a for a in d.start() if isinstance(a, A.RequestRoute))
    acts = d.feed(A.RouteResult(req.request_id, "transfer", "sip:a1@cc.test", "a1"), 0.5)
    assert A.Transfer("sip:a1@cc.test", "handoff") in acts
    d.feed(A.TransferResult(ok=True, returned=True), 60)
    assert d.r.cdr is not None and d.r.cdr.disposition == "completed"
    assert d.r.cdr.handoff_target == "sip:a1@cc.test"


def test_remote_hangup_ends_with_cdr_and_stable_log_shape() -> None:
    d = Driver(make_flow(MENU))
    d.start()
    d.feed(RemoteHangup(), 3.0)
    assert d.r.ended and d.r.cdr is not None
    cdr = d.r.cdr.to_dict()
    assert cdr["disposition"] == "caller_hangup" and cdr["duration_s"] == 3.0
    assert d.feed(DtmfReceived("1", 80, "rfc4733")) == []
    for e in d.logs:
        assert {"type", "call_id", "t", "node"} <= set(e)
        json.dumps(e)  # every record is JSON-serialisable
    assert d.logs[-1]["type"] == "flow_ended"


def test_branch_loop_is_stopped() -> None:
    flow = make_flow({"menu": {"type": "branch", "cases": [{"if": {"var": "x", "exists": False},
                                                            "next": "b"}], "default": "b"},
                      "b": {"type": "branch", "cases": [{"if": {"var": "y", "exists": False},
                                                         "next": "menu"}], "default": "menu"}})
    d = Driver(flow)
    d.start()
    assert d.r.ended and isinstance(d.actions[-1], A.Hangup)


def test_business_hours_follow_the_wall_clock() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    flow = make_flow({"menu": {"type": "branch", "cases": [{"if": {"open": "office"},
                                                            "next": "open"}], "default": "shut"},
                      "open": {"type": "hangup", "reason": "open"},
                      "shut": {"type": "hangup", "reason": "shut"}},
                     calendars={"office": {"timezone": "Europe/Madrid",
                                           "hours": {"mon-fri": "09:00-18:00"},
                                           "holidays": ["2026-12-25"]}})
    mad = ZoneInfo("Europe/Madrid")
    for when, expected in [((2026, 11, 23, 10, 0), "open"), ((2026, 11, 23, 18, 0), "shut"),
                           ((2026, 11, 22, 10, 0), "shut"), ((2026, 12, 25, 10, 0), "shut")]:
        d = Driver(flow)
        d.start(wall=datetime(*when, tzinfo=mad).timestamp())
        assert d.r.cdr is not None and d.r.cdr.disposition == expected, when


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=18))
def test_luhn_check_digit_property(body: str) -> None:
    for check in "0123456789":
        if luhn_ok(body + check):
            break
    else:
        pytest.fail("no Luhn check digit found")
    assert sum(luhn_ok(body + c) for c in "0123456789") == 1


def test_spoken_digits_in_three_languages() -> None:
    assert spoken_digits("my number is four one two") == "412"
    assert spoken_digits("cuatro ocho dos uno") == "4821"
    assert spoken_digits("trois zéro cinq 9") == "3059"
