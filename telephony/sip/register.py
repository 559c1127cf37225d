"""REGISTER client (RFC 3261 section 10.2): bind, refresh before expiry, unbind.

One Call-ID per registration with a CSeq that increases across refreshes (10.2.4);
digest challenges answered (22.2); 423 Interval Too Brief retried with Min-Expires; a failed
registration is retried after a back-off that doubles with each failure in a row (60 s,
120 s, ... at most 15 min; a Retry-After from the registrar wins), so a registrar that is
down or refuses us is not hammered.
"""

from __future__ import annotations

from itertools import count
from typing import Any

from telephony.errors import LocalProtocolError

from .core import ALLOW_VALUE, EndpointCore
from .events import RegistrationChanged
from .headers import NameAddr, SipUri, uint
from .message import Headers, SipRequest, SipResponse
from .transaction import ClientTransaction

RETRY_AFTER_FAILURE = 60.0
"""First retry after a failed registration; doubled per failure in a row ..."""
RETRY_AFTER_FAILURE_MAX = 900.0
"""... up to this."""


class Registration:
    """One binding of our Contact to an address-of-record at a registrar."""

    __slots__ = (
        "aor",
        "auth",
        "auth_header",
        "auth_rounds",
        "call_id",
        "closing",
        "contact",
        "credentials",
        "cseq",
        "dest",
        "endpoint",
        "expires",
        "failures",
        "from_tag",
        "granted",
        "ref",
        "registered",
        "registrar",
        "timers",
        "transport",
        "tx",
    )

    def __init__(self, endpoint: Any, ref: str, registrar: SipUri, dest: tuple[str, int],
                 transport: str, aor: NameAddr, credentials: Any, expires: int, call_id: str,
                 from_tag: str, contact: str) -> None:
        self.endpoint = endpoint
        self.ref = ref
        self.registrar = registrar
        self.dest = dest
        self.transport = transport
        self.aor = aor
        self.credentials = credentials
        self.auth: Any = None
        self.expires = expires
        self.call_id = call_id
        self.from_tag = from_tag
        self.cseq = 0
        self.tx: ClientTransaction | None = None
        self.registered = False
        self.granted = 0
        self.timers: dict[str, int] = {}
        self.closing = False
        self.contact = contact
        self.auth_rounds = 0
        self.auth_header = "Authorization"
        self.failures = 0
        """Failed attempts in a row (the retry back-off's exponent)."""

    def on_timer(self, name: str, now: float) -> None:
        self.endpoint._reg_timer(self, name, now)


