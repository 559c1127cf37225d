"""Load and validate a flow file, reporting every problem with file, line and node.

``load_flow(path)`` returns a :class:`LoadedFlow` or raises
:class:`~telephony.errors.FlowValidationError` listing *all* problems: schema errors
(mapped back to YAML lines), unknown target nodes, unreachable nodes, prompt keys
missing in a language the flow offers, duplicate choice keys, hooks that do not
import, transfers outside the allow-list, unknown calendars or time zones, and
prompt recordings that are not usable audio.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from ivr_flows.errors import FlowProblem, FlowValidationError
from ivr_flows.model import (
    BranchNode,
    CallbackNode,
    Flow,
    HookNode,
    LanguageNode,
    MenuNode,
    Node,
    PromptItemSpec,
    SurveyNode,
    TransferNode,
    edges,
    phrases_for,
)
from ivr_flows.prompts import PromptCatalogue
from ivr_flows.yaml_lines import line_at, load_text

_NODE_ADAPTER: TypeAdapter[Any] = TypeAdapter(Node)
BUILTIN_KEYS = frozenset({"beep"})
"""Keys every flow may use without defining them (beep is generated if not recorded)."""


@dataclass
class LoadedFlow:
    """A validated flow with where it came from."""

    flow: Flow
    path: Path
    catalogue: PromptCatalogue
    lines: dict[str, int]
    """node id -> line of its definition."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def flow_schema() -> dict[str, Any]:
    """JSON Schema of the flow format (for editors)."""
    schema = Flow.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Dialtone IVR flow"
    return schema


def _problem(problems: list[FlowProblem], file: str, raw: Any, loc: tuple[Any, ...],
             node: str | None, msg: str) -> None:
    problems.append(FlowProblem(file, line_at(raw, loc), node, msg))


def _pydantic_problems(err: ValidationError, file: str, raw: Any, prefix: tuple[Any, ...],
                       node: str | None) -> list[FlowProblem]:
    out = []
    for e in err.errors(include_url=False):
        loc = prefix + tuple(e["loc"])
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc += ("type",)  # point at the bad (or missing) node kind
        where = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = f"{where}: {e['msg']}" if where else e["msg"]
        out.append(FlowProblem(file, line_at(raw, loc), node, msg))
    return out


def _prompt_keys(node: Any) -> list[tuple[PromptItemSpec, tuple[Any, ...]]]:
    """Every prompt item in a node, with its location inside the node."""
    found: list[tuple[PromptItemSpec, tuple[Any, ...]]] = []

    def walk(value: Any, loc: tuple[Any, ...]) -> None:
        if isinstance(value, PromptItemSpec):
            found.append((value, loc))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, loc + (i,))
        elif isinstance(value, BaseModel):
            for name, f in type(value).model_fields.items():
                walk(getattr(value, name), loc + (f.alias or name,))

    walk(node, ())
    return found


def check_hook(path: str) -> str | None:
    """None if ``path`` names an importable coroutine function, else the reason."""
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        return f"hook {path!r} does not import: {e}"
    fn = getattr(module, attr, None)
    if fn is None:
        return f"hook {path!r}: module {module_name!r} has no attribute {attr!r}"
    if not inspect.iscoroutinefunction(fn):
        return f"hook {path!r} is not an async function"
    return None


