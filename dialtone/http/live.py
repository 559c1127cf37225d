"""Live figures: what the campaign view shows every second, computed from the store's ledger
and the node's events, pushed through the hub to the Server-Sent Events streams and /metrics.

Sources, as the dialer engine (issue 14) lands: the ledger (``dialer_attempts``) gives
abandonment, AMD share, wait, contacts dialled and left; ``dialer_call`` events give calls by
state and talk time; ``dialer_status`` events give the pacer's dial level; agents come from
the routing bus's presence (or a fixed list).  Until an engine reports, calls in flight are the
contacts under a live lease (all counted as ``dialling``) and the dial level is lines in flight per
agent logged in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from dialer.db import read_session
from dialer.models import Attempt, Campaign, Contact
from dialer.store import PERIOD_S, DialerStore
from dialtone.http.hub import EventHub
from dialtone.http.metrics import NodeMetrics
from dialtone_errors import DialtoneError

log = logging.getLogger(__name__)

__all__ = ["AgentSource", "AgentView", "BusAgents", "LiveFigures", "StaticAgents"]

HOUR_S = 3600.0
DAY_S = 86400.0
CALL_STATES = ("dialling", "ringing", "waiting", "connected")
ENGINE_FRESH_S = 5.0
"""An engine snapshot older than this is from a dialer that stopped: not live figures."""


def _agent_state(engine_state: str) -> str:
    """The engine's agent states (dialer.engine: ready, busy, wrap, away) as the page's."""
    return {"ready": "available", "busy": "busy", "wrap": "wrap_up", "away": "offline"}.get(
        engine_state, engine_state)


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent as the console shows it."""

    id: str
    state: str
    """available, busy, wrap_up, offline (the routing contract's presence)."""
    since: float | None
    campaign: str | None = None


class AgentSource(Protocol):
    """Where agents' states come from."""

    def agents(self) -> list[AgentView]: ...


class StaticAgents:
    """A fixed, settable list (no routing bus: tests, a node without agents)."""

    def __init__(self, agents: list[AgentView] | None = None) -> None:
        self._agents = {a.id: a for a in agents or []}

    def set(self, agent: AgentView) -> None:
        self._agents[agent.id] = agent

    def agents(self) -> list[AgentView]:
        return sorted(self._agents.values(), key=lambda a: a.id)


