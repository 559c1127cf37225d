"""Typed errors.  Every error Dialtone raises derives from :class:`DialtoneError`.

Errors caused by the network carry a hint of the answer the peer should get
(``status_hint`` for SIP) so that the layer boundary can answer correctly instead
of crashing (compare h11's ``ProtocolError.error_status_hint``).
"""

from __future__ import annotations

# the root lives in dialtone_errors (no dependencies); re-exported for this layer's users
from dialtone_errors import ConfigError, DialtoneError

# --- SIP -------------------------------------------------------------------------------------


class SipError(DialtoneError):
    """Anything that went wrong in the SIP layer."""


class SipProtocolError(SipError):
    """A SIP protocol violation.

    ``status_hint`` is the response code a server should send when the violation
    comes from a request (400 Bad Request by default); ``reason`` is a short phrase
    naming the problem, suitable for a Reason-Phrase or a Warning header.
    """

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint


class SipParseError(SipProtocolError):
    """Bytes that are not a well-formed SIP message."""


class MessageTooLarge(SipParseError):
    """A message (or its declared body) exceeds the configured size limit."""

    def __init__(self, reason: str = "Message Too Large") -> None:
        super().__init__(reason, status_hint=513)


class LocalProtocolError(SipProtocolError):
    """Our own code tried to do something the protocol forbids (an illegal transition)."""

    def __init__(self, reason: str, status_hint: int = 500) -> None:
        super().__init__(reason, status_hint)


class RemoteProtocolError(SipProtocolError):
    """The peer did something the protocol forbids."""


class TransactionTimeout(SipError):
    """A client transaction got no final response in time (timer B or F)."""


class AuthenticationError(SipError):
    """Digest authentication failed (wrong credentials, unsupported algorithm, loop)."""


class SdpError(DialtoneError):
    """An SDP body that cannot be parsed or negotiated; ``status_hint`` 488 when nothing matches."""

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint


# --- Media -----------------------------------------------------------------------------------


class MediaError(DialtoneError):
    """Anything that went wrong in the media path."""


class RtpError(MediaError):
    """An RTP or RTCP packet that cannot be parsed."""


class CodecError(MediaError):
    """Unknown codec, or audio that a codec cannot handle."""


class AudioFileError(MediaError):
    """A prompt or fixture file that is not usable audio (names the file)."""


# --- Calls -----------------------------------------------------------------------------------


class CallError(DialtoneError):
    """A Call API operation failed."""


class CallEnded(CallError):
    """The call ended while an operation was waiting on it."""


class CallFailed(CallError):
    """An outbound call did not connect; ``status`` is the SIP final response code (0 if none)."""

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TransferFailed(CallError):
    """A transfer (REFER or bridge) did not succeed."""

__all__ = [
    "AudioFileError",
    "AuthenticationError",
    "CallEnded",
    "CallError",
    "CallFailed",
    "CodecError",
    "ConfigError",
    "DialtoneError",
    "LocalProtocolError",
    "MediaError",
    "MessageTooLarge",
    "RemoteProtocolError",
    "RtpError",
    "SdpError",
    "SipError",
    "SipParseError",
    "SipProtocolError",
    "TransactionTimeout",
    "TransferFailed",
]
