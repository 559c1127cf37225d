"""Errors of the pacing core (they derive from the project's root error)."""

from __future__ import annotations

from dialtone_errors import ConfigError, DialtoneError


class PacingError(DialtoneError):
    """Something went wrong in the pacer."""


class PacingConfigError(PacingError, ConfigError):
    """A pacing setting that cannot be used (unknown strategy, bad ratio, bad mode)."""
