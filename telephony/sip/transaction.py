"""SIP transactions (RFC 3261 section 17, with the RFC 6026 "Accepted" state).

Four state machines (INVITE/non-INVITE, client/server) share one transition table in the
manner of h11's ``_state.py``: ``TRANSITIONS[kind][state][input] -> new state``.  Every
state change goes through :meth:`Transaction._transition`; an input the table does not
allow raises :class:`LocalProtocolError` when it comes from us (sending a response in the
wrong state) and is silently absorbed when it comes from the network (a late 1xx, a
duplicate response), which is what section 17 asks of stray retransmissions.

Transactions never touch a socket or a clock: they call their host (the endpoint) to
transmit bytes and to arm named timers, and report to the transaction user (TU) by
return values and ``host.on_transaction_timeout``.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import TYPE_CHECKING, Any, Protocol

from telephony.errors import LocalProtocolError

from .headers import Via
from .message import Headers, SipRequest, SipResponse

if TYPE_CHECKING:
    from .timers import TimerQueue

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7


class TxKind(Enum):
    INVITE_CLIENT = auto()
    NON_INVITE_CLIENT = auto()
    INVITE_SERVER = auto()
    NON_INVITE_SERVER = auto()


class TxState(Enum):
    CALLING = auto()
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    CONFIRMED = auto()
    ACCEPTED = auto()  # RFC 6026 section 7.1 / 7.2
    TERMINATED = auto()


class TxInput(Enum):
    """What can happen to a transaction: messages, local sends, timers."""

    RECV_1XX = auto()
    RECV_2XX = auto()
    RECV_FINAL = auto()  # 300-699 (and 2xx for non-INVITE)
    RECV_REQUEST = auto()  # a retransmission of the request
    RECV_ACK = auto()
    SEND_1XX = auto()
    SEND_2XX = auto()
    SEND_FINAL = auto()
    TIMER_A = auto()
    TIMER_B = auto()
    TIMER_D = auto()
    TIMER_E = auto()
    TIMER_F = auto()
    TIMER_G = auto()
    TIMER_H = auto()
    TIMER_I = auto()
    TIMER_J = auto()
    TIMER_K = auto()
    TIMER_L = auto()
    TIMER_M = auto()
    TRANSPORT_ERROR = auto()


S, I = TxState, TxInput
_T = S.TERMINATED

# RFC 3261 17.1.1 figure 5 + RFC 6026 figure 5 (client INVITE).
# RFC 3261 17.1.2 figure 6 (client non-INVITE).
# RFC 3261 17.2.1 figure 7 + RFC 6026 figure 7 (server INVITE).
# RFC 3261 17.2.2 figure 8 (server non-INVITE).
TRANSITIONS: dict[TxKind, dict[TxState, dict[TxInput, TxState]]] = {
    TxKind.INVITE_CLIENT: {
        S.CALLING: {I.TIMER_A: S.CALLING, I.TIMER_B: _T, I.RECV_1XX: S.PROCEEDING,
                    I.RECV_2XX: S.ACCEPTED, I.RECV_FINAL: S.COMPLETED, I.TRANSPORT_ERROR: _T},
        S.PROCEEDING: {I.RECV_1XX: S.PROCEEDING, I.RECV_2XX: S.ACCEPTED,
                       I.RECV_FINAL: S.COMPLETED, I.TIMER_B: _T, I.TRANSPORT_ERROR: _T},
        S.COMPLETED: {I.RECV_FINAL: S.COMPLETED, I.TIMER_D: _T, I.TRANSPORT_ERROR: _T},
        S.ACCEPTED: {I.RECV_2XX: S.ACCEPTED, I.TIMER_M: _T},
    },
    TxKind.NON_INVITE_CLIENT: {
        S.TRYING: {I.TIMER_E: S.TRYING, I.TIMER_F: _T, I.RECV_1XX: S.PROCEEDING,
                   I.RECV_2XX: S.COMPLETED, I.RECV_FINAL: S.COMPLETED, I.TRANSPORT_ERROR: _T},
        S.PROCEEDING: {I.TIMER_E: S.PROCEEDING, I.TIMER_F: _T, I.RECV_1XX: S.PROCEEDING,
                       I.RECV_2XX: S.COMPLETED, I.RECV_FINAL: S.COMPLETED,
                       I.TRANSPORT_ERROR: _T},
        S.COMPLETED: {I.TIMER_K: _T},
    },
    TxKind.INVITE_SERVER: {
        S.PROCEEDING: {I.RECV_REQUEST: S.PROCEEDING, I.SEND_1XX: S.PROCEEDING,
                       I.SEND_2XX: S.ACCEPTED, I.SEND_FINAL: S.COMPLETED,
                       I.TRANSPORT_ERROR: _T},
        S.COMPLETED: {I.RECV_REQUEST: S.COMPLETED, I.TIMER_G: S.COMPLETED,
                      I.RECV_ACK: S.CONFIRMED, I.TIMER_H: _T, I.TRANSPORT_ERROR: _T},
        S.CONFIRMED: {I.RECV_REQUEST: S.CONFIRMED, I.RECV_ACK: S.CONFIRMED, I.TIMER_I: _T},
        S.ACCEPTED: {I.RECV_REQUEST: S.ACCEPTED, I.RECV_ACK: S.ACCEPTED, I.SEND_2XX: S.ACCEPTED,
                     I.TIMER_L: _T},
    },
    TxKind.NON_INVITE_SERVER: {
        S.TRYING: {I.RECV_REQUEST: S.TRYING, I.SEND_1XX: S.PROCEEDING,
                   I.SEND_2XX: S.COMPLETED, I.SEND_FINAL: S.COMPLETED, I.TRANSPORT_ERROR: _T},
        S.PROCEEDING: {I.RECV_REQUEST: S.PROCEEDING, I.SEND_1XX: S.PROCEEDING,
                       I.SEND_2XX: S.COMPLETED, I.SEND_FINAL: S.COMPLETED,
                       I.TRANSPORT_ERROR: _T},
        S.COMPLETED: {I.RECV_REQUEST: S.COMPLETED, I.TIMER_J: _T},
    },
}
del S, I, _T

_LOCAL_INPUTS = frozenset({TxInput.SEND_1XX, TxInput.SEND_2XX, TxInput.SEND_FINAL})


class TransactionHost(Protocol):
    """What a transaction needs from the endpoint."""

    timer_queue: TimerQueue
    t1: float
    t2: float
    t4: float

    def transmit(self, data: bytes, addr: tuple[str, int], transport: str, *,
                 retransmission: bool = False) -> None: ...

    def transaction_terminated(self, tx: Transaction) -> None: ...

    def on_transaction_timeout(self, tx: ClientTransaction, now: float, status: int) -> None: ...


class Transaction:
    """State shared by the four kinds; ``owner`` is the TU's context (call leg, registration)."""

    __slots__ = (
        "_interval",
        "addr",
        "host",
        "key",
        "kind",
        "owner",
        "reliable",
        "request",
        "state",
        "timers",
        "transport",
    )

    def __init__(self, host: TransactionHost, kind: TxKind, state: TxState, key: tuple[Any, ...],
                 request: SipRequest, addr: tuple[str, int], transport: str,
                 owner: Any = None) -> None:
        self.host = host
        self.kind = kind
        self.state = state
        self.key = key
        self.request = request
        self.addr = addr
        self.transport = transport
        self.reliable = transport != "udp"
        self.timers: dict[str, int] = {}
        self.owner = owner
        self._interval = host.t1

    @property
    def method(self) -> str:
        return self.request.method

    def _transition(self, event: TxInput) -> bool:
        """Apply ``event``; False if the table ignores it (a remote stray), raise if local."""
        new = TRANSITIONS[self.kind].get(self.state, {}).get(event)
        if new is None:
            if event in _LOCAL_INPUTS:
                raise LocalProtocolError(
                    f"{self.kind.name} transaction cannot {event.name} in state {self.state.name}")
            return False
        self.state = new
        if new is TxState.TERMINATED:
            self.host.timer_queue.cancel_all(self)
            self.host.transaction_terminated(self)
        return True

    def _arm(self, name: str, delay: float, now: float) -> None:
        self.host.timer_queue.set(self, name, now + delay)

    def on_timer(self, name: str, now: float) -> None:
        raise NotImplementedError

    def transport_error(self, now: float) -> None:
        """The transport could not deliver (RFC 3261 17.1.4 / 17.2.4)."""
        if self._transition(TxInput.TRANSPORT_ERROR) and isinstance(self, ClientTransaction):
            self.host.on_transaction_timeout(self, now, 503)

    def __repr__(self) -> str:
        return f"<{self.kind.name} {self.method} {self.state.name} {self.key[0]}>"


