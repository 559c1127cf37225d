"""Caller scripts: what a simulated caller does and expects, step by step (YAML).

```yaml
- clock: "2026-11-23T10:00:00"      # wall time at call start (the flow calendar's zone)
- caller: "+34600111222"
- expect: {prompt: lang.select}
- press: "2"                        # RFC 4733; {press: "2", as: inband} for tones
- expect: {language: es}
- say: audio_fixtures/utterances/es/facturacion.wav
- silence: 6s
- expect: {handoff: {language: es, intent: billing}}
- hangup
```

A script may also be a mapping with ``steps:`` and header keys (clock, caller, called,
voice, agents, hooks, transfer_ok, agent_returns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivr_flows.errors import FlowError

HEADER_KEYS = ("clock", "caller", "called", "voice", "agents", "hooks", "transfer_ok",
               "agent_returns", "agent_seconds")
EXPECT_KINDS = ("prompt", "language", "node", "handoff", "transfer", "hangup", "var",
                "callback", "survey", "voicemail", "cdr", "not_prompt")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


class ScriptError(FlowError):
    """A caller script that cannot be understood (names the file and step)."""


def parse_duration(value: Any) -> float:
    """``6s``, ``500ms``, ``2m`` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"bad duration {value!r} (want e.g. 6s, 500ms)")
    n, unit = float(m.group(1)), m.group(2) or "s"
    return n / 1000 if unit == "ms" else n * 60 if unit == "m" else n


@dataclass(frozen=True, slots=True)
class Step:
    """One script step: ``kind`` is press, say, silence, expect, hangup or a header key."""

    kind: str
    value: Any
    index: int
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "hangup":
            return "hangup"
        return f"{self.kind}: {self.value}"


@dataclass
class CallerScript:
    name: str
    path: Path | None
    steps: list[Step]


def parse_script(data: Any, *, name: str = "script", path: Path | None = None) -> CallerScript:
    """Build a script from parsed YAML; raises ScriptError naming the bad step."""
    where = str(path or name)
    header: list[Any] = []
    if isinstance(data, dict):
        header = [{k: v} for k, v in data.items() if k != "steps"]
        data = data.get("steps", [])
    if not isinstance(data, list):
        raise ScriptError(f"{where}: a caller script is a list of steps")
    steps: list[Step] = []
    for i, raw in enumerate(header + data):
        idx = i - len(header) + 1
        try:
            steps.append(_step(raw, idx))
        except (ValueError, TypeError) as e:
            raise ScriptError(f"{where}: step {idx}: {e}") from e
    return CallerScript(name=name, path=path, steps=steps)


def _step(raw: Any, idx: int) -> Step:
    if raw == "hangup":
        return Step("hangup", None, idx)
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"bad step {raw!r}")
    keys = list(raw)
    kind = keys[0]
    value = raw[kind]
    opts = {k: raw[k] for k in keys[1:]}
    if kind == "press":
        if not isinstance(value, (str, int)) or not re.fullmatch(r"[0-9*#A-D]+", str(value)):
            raise ValueError(f"press wants DTMF digits, got {value!r}")
        how = opts.get("as", "rfc4733")
        if how not in ("rfc4733", "inband", "info"):
            raise ValueError(f"press as {how!r}: use rfc4733, inband or info")
        return Step("press", str(value), idx, {"as": how})
    if kind == "say":
        if isinstance(value, dict):
            if not ("wav" in value or "text" in value):
                raise ValueError("say wants a WAV path, {wav: ...} or {text: ...}")
            return Step("say", value, idx, opts)
        return Step("say", {"wav": str(value)}, idx, opts)
    if kind in ("silence", "wait"):
        return Step("silence", parse_duration(value), idx)
    if kind == "expect":
        if not isinstance(value, dict) or not value:
            raise ValueError("expect wants a mapping like {prompt: key}")
        within = parse_duration(value.get("within", opts.get("within", 30)))
        checks = {k: v for k, v in value.items() if k != "within"}
        bad = [k for k in checks if k not in EXPECT_KINDS]
        if bad:
            raise ValueError(f"unknown expectation {bad[0]!r} (known: {', '.join(EXPECT_KINDS)})")
        return Step("expect", checks, idx, {"within": within})
    if kind == "hangup":
        return Step("hangup", value, idx)
    if kind in HEADER_KEYS:
        return Step(kind, value, idx)
    raise ValueError(f"unknown step {kind!r}")


def load_script(path: str | Path) -> CallerScript:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ScriptError(f"{path}: {e}") from e
    return parse_script(data, name=path.stem, path=path)
