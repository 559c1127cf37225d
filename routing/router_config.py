"""Configuration of the reference router: queues, schedules, intents, tiers and agents.

A value (frozen dataclasses) built from a dict or a YAML file; see
routing/examples/router.yaml for a commented example.  Invalid input raises
:class:`ConfigError` naming the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from dialtone_errors import ConfigError
from routing.contract import AgentState

_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
ClosedKind = Literal["transfer", "callback", "reject"]


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Opening hours on some weekdays, ``start <= t < end`` in the router's time zone.

    With ``target`` set, calls in this window go straight to that SIP URI (an
    overflow site at night, say) instead of the queue's agents.
    """

    days: frozenset[int]
    """Weekday numbers, Monday = 0."""
    start: time
    end: time
    target: str | None = None

    def contains(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        return local.weekday() in self.days and self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class ClosedAction:
    """What to do with a call outside every window of its queue."""

    kind: ClosedKind = "reject"
    target: str | None = None
    reason: str = "closed"


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue: the skills its agents need, its hours and its limits."""

    name: str
    skills: frozenset[str] = frozenset()
    hours: tuple[TimeWindow, ...] = ()
    """Empty: always open."""
    closed: ClosedAction = ClosedAction()
    max_waiting: int = 50
    """More waiting calls than this: offer a callback instead of queueing."""
    max_wait_s: float = 600.0
    """A queued call waiting longer than this gets a callback decision."""


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Everything the reference router needs to decide."""

    timezone: str = "UTC"
    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    intents: Mapping[str, str] = field(default_factory=dict)
    """Intent -> queue name."""
    default_queue: str = "general"
    tier_priority: Mapping[str, int] = field(
        default_factory=lambda: {"vip": 0, "gold": 1, "standard": 2}
    )
    """Lower is served first; tiers not listed rank after every listed one."""
    average_handle_s: float = 180.0
    """For the estimated wait of queued calls."""
    agents: tuple[AgentState, ...] = ()
    """Agents known at start-up (presence updates arrive over the bus)."""

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def queue_for(self, intent: str | None) -> QueueConfig:
        name = self.intents.get(intent, self.default_queue) if intent else self.default_queue
        return self.queues.get(name) or QueueConfig(name=name)

    def priority(self, tier: str) -> int:
        return self.tier_priority.get(tier, max(self.tier_priority.values(), default=0) + 1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouterConfig:
        """Build from a plain mapping (the parsed YAML); raises :class:`ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError("router config: expected a mapping at the top level")
        tz = str(data.get("timezone", "UTC"))
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"router config: unknown timezone {tz!r}") from exc
        queues = {
            str(name): _parse_queue(str(name), q or {})
            for name, q in _mapping(data.get("queues", {}), "queues").items()
        }
        intents = {str(k): str(v) for k, v in _mapping(data.get("intents", {}), "intents").items()}
        for intent, queue in intents.items():
            if queue not in queues:
                raise ConfigError(f"router config: intents.{intent}: unknown queue {queue!r}")
        default_queue = str(data.get("default_queue", next(iter(queues), "general")))
        tiers = _mapping(data.get("tier_priority", {"vip": 0, "gold": 1, "standard": 2}), "tiers")
        agents = []
        for i, raw in enumerate(_sequence(data.get("agents", []), "agents")):
            try:
                agents.append(AgentState.model_validate({"state": "available", **raw}))
            except (ValidationError, TypeError) as exc:
                raise ConfigError(f"router config: agents[{i}]: {exc}") from exc
        try:
            return cls(
                timezone=tz,
                queues=queues,
                intents=intents,
                default_queue=default_queue,
                tier_priority={str(k): int(v) for k, v in tiers.items()},
                average_handle_s=float(data.get("average_handle_s", 180.0)),
                agents=tuple(agents),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"router config: {exc}") from exc

    @classmethod
    def for_agents(
        cls, agents: Mapping[str, str], *, skills: Sequence[str] = ("general",),
        languages: Sequence[str] = (), timezone: str = "UTC",
    ) -> RouterConfig:
        """One always-open queue and these agents (id -> SIP URI), all available.

        For tests and demos: ``RouterConfig.for_agents({"agent": "sip:agent@127.0.0.1:5070"})``
        sends every hand-off to that SIPp agent.
        """
        return cls.from_dict({
            "timezone": timezone,
            "queues": {"general": {"skills": list(skills)}},
            "agents": [
                {"agent_id": agent_id, "uri": uri, "skills": list(skills),
                 "languages": list(languages)}
                for agent_id, uri in agents.items()
            ],
        })

    @classmethod
    def from_yaml(cls, path: str | Path) -> RouterConfig:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        try:
            return cls.from_dict(data or {})
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"router config: {where}: expected a mapping")
    return value


def _sequence(value: object, where: str) -> Sequence[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"router config: {where}: expected a list of mappings")
    return value


def _parse_time(value: object, where: str) -> time:
    text = str(value)
    if text == "24:00":
        return time.max
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"router config: {where}: bad time {text!r} (HH:MM)") from exc


def _parse_window(raw: Mapping[str, Any], where: str) -> TimeWindow:
    days_raw = raw.get("days", list(_DAYS))
    if not isinstance(days_raw, list):
        raise ConfigError(f"router config: {where}.days: expected a list")
    days = set()
    for d in days_raw:
        key = str(d).lower()[:3]
        if key not in _DAYS:
            raise ConfigError(f"router config: {where}.days: unknown day {d!r}")
        days.add(_DAYS[key])
    start = _parse_time(raw.get("from", "00:00"), f"{where}.from")
    end = _parse_time(raw.get("to", "24:00"), f"{where}.to")
    if end <= start:
        raise ConfigError(f"router config: {where}: 'to' must be after 'from'")
    target = raw.get("target")
    if target is not None and not str(target).startswith(("sip:", "sips:")):
        raise ConfigError(f"router config: {where}.target: not a SIP URI: {target!r}")
    return TimeWindow(frozenset(days), start, end, None if target is None else str(target))


def _parse_queue(name: str, raw: Mapping[str, Any]) -> QueueConfig:
    where = f"queues.{name}"
    _mapping(raw, where)
    hours = tuple(
        _parse_window(w, f"{where}.hours[{i}]")
        for i, w in enumerate(_sequence(raw.get("hours", []), f"{where}.hours"))
    )
    closed_raw = _mapping(raw.get("closed", {}), f"{where}.closed")
    kind = str(closed_raw.get("kind", "reject"))
    if kind not in ("transfer", "callback", "reject"):
        raise ConfigError(f"router config: {where}.closed.kind: unknown {kind!r}")
    closed_target = closed_raw.get("target")
    if kind == "transfer" and not str(closed_target or "").startswith(("sip:", "sips:")):
        raise ConfigError(f"router config: {where}.closed.target: a SIP URI is needed")
    closed = ClosedAction(
        kind=kind,  # type: ignore[arg-type]
        target=None if closed_target is None else str(closed_target),
        reason=str(closed_raw.get("reason", "closed")),
    )
    skills = raw.get("skills", [name])
    if not isinstance(skills, list):
        raise ConfigError(f"router config: {where}.skills: expected a list")
    return QueueConfig(
        name=name,
        skills=frozenset(str(s) for s in skills),
        hours=hours,
        closed=closed,
        max_waiting=int(raw.get("max_waiting", 50)),
        max_wait_s=float(raw.get("max_wait_s", 600.0)),
    )