class BusAgents:
    """The routing bus's presence snapshot (``RoutingBus.agent_states``)."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def agents(self) -> list[AgentView]:
        return sorted((AgentView(s.agent_id, s.state, s.since)
                       for s in self._snapshot().values()), key=lambda a: a.id)


@dataclass
class _CampaignLive:
    calls: dict[str, str] = field(default_factory=dict)
    """call_id -> state, from dialer_call events."""
    connected_at: dict[str, float] = field(default_factory=dict)
    talks: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=500))
    dial_level: float | None = None
    history: deque[dict[str, float]] = field(default_factory=lambda: deque(maxlen=3600))


class LiveFigures:
    """Computes each campaign's figures once a second and publishes them."""

    def __init__(self, store: DialerStore, hub: EventHub, agents: AgentSource,
                 metrics: NodeMetrics, *, clock: Callable[[], float] = time.time,
                 interval: float = 1.0) -> None:
        self.store, self.hub, self.agent_source, self.metrics = store, hub, agents, metrics
        self.clock, self.interval = clock, interval
        self._live: dict[str, _CampaignLive] = {}
        self._wraps: deque[float] = deque(maxlen=500)
        self._agent_state: dict[str, tuple[str, float]] = {}
        hub.add_listener(self.observe)

    def _c(self, name: str) -> _CampaignLive:
        live = self._live.get(name)
        if live is None:
            live = self._live[name] = _CampaignLive()
        return live

    def observe(self, event: dict[str, Any]) -> None:
        """Hub listener: the engine's ``dialer_call`` and ``dialer_status`` events."""
        kind = event.get("type")
        campaign = event.get("campaign")
        if not isinstance(campaign, str):
            return
        now = self.clock()
        if kind == "dialer_call":
            live = self._c(campaign)
            call_id, state = str(event.get("call_id")), str(event.get("state"))
            if state == "connected":
                live.connected_at[call_id] = now
            if state == "ended":
                live.calls.pop(call_id, None)
                at = live.connected_at.pop(call_id, None)
                if at is not None:
                    live.talks.append((now, now - at))
            elif state in CALL_STATES:
                live.calls[call_id] = state
                if len(live.calls) > 100_000:  # ends lost: bounded
                    live.calls.pop(next(iter(live.calls)))
        elif kind == "dialer_status" and isinstance(event.get("dial_level"), (int, float)):
            self._c(campaign).dial_level = float(event["dial_level"])

    def agents(self) -> list[dict[str, Any]]:
        """Agents with time in state (seconds)."""
        now = self.clock()
        out = []
        for a in self.agent_source.agents():
            prev = self._agent_state.get(a.id)
            if prev is None or prev[0] != a.state:
                if prev is not None and prev[0] == "wrap_up":
                    self._wraps.append(now - prev[1])
                self._agent_state[a.id] = (a.state, a.since or now)
            since = a.since or self._agent_state[a.id][1]
            out.append({"id": a.id, "state": a.state, "since": since,
                        "in_state_s": max(0.0, now - since), "campaign": a.campaign})
        return out

    def history(self, name: str) -> list[dict[str, float]]:
        """The last hour's samples (t, dial_level, agents_busy, abandon_rate_1h)."""
        return list(self._c(name).history)

    def _engine_snapshot(self, name: str, now: float) -> dict[str, Any] | None:
        """The dialer engine's last snapshot of ``name`` if it is fresh (the engine is up)."""
        try:
            found = self.store.engine_status(name)
        except DialtoneError:
            return None
        if found is None or now - found[0] > ENGINE_FRESH_S:
            return None
        return found[1]

    def campaign(self, name: str, agents: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One campaign's figures now (reads the database: call from a worker thread)."""
        now = self.clock()
        agents = self.agents() if agents is None else agents
        live = self._c(name)
        with read_session(self.store.engine) as s:
            camp = s.scalar(select(Campaign).where(Campaign.name == name))
            if camp is None:
                return {"type": "figures", "campaign": name, "missing": True}
            cid = camp.id
            base = (Attempt.campaign_id == cid, Attempt.disposition.is_not(None))

            def window(since: float) -> dict[str, Any]:
                lv, ab = s.execute(select(
                    func.count().filter(Attempt.live_answer.is_(True)),
                    func.count().filter(Attempt.abandoned.is_(True)))
                    .where(*base, Attempt.dialled_at >= since)).one()
                return {"live": int(lv), "abandoned": int(ab),
                        "rate": int(ab) / int(lv) if lv else 0.0}

            first = s.scalar(select(func.min(Attempt.dialled_at)).where(*base))
            period_start = (first + ((now - first) // PERIOD_S) * PERIOD_S
                            if first is not None else now)
            ab = {"1h": window(now - HOUR_S), "24h": window(now - DAY_S),
                  "30d": window(period_start)}
            amd_machine, amd_all, wait = s.execute(select(
                func.count().filter(Attempt.amd == "machine"),
                func.count().filter(Attempt.amd.is_not(None)),
                func.avg(Attempt.time_to_agent_s))
                .where(*base, Attempt.dialled_at >= now - HOUR_S)).one()
            # contacts under a live lease: an attempt dialled and not yet ended (a lease that
            # ran out without an outcome is not a call any more)
            in_flight = s.scalar(select(func.count()).select_from(Contact).where(
                Contact.campaign_id == cid, Contact.lease_until > now)) or 0
            total, left, dialled = s.execute(select(
                func.count(), func.count().filter(Contact.status == "pending"),
                func.count().filter(Contact.attempts > 0)).where(
                Contact.campaign_id == cid)).one()
            recent = s.scalar(select(func.count(func.distinct(Attempt.contact_id))).where(
                Attempt.campaign_id == cid, Attempt.dialled_at >= now - HOUR_S)) or 0
            status = camp.status
            cap = _cap(camp.settings_json)
        calls = dict.fromkeys(CALL_STATES, 0)
        engine = self._engine_snapshot(name, now)
        if engine is not None:
            # the running dialer's own view (dialtone campaign run|start writes it every
            # second, from whichever process dials): calls by phase, the pacer's dial level
            calls["dialling"] = int(engine.get("dialling") or 0)
            calls["waiting"] = int(engine.get("waiting") or 0)
            calls["connected"] = int(engine.get("connected") or 0)
            if not agents:
                agents = [{"id": a.get("uri"), "state": _agent_state(str(a.get("state"))),
                           "since": now - float(a.get("since_s") or 0.0),
                           "in_state_s": float(a.get("since_s") or 0.0), "campaign": name}
                          for a in engine.get("agents") or ()]
        elif live.calls:
            for state in live.calls.values():
                calls[state] += 1
        else:
            calls["dialling"] = int(in_flight)
        logged_in = sum(1 for a in agents if a["state"] != "offline")
        busy = sum(1 for a in agents if a["state"] == "busy")
        lines = sum(calls.values())
        if engine is not None and isinstance(engine.get("dial_level"), (int, float)):
            dial_level = float(engine["dial_level"])
        else:
            dial_level = live.dial_level if live.dial_level is not None else (
                lines / logged_in if logged_in else 0.0)
        talks = [d for t, d in live.talks if t >= now - HOUR_S]
        if not talks and engine is not None and engine.get("talk_s_mean") is not None:
            talks = [float(engine["talk_s_mean"])]
        rate_per_s = recent / HOUR_S
        figures: dict[str, Any] = {
            "type": "figures", "campaign": name, "status": status, "at": now,
            "dial_level": round(dial_level, 3), "calls": calls,
            "agents": {"logged_in": logged_in, "busy": busy,
                       "by_state": _count(a["state"] for a in agents)},
            "abandonment": {k: {**v, "cap": cap} for k, v in ab.items()},
            "cap": cap,
            "amd_share": amd_machine / amd_all if amd_all else 0.0,
            "avg_wait_s": float(wait) if wait is not None else 0.0,
            "avg_talk_s": sum(talks) / len(talks) if talks else 0.0,
            "avg_wrap_s": sum(self._wraps) / len(self._wraps) if self._wraps else 0.0,
            "contacts": {"total": int(total), "dialled": int(dialled), "left": int(left)},
            "run_out_s": (int(left) / rate_per_s) if rate_per_s > 0 else None,
            # the dialer's PBX registration (None: a trunk, or no engine running)
            "registration": engine.get("registration") if engine is not None else None,
        }
        live.history.append({"t": now, "dial_level": figures["dial_level"], "agents_busy": busy,
                             "abandon_rate_1h": ab["1h"]["rate"]})
        return figures

    def tick(self) -> list[dict[str, Any]]:
        """Figures of every campaign that is running or watched (one worker-thread call)."""
        agents = self.agents()
        by_state = _count(a["state"] for a in agents)
        self.metrics.set_agents(by_state)
        out = []
        for info in self.store.campaigns():
            watched = self.hub.subscribers(f"campaign:{info.name}") > 0
            if info.status in ("running", "paused") or watched:
                out.append(self.campaign(info.name, agents))
        return out

    async def run(self) -> None:
        """Every ``interval``: compute, publish to each campaign's topic and the node's."""
        while True:
            started = time.monotonic()
            try:
                figures = await asyncio.to_thread(self.tick)
            except SQLAlchemyError as exc:  # a database hiccup skips one second
                log.warning("live figures skipped: %s", exc)
                figures = None
            if figures is not None:
                agents = self.agents()
                for f in figures:
                    self.metrics.set_figures(f["campaign"], f)
                    self.hub.publish(f"campaign:{f['campaign']}", f)
                self.hub.publish("node", {"type": "node_figures", "at": self.clock(),
                                          "campaigns": figures, "agents": agents})
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))


def _count(states: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in states:
        out[s] = out.get(s, 0) + 1
    return out


def _cap(settings_json: str) -> float:
    import json
    try:
        return float(json.loads(settings_json or "{}").get("abandon_target", 0.03))
    except (ValueError, TypeError, AttributeError):
        return 0.03
