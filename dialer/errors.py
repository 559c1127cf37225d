"""The dialer's own errors, rooted at :class:`dialtone_errors.DialtoneError`."""

from __future__ import annotations

from dialtone_errors import DialtoneError

__all__ = ["CampaignNotFound", "DialerError", "LeaseLost", "ListImportError"]


class DialerError(DialtoneError):
    """Root of the dialer's errors (campaigns, lists, DNC, windows, leases)."""


class ListImportError(DialerError):
    """A bad row in an imported list (or a bad header, row 1).

    ``row`` is the spreadsheet row: the header is row 1, the first contact row 2.  The import
    keeps going after a bad row; these errors are collected in the import report, and raised
    only when the file itself cannot be read (no header, a mapped column missing from it).
    """

    def __init__(self, row: int, reason: str, *, column: str | None = None,
                 value: str | None = None) -> None:
        where = f" column {column!r}" if column else ""
        shown = f" ({value!r})" if value is not None else ""
        super().__init__(f"row {row}{where}: {reason}{shown}")
        self.row = row
        self.reason = reason
        self.column = column
        self.value = value

    def __repr__(self) -> str:
        return f"ListImportError({self.row!r}, {self.reason!r}, column={self.column!r})"


class CampaignNotFound(DialerError):
    """No campaign of that name in the store."""


class LeaseLost(DialerError):
    """An outcome came for a lease that had expired and been taken by another dialer.

    The attempt is still written to the ledger (the call happened); the contact's state is left
    to the dialer that holds it now.
    """
