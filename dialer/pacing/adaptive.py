"""Vicidial's adaptive-predictive modes, re-implemented for teams migrating from it.

Written from a reading of Vicidial's ``bin/AST_VDadapt.pl`` (``count_agents_lines``,
``calculate_drops``, ``calculate_dial_level``) and ``bin/AST_VDauto_dial.pl``; our own code.

* Every second (``AST_VDadapt.pl``'s loop delay) the script samples the agents READY and the
  calls LIVE (answered, waiting for an agent), and the agents logged in.  The differential
  is ``mean(ready) - mean(live)`` over the last 15 samples; ``agents_average`` is the mean of
  logged-in agents over the same samples.
* Every 60 s it recounts drops: today's drops over today's answers (in percent), and the
  last minute's drops over the last minute's calls.
* Every 15 s it recomputes the level::

      target   = differential + dl_diff_target
      mul      = target / agents_average               (0 when either is 0)
      pct      = 100 * mul
      idiff    = pct * |intensity/100 - 1|   if pct < 0
               = pct * (intensity/100 + 1)   otherwise
      level    = level * (1 + idiff / 100)
      level    = min(level, max_level); level = max(level, 1.0)
      if calls_last_minute > 20 and drops_last_minute_pct > 50: level /= 2
      if calls_today > 50 and drops_over_answers_today_pct > drop_target:
          HARD_LIMIT: level = 1.0
          AVERAGE:    level /= 2
          TAPERED:    level = 1.0 if past the latest time, else level * tapered_rate
                      (tapered_rate = HHMM time left / 1000, at most 1)
      level = max(level, 1.0)

* ``AST_VDauto_dial.pl`` then places ``round(level * (active agents + dl_diff_target))``
  lines less the calls already sent, ringing, live (waiting) or with an agent.

Our one liberty: Vicidial reads "today's" drops from its call log; we read the compliance
ledger (:class:`~dialer.pacing.events.AbandonBudget`), which also counts AMD false
positives, so both strategies answer to the same figure.  Agents in wrap-up count as active,
as a Vicidial agent in the disposition screen is still INCALL.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from dialer.pacing.base import PacerConfig, PacingStrategy
from dialer.pacing.errors import PacingConfigError
from dialer.pacing.events import CallAbandoned, CallDialled, PacerEvent
from dialer.pacing.state import PacerState

SAMPLE_PERIOD = 1.0  # AST_VDadapt.pl's default loop delay (--delay=1)
SAMPLES = 15  # $stat_it
LEVEL_PERIOD = 15.0  # $diff_ratio_updater >= 15
DROP_PERIOD = 60.0  # $drop_count_updater >= 60


class AdaptiveMode(str, Enum):
    """Vicidial's dial methods ADAPT_HARD_LIMIT, ADAPT_AVERAGE, ADAPT_TAPERED."""

    HARD_LIMIT = "HARD_LIMIT"
    AVERAGE = "AVERAGE"
    TAPERED = "TAPERED"


@dataclass(frozen=True, slots=True)
class AdaptiveSettings:
    """The campaign fields Vicidial reads (vicidial_campaigns.adaptive_*)."""

    mode: AdaptiveMode = AdaptiveMode.HARD_LIMIT
    intensity: float = 0.0
    """adaptive_intensity, -40..40: above 0 raises the level faster, below 0 slower."""
    dl_diff_target: float = 0.0
    """adaptive_dl_diff_target: -1 aims for one agent waiting, +1 for one customer waiting."""
    max_level: float = 3.0
    """adaptive_maximum_level."""
    initial_level: float = 1.0
    """auto_dial_level when the campaign starts."""
    latest_time: float = 8 * 3600.0
    """adaptive_latest_server_time, in the driver's clock (seconds since 00:00 of the day)."""

    def __post_init__(self) -> None:
        if not -40.0 <= self.intensity <= 40.0:
            raise PacingConfigError("adaptive intensity must be within -40..40")
        if self.max_level < 1.0:
            raise PacingConfigError("adaptive maximum level must be at least 1.0")


