"""Events the SIP endpoint hands to its application (aioquic ``events.py`` style).

Every event is a frozen dataclass with slots deriving from :class:`SipEvent`.  Call events
carry ``call``, an opaque :data:`CallRef` naming one call leg (not the SIP Call-ID; ask
``SipEndpoint.call_info(call)`` for that); ``call_id`` is an alias of ``call``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NewType

from .headers import NameAddr
from .message import SipRequest

CallRef = NewType("CallRef", str)
"""Opaque handle of one call leg."""


@dataclass(frozen=True, slots=True)
class SipEvent:
    """Base class of every SIP endpoint event."""


@dataclass(frozen=True, slots=True)
class CallEventBase(SipEvent):
    """An event about one call leg."""

    call: CallRef

    @property
    def call_id(self) -> CallRef:
        """The call leg handle (same as ``call``)."""
        return self.call


@dataclass(frozen=True, slots=True)
class IncomingCall(CallEventBase):
    """A new inbound INVITE (already answered 100 Trying); answer, ring or reject it."""

    request: SipRequest = field(repr=False)
    offer: bytes = field(repr=False)
    """The SDP offer (may be empty: the offer then goes in our 200 and the answer in the ACK)."""
    remote_addr: tuple[str, int]
    from_uri: str
    to_uri: str
    from_display: str | None = None


@dataclass(frozen=True, slots=True)
class CallProgress(CallEventBase):
    """A provisional response (18x) to our outbound INVITE."""

    status: int
    reason: str
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class CallAnswered(CallEventBase):
    """Our outbound INVITE got a 2xx; the endpoint already sent the ACK."""

    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CallConfirmed(CallEventBase):
    """The ACK for our 2xx to an inbound INVITE arrived (RFC 3261 13.3.1.4)."""

    body: bytes = field(default=b"", repr=False)
    """The ACK body (the SDP answer when the INVITE had no offer)."""


@dataclass(frozen=True, slots=True)
class CallFailed(CallEventBase):
    """Our outbound INVITE ended with a final response >= 300 (after any authentication),
    408 when it timed out, 503 on a transport failure."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class CallTerminated(CallEventBase):
    """The call is over: BYE either way, CANCEL, no ACK, session timer expiry, local hangup."""

    reason: str
    by_remote: bool
    status: int | None = None


@dataclass(frozen=True, slots=True)
class ReinviteReceived(CallEventBase):
    """A re-INVITE; call ``answer_reinvite`` or ``reject_reinvite``."""

    offer: bytes = field(repr=False)
    request: SipRequest = field(repr=False)


@dataclass(frozen=True, slots=True)
class ReinviteResult(CallEventBase):
    """The final response to our re-INVITE (``endpoint.reinvite``); ``body`` is the answer."""

    status: int
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class UpdateReceived(CallEventBase):
    """An UPDATE (RFC 3311).  Without an offer it is already answered (session refresh);
    with one, call ``answer_update`` (or ``reject_update``)."""

    offer: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class DtmfInfoReceived(CallEventBase):
    """A digit sent by SIP INFO (application/dtmf-relay or application/dtmf)."""

    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ReferReceived(CallEventBase):
    """A REFER (blind transfer request, RFC 3515); call ``accept_refer`` or ``reject_refer``,
    then ``notify_refer_progress`` as the new call proceeds."""

    refer_to: NameAddr
    referred_by: str | None = None


@dataclass(frozen=True, slots=True)
class ReferProgress(CallEventBase):
    """A NOTIFY (message/sipfrag) about the REFER we sent; ``final`` when the transfer ended."""

    status: int
    final: bool


@dataclass(frozen=True, slots=True)
class ReferRejected(CallEventBase):
    """Our REFER got a final response >= 300 (or timed out: 408)."""

    status: int


@dataclass(frozen=True, slots=True)
class RegistrationChanged(SipEvent):
    """A registration binding was created, refreshed, failed or removed."""

    reg: str
    registered: bool
    status: int
    expires: int


@dataclass(frozen=True, slots=True)
class OptionsReceived(SipEvent):
    """An OPTIONS request (already answered 200), for information."""

    request: SipRequest = field(repr=False)
