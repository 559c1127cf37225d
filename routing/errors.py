"""The routing layer's errors; they derive from the one root, :class:`dialtone_errors.DialtoneError`."""

from __future__ import annotations

from dialtone_errors import DialtoneError


class RoutingError(DialtoneError):
    """The hand-off to the routing core failed (no decision, malformed message, broker down)."""
