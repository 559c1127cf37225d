"""telephony.sip: a sans-IO SIP user agent (RFC 3261 transactions, dialogs, calls, REGISTER).

Start with :class:`~telephony.sip.endpoint.SipEndpoint` and :class:`SipConfig`; events are in
:mod:`telephony.sip.events`; messages and typed headers in :mod:`.message` / :mod:`.headers`.
"""

from .config import SipConfig
from .core import Outgoing
from .endpoint import SipEndpoint
from .events import CallRef, SipEvent
from .message import (
                      IncompleteParse,
                      SipMessage,
                      SipRequest,
                      SipResponse,
                      SipStreamParser,
                      make_response,
                      parse_datagram,
)

__all__ = [
    "CallRef", "IncompleteParse", "Outgoing", "SipConfig", "SipEndpoint", "SipEvent",
    "SipMessage", "SipRequest", "SipResponse", "SipStreamParser", "make_response",
    "parse_datagram",
]
