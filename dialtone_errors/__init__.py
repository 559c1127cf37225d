"""The root of every error Dialtone raises on purpose.

This package depends on nothing, so every layer (``telephony``, ``ivr_flows``, ``routing``,
``dialer``, the ``dialtone`` node) can derive its own errors from one root without importing
another layer.  Each layer's errors live with that layer: ``telephony.errors``,
``ivr_flows.errors``, ``routing.errors``, ``dialer.errors``, ``dialtone.errors``.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DialtoneError"]


class DialtoneError(Exception):
    """Root of every error Dialtone raises on purpose."""


class ConfigError(DialtoneError):
    """Bad configuration given by the user (a flag, a file, an environment variable)."""
