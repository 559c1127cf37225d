"""Hooks of the example flow: customer lookup by caller number from a sample CSV."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

CUSTOMERS = Path(__file__).with_name("customers.csv")


def _normalise(number: str) -> str:
    """Keep a leading + and the digits (``sip:+34 600-111-222@host`` -> ``+34600111222``)."""
    user = number.split("sip:", 1)[-1].split("@", 1)[0]
    return ("+" if user.strip().startswith("+") else "") + "".join(c for c in user if c.isdigit())


async def lookup_customer(caller: str, path: str = "") -> dict[str, Any]:
    """The customer calling from ``caller``: id, name, tier (vip/gold/standard), account state.

    An unknown number gives ``{"id": None, "tier": "standard", "known": False}``."""
    wanted = _normalise(caller)
    text = await asyncio.to_thread(Path(path or CUSTOMERS).read_text, encoding="utf-8")
    for row in csv.DictReader(text.splitlines()):
        if _normalise(row["number"]) == wanted:
            return {"id": row["customer_id"], "name": row["name"], "tier": row["tier"],
                    "account_state": row["account_state"], "known": True}
    return {"id": None, "tier": "standard", "account_state": "unknown", "known": False}