def hhmm(seconds: float) -> int:
    """Vicidial's ``$current_hourmin``: the clock as the number HHMM."""
    s = int(seconds)
    return (s // 3600) * 100 + (s % 3600) // 60


def next_level(level: float, *, differential: float, agents_average: float,
               settings: AdaptiveSettings) -> float:
    """One 15-second step of ``calculate_dial_level`` before the drop rules."""
    target = differential + settings.dl_diff_target
    mul = target / agents_average if target != 0 and agents_average != 0 else 0.0
    pct = mul * 100.0
    intensity = settings.intensity / 100.0
    idiff = pct * abs(intensity - 1.0) if pct < 0 else pct * (intensity + 1.0)
    new = level * (idiff / 100.0 + 1.0)
    new = min(new, settings.max_level)
    return max(new, 1.0)


def apply_drop_rules(level: float, *, settings: AdaptiveSettings, calls_one: int,
                     drops_one_pct: float, calls_today: int, drops_answers_today_pct: float,
                     drop_target_pct: float, now: float) -> float:
    """The drop-percentage rules of ``calculate_dial_level`` (percentages as 0..100)."""
    if calls_one > 20 and drops_one_pct > 50.0:
        level /= 2.0
    if calls_today > 50 and drops_answers_today_pct > drop_target_pct:
        if settings.mode is AdaptiveMode.HARD_LIMIT:
            level = 1.0
        elif settings.mode is AdaptiveMode.AVERAGE:
            level /= 2.0
        else:
            left = hhmm(settings.latest_time) - hhmm(now)
            level = 1.0 if left < 0 else level * (1.0 if left > 1000 else left / 1000.0)
    return max(level, 1.0)


class AdaptiveStrategy(PacingStrategy):
    """``adaptive[:HARD_LIMIT|AVERAGE|TAPERED]``: Vicidial's adaptive-predictive dialling."""

    name = "adaptive"

    def __init__(self, config: PacerConfig, settings: AdaptiveSettings | None = None) -> None:
        super().__init__(config)
        self.settings = settings or AdaptiveSettings()
        self.level = self.settings.initial_level
        self._samples: deque[tuple[int, int, int]] = deque(maxlen=SAMPLES)
        self._next_sample: float | None = None
        self._next_level: float | None = None
        self._next_drops: float | None = None
        self._calls_today = 0
        self._dial_times: deque[float] = deque()
        self._drop_times: deque[float] = deque()
        # the drop figures as last computed (every 60 s)
        self.calls_one = 0
        self.drops_one_pct = 0.0
        self.calls_today_seen = 0
        self.drops_answers_today_pct = 0.0

    @classmethod
    def from_arg(cls, config: PacerConfig, arg: str | None) -> AdaptiveStrategy:
        """``adaptive`` (HARD_LIMIT, Vicidial's default) or ``adaptive:AVERAGE`` etc."""
        try:
            mode = AdaptiveMode((arg or "HARD_LIMIT").upper())
        except ValueError as exc:
            raise PacingConfigError(
                f"adaptive:{arg}: mode must be HARD_LIMIT, AVERAGE or TAPERED") from exc
        return cls(config, AdaptiveSettings(mode=mode))

    # -- the clock ----------------------------------------------------------------------
    def advance(self, state: PacerState, *, now: float) -> None:
        if self._next_sample is None:
            # the script's first loop runs at once and recounts drops ($drop_count_updater=61)
            self._next_sample = now
            self._next_drops = now
            self._next_level = now + LEVEL_PERIOD
        assert self._next_level is not None and self._next_drops is not None
        while self._next_sample <= now:
            t = self._next_sample
            self._samples.append((state.ready, state.waiting, state.logged_in))
            if self._next_drops <= t:
                self._count_drops(t)
                self._next_drops = t + DROP_PERIOD
            if self._next_level <= t:
                self._recompute(t)
                self._next_level = t + LEVEL_PERIOD
            self._next_sample = t + SAMPLE_PERIOD

    def next_timer(self, *, now: float) -> float | None:
        return self._next_level

    def _count_drops(self, now: float) -> None:
        while self._dial_times and self._dial_times[0] <= now - 60.0:
            self._dial_times.popleft()
        while self._drop_times and self._drop_times[0] <= now - 60.0:
            self._drop_times.popleft()
        self.calls_one = len(self._dial_times)
        self.drops_one_pct = (100.0 * len(self._drop_times) / self.calls_one
                              if self.calls_one else 0.0)
        self.calls_today_seen = self._calls_today
        b = self.budget
        # calculate_drops: answers floor at 1 once there is a drop
        self.drops_answers_today_pct = (100.0 * b.abandoned / max(1, b.live_answers)
                                        if b.abandoned else 0.0)

    def differential(self) -> tuple[float, float]:
        """(mean ready - mean live waiting, mean agents) over the last 15 samples."""
        n = len(self._samples)
        if n == 0:
            return 0.0, 0.0
        ready = sum(s[0] for s in self._samples) / n
        live = sum(s[1] for s in self._samples) / n
        agents = sum(s[2] for s in self._samples) / n
        return ready - live, agents

    def _recompute(self, now: float) -> None:
        diff, agents = self.differential()
        if agents <= 0:
            return  # no agents: Vicidial skips the campaign
        level = next_level(self.level, differential=diff, agents_average=agents,
                           settings=self.settings)
        self.level = apply_drop_rules(
            level, settings=self.settings, calls_one=self.calls_one,
            drops_one_pct=self.drops_one_pct, calls_today=self.calls_today_seen,
            drops_answers_today_pct=self.drops_answers_today_pct,
            drop_target_pct=100.0 * self.config.abandon_target, now=now)

    # -- events -------------------------------------------------------------------------
    def on_event(self, event: PacerEvent, state: PacerState, *, now: float) -> None:
        if isinstance(event, CallDialled):
            self._calls_today += 1
            self._dial_times.append(now)
        elif isinstance(event, CallAbandoned):
            self._drop_times.append(now)

    def calls_to_place(self, state: PacerState, *, now: float) -> int:
        active = max(0.0, state.logged_in + self.settings.dl_diff_target)
        goal = round(self.level * active)
        return goal - state.in_flight - state.connected

    def dial_level(self, state: PacerState) -> float:
        return self.level
