"""Dialling registered to a PBX: the account, and a registration kept alive for a dialer.

A trunk takes calls from our address without a registration; a PBX wants its extension
registered (RFC 3261 10) and challenges our INVITEs (401/407, RFC 3261 22).  The dialer
(``dialtone campaign run --register``, ``dialtone serve --trunk-register``):

* registers before the first call and dials nothing until the registrar said 200;
* lets the SIP core refresh the binding before it expires, and retry a failed one with a
  back-off that doubles per failure (:mod:`telephony.sip.register`); while the binding is
  lost, no new call is placed (:meth:`PbxRegistration.may_dial`), calls in progress go on,
  and dialling resumes on its own when the registrar takes us back;
* treats a registration *refused* (403, 404, or 401/407 after our credentials: a wrong
  password) as a configuration error: the campaigns pause with a message that says so, as a
  trunk's 403/407 to a call does (dialer.engine); a person resumes them once it is fixed;
* unregisters (Expires: 0) when it stops.

Calls go to the PBX with the registered identity in From (its AOR) and the campaign's caller
ID in P-Asserted-Identity; the PBX's challenges are answered with the same credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dialer.errors import DialerError
from telephony.aio.useragent import UserAgent
from telephony.errors import SipParseError
from telephony.sip.auth import DigestCredentials
from telephony.sip.headers import SipUri
from telephony.sip.message import REASON_PHRASES

__all__ = ["REFUSED", "PbxAccount", "PbxRegistration", "RegistrationRefused"]

log = logging.getLogger(__name__)

REFUSED = frozenset({401, 403, 404, 407})
"""Final REGISTER statuses that no retry will change: the account or password is wrong (a 401
or 407 comes to us only after the SIP core answered a challenge with our credentials)."""


class RegistrationRefused(DialerError):
    """The PBX refused to register us (wrong user or password, forbidden)."""


@dataclass(frozen=True, slots=True)
class PbxAccount:
    """Who the dialer registers as, where, and its digest credentials."""

    aor: str
    """``sip:USER@HOST[:PORT]``: the address-of-record registered, and From of our calls."""
    registrar: str
    """``sip:HOST[:PORT]``: where REGISTER goes (the PBX), and the default trunk."""
    auth_user: str
    password: str = field(repr=False)
    expires: int = 300
    """Seconds asked for the binding (the PBX may grant less; refreshed before expiry)."""

    @classmethod
    def parse(cls, register: str, *, password: str, auth_user: str | None = None,
              expires: int = 300) -> PbxAccount:
        """From ``sip:USER@HOST[:PORT]``; the auth user defaults to USER."""
        text = register.strip()
        if not text.lower().startswith(("sip:", "sips:")):
            text = "sip:" + text
        try:
            uri = SipUri.parse(text)
        except SipParseError as exc:
            raise DialerError(f"bad registration URI {register!r}: {exc}") from exc
        if not uri.user:
            raise DialerError(f"bad registration URI {register!r}: want sip:USER@HOST[:PORT]")
        if expires < 60:
            raise DialerError(f"registration expiry {expires} s: at least 60")
        hostport = uri.host if uri.port is None else f"{uri.host}:{uri.port}"  # [v6] kept
        aor = f"{uri.scheme}:{uri.user}@{hostport}"
        return cls(aor=aor, registrar=f"{uri.scheme}:{hostport}",
                   auth_user=auth_user or uri.user, password=password, expires=expires)

    @property
    def credentials(self) -> DigestCredentials:
        return DigestCredentials(self.auth_user, self.password)


class PbxRegistration:
    """Keeps one user agent registered to a PBX for a dialer.

    Feed it the user agent's events (:meth:`observe`: the ``registration`` events the UA
    emits); ask :meth:`may_dial` before placing calls.  ``on_refused(message)`` is called
    when the PBX refuses the account (once per refusal after a registration or at start)."""

    def __init__(self, ua: UserAgent, account: PbxAccount, *,
                 on_refused: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ua = ua
        self.account = account
        self.on_refused = on_refused
        self.clock = clock
        """Wall clock of the times in :meth:`snapshot` (Unix time)."""
        self.registered_at: float | None = None
        """When the registrar last said 200 (the binding's ``expires`` counts from it)."""
        self.last_failure: tuple[float, int] | None = None
        """(when, status) of the last REGISTER that failed (status 0: no answer)."""
        self.state = "unregistered"
        """``unregistered`` (not started or stopped), ``registering`` (the first attempt),
        ``registered``, ``retrying`` (lost; the SIP core retries with back-off), ``refused``."""
        self.status: int | None = None
        """The last final status of a REGISTER."""
        self.expires = 0
        self.message: str | None = None
        """Why the PBX refused us, for the operator."""
        self._ref: str | None = None
        self._changed = asyncio.Event()

    # --- the UA's events ------------------------------------------------------------------------

    def observe(self, event: dict[str, Any]) -> None:
        """A UA event; only ``registration`` events of our binding count."""
        if event.get("type") != "registration" or self._ref is None \
                or event.get("reg") != self._ref:
            return
        status = int(event.get("status") or 0)
        self.status = status
        before = self.state
        if not event.get("registered") and self.state != "unregistered":
            self.last_failure = (self.clock(), status)
        if event.get("registered"):
            self.registered_at = self.clock()
            self.state, self.expires, self.message = "registered", int(
                event.get("expires") or 0), None
            if before != "registered":
                log.info("registered to %s as %s (%s s)", self.account.registrar,
                         self.account.aor, self.expires)
        elif self.state == "unregistered":
            pass  # our own unregister's answer
        elif status in REFUSED:
            self.state = "refused"
            self.message = (f"the PBX {self.account.registrar} refused to register "
                            f"{self.account.aor} (auth user {self.account.auth_user!r}) with "
                            f"{status}: check the user and password; dialling paused")
            if before != "refused":
                log.error("%s", self.message)
                if self.on_refused is not None:
                    self.on_refused(self.message)
        else:
            self.state = "retrying"
            log.warning("registration to %s lost (%s): no new calls until it is back",
                        self.account.registrar, status or "no answer")
        self._changed.set()

    def may_dial(self) -> bool:
        """Place new calls only while registered."""
        return self.state == "registered"

    def snapshot(self) -> dict[str, Any]:
        """The registration as the operator sees it (``campaign status``, the console, the
        engine's status JSON): state, the registrar's last answer, the binding's expiry and
        the last failure."""
        now = self.clock()
        expires_in = None
        if self.state == "registered" and self.registered_at is not None:
            expires_in = max(0, round(self.registered_at + self.expires - now))
        failure = None
        if self.last_failure is not None:
            at, st = self.last_failure
            failure = {"at": at, "ago_s": round(now - at, 1), "status": st or None,
                       "reason": _reason(st)}
        return {"state": self.state, "registered": self.state == "registered",
                "aor": self.account.aor, "registrar": self.account.registrar,
                "auth_user": self.account.auth_user, "status": self.status,
                "reason": _reason(self.status) if self.status is not None else None,
                "expires": self.expires if self.state == "registered" else None,
                "expires_in": expires_in, "registered_at": self.registered_at,
                "last_failure": failure, "message": self.message}

    # --- start and stop -------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> bool:
        """Register and wait for the first answer: True when registered; False when refused
        (``message`` says why) or no answer came within ``timeout`` (the SIP core goes on
        retrying; :meth:`may_dial` turns True when it succeeds)."""
        ua = self.ua
        self.state = "registering"
        self._changed.clear()
        self._ref = ua.endpoint.register(self.account.registrar, aor=self.account.aor,
                                         credentials=self.account.credentials,
                                         expires=self.account.expires, now=ua.now())
        ua.transport.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
        if self.state == "registering":
            self.state = "retrying"
            log.warning("no answer from %s to REGISTER within %.0f s: retrying",
                        self.account.registrar, timeout)
        return self.state == "registered"

    async def wait_registered(self, timeout: float) -> bool:
        """Wait until registered (True) or ``timeout`` passes."""
        async def until() -> None:
            while self.state != "registered":
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 2.0) -> None:
        """Unregister (Expires: 0) and wait (bounded) for the registrar's answer."""
        ref, self._ref = self._ref, None
        was = self.state
        self.state = "unregistered"
        if ref is None or ref not in self.ua.endpoint.registrations():
            return
        self._ref = ref
        self._changed.clear()
        self.ua.endpoint.unregister(ref, now=self.ua.now())
        self.ua.transport.flush()
        if was in ("registered", "retrying"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        self._ref = None


def _reason(status: int) -> str:
    """The registrar's answer in words (its standard reason phrase; 0: no answer)."""
    if status == 0:
        return "no answer"
    return REASON_PHRASES.get(status, "Unknown")
