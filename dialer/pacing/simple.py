"""The fixed strategies: preview, progressive and ratio (lines per agent)."""

from __future__ import annotations

import math

from dialer.pacing.base import PacerConfig, PacingStrategy
from dialer.pacing.errors import PacingConfigError
from dialer.pacing.state import PacerState


class PreviewStrategy(PacingStrategy):
    """An agent sees the contact and chooses to dial: the pacer never dials by itself.

    The engine places a preview call when the agent asks; the pacer only follows it (its
    events keep the state right for the status view).
    """

    name = "preview"

    def calls_to_place(self, state: PacerState, *, now: float) -> int:
        return 0


class ProgressiveStrategy(PacingStrategy):
    """Never more calls in flight than free agents: no call can lack an agent.

    Every call placed has a ready agent reserved for it until it resolves, so the only
    abandoned live answers are AMD's false positives.
    """

    name = "progressive"

    def calls_to_place(self, state: PacerState, *, now: float) -> int:
        return state.ready - state.in_flight


class RatioStrategy(PacingStrategy):
    """A fixed number of lines per logged-in agent (``ratio:2.5``), Vicidial's RATIO method:
    ``round(X * agents)`` lines, less the calls dialling, waiting or connected."""

    name = "ratio"

    def __init__(self, config: PacerConfig, ratio: float) -> None:
        super().__init__(config)
        if not (math.isfinite(ratio) and ratio > 0.0):
            raise PacingConfigError(f"ratio must be a positive number, not {ratio!r}")
        self.ratio = ratio

    @classmethod
    def from_arg(cls, config: PacerConfig, arg: str | None) -> RatioStrategy:
        """``ratio:X`` (X lines per agent; ``ratio`` alone means 1)."""
        try:
            value = float(arg) if arg else 1.0
        except ValueError as exc:
            raise PacingConfigError(f"ratio:{arg}: not a number") from exc
        return cls(config, value)

    def calls_to_place(self, state: PacerState, *, now: float) -> int:
        goal = round(self.ratio * state.logged_in)
        return goal - state.in_flight - state.connected

    def dial_level(self, state: PacerState) -> float:
        return self.ratio
