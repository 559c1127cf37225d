"""Caller scripts through the in-process harness, the CLI, the session glue and the
callback store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine

from dialer.callbacks import CallbackStore
from ivr_flows.actions import PromptItem
from ivr_flows.cli import main as flow_cli
from ivr_flows.harness import RunResult, all_edges, uncovered_edges
from ivr_flows.loader import load_flow
from ivr_flows.prompts import PromptRenderer
from ivr_flows.scripts import ScriptError, parse_script
from ivr_flows.session import FlowServices, FlowSession
from telephony.events import CallEvent, DtmfReceived, PromptFinished

pytest_plugins = ["ivr_flows.pytest_plugin"]  # the flow_runner fixture

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "ivr_flows" / "examples" / "contact_centre"
FLOW = EXAMPLE / "flow.yaml"
SCRIPTS = sorted((EXAMPLE / "scripts").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # scripts name audio fixtures relative to the repository


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_example_script_passes(flow_runner: Callable[..., RunResult], script: Path) -> None:
    result = flow_runner(FLOW, script, media=False)
    assert result.passed, "\n".join(result.trace_lines())
    assert result.expectations and result.cdr is not None


def test_example_scripts_cover_every_edge(flow_runner: Callable[..., RunResult]) -> None:
    results = [flow_runner(FLOW, s, media=False) for s in SCRIPTS]
    lf = load_flow(FLOW)
    assert len(all_edges(lf)) > 40
    assert uncovered_edges(lf, results) == []


@pytest.mark.parametrize("script", ["es_billing_speech", "bad_inputs", "es_agent_by_speech"])
def test_scripts_through_the_real_media_path(flow_runner: Callable[..., RunResult],
                                             script: str) -> None:
    """Presses as RFC 4733 over RTP, speech as G.711 through the jitter buffer and VAD."""
    r = flow_runner(FLOW, EXAMPLE / "scripts" / f"{script}.yaml", media=True)
    assert r.passed, "\n".join(r.trace_lines())
    voice = [e for e in r.log if e["type"] == "input" and e["mode"] == "voice"]
    assert all(e["audio_bytes"] > 4000 for e in voice)  # endpointed caller audio


def test_es_billing_handoff_payload_and_survey(flow_runner: Callable[..., RunResult]) -> None:
    r = flow_runner(FLOW, EXAMPLE / "scripts" / "es_billing_speech.yaml", media=False)
    offer = next(e for e in r.log if e["type"] == "handoff")["offer"]
    assert offer["language"] == "es" and offer["intent"] == "billing"
    assert offer["customer_id"] == "C1001" and offer["voice_verified"] is True
    assert offer["menu_path"][:2] == ["lookup", "select_language"]
    prompts = [e for e in r.log if e["type"] == "action" and e["action"] == "PlayPrompt"]
    assert {i["language"] for p in prompts[1:] for i in p["items"]} == {"es"}
    assert r.surveys[0].answers == {"satisfaction": 5, "resolved": 1}
    assert r.simulated_s > 10  # virtual time, not wall time


def test_failing_expectation_is_reported(flow_runner: Callable[..., RunResult]) -> None:
    r = flow_runner(FLOW, [{"clock": "2026-11-23T10:00:00"}, {"expect": {"prompt": "lang.select"}},
                           {"press": "1"}, {"expect": {"language": "fr", "within": "2s"}}],
                    media=False)
    assert not r.passed
    assert [e.passed for e in r.expectations] == [True, False]
    assert any(line.startswith("FAIL step 4") for line in r.trace_lines())


def test_inband_press_and_script_errors(flow_runner: Callable[..., RunResult]) -> None:
    r = flow_runner(FLOW, [{"expect": {"prompt": "lang.select"}}, {"press": "2", "as": "inband"},
                           {"expect": {"language": "es"}}], media=True)
    assert r.passed, "\n".join(r.trace_lines())
    # the tones went through G.711 and the in-band DTMF detector
    assert any(e["type"] == "input" and e.get("source") == "inband" for e in r.log)
    with pytest.raises(ScriptError, match="step 1"):
        parse_script([{"press": "x"}])
    with pytest.raises(ScriptError, match="unknown expectation"):
        parse_script([{"expect": {"colour": "red"}}])


def test_cli_run_json_coverage_and_exit_codes(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ok = str(EXAMPLE / "scripts" / "reception_transfer.yaml")
    assert flow_cli(["flow", "run", str(FLOW), "--caller", ok, "--json", "--coverage",
                     "--caller-side", "event"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["results"][0]["cdr"]["disposition"] == "caller_hangup"
    assert ["reception", "on_error", "handoff"] in doc["results"][0]["edges_taken"]
    assert ["survey", "next", "thanks"] in doc["uncovered_edges"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- expect: {prompt: no.such.prompt, within: 1s}\n")
    assert flow_cli(["flow", "run", str(FLOW), "--caller", str(bad)]) == 1  # media path
    out = capsys.readouterr().out
    assert "FAIL step 1" in out and "0/1 script(s) passed" in out


def test_callback_store_round_trip() -> None:
    store = CallbackStore(create_engine("sqlite://"))
    a = store.create(call_id="c1", number="+34600111222", slot="morning", language="es",
                     created_at=10.0, context={"intent": "billing"})
    store.create(call_id="c2", number="+33612345678", slot="evening", language="fr",
                 created_at=5.0)
    assert [r.call_id for r in store.pending()] == ["c2", "c1"]
    store.mark(a.id, "dialled")
    (left,) = store.pending()
    assert left.call_id == "c2" and a.context == {"intent": "billing"}


# --- the asyncio session glue, against a fake Call ---------------------------------------------


class QuietRenderer(PromptRenderer):
    def render(self, items: Any) -> np.ndarray:
        self.seen = getattr(self, "seen", []) + [tuple(items)]
        return np.zeros(800, np.int16)


class FakeCall:
    call_id, caller, called = "call-1", "+34600111222", "+34910000000"

    def __init__(self, digits: str) -> None:
        self.q: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.digits = list(digits)
        self.transfers: list[str] = []
        self.hung_up: str | None = None

    def start_playback(self, audio: np.ndarray, prompt: str, barge_in: bool) -> None:
        self.q.put_nowait(PromptFinished(prompt))
        if self.digits:
            self.q.put_nowait(DtmfReceived(self.digits.pop(0), 100, "rfc4733"))

    def stop_playback(self) -> None:
        pass

    def set_listening(self, enabled: bool) -> None:
        pass

    async def events(self) -> AsyncIterator[CallEvent]:
        while True:
            yield await self.q.get()

    async def transfer(self, uri: str) -> None:
        self.transfers.append(uri)

    async def hangup(self, reason: str) -> None:
        self.hung_up = reason


class FakeBus:
    def __init__(self) -> None:
        self.offers: list[Any] = []

    async def request_route(self, offer: Any, *, timeout: float) -> Any:
        self.offers.append(offer)
        return SimpleNamespace(kind="transfer", target="sip:a1@cc.test", agent_id="a1",
                               queue="billing", reason=None)


async def test_session_runs_the_example_flow_on_a_call() -> None:
    lf = load_flow(FLOW)
    call, bus, events = FakeCall("21"), FakeBus(), []
    services = FlowServices(renderer=QuietRenderer(lf.catalogue), routing_bus=bus,
                            event_logger=events.append,
                            wall_clock=lambda: 1795424400.0)  # Mon 23 Nov 2026 10:00 Madrid
    # language 2 (es), then main menu 1 (billing), then the account prompt gets no digits:
    # after the no-match/no-input counters the menu's on_fail hands the call off.
    session = FlowSession(call, lf, services)
    session.runner.flow.nodes["account"].__dict__["timeout"] = 0.05  # keep the test short
    cdr = await asyncio.wait_for(session.run(), 5)
    assert cdr is not None and cdr.disposition == "handed_off"
    offer = bus.offers[0]
    assert offer.language == "es" and offer.intent == "billing"
    assert offer.customer_tier == "vip" and offer.node_id == "local"
    assert call.transfers == ["sip:a1@cc.test"]
    assert any(e["type"] == "handoff" for e in events)
    assert isinstance(services.renderer, QuietRenderer)
    assert PromptItem("es", key="account.ask") in {i for t in services.renderer.seen for i in t}
