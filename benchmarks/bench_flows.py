"""Benchmark the flow engine and the caller-script harness.

1. FlowRunner events/s: a menu -> collect loop driven by raw events (PromptFinished,
   DtmfReceived), every action and log record produced as in a real call.
2. Caller scripts: wall time of each example script (warm caches: prompts rendered,
   recogniser templates built) against its simulated call time ("x real time").

Run: .venv/bin/python benchmarks/bench_flows.py   (about a minute)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

from hostinfo import machine

from ivr_flows import actions as A
from ivr_flows.engine import FlowRunner
from ivr_flows.harness import FlowHarness
from ivr_flows.loader import load_flow
from ivr_flows.model import Flow
from ivr_flows.pytest_plugin import make_harness
from ivr_flows.scripts import load_script
from telephony.events import DtmfReceived, PromptFinished

LOOP = Flow.model_validate({
    "flow": "bench", "languages": ["en"], "start": "menu",
    "nodes": {
        "menu": {"type": "menu", "say": [{"text": "press 1"}],
                 "choices": [{"dtmf": "1", "set": {"intent": "billing"}, "next": "pin"}]},
        "pin": {"type": "collect", "say": [{"text": "pin"}], "var": "pin", "min_length": 4,
                "max_length": 4, "validate": {"pattern": "[0-9]{4}"}, "next": "menu"},
    },
})


def bench_runner(seconds: float = 2.0) -> tuple[float, float]:
    """Events/s and actions/s (Log records included) through FlowRunner.handle."""
    r = FlowRunner(LOOP)
    now = 0.0
    events = actions = 0
    out = r.handle(A.CallStarted("b", "+1", "+2", 0.0), now=now)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            pid = next(a.prompt_id for a in reversed(out) if isinstance(a, A.PlayPrompt))
            now += 1.0
            out = r.handle(PromptFinished(pid), now=now)
            actions += len(out)
            now += 0.5
            out = r.handle(DtmfReceived("1", 80, "rfc4733"), now=now)
            actions += len(out)
            pid = next(a.prompt_id for a in reversed(out) if isinstance(a, A.PlayPrompt))
            out = r.handle(PromptFinished(pid), now=now)
            actions += len(out)
            for d in "1234":
                now += 0.2
                out = r.handle(DtmfReceived(d, 80, "rfc4733"), now=now)
                actions += len(out)
            events += 7
    wall = time.perf_counter() - t0
    return events / wall, actions / wall


def bench_scripts(repeats: int, media: bool,
                  warm: FlowHarness | None = None) -> tuple[FlowHarness,
                                                             list[tuple[str, float, float, float]]]:
    flow = ROOT / "ivr_flows/examples/contact_centre/flow.yaml"
    h = make_harness(load_flow(flow), media=media,
                     renderer=warm.renderer if warm else None,
                     recognizer=warm.recognizer if warm else None)
    scripts = sorted((flow.parent / "scripts").glob("*.yaml"))
    cold0 = time.perf_counter()
    if warm is None:
        for s in scripts:  # warm-up: render prompts, build recogniser templates
            assert h.run(load_script(s)).passed, s
    cold = time.perf_counter() - cold0
    rows = []
    for s in scripts:
        walls, sim = [], 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = h.run(load_script(s))
            walls.append(time.perf_counter() - t0)
            sim = res.simulated_s
        w = statistics.median(walls)
        rows.append((s.stem, w, sim, sim / w))
    if warm is None:
        rows.append(("(cold first pass over all scripts)", cold, 0.0, 0.0))
    return h, rows




def main() -> None:
    runs = [bench_runner(2.0) for _ in range(5)]
    ev = statistics.median(r[0] for r in runs)
    ac = statistics.median(r[1] for r in runs)
    event_h, rows = bench_scripts(5, media=False)
    _, media_rows = bench_scripts(1, media=True, warm=event_h)
    lines = [
        "## IVR flows (ivr_flows: FlowRunner, caller-script harness)", "",
        "Command: `.venv/bin/python benchmarks/bench_flows.py`  ",
        f"Machine: {machine()} (shared with other jobs; medians of 5 runs)", "",
        "### FlowRunner (sans-IO engine), one core", "",
        "| measure | median |", "|---|---|",
        f"| raw events handled per second (menu -> collect loop) | {ev:,.0f} |",
        f"| actions emitted per second (Log records included) | {ac:,.0f} |",
        f"| microseconds per event | {1e6 / ev:.1f} |", "",
        "### Example caller scripts on the virtual clock (warm caches)", "",
        ("*media*: `dialtone flow run` default, caller side = two `telephony.media.CallMedia` "
        "joined by RTP in memory (G.711, RFC 4733 / in-band DTMF, jitter buffer, VAD), one "
        "timed run per script; *event*: event-level caller, median of 5 runs."), "",
        ("| script | simulated call s | media wall s | media x real time | event wall s | "
        "event x real time |"), "|---|---|---|---|---|---|",
    ]
    mw = {name: (w, ratio) for name, w, sim, ratio in media_rows}
    total_w = total_s = total_m = 0.0
    for name, w, sim, ratio in rows:
        if sim:
            total_w += w
            total_s += sim
            m_w, m_ratio = mw[name]
            total_m += m_w
            lines.append(f"| {name} | {sim:.1f} | {m_w:.3f} | x{m_ratio:,.0f} | {w:.4f} | "
                         f"x{ratio:,.0f} |")
        else:
            lines.append(f"| {name} | | | | {w:.2f} | |")
    lines.append(f"| **all scripts** | {total_s:.1f} | {total_m:.2f} | x{total_s / total_m:,.0f} "
                 f"| {total_w:.3f} | x{total_s / total_w:,.0f} |")
    lines += ["", ("Prompts are rendered (Debian recordings, espeak-ng TTS cached per harness) and "
              "utterance WAVs go through the real template recogniser in both modes. The cold "
              "pass includes espeak-ng synthesis (on-disk cache) and recogniser templates."), ""]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "flows.md"
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
