"""Configuration of a :class:`~telephony.sip.endpoint.SipEndpoint` (a value, never a global)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .admission import AdmissionConfig

if TYPE_CHECKING:
    from .auth import DigestServer

ALLOWED_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REFER", "NOTIFY",
                   "UPDATE")
SUPPORTED_OPTIONS = frozenset({"timer"})  # RFC 4028
# Methods we know but do not serve as a UA: 405 (RFC 3261 8.2.1); anything else gets 501.
KNOWN_UNSUPPORTED = frozenset({"REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE", "PRACK"})


@dataclass(frozen=True, slots=True)
class SipConfig:
    """Where we listen and advertise, timer values (RFC 3261 17.1.1.1) and policies."""

    host: str = "127.0.0.1"
    port: int = 5080
    transport: str = "udp"
    advertised_host: str | None = None
    """Host written into Via sent-by and Contact (default: ``host``)."""
    advertised_port: int | None = None
    user_agent: str = "Dialtone/0.1"
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_c: float = 180.0
    """Give up on an unanswered outbound INVITE after this long (CANCEL, CallFailed 408)."""
    trusted_sources: frozenset[str] | None = None
    """Source IPs whose INVITEs need no authentication; None trusts everyone."""
    inbound_auth: DigestServer | Any | None = None
    """A ``DigestServer`` that challenges INVITEs from untrusted sources (401)."""
    session_expires: int = 1800
    min_se: int = 90
    max_message_size: int = 65535
    display_name: str | None = None
    username: str = "dialtone"
    register_margin: float = 30.0
    """Refresh a registration this many seconds before it expires (half-way if shorter)."""
    linger: float | None = None
    """How long a finished call's state is kept (default 64*T1)."""
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    """Overload control for new inbound INVITEs (503 + Retry-After beyond the limits)."""
    # --- transport limits (issue 12 findings 4 and 5), applied by the asyncio glue ---------
    tcp_message_timeout: float = 20.0
    """A message on a TCP connection must be complete this long after its first byte, or
    the connection is closed (slow-header attacks)."""
    tcp_idle_timeout: float = 120.0
    """A TCP connection with no traffic this long, and no call with its peer, is closed."""
    tcp_max_per_source: int = 100
    """Accepted TCP connections per source IP; more are closed on accept."""
    tcp_max_buffer: int = 65535
    """Bytes a TCP connection may hold of an incomplete message (and of unsent output)."""
    udp_read_batch: int = 64
    """Datagrams read from the SIP UDP socket per readiness event (drains the kernel queue
    faster than one per loop iteration, so OPTIONS are not stuck behind an INVITE flood)."""
    udp_receive_buffer: int = 4 * 1024 * 1024
    """SO_RCVBUF asked for the SIP UDP socket (the kernel caps it at net.core.rmem_max)."""
    new_request_budget: int = 32
    """New INVITEs processed per pass of the loop; in-dialog requests, responses and OPTIONS
    go first and are not limited."""
    max_queued_requests: int = 4096
    """New INVITEs waiting for their pass; beyond this the oldest are dropped (counted in
    ``stats["dropped_overload"]``; the caller's retransmission brings them back)."""

    @property
    def sent_by_host(self) -> str:
        return self.advertised_host or self.host

    @property
    def sent_by_port(self) -> int:
        return self.advertised_port or self.port