class ClientTransaction(Transaction):
    """RFC 3261 17.1: sends the request, retransmits it (timers A/E), absorbs duplicates.

    :meth:`receive_response` returns True when the TU must see the response.
    """

    __slots__ = ("ack_data", "data")

    def __init__(self, host: TransactionHost, request: SipRequest, addr: tuple[str, int],
                 transport: str, *, owner: Any = None) -> None:
        invite = request.method == "INVITE"
        kind = TxKind.INVITE_CLIENT if invite else TxKind.NON_INVITE_CLIENT
        state = TxState.CALLING if invite else TxState.TRYING
        branch = request.top_via.branch or ""
        super().__init__(host, kind, state, (branch, request.method), request, addr, transport,
                         owner)
        self.data = request.serialize()
        self.ack_data: bytes | None = None

    def start(self, now: float) -> None:
        """Send the request and arm the timers (RFC 3261 17.1.1.2, 17.1.2.2)."""
        h = self.host
        h.transmit(self.data, self.addr, self.transport)
        if self.kind is TxKind.INVITE_CLIENT:
            if not self.reliable:
                self._arm("A", h.t1, now)
            self._arm("B", 64 * h.t1, now)
        else:
            if not self.reliable:
                self._arm("E", h.t1, now)
            self._arm("F", 64 * h.t1, now)

    def receive_response(self, resp: SipResponse, now: float) -> bool:
        status = resp.status
        event = (TxInput.RECV_1XX if status < 200 else
                 TxInput.RECV_2XX if status < 300 else TxInput.RECV_FINAL)
        before = self.state
        if not self._transition(event):
            return False  # a stray: late 1xx, duplicate final (17.1.2.2, 17.1.1.2)
        h = self.host
        q = h.timer_queue
        if self.kind is TxKind.INVITE_CLIENT:
            if event is TxInput.RECV_1XX:
                # 17.1.1.2: a provisional response stops retransmissions (and timer B).
                q.cancel(self, "A")
                q.cancel(self, "B")
                return True
            if event is TxInput.RECV_2XX:
                if before is TxState.ACCEPTED:
                    return True  # RFC 6026 7.2: 2xx retransmissions go to the TU (it re-ACKs).
                q.cancel(self, "A")
                q.cancel(self, "B")
                self._arm("M", 64 * h.t1, now)
                return True
            # 300-699: ACK within the transaction (17.1.1.3).
            if self.ack_data is None:
                self.ack_data = build_non2xx_ack(self.request, resp).serialize()
            h.transmit(self.ack_data, self.addr, self.transport,
                       retransmission=before is TxState.COMPLETED)
            if before is TxState.COMPLETED:
                return False
            q.cancel(self, "A")
            q.cancel(self, "B")
            if self.reliable:
                self._transition(TxInput.TIMER_D)
            else:
                self._arm("D", max(32.0, 64 * h.t1), now)
            return True
        # non-INVITE (17.1.2.2)
        if event is TxInput.RECV_1XX:
            return True
        q.cancel(self, "E")
        q.cancel(self, "F")
        if self.reliable:
            self._transition(TxInput.TIMER_K)
        else:
            self._arm("K", h.t4, now)
        return True

    def on_timer(self, name: str, now: float) -> None:
        h = self.host
        if name == "A":  # 17.1.1.2: retransmit, doubling without cap
            self._transition(TxInput.TIMER_A)
            h.transmit(self.data, self.addr, self.transport, retransmission=True)
            self._interval *= 2
            self._arm("A", self._interval, now)
        elif name == "E":  # 17.1.2.2: doubling up to T2; in Proceeding, every T2
            self._transition(TxInput.TIMER_E)
            h.transmit(self.data, self.addr, self.transport, retransmission=True)
            if self.state is TxState.PROCEEDING:
                self._interval = h.t2
            else:
                self._interval = min(2 * self._interval, h.t2)
            self._arm("E", self._interval, now)
        elif name in ("B", "F"):
            if self._transition(TxInput.TIMER_B if name == "B" else TxInput.TIMER_F):
                h.on_transaction_timeout(self, now, 408)
        elif name == "D":
            self._transition(TxInput.TIMER_D)
        elif name == "K":
            self._transition(TxInput.TIMER_K)
        elif name == "M":
            self._transition(TxInput.TIMER_M)


