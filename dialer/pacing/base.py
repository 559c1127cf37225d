"""The pacer: a sans-IO core driven by events, and its registry of strategies (STYLE.md 7, 13).

A :class:`Pacer` owns the :class:`~dialer.pacing.state.PacerState` (agents by state, calls by
phase) and one :class:`PacingStrategy`, chosen by name from the registry as aioquic chooses
its congestion controller::

    pacer = Pacer.from_name("predictive", config=PacerConfig(connect_within=2.0))
    pacer.on_event(AgentLoggedIn("a1"), now=0.0)
    pacer.on_event(AgentReady("a1"), now=0.0)
    n = pacer.calls_to_place(now=0.0)

The driver (the simulator, or the engine of issue 14) tells it every event with ``now``,
asks ``calls_to_place(now=...)`` whenever something changed and at :meth:`Pacer.get_timer`,
and passes the compliance ledger's counts with :meth:`Pacer.set_budget`.  Strategies that
sample the team on a clock (Vicidial's adaptive modes sample every second) catch up on
their samples before each event is applied, so the samples are exact whatever the driver's
cadence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from dialer.pacing.errors import PacingConfigError
from dialer.pacing.events import AbandonBudget, PacerEvent
from dialer.pacing.state import PacerState


@dataclass(frozen=True, slots=True)
class PacerConfig:
    """Settings shared by every strategy (per campaign)."""

    abandon_target: float = 0.03
    """The abandonment cap: abandoned / live answers (FTC TSR safe harbour, Ofcom: 3%)."""
    connect_within: float = 2.0
    """Seconds a live call may wait for an agent before the safe-harbour message (FTC: 2 s)."""
    ring_timeout: float = 20.0
    """Seconds a call rings before the dialer gives up (at least 15 s: FTC TSR)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.abandon_target < 1.0:
            raise PacingConfigError(f"abandon target {self.abandon_target} not in (0, 1)")
        if self.connect_within < 0.0:
            raise PacingConfigError("connect_within must be >= 0")


class PacingStrategy(ABC):
    """How many calls to place, from the pacer's state.  Subclasses register by name."""

    name: str = ""

    def __init__(self, config: PacerConfig) -> None:
        self.config = config
        self.budget = AbandonBudget(0, 0, config.abandon_target)

    def advance(self, state: PacerState, *, now: float) -> None:
        """Catch up on periodic work due up to ``now`` (state is as it was until now)."""

    def on_event(self, event: PacerEvent, state: PacerState, *, now: float) -> None:
        """Learn from an event (already applied to ``state``)."""

    def on_budget(self, budget: AbandonBudget, *, now: float) -> None:
        """The compliance ledger's counts changed."""
        self.budget = budget

    def next_timer(self, *, now: float) -> float | None:
        """When this strategy wants to be asked again even if nothing happens (None: never)."""
        return None

    @abstractmethod
    def calls_to_place(self, state: PacerState, *, now: float) -> int:
        """How many new calls to place now (>= 0)."""

    def dial_level(self, state: PacerState) -> float:
        """Lines per logged-in agent that this strategy aims for (for plots and status)."""
        agents = state.logged_in
        busy_lines = state.in_flight + state.connected
        return busy_lines / agents if agents else 0.0


StrategyFactory = Callable[[PacerConfig, str | None], PacingStrategy]


class StrategyRegistry:
    """Names to strategy factories; ``name:ARG`` passes ARG (``ratio:2.5``, ``adaptive:AVERAGE``).

    A value, not a module global (STYLE.md 8): :data:`DEFAULT_REGISTRY` is built once from
    the built-in strategies; a campaign may use its own registry.
    """

    def __init__(self) -> None:
        self._factories: dict[str, StrategyFactory] = {}

    def register(self, name: str, factory: StrategyFactory) -> None:
        """Add a strategy under ``name`` (lower case, no colon)."""
        if ":" in name or name != name.lower():
            raise PacingConfigError(f"bad strategy name {name!r}")
        if name in self._factories:
            raise PacingConfigError(f"strategy {name!r} already registered")
        self._factories[name] = factory

    def names(self) -> list[str]:
        """The registered names."""
        return sorted(self._factories)

    def create(self, spec: str, config: PacerConfig) -> PacingStrategy:
        """Build the strategy for ``spec`` (``progressive``, ``ratio:2``, ``adaptive:TAPERED``)."""
        name, _, arg = spec.strip().partition(":")
        factory = self._factories.get(name.lower())
        if factory is None:
            raise PacingConfigError(
                f"unknown pacing {spec!r}; known: {', '.join(self.names())}")
        return factory(config, arg or None)


class Pacer:
    """The sans-IO pacer: events in, the number of calls to place out."""

    def __init__(self, strategy: PacingStrategy) -> None:
        self.state = PacerState()
        self.strategy = strategy

    @classmethod
    def from_name(cls, spec: str, *, config: PacerConfig | None = None,
                  registry: StrategyRegistry | None = None) -> Pacer:
        """A pacer with the strategy named ``spec`` from ``registry`` (default: built-ins)."""
        from dialer.pacing.registry import default_registry

        reg = registry if registry is not None else default_registry()
        return cls(reg.create(spec, config or PacerConfig()))

    def on_event(self, event: PacerEvent, *, now: float) -> None:
        """Tell the pacer what happened at ``now``."""
        self.strategy.advance(self.state, now=now)
        if self.state.apply(event, now=now):
            self.strategy.on_event(event, self.state, now=now)

    def set_budget(self, budget: AbandonBudget, *, now: float) -> None:
        """Tell the pacer the compliance ledger's counts (the abandonment budget left)."""
        self.strategy.advance(self.state, now=now)
        self.strategy.on_budget(budget, now=now)

    def calls_to_place(self, *, now: float) -> int:
        """How many calls to place now.  The driver must tell :class:`CallDialled` for each."""
        self.strategy.advance(self.state, now=now)
        return max(0, self.strategy.calls_to_place(self.state, now=now))

    def get_timer(self, *, now: float) -> float | None:
        """When to call :meth:`calls_to_place` again if nothing else happens."""
        return self.strategy.next_timer(now=now)

    @property
    def dial_level(self) -> float:
        """Lines per logged-in agent now (the figure Vicidial calls the dial level)."""
        return self.strategy.dial_level(self.state)
