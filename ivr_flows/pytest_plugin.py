"""pytest plugin: run caller scripts as tests.

Enable with ``pytest_plugins = ["ivr_flows.pytest_plugin"]`` (in a conftest) or
``-p ivr_flows.pytest_plugin``.  The ``flow_runner`` fixture returns
:func:`run_caller_script`-like callables sharing one harness per flow, so prompts are
rendered once per session::

    def test_billing(flow_runner):
        result = flow_runner("ivr_flows/examples/contact_centre/flow.yaml",
                             "ivr_flows/examples/contact_centre/scripts/es_billing_speech.yaml")
        assert result.passed, "\\n".join(result.trace_lines())
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ivr_flows.harness import CallerSide, FlowHarness, RunResult
from ivr_flows.loader import LoadedFlow, load_flow
from ivr_flows.scripts import CallerScript, load_script, parse_script
from ivr_flows.testing import EventCaller


class HarnessCache:
    """One harness per flow path and caller side (prompt renderer and recogniser reused)."""

    def __init__(self) -> None:
        self._by_flow: dict[tuple[Path, bool], FlowHarness] = {}

    def harness(self, flow: str | Path, *, media: bool = True) -> FlowHarness:
        key = (Path(flow).resolve(), media)
        if key not in self._by_flow:
            other = self._by_flow.get((key[0], not media))
            self._by_flow[key] = make_harness(
                load_flow(key[0]), media=media,
                renderer=other.renderer if other else None,
                recognizer=other._recognizer if other else None)
        return self._by_flow[key]

    def run(self, flow: str | Path, script: str | Path | list[Any] | CallerScript, *,
            media: bool = True) -> RunResult:
        return run_caller_script(flow, script, harness=self.harness(flow, media=media))


def make_harness(loaded: LoadedFlow, *, media: bool = True, **kw: Any) -> FlowHarness:
    """A harness whose caller side is the real media path (``media``) or event level."""
    factory: Callable[[], CallerSide] = EventCaller
    if media:
        from ivr_flows.testing import MediaCaller

        factory = MediaCaller
    return FlowHarness(loaded, caller_factory=factory, **kw)


def run_caller_script(flow: str | Path, script: str | Path | list[Any] | CallerScript, *,
                      harness: FlowHarness | None = None, media: bool = True) -> RunResult:
    """Run one caller script (a path, a parsed list of steps, or a CallerScript).

    ``media=True`` sends the caller's presses and speech through G.711 RTP, the jitter
    buffer, DTMF detection and the endpointer; ``False`` uses the event-level caller."""
    h = harness or make_harness(load_flow(flow), media=media)
    if isinstance(script, (str, Path)):
        cs = load_script(script)
    elif isinstance(script, list):
        cs = parse_script(script, name="inline")
    else:
        cs = script
    return h.run(cs)


@pytest.fixture(scope="session")
def _flow_harness_cache() -> HarnessCache:
    return HarnessCache()


@pytest.fixture
def flow_runner(_flow_harness_cache: HarnessCache) -> Callable[..., RunResult]:
    """``flow_runner(flow, script, media=True) -> RunResult``; harnesses cached per session."""
    return _flow_harness_cache.run