class ServerTransaction(Transaction):
    """RFC 3261 17.2: remembers the last response and resends it on request retransmissions.

    :meth:`receive_request` returns True when the TU must see the request (only an ACK in
    the RFC 6026 Accepted state: the ACK for a 2xx matched by the RFC 2543 rules).
    """

    __slots__ = ("final_status", "last_response")

    def __init__(self, host: TransactionHost, request: SipRequest, key: tuple[Any, ...],
                 addr: tuple[str, int], transport: str, *, owner: Any = None) -> None:
        invite = request.method == "INVITE"
        kind = TxKind.INVITE_SERVER if invite else TxKind.NON_INVITE_SERVER
        state = TxState.PROCEEDING if invite else TxState.TRYING
        super().__init__(host, kind, state, key, request, addr, transport, owner)
        self.last_response: bytes | None = None
        self.final_status: int | None = None

    def receive_request(self, req: SipRequest, now: float) -> bool:
        is_ack = req.method == "ACK"
        if is_ack and self.kind is not TxKind.INVITE_SERVER:
            return False
        before = self.state
        if not self._transition(TxInput.RECV_ACK if is_ack else TxInput.RECV_REQUEST):
            return False
        h = self.host
        if is_ack:
            if before is TxState.COMPLETED:
                # 17.2.1: the ACK stops G and H; timer I absorbs further ACKs.
                h.timer_queue.cancel(self, "G")
                h.timer_queue.cancel(self, "H")
                if self.reliable:
                    self._transition(TxInput.TIMER_I)
                else:
                    self._arm("I", h.t4, now)
                return False
            return before is TxState.ACCEPTED
        # A retransmitted request: resend the last response (17.2.1, 17.2.2), except in
        # Accepted (RFC 6026 7.1: the TU retransmits the 2xx) and Confirmed.
        if self.last_response is not None and self.state in (TxState.PROCEEDING,
                                                                  TxState.COMPLETED):
            h.transmit(self.last_response, self.addr, self.transport, retransmission=True)
        return False

    def send_response(self, resp: SipResponse, now: float) -> bytes:
        """Send ``resp`` through the transaction (and arm G/H, J or L)."""
        status = resp.status
        event = (TxInput.SEND_1XX if status < 200 else
                 TxInput.SEND_2XX if status < 300 else TxInput.SEND_FINAL)
        before = self.state
        self._transition(event)
        data = resp.serialize()
        self.last_response = data
        h = self.host
        h.transmit(data, self.addr, self.transport)
        if status < 200:
            return data
        self.final_status = status
        if self.kind is TxKind.INVITE_SERVER:
            if event is TxInput.SEND_2XX:
                if before is not TxState.ACCEPTED:
                    self._arm("L", 64 * h.t1, now)  # RFC 6026 7.1
            else:
                if not self.reliable:
                    self._arm("G", h.t1, now)
                self._arm("H", 64 * h.t1, now)
        else:
            if self.reliable:
                self._transition(TxInput.TIMER_J)
            else:
                self._arm("J", 64 * h.t1, now)
                # answered: it lingers (timer J, 32 s) only to absorb retransmissions
                self.request.drop_views()
        return data

    def on_timer(self, name: str, now: float) -> None:
        h = self.host
        if name == "G":  # 17.2.1: retransmit the final response, doubling up to T2
            if self._transition(TxInput.TIMER_G) and self.last_response is not None:
                h.transmit(self.last_response, self.addr, self.transport, retransmission=True)
                self._interval = min(2 * self._interval, h.t2)
                self._arm("G", self._interval, now)
        elif name == "H":  # no ACK came: give up (17.2.1)
            h.timer_queue.cancel(self, "G")
            self._transition(TxInput.TIMER_H)
        elif name == "I":
            self._transition(TxInput.TIMER_I)
        elif name == "J":
            self._transition(TxInput.TIMER_J)
        elif name == "L":
            self._transition(TxInput.TIMER_L)


