"""State of one call leg: the INVITE dialog usage and what hangs on it.

The transitions a call leg may take on the application's calls are a table
(:data:`CALL_ACTIONS`); an action not allowed in the current state raises
:class:`LocalProtocolError`, the way h11 refuses to send in the wrong state.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import TYPE_CHECKING, Any

from telephony.errors import LocalProtocolError

from .dialog import Dialog
from .events import CallRef
from .message import SipRequest

if TYPE_CHECKING:
    from .transaction import ClientTransaction, ServerTransaction


class CallState(Enum):
    OUT_CALLING = auto()  # INVITE sent, nothing heard
    OUT_PROCEEDING = auto()  # a provisional response came
    OUT_CANCELLING = auto()  # we CANCELled (or will, on the first provisional)
    IN_RINGING = auto()  # inbound INVITE not answered yet
    IN_ANSWERED = auto()  # we sent 2xx, waiting for the ACK (RFC 3261 13.3.1.4)
    CONFIRMED = auto()
    TERMINATED = auto()


_S = CallState
# Application actions allowed per state (RFC 3261 13-15).
CALL_ACTIONS: dict[str, frozenset[CallState]] = {
    "ringing": frozenset({_S.IN_RINGING}),
    "answer": frozenset({_S.IN_RINGING}),
    "reject": frozenset({_S.IN_RINGING}),
    "reinvite": frozenset({_S.CONFIRMED}),
    "update": frozenset({_S.CONFIRMED, _S.OUT_PROCEEDING, _S.IN_RINGING}),
    "info": frozenset({_S.CONFIRMED, _S.IN_ANSWERED}),
    "refer": frozenset({_S.CONFIRMED}),
    "answer_reinvite": frozenset({_S.CONFIRMED}),
    "answer_update": frozenset({_S.CONFIRMED, _S.OUT_PROCEEDING, _S.IN_RINGING, _S.IN_ANSWERED}),
    "refer_reply": frozenset({_S.CONFIRMED, _S.TERMINATED}),
}
del _S


class CallLeg:
    """Everything the endpoint remembers about one call (slots: thousands of these live)."""

    __slots__ = (
        "ack_cseq",
        "ack_data",
        "auth",
        "auth_rounds",
        "bye_pending",
        "cancel_pending",
        "credentials",
        "dest",
        "dialog",
        "endpoint",
        "invite",
        "invite_tx",
        "local_sdp",
        "local_tag",
        "ok_cseq",
        "ok_data",
        "ok_interval",
        "outbound",
        "outbound_proxy",
        "peer_allow",
        "ref",
        "refer_in",
        "refer_out",
        "refer_sub",
        "refreshing",
        "reinvite_body",
        "reinvite_in",
        "reinvite_tx",
        "remote_addr",
        "remote_sdp",
        "se_interval",
        "se_pending",
        "se_retried",
        "se_we_refresh",
        "state",
        "timers",
        "transport",
        "update_in",
    )

    def __init__(self, endpoint: Any, ref: CallRef, *, outbound: bool, state: CallState,
                 transport: str, remote_addr: tuple[str, int], local_tag: str) -> None:
        self.endpoint = endpoint
        self.ref = ref
        self.outbound = outbound
        self.state = state
        self.timers: dict[str, int] = {}
        self.invite_tx: ClientTransaction | ServerTransaction | None = None
        self.invite: SipRequest | None = None
        self.dialog: Dialog | None = None
        self.transport = transport
        self.remote_addr = remote_addr
        self.dest = remote_addr
        self.local_tag = local_tag
        self.local_sdp = b""
        self.remote_sdp = b""
        self.credentials: Any = None
        self.auth: Any = None
        self.cancel_pending = False
        self.ok_data: bytes | None = None
        self.ok_cseq = -1
        self.ok_interval = 0.0
        self.ack_data: bytes | None = None
        self.ack_cseq = -1
        self.reinvite_tx: ClientTransaction | None = None
        self.reinvite_in: ServerTransaction | None = None
        self.reinvite_body = b""
        self.refreshing = False
        self.update_in: ServerTransaction | None = None
        self.se_interval = 0
        self.se_we_refresh = False
        self.se_pending: tuple[int, bool, list[tuple[str, str]]] | None = None
        self.peer_allow: frozenset[str] = frozenset()
        self.refer_in: ServerTransaction | None = None
        self.refer_sub = False
        self.refer_out = False
        self.bye_pending = False
        self.outbound_proxy: tuple[str, int] | None = None
        self.se_retried = False
        self.auth_rounds = 0

    def require(self, action: str) -> None:
        """Raise :class:`LocalProtocolError` if the application may not ``action`` now."""
        if self.state not in CALL_ACTIONS[action]:
            raise LocalProtocolError(f"cannot {action} call {self.ref} in state {self.state.name}")

    def on_timer(self, name: str, now: float) -> None:
        self.endpoint._call_timer(self, name, now)

    def __repr__(self) -> str:
        return f"<CallLeg {self.ref} {self.state.name}>"
