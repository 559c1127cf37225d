"""The built-in strategies, by name."""

from __future__ import annotations

from dialer.pacing.adaptive import AdaptiveStrategy
from dialer.pacing.base import PacerConfig, PacingStrategy, StrategyFactory, StrategyRegistry
from dialer.pacing.errors import PacingConfigError
from dialer.pacing.predictive import PredictiveStrategy
from dialer.pacing.simple import PreviewStrategy, ProgressiveStrategy, RatioStrategy


def _no_arg(cls: type[PreviewStrategy | ProgressiveStrategy]) -> StrategyFactory:
    def factory(config: PacerConfig, arg: str | None) -> PacingStrategy:
        if arg:
            raise PacingConfigError(f"{cls.name} takes no argument (got {arg!r})")
        return cls(config)
    return factory


def default_registry() -> StrategyRegistry:
    """A registry of preview, progressive, ratio:X, adaptive[:MODE] and predictive."""
    reg = StrategyRegistry()
    reg.register("preview", _no_arg(PreviewStrategy))
    reg.register("progressive", _no_arg(ProgressiveStrategy))
    reg.register("ratio", RatioStrategy.from_arg)
    reg.register("adaptive", AdaptiveStrategy.from_arg)
    reg.register("predictive", PredictiveStrategy.from_arg)
    return reg
