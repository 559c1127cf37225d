"""The IVR application ``dialtone serve --flow FLOW`` runs on every call (node wiring: it
joins the flow engine to the speech engines, the routing bus, the callback store and the log).

It loads and validates the flow before the first call (a broken flow never serves), builds
the services a :class:`FlowSession` needs (prompt renderer, recogniser, voice verifier, the
routing bus, the callback store, the event log) and returns the per-call handler.

Embedded defaults (``make run``): the template recogniser (grammar phrases rendered by
espeak-ng, matched by DTW: offline, any espeak-ng language), the MFCC-statistics voice
verifier with voiceprints under ``var/voiceprints``, the reference router in-process
(``routing/examples/router.yaml``), callbacks in the SQLite database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialtone.config import NodeConfig
from ivr_flows.loader import LoadedFlow, load_flow
from ivr_flows.prompts import PromptRenderer
from ivr_flows.session import FlowServices, FlowSession
from routing.bus import RoutingBus
from telephony.aio.call import Call
from telephony.eventlog import EventSink

if TYPE_CHECKING:
    from dialtone.node import CallEventPublisher

log = logging.getLogger(__name__)


class VerifierAdapter:
    """Presents a :class:`telephony.speech.voice.VoiceVerifier` the way flows ask: enrolment
    reports ``enrolled``/``failed``; verification ``verified``/``rejected``/``not_enrolled``."""

    def __init__(self, verifier: Any) -> None:
        self.verifier = verifier

    def enroll(self, speaker: str, audio: bytes) -> tuple[str, float | None]:
        result = self.verifier.enroll(speaker, audio)
        return ("enrolled" if result.complete else "failed"), None

    def verify(self, speaker: str, audio: bytes) -> tuple[str, float | None]:
        result = self.verifier.verify(speaker, audio)
        if result.reason == "not_enrolled":
            return "not_enrolled", None
        return ("verified" if result.accepted else "rejected"), float(result.score)


def _make_verifier(var_dir: Path) -> VerifierAdapter | None:
    try:
        from telephony.speech.tts import EspeakTts
        from telephony.speech.voice import (
            MfccStatsConfig,
            MfccStatsVerifier,
            NpzVoiceprintStore,
            build_espeak_background,
        )
    except ImportError as exc:  # pragma: no cover - speech extras missing
        log.warning("voice verification unavailable: %s", exc)
        return None
    tts = EspeakTts()
    background = build_espeak_background(
        tts, language="en", variants=("+m1", "+m3", "+f1", "+f3", "+m5", "+f5"),
        texts=("my voice is my password", "please verify my account",
               "one two three four five six seven eight nine"))
    store = NpzVoiceprintStore(var_dir / "voiceprints")
    return VerifierAdapter(MfccStatsVerifier(background, store=store,
                                             config=MfccStatsConfig(required_utterances=1)))


def _warm_up(warm: Callable[..., None], loaded: Any) -> None:
    """Every speech phrase of every menu, in every language of the flow."""
    from ivr_flows.model import CollectNode, phrases_for

    for language in loaded.flow.languages:
        phrases: list[str] = []
        digits = False
        for node in loaded.flow.nodes.values():
            for choice in getattr(node, "choices", ()):
                phrases += phrases_for(choice.speech, language)
            if isinstance(node, CollectNode) and node.mode != "dtmf":
                digits = True
        warm(language, sorted(set(phrases)), digits=digits)


@dataclass(frozen=True, slots=True)
class IvrApp:
    """The per-call handler of a node serving a flow."""

    handler: Callable[[Call], Awaitable[None]]
    flow: LoadedFlow


async def build_ivr(config: NodeConfig, *, node_id: str, bus: RoutingBus, events: EventSink,
                    publisher: CallEventPublisher) -> IvrApp:
    """Load and validate the flow (raises FlowValidationError: a broken flow never serves),
    build the services a :class:`FlowSession` needs and return the per-call handler."""
    assert config.flow.path is not None
    loaded = load_flow(config.flow.path)
    var_dir = Path(config.db[len("sqlite:///"):]).parent if config.db.startswith(
        "sqlite:///") else Path("var")
    var_dir.mkdir(parents=True, exist_ok=True)

    renderer = PromptRenderer(loaded.catalogue)
    from telephony.speech.base import create_recognizer

    engine = config.flow.recognizer
    engine_options: dict[str, object] = {}
    if engine == "vosk":
        engine_options["model_path"] = config.flow.vosk_model
    # a missing model or engine fails here, before the first call, with a clear message
    recognizer = create_recognizer(engine, **engine_options)
    warm = getattr(recognizer, "warm_up", None)
    if warm is not None:
        # render the grammar templates now, not while the first caller waits for an answer
        await asyncio.to_thread(_warm_up, warm, loaded)
    verifier = await asyncio.to_thread(_make_verifier, var_dir)

    from dialer.callbacks import CallbackStore
    from dialer.db import make_engine

    # make_engine: postgresql:// means psycopg 3 (the driver the postgres extra installs)
    callback_store = CallbackStore(make_engine(config.db))

    def survey_store(call_id: str, answers: dict[str, int]) -> None:
        events.emit({"type": "survey", "call_id": call_id, "answers": answers})

    loop = asyncio.get_running_loop()
    publish = publisher.publish
    queued: set[str] = set()

    def log_and_publish(event: dict[str, Any]) -> None:
        events.emit(event)
        kind, call_id = event.get("type"), str(event.get("call_id", ""))
        if kind == "route_decision":
            if event.get("kind") == "queue":
                queued.add(call_id)
            elif event.get("kind") == "transfer":
                queued.discard(call_id)
                publish("handed_off", call_id, agent_id=event.get("agent_id"),
                        queue=event.get("queue"), target=event.get("target"))
        elif kind == "transfer_result" and event.get("ok"):
            publish("transferred", call_id, target=event.get("uri"))
        elif kind == "flow_ended":
            if call_id in queued and event.get("disposition") == "caller_hangup":
                publish("abandoned", call_id)
            queued.discard(call_id)

    services = FlowServices(
        renderer=renderer, recognizer=recognizer, verifier=verifier, routing_bus=bus,
        event_logger=log_and_publish, callback_store=callback_store, survey_store=survey_store,
        clock=loop.time, wall_clock=time.time, node_id=node_id,
        recordings_dir=var_dir / "recordings",
    )

    async def handler(call: Call) -> None:
        cdr = await FlowSession(call, loaded, services).run()
        if cdr is not None:
            # one record per call for CDR tools: the flow's view plus the SIP leg's
            record = cdr.to_dict()
            record.update(type="cdr", call_id=call.call_id, sip_call_id=call.sip_call_id,
                          direction=call.direction, end_cause=call.end_cause)
            events.emit(record)

    return IvrApp(handler=handler, flow=loaded)
