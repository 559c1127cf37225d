"""Overload control: whether a new inbound call may be admitted (sans-IO, ``now`` passed in).

Issue 12 finding 4: at 2,000 INVITE/s the node accepted everything until the RTP port range
ran out, the loop fell behind, OPTIONS went unanswered and held calls lost their audio.
Admission is now decided when the INVITE arrives, before any media resource is taken, from:

- the number of calls up (``max_calls``);
- new calls per second for the node and for each source address (token buckets);
- the media tick's lateness, a live measure of how loaded the process is: when the 20 ms
  tick runs late on average, new calls would make every held call worse.

A refused INVITE gets ``503 Service Unavailable`` with ``Retry-After`` (RFC 3261 21.5.4,
20.33), which tells a dispatcher or proxy that the node is loaded, not dead (RFC 7339 /
RFC 3261 16.7: a 503 with Retry-After makes an upstream proxy try elsewhere).  OPTIONS are
never subject to admission, so health checks keep answering.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["AdmissionConfig", "AdmissionControl", "AdmissionDecision", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """Limits on new inbound calls (a configuration value; None disables a limit)."""

    max_calls: int | None = 2000
    """Concurrent calls (inbound and outbound) beyond which new INVITEs get 503."""
    calls_per_second: float | None = 500.0
    """Node-wide rate of new inbound calls (token bucket refill)."""
    burst: float | None = None
    """Node bucket size (default: one second's worth, ``calls_per_second``)."""
    source_calls_per_second: float | None = None
    """Per source IP; None by default because a trunk or PBX sends every call from one
    address.  Set it when callers reach the node directly."""
    source_burst: float | None = None
    """Per-source bucket size (default: one second's worth)."""
    max_tick_lateness: float | None = 0.010
    """Refuse while the media tick's smoothed lateness exceeds this (seconds)."""
    lateness_tau: float = 0.5
    """Time constant of the lateness smoothing (seconds): a lone late tick does not refuse
    calls, sustained lateness does within about this long."""
    retry_after: int = 5
    """Retry-After (seconds) for refusals by load (calls up, tick lateness)."""
    max_sources: int = 10_000
    """Per-source buckets remembered (least recently used forgotten first)."""


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` spends one if there is one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, *, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = self.burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def available(self, *, now: float) -> bool:
        """True if :meth:`take` would succeed at ``now``."""
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, *, now: float) -> bool:
        """Spend a token; False (nothing spent) when the bucket is empty."""
        self._refill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait(self, *, now: float) -> float:
        """Seconds until a token is available."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class AdmissionDecision:
    """The answer for one INVITE."""

    admitted: bool
    reason: str = ""
    """Why it was refused: ``max_calls``, ``tick_lateness``, ``node_rate``, ``source_rate``."""
    retry_after: int = 0
    """Seconds for the Retry-After header of the 503."""


ADMITTED = AdmissionDecision(True)


class AdmissionControl:
    """Admission state for one endpoint.  Feed it the tick's lateness with
    :meth:`observe_lateness`; ask :meth:`admit` for each new INVITE."""

    def __init__(self, config: AdmissionConfig | None = None) -> None:
        self.config = config or AdmissionConfig()
        self._node: TokenBucket | None = None
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lateness = 0.0
        self._lateness_at: float | None = None

    # --- the live load signal -------------------------------------------------------------

    def observe_lateness(self, lateness: float, *, now: float) -> None:
        """One media tick ran ``lateness`` seconds after its deadline (exponential smoothing
        over ``lateness_tau``, weighted by the time since the last observation)."""
        last = self._lateness_at
        self._lateness_at = now
        if last is None:
            self._lateness = max(lateness, 0.0)
            return
        alpha = 1.0 - math.exp(-max(now - last, 0.0) / self.config.lateness_tau)
        self._lateness += alpha * (max(lateness, 0.0) - self._lateness)

    def lateness(self, *, now: float) -> float:
        """The smoothed lateness at ``now``; it decays when no tick reports (no calls up)."""
        if self._lateness_at is None:
            return 0.0
        idle = max(now - self._lateness_at - 0.1, 0.0)  # ticks report every 20 ms
        return self._lateness * math.exp(-idle / self.config.lateness_tau)

    # --- the decision -----------------------------------------------------------------------

    def admit(self, source: str, *, now: float, active_calls: int) -> AdmissionDecision:
        """May a new call from ``source`` start now, with ``active_calls`` already up?
        Admitting spends a token from the node's and the source's buckets."""
        cfg = self.config
        if cfg.max_calls is not None and active_calls >= cfg.max_calls:
            return AdmissionDecision(False, "max_calls", cfg.retry_after)
        if cfg.max_tick_lateness is not None and self.lateness(now=now) > cfg.max_tick_lateness:
            return AdmissionDecision(False, "tick_lateness", cfg.retry_after)
        node = self._node_bucket(now)
        src = self._source_bucket(source, now)
        if src is not None and not src.available(now=now):
            return AdmissionDecision(False, "source_rate", _ceil(src.wait(now=now)))
        if node is not None and not node.available(now=now):
            return AdmissionDecision(False, "node_rate", _ceil(node.wait(now=now)))
        if node is not None:
            node.take(now=now)
        if src is not None:
            src.take(now=now)
        return ADMITTED

    def _node_bucket(self, now: float) -> TokenBucket | None:
        rate = self.config.calls_per_second
        if rate is None:
            return None
        if self._node is None:
            self._node = TokenBucket(rate, self.config.burst or rate, now=now)
        return self._node

    def _source_bucket(self, source: str, now: float) -> TokenBucket | None:
        rate = self.config.source_calls_per_second
        if rate is None:
            return None
        bucket = self._sources.pop(source, None)
        if bucket is None:
            bucket = TokenBucket(rate, self.config.source_burst or rate, now=now)
            while len(self._sources) >= self.config.max_sources:
                self._sources.popitem(last=False)  # a forgotten bucket was probably full
        self._sources[source] = bucket
        return bucket


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds))
