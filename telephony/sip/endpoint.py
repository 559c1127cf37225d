"""The SIP user-agent endpoint: the public sans-IO class the asyncio glue drives.

Feed it with :meth:`~SipEndpoint.receive_datagram` and :meth:`~SipEndpoint.handle_timer`;
take :meth:`~SipEndpoint.datagrams_to_send`, :meth:`~SipEndpoint.get_timer` and
:meth:`~SipEndpoint.next_event`; act on calls with ``invite``/``answer``/``hangup``...
Nothing here does I/O or reads a clock: every method that cares takes ``now``.

The pieces: ``core.py`` (bytes, validation, transactions), ``calls.py`` (INVITE usage,
dialogs, re-INVITE, UPDATE, INFO, REFER, session timers), ``register.py`` (REGISTER client).
"""

from __future__ import annotations

import random
from typing import Any

from .call_leg import CallLeg, CallState
from .calls import CallHandling
from .config import SipConfig
from .core import Outgoing
from .message import SipResponse
from .register import Registration, RegistrationClient
from .transaction import ClientTransaction

__all__ = ["Outgoing", "SipConfig", "SipEndpoint"]


class SipEndpoint(CallHandling, RegistrationClient):
    """A SIP user agent (client and server) without I/O.  See the module docstring.

    ``rng`` draws tags, branches, Call-IDs, cnonces and glare back-offs, so a seeded
    ``random.Random`` makes a whole exchange reproducible byte for byte.
    """

    def __init__(self, config: SipConfig, *, rng: random.Random | None = None) -> None:
        super().__init__(config, rng=rng)

    def _on_client_response(self, tx: ClientTransaction, resp: SipResponse, now: float) -> None:
        owner = tx.owner
        if isinstance(owner, CallLeg):
            self._call_response(owner, tx, resp, now)
        elif isinstance(owner, Registration):
            self._reg_response(owner, tx, resp, now)

    def _on_client_timeout(self, tx: ClientTransaction, now: float, status: int) -> None:
        owner = tx.owner
        if isinstance(owner, CallLeg):
            self._call_timeout(owner, tx, now, status)
        elif isinstance(owner, Registration):
            self._reg_timeout(owner, tx, now, status)

    def close(self, *, now: float) -> None:
        """Hang up every call and remove every registration (before the glue shuts down)."""
        for ref, leg in list(self._calls.items()):
            if leg.state is not CallState.TERMINATED:
                self.hangup(ref, now=now, reason="shutdown")
        for reg in list(self._regs):
            self.unregister(reg, now=now)

    @property
    def footprint(self) -> int:
        """Calls and transactions held, ended ones lingering included: what most of the
        endpoint's memory follows (the glue trims the heap when it falls, issue 12)."""
        return len(self._calls) + len(self._client_txs) + len(self._server_txs)

    def pending(self) -> dict[str, Any]:
        """Sizes of the internal tables (for leak checks and metrics)."""
        return {"calls": len(self._calls), "dialogs": len(self._dialog_legs),
                "client_transactions": len(self._client_txs),
                "server_transactions": len(self._server_txs),
                "registrations": len(self._regs), "timers": len(self.timer_queue)}
