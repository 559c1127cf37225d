"""``GET /metrics``: the node's figures in Prometheus' text format (prometheus-client).

A registry per app (not the library's global one), fed by the event hub: the same events that
go to the ``--events`` log.  Families whose source is the dialer engine (dial level, calls by
state, agents by state, abandonment) are set from the live figures every second.

The counters the SIP endpoint and the media mixer keep themselves (malformed messages dropped,
overload refusals, RTP from rejected sources, the tick's lateness and restarts: the defences of
issue 12) are read when Prometheus scrapes, by :class:`NodeCounters`, so the hot paths only
bump a plain ``Counter``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["NodeCounters", "NodeMetrics", "NodeStats"]

NodeStats = dict[str, dict[str, float]]
"""What a node reports at scrape time: ``sip`` and ``media`` counters (name -> count since
start) and ``gauges`` (name -> value)."""

_GAUGES: dict[str, str] = {
    "calls_up": "Calls not yet ended (what admission control counts against max_calls)",
    "media_tick_lateness_seconds": "The media tick's smoothed lateness behind its 20 ms "
                                   "deadline (admission refuses new calls above the limit)",
}


class NodeCounters(Collector):
    """Prometheus families read from the node's own counters when scraped:
    ``dialtone_sip_total{counter}``, ``dialtone_media_total{counter}`` and the gauges of
    ``_GAUGES``.  ``read`` returns a :data:`NodeStats` (None: the node is not up yet)."""

    def __init__(self, read: Callable[[], NodeStats | None]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        stats = self.read() or {}
        sip = CounterMetricFamily(
            "dialtone_sip", "SIP endpoint counters since start (received, sent, "
            "retransmissions, dropped_malformed, overload_503, overload_<reason>, "
            "responded_<status>, tcp_closed_<why>, ...)", labels=["counter"])
        for name, value in sorted((stats.get("sip") or {}).items()):
            sip.add_metric([name], value)
        yield sip
        media = CounterMetricFamily(
            "dialtone_media", "Media counters since start, every call summed (rx_packets, "
            "rx_bad, rx_wrong_source, tx_packets, calls_failed, tick_errors, engine_tick_errors, "
            "tick_restarts, ...)", labels=["counter"])
        for name, value in sorted((stats.get("media") or {}).items()):
            media.add_metric([name], value)
        yield media
        gauges = stats.get("gauges") or {}
        for name, doc in _GAUGES.items():
            if name in gauges:
                yield GaugeMetricFamily(f"dialtone_{name}", doc, value=gauges[name])


class NodeMetrics:
    """The metric families of issue 15, and the event listener that feeds them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 node_stats: Callable[[], NodeStats | None] | None = None) -> None:
        self.clock = clock
        r = self.registry = CollectorRegistry()
        if node_stats is not None:
            r.register(NodeCounters(node_stats))
        self.calls_active = Gauge("dialtone_calls_active", "Calls up now",
                                  ["direction"], registry=r)
        self.calls_total = Counter("dialtone_calls_total", "Calls ended, by outcome",
                                   ["direction", "outcome"], registry=r)
        self.call_setup = Histogram("dialtone_call_setup_seconds",
                                    "INVITE to answer (call_started to call_answered)",
                                    ["direction"], registry=r,
                                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40))
        self.rtp_lost = Counter("dialtone_rtp_lost_packets_total", "RTP packets lost",
                                registry=r)
        self.rtp_received = Counter("dialtone_rtp_received_packets_total",
                                    "RTP packets received", registry=r)
        self.rtp_jitter = Histogram("dialtone_rtp_jitter_ms", "RTP interarrival jitter per "
                                    "call (RFC 3550 6.4.1), at the call's end", registry=r,
                                    buckets=(1, 2, 5, 10, 20, 40, 80, 160))
        self.dtmf = Counter("dialtone_dtmf_total", "DTMF digits received", ["source"],
                            registry=r)
        self.flow_nodes = Counter("dialtone_flow_nodes_entered_total",
                                  "Flow nodes entered", ["node"], registry=r)
        self.handoffs = Counter("dialtone_handoffs_total", "Calls handed off", registry=r)
        self.handoff_latency = Histogram("dialtone_handoff_seconds",
                                         "Hand-off offer to the routing core's decision",
                                         registry=r,
                                         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
        self.dial_level = Gauge("dialtone_dialer_dial_level",
                                "Lines dialled per agent ready or talking", ["campaign"],
                                registry=r)
        self.dialer_calls = Gauge("dialtone_dialer_calls", "Dialler calls by state",
                                  ["campaign", "state"], registry=r)
        self.agents = Gauge("dialtone_agents", "Agents by state", ["state"], registry=r)
        self.abandon_rate = Gauge("dialtone_abandon_rate",
                                  "Abandoned over live answers", ["campaign", "window"],
                                  registry=r)
        self.broker_connected = Gauge("dialtone_broker_connected",
                                      "1 when the routing bus is connected (in-process: 1)",
                                      registry=r)
        self.console_events = Counter("dialtone_console_events_total",
                                      "Events seen by the console's hub", ["type"],
                                      registry=r)
        self._started: dict[str, tuple[str, float]] = {}
        self._handoff_t: dict[str, float] = {}

    def observe(self, event: dict[str, Any]) -> None:
        """The hub listener: one node event in."""
        kind = str(event.get("type", ""))
        self.console_events.labels(kind).inc()
        call_id = str(event.get("call_id", ""))
        if kind == "call_started":
            direction = str(event.get("direction", "inbound"))
            # events are observed as they are emitted: the hub's clock times the setup
            self._started[call_id] = (direction, self.clock())
            self.calls_active.labels(direction).inc()
            if len(self._started) > 100_000:  # an event stream missing its ends: bounded
                self._started.pop(next(iter(self._started)))
        elif kind == "call_answered" and call_id in self._started:
            direction, at = self._started[call_id]
            self.call_setup.labels(direction).observe(max(0.0, self.clock() - at))
        elif kind == "call_ended":
            self._handoff_t.pop(call_id, None)
            started = self._started.pop(call_id, None)
            direction = started[0] if started else str(event.get("direction", "inbound"))
            if started is not None:  # a call that started before the console: not counted up
                self.calls_active.labels(direction).dec()
            self.calls_total.labels(direction, str(event.get("cause", "unknown"))).inc()
            rtp = event.get("rtp") or {}
            self.rtp_lost.inc(max(0, int(rtp.get("lost", 0))))
            self.rtp_received.inc(max(0, int(rtp.get("received", 0))))
            if rtp.get("received"):
                self.rtp_jitter.observe(float(rtp.get("jitter_ms", 0.0)))
        elif kind == "dtmf":
            self.dtmf.labels(str(event.get("source", "unknown"))).inc()
        elif kind == "node_entered":
            self.flow_nodes.labels(str(event.get("node", ""))).inc()
        elif kind == "handoff":
            self.handoffs.inc()
            if isinstance(event.get("t"), (int, float)):
                self._handoff_t[call_id] = float(event["t"])
        elif kind == "route_decision" and call_id in self._handoff_t:
            # both carry t, seconds since the call started (the flow engine's clock)
            t0 = self._handoff_t.pop(call_id)
            if isinstance(event.get("t"), (int, float)):
                self.handoff_latency.observe(max(0.0, float(event["t"]) - t0))

    def set_figures(self, campaign: str, figures: dict[str, Any]) -> None:
        """A campaign's live figures (every second)."""
        self.dial_level.labels(campaign).set(float(figures.get("dial_level") or 0.0))
        for state, n in (figures.get("calls") or {}).items():
            self.dialer_calls.labels(campaign, state).set(n)
        ab = figures.get("abandonment") or {}
        for window in ("1h", "24h", "30d"):
            w = ab.get(window) or {}
            self.abandon_rate.labels(campaign, window).set(float(w.get("rate", 0.0)))

    def set_agents(self, by_state: dict[str, int]) -> None:
        for state in ("available", "busy", "wrap_up", "offline"):
            self.agents.labels(state).set(by_state.get(state, 0))