def server_key(req: SipRequest, via: Via, *, method: str | None = None) -> tuple[Any, ...]:
    """The matching key of RFC 3261 17.2.3: branch + sent-by + method (ACK matches INVITE),
    or, for an RFC 2543 peer without the magic cookie, Request-URI, From tag, Call-ID,
    CSeq number and top Via (the To tag is left out so that the ACK matches its INVITE)."""
    m = method or ("INVITE" if req.method == "ACK" else req.method)
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), via.port, m)
    from_tag = req.from_.tag
    return ("2543", str(req.uri), from_tag, req.call_id, req.cseq.seq, via.host.lower(), via.port,
            branch, m)


def build_non2xx_ack(request: SipRequest, resp: SipResponse) -> SipRequest:
    """The ACK for a 300-699 response (RFC 3261 17.1.1.3): same Request-URI, Call-ID,
    From, CSeq number and top Via as the INVITE, the response's To, the INVITE's Route."""
    src = request.headers
    h = Headers()
    h.add("Via", str(request.top_via))
    h.add("Max-Forwards", "70")
    for name in ("From", "Call-ID"):
        v = src.get(name)
        if v is not None:
            h.add(name, v)
    to = resp.headers.get("To") or src.get("To") or ""
    h.add("To", to)
    h.add("CSeq", f"{request.cseq.seq} ACK")
    for route in src.get_all("Route"):
        h.add("Route", route)
    return SipRequest("ACK", request.uri, h)