def _edge_locs(nid: str, node: Any) -> list[tuple[str, str, tuple[Any, ...]]]:
    """Edges with where they are written inside the node."""
    out: list[tuple[str, str, tuple[Any, ...]]] = []
    seq = iter(range(10_000))
    for label, target in edges(nid, node):
        if label.startswith("choice:"):
            out.append((label, target, ("choices", next(seq), "next")))
        elif label.startswith("case:"):
            out.append((label, target, ("cases", int(label[5:]), "next")))
        else:
            out.append((label, target, (label,)))
    return out


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def _semantic(flow: Flow, raw: Any, file: str, base: Path, problems: list[FlowProblem],
              cat: PromptCatalogue, bad_nodes: dict[str, Any]) -> None:
    nodes = flow.nodes
    rn = ("nodes",)
    if flow.start not in nodes and flow.start not in bad_nodes:
        _problem(problems, file, raw, ("start",), None, f"start node {flow.start!r} is not defined")
    s = flow.settings
    for label in ("on_fail", "on_error"):
        t = getattr(s, label)
        if t is not None and t not in nodes:
            _problem(problems, file, raw, ("settings", label), None,
                     f"settings.{label} targets unknown node {t!r}")
    if flow.settings.language not in flow.languages:
        _problem(problems, file, raw, ("settings", "language"), None,
                 f"default language {flow.settings.language!r} is not in languages")
    for name, calendar in flow.calendars.items():
        try:
            ZoneInfo(calendar.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            _problem(problems, file, raw, ("calendars", name, "timezone"), None,
                     f"calendar {name!r}: unknown time zone {calendar.timezone!r}")
        from ivr_flows.calendar import parse_calendar_problems

        for msg in parse_calendar_problems(calendar):
            _problem(problems, file, raw, ("calendars", name), None, f"calendar {name!r}: {msg}")

    for nid, node in nodes.items():
        loc = rn + (nid,)
        for label, target, eloc in _edge_locs(nid, node):
            if target not in nodes:
                _problem(problems, file, raw, loc + eloc, nid,
                         f"{label} targets unknown node {target!r}")
        # duplicate choice keys
        choices: list[Any] = []
        if isinstance(node, (MenuNode, LanguageNode)):
            choices = list(node.choices)
        elif isinstance(node, CallbackNode):
            choices = list(node.slots)
        seen: dict[str, int] = {}
        for i, c in enumerate(choices):
            if c.dtmf is not None:
                if c.dtmf in seen:
                    _problem(problems, file, raw, loc + ("choices", i), nid,
                             f"choice key {c.dtmf!r} is used twice (choices {seen[c.dtmf]} "
                             f"and {i})")
                seen[c.dtmf] = i
        for lang in flow.languages:
            phrases: dict[str, int] = {}
            for i, c in enumerate(choices):
                for p in phrases_for(getattr(c, "speech", []), lang):
                    k = p.strip().lower()
                    if k in phrases and phrases[k] != i:
                        _problem(problems, file, raw, loc + ("choices", i), nid,
                                 f"speech phrase {p!r} is used by two choices")
                    phrases[k] = i
        if isinstance(node, HookNode):
            reason = check_hook(node.call)
            if reason:
                _problem(problems, file, raw, loc + ("call",), nid, reason)
        if isinstance(node, TransferNode) and node.uri not in flow.transfer_allow_list:
            _problem(problems, file, raw, loc + ("uri",), nid,
                     f"transfer target {node.uri!r} is not in transfer_allow_list")
        if isinstance(node, BranchNode):
            for i, case in enumerate(node.cases):
                for cond in case.if_:
                    if cond.open is not None and cond.open not in flow.calendars:
                        _problem(problems, file, raw, loc + ("cases", i), nid,
                                 f"unknown calendar {cond.open!r}")
        if isinstance(node, SurveyNode):
            for i, q in enumerate(node.questions):
                if q.min > q.max:
                    _problem(problems, file, raw, loc + ("questions", i), nid,
                             f"question {q.id!r}: min exceeds max")
        for item, iloc in _prompt_keys(node):
            if item.key is not None and item.key not in BUILTIN_KEYS:
                langs = [item.language] if item.language else flow.languages
                for lang in langs:
                    if not cat.has(item.key, lang):
                        _problem(problems, file, raw, loc + iloc, nid,
                                 f"prompt key {item.key!r} has no recording or text in "
                                 f"language {lang!r}")
            if item.file is not None and not (base / item.file).is_file():
                _problem(problems, file, raw, loc + iloc, nid,
                         f"prompt file {item.file!r} does not exist")
            if item.language is not None and item.language not in flow.languages:
                _problem(problems, file, raw, loc + iloc, nid,
                         f"language {item.language!r} is not one the flow offers")
    # reachability (VoiceXML has no such check; a dead node is almost always a typo)
    roots = [flow.start] + [t for t in (s.on_fail, s.on_error) if t]
    reached: set[str] = set()
    todo = [r for r in roots if r in nodes or r in bad_nodes]
    while todo:
        n = todo.pop()
        if n in reached:
            continue
        reached.add(n)
        if n in bad_nodes:  # did not parse: any string naming a node counts as an edge
            todo.extend(t for t in _strings(bad_nodes[n]) if t in nodes or t in bad_nodes)
        else:
            todo.extend(t for _, t in edges(n, nodes[n]) if t in nodes or t in bad_nodes)
    for nid in list(nodes) + list(bad_nodes):
        if nid not in reached:
            _problem(problems, file, raw, rn + (nid,), nid, "node is unreachable from start")
    for path, reason in cat.check_recordings():
        problems.append(FlowProblem(str(path), None, None, reason.removeprefix(f"{path}: ")))


def load_flow(path: str | Path) -> LoadedFlow:
    """Load, validate and index a flow; raise FlowValidationError with every problem."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FlowValidationError([FlowProblem(file, None, None, f"cannot read: {e}")]) from e
    try:
        raw = load_text(text, json_first=path.suffix == ".json")
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise FlowValidationError([FlowProblem(file, line, None, f"bad YAML: {e.problem}")]) from e
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        line = getattr(e, "lineno", None)
        raise FlowValidationError([FlowProblem(file, line, None, f"bad syntax: {e}")]) from e
    if not isinstance(raw, dict):
        raise FlowValidationError([FlowProblem(file, 1, None, "a flow is a mapping")])

    problems: list[FlowProblem] = []
    raw_nodes = raw.get("nodes")
    good_nodes: dict[str, Any] = {}
    if isinstance(raw_nodes, dict):
        for nid, rnode in raw_nodes.items():
            try:
                good_nodes[nid] = _NODE_ADAPTER.validate_python(rnode)
            except ValidationError as e:
                problems.extend(_pydantic_problems(e, file, raw, ("nodes", nid), str(nid)))
    # the rest of the file, with the nodes that parsed (so semantic checks still run)
    top = {k: v for k, v in raw.items() if k != "nodes"}
    top["nodes"] = good_nodes
    try:
        flow = Flow.model_validate(top)
    except ValidationError as e:
        problems.extend(p for p in _pydantic_problems(e, file, raw, (), None)
                        if not (p.message.startswith("nodes.") and p.message.count(".") > 1))
        raise FlowValidationError(problems) from e
    cat = PromptCatalogue.for_flow(flow, path.parent)
    bad_nodes = ({k: v for k, v in raw_nodes.items() if k not in good_nodes}
                 if isinstance(raw_nodes, dict) else {})
    _semantic(flow, raw, file, path.parent, problems, cat, bad_nodes)
    # a node that failed schema validation is still a valid target: drop the knock-on noise
    bad = set(bad_nodes)
    problems = [p for p in problems if not any(
        p.message.endswith(f"unknown node {b!r}") for b in bad)]
    if problems:
        problems.sort(key=lambda p: (p.file != file, p.file, p.line or 0))
        raise FlowValidationError(problems)
    lines = {nid: line_at(raw, ("nodes", nid)) or 0 for nid in flow.nodes}
    return LoadedFlow(flow=flow, path=path, catalogue=cat, lines=lines)


def used_prompt_keys(flow: Flow) -> set[str]:
    """Every catalogue key the flow's nodes refer to."""
    keys: set[str] = set()
    for node in flow.nodes.values():
        keys.update(i.key for i, _ in _prompt_keys(node) if i.key is not None)
    return keys