class RegistrationClient(EndpointCore):
    """The REGISTER half of the endpoint; see :class:`SipEndpoint` for the API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._regs: dict[str, Registration] = {}
        self._reg_ids = count(1)

    def register(self, registrar: str, *, aor: str, credentials: Any = None,
                 expires: int = 3600, now: float,
                 outbound_proxy: tuple[str, int] | None = None) -> str:
        """Register our Contact for ``aor`` at ``registrar`` and keep it refreshed."""
        from .calls import parse_target

        uri = parse_target(registrar)
        transport = uri.transport if "transport" in uri.params else self.config.transport
        req_uri = SipUri(uri.scheme, None, None, uri.host, uri.port,
                         {"transport": uri.params["transport"]} if "transport" in uri.params
                         else {})
        ref = f"reg-{next(self._reg_ids)}"
        reg = Registration(self, ref, req_uri, outbound_proxy or uri.host_port, transport,
                           NameAddr(parse_target(aor)), credentials, expires,
                           self.new_call_id(), self.new_tag(), self.contact_value(transport))
        self._regs[ref] = reg
        self._send_register(reg, now, expires)
        return ref

    def unregister(self, reg: str, *, now: float) -> None:
        """Remove the binding (Expires: 0); RegistrationChanged(registered=False) follows."""
        r = self._regs.get(reg)
        if r is None:
            raise LocalProtocolError(f"unknown registration {reg!r}")
        r.closing = True
        r.timers.clear()
        self._send_register(r, now, 0)

    def registrations(self) -> dict[str, bool]:
        return {ref: r.registered for ref, r in self._regs.items()}

    def _send_register(self, reg: Registration, now: float, expires: int,
                       extra: list[tuple[str, str]] | None = None) -> None:
        reg.cseq += 1
        h = Headers()
        h.add("Via", self.via_value(reg.transport))
        h.add("Max-Forwards", "70")
        h.add("From", str(reg.aor.with_tag(reg.from_tag)))
        h.add("To", str(reg.aor))
        h.add("Call-ID", reg.call_id)
        h.add("CSeq", f"{reg.cseq} REGISTER")
        h.add("Contact", reg.contact)
        h.add("Expires", str(expires))
        h.add("Allow", ALLOW_VALUE)
        h.add("User-Agent", self.config.user_agent)
        for name, value in extra or []:
            h.add(name, value)
        req = SipRequest("REGISTER", reg.registrar, h)
        if extra is None and reg.auth is not None:
            # RFC 7616 3.4: reuse the last nonce pre-emptively (nc+1) on refreshes.
            value = reg.auth.authorize_again(method="REGISTER", uri=str(reg.registrar))
            if value is not None:
                h.add(reg.auth_header, value)
        reg.tx = self.send_request(req, reg.dest, reg.transport, now, owner=reg)

    def _reg_response(self, reg: Registration, tx: ClientTransaction, resp: SipResponse,
                      now: float) -> None:
        status = resp.status
        if status < 200 or tx is not reg.tx:
            return
        reg.tx = None
        expires_req = uint(tx.request.headers.get("Expires")) or 0
        if status < 300:
            reg.auth_rounds = 0
            reg.failures = 0
            if reg.closing or expires_req == 0:
                self._reg_done(reg, status)
                return
            granted = self._granted_expires(reg, resp, expires_req)
            reg.registered = granted > 0
            reg.granted = granted
            self.emit(RegistrationChanged(reg.ref, reg.registered, status, granted))
            if granted > 0:
                margin = self.config.register_margin
                delay = granted - margin if granted > 2 * margin else granted / 2
                self.timer_queue.set(reg, "refresh", now + delay)
            return
        if status in (401, 407):
            auth = self._authorize(reg, tx.request, resp)
            if auth is not None:
                reg.auth_header = auth[0]
                self._send_register(reg, now, expires_req, [auth])
                return
        if status == 423 and not reg.closing:
            min_exp = resp.headers.get("Min-Expires")
            if uint(min_exp) is not None:
                reg.expires = uint(min_exp) or 0  # RFC 3261 10.2.8
                self._send_register(reg, now, reg.expires)
                return
        reg.auth_rounds = 0
        self._reg_failed(reg, status, now, resp.headers.get("Retry-After"))

    def _granted_expires(self, reg: Registration, resp: SipResponse, requested: int) -> int:
        """Our Contact's ``expires`` in the 200, else its Expires header (RFC 3261 10.2.4)."""
        ours = NameAddr.parse(reg.contact).uri
        for contact in resp.contacts:
            u = contact.uri
            if u.host == ours.host and (u.port or 5060) == (ours.port or 5060) and \
                    u.user == ours.user:
                value = contact.params.get("expires")
                if uint(value) is not None:
                    return uint(value) or 0
        header = resp.headers.get("Expires")
        if uint(header) is not None:
            return uint(header) or 0
        return requested

    def _reg_done(self, reg: Registration, status: int) -> None:
        reg.registered = False
        reg.timers.clear()
        self._regs.pop(reg.ref, None)
        self.emit(RegistrationChanged(reg.ref, False, status, 0))

    def _reg_failed(self, reg: Registration, status: int, now: float,
                    retry_after: str | None) -> None:
        if reg.closing:
            self._reg_done(reg, status)
            return
        reg.registered = False
        self.emit(RegistrationChanged(reg.ref, False, status, 0))
        reg.failures += 1
        delay = min(RETRY_AFTER_FAILURE_MAX, RETRY_AFTER_FAILURE * 2 ** min(reg.failures - 1, 16))
        seconds = uint(retry_after.split(";")[0]) if retry_after else None
        if seconds is not None:
            delay = float(seconds)
        self.timer_queue.set(reg, "refresh", now + delay)

    def _reg_timeout(self, reg: Registration, tx: ClientTransaction, now: float,
                     status: int) -> None:
        if tx is reg.tx:
            reg.tx = None
            self._reg_failed(reg, status, now, None)

    def _reg_timer(self, reg: Registration, name: str, now: float) -> None:
        if name == "refresh" and not reg.closing:
            self._send_register(reg, now, reg.expires)
