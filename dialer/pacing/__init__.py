"""The dialer's pacer: a sans-IO core (events in, calls to place out) and its strategies.

Nothing here imports asyncio, socket or time: the simulator (:mod:`dialer.simulate`) and the
real engine drive the same objects, passing ``now`` in.
"""

from __future__ import annotations

from dialer.pacing.adaptive import AdaptiveMode, AdaptiveSettings, AdaptiveStrategy
from dialer.pacing.base import Pacer, PacerConfig, PacingStrategy, StrategyRegistry
from dialer.pacing.errors import PacingConfigError, PacingError
from dialer.pacing.events import (
    AbandonBudget,
    AgentBusy,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentReady,
    AgentWrap,
    AmdDecided,
    CallAbandoned,
    CallAnswered,
    CallConnected,
    CallDialled,
    CallEnded,
    CallOutcome,
    CallRinging,
    PacerEvent,
)
from dialer.pacing.predictive import PredictiveSettings, PredictiveStrategy
from dialer.pacing.registry import default_registry
from dialer.pacing.simple import PreviewStrategy, ProgressiveStrategy, RatioStrategy
from dialer.pacing.state import AgentState, CallPhase, PacerState

__all__ = [
    "AbandonBudget", "AdaptiveMode", "AdaptiveSettings", "AdaptiveStrategy", "AgentBusy",
    "AgentLoggedIn", "AgentLoggedOut", "AgentReady", "AgentState", "AgentWrap", "AmdDecided",
    "CallAbandoned", "CallAnswered", "CallConnected", "CallDialled", "CallEnded",
    "CallOutcome", "CallPhase", "CallRinging", "Pacer", "PacerConfig", "PacerEvent",
    "PacerState", "PacingConfigError", "PacingError", "PacingStrategy", "PredictiveSettings",
    "PredictiveStrategy", "PreviewStrategy", "ProgressiveStrategy", "RatioStrategy",
    "StrategyRegistry", "default_registry",
]
