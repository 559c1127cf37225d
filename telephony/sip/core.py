"""The transport-facing half of the SIP endpoint: bytes in, transactions, bytes out.

:class:`EndpointCore` parses what arrives, validates requests the way RFC 3261 8.2 asks
(400 naming the problem, 505, 501/405, 416, 420, 483), matches transactions (17.1.3,
17.2.3), stamps ``received``/``rport`` (RFC 3581), keeps the timer queue, the outbox, the
event queue and the counters.  What a request or response *means* is left to the
subclasses through the ``_on_*`` hooks (calls in ``calls.py``, registration in
``register.py``); :class:`~telephony.sip.endpoint.SipEndpoint` puts them together.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from telephony.errors import AuthenticationError, MessageTooLarge, SipParseError

from .admission import AdmissionDecision
from .auth import DigestClient, parse_challenges
from .config import ALLOWED_METHODS, KNOWN_UNSUPPORTED, SUPPORTED_OPTIONS, SipConfig
from .events import SipEvent
from .headers import _HOST_RE, Via, format_hostport, split_comma_list
from .message import (
    REASON_PHRASES,
    IncompleteParse,
    ParseLimits,
    SipMessage,
    SipRequest,
    SipResponse,
    make_response,
    parse_datagram,
    share_view,
)
from .timers import TimerQueue
from .transaction import (
    MAGIC_COOKIE,
    ClientTransaction,
    ServerTransaction,
    Transaction,
    TxKind,
    TxState,
    server_key,
)

ALLOW_VALUE = ", ".join(ALLOWED_METHODS)

# The raw refusal path (issue 12 finding 4): the headers a response copies (RFC 3261 8.2.6.2,
# compact forms 7.3.3), a tag parameter, and the ACK of a stateless refusal, whose To tag
# carries the "sl" prefix (new_tag() makes hex tags only, so no dialog can have it).
_RAW_KEEP = {b"via": b"Via", b"v": b"Via", b"from": b"From", b"f": b"From", b"to": b"To",
             b"t": b"To", b"call-id": b"Call-ID", b"i": b"Call-ID", b"cseq": b"CSeq"}
_RAW_TAG = re.compile(rb";[ \t]*tag[ \t]*=[ \t]*([^;, \t>]+)", re.IGNORECASE)
_STATELESS_ACK = re.compile(rb"\n(?:to|t)[ \t]*:[^\n]*;[ \t]*tag[ \t]*=[ \t]*sl[0-9a-f]{16}\b",
                            re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Bytes for the glue to send to ``addr`` over ``transport`` ("udp" or "tcp")."""

    data: bytes
    addr: tuple[str, int]
    transport: str


class EndpointCore:
    """See the module docstring.  Not used alone: :class:`SipEndpoint` is the public class."""

    def __init__(self, config: SipConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng if rng is not None else random.Random()
        self.timer_queue = TimerQueue()
        self.t1 = config.t1
        self.t2 = config.t2
        self.t4 = config.t4
        self.stats: Counter[str] = Counter()
        self._outbox: list[Outgoing] = []
        self._events: deque[SipEvent] = deque()
        self._client_txs: dict[tuple[Any, ...], ClientTransaction] = {}
        self._server_txs: dict[tuple[Any, ...], ServerTransaction] = {}
        self._limits = ParseLimits(max_message_size=config.max_message_size)
        self._hostport = format_hostport(config.sent_by_host, config.sent_by_port)
        # the host as Via.parse reads it back from our Via (None: IPv6 or odd, left to it)
        host = config.sent_by_host
        self._via_host = host if _HOST_RE.match(host) else None
        self._stateless_key = self.rng.getrandbits(128).to_bytes(16, "big")
        self._admitted_early = False
        """Set while the request being handled was admitted by the raw path (one decision)."""

    # --- identifiers (RFC 3261 19.3, 8.1.1.7) ------------------------------------------------

    def new_tag(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def new_branch(self) -> str:
        return f"z9hG4bK{self.rng.getrandbits(80):020x}"

    def new_call_id(self) -> str:
        return f"{self.rng.getrandbits(96):024x}@{self.config.sent_by_host}"

    def via_value(self, transport: str, branch: str | None = None, *,
                  remember: bool = True) -> str:
        """Our Via: advertised sent-by, the magic-cookie branch, ``rport`` (RFC 3581 3).

        Its typed value is remembered (:func:`share_view`) so neither our client transaction
        nor the responses that echo the line verbatim parse it again (``remember=False``
        for an ACK: nothing answers it)."""
        branch = branch or self.new_branch()
        proto = transport.upper()
        value = f"SIP/2.0/{proto} {self._hostport};branch={branch};rport"
        if remember and self._via_host is not None:
            share_view("via", value, Via(proto, self._via_host, self.config.sent_by_port,
                                         {"branch": branch, "rport": None}))
        return value

    def contact_value(self, transport: str) -> str:
        t = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:{self.config.username}@{self._hostport}{t}>"

    # --- public sans-IO API (aioquic shape) --------------------------------------------------

    def receive_datagram(self, data: bytes, addr: tuple[str, int], now: float,
                         transport: str = "udp") -> None:
        """Feed one whole SIP message (a UDP datagram, or one framed off a TCP stream).

        Never raises on bad input: malformed messages are answered 400/505 when enough
        parsed, else dropped and counted in :attr:`stats`.
        """
        self.stats["received"] += 1
        if len(data) > self.config.max_message_size:
            self.stats["dropped_oversize"] += 1
            return
        if data[:1] in b"\r\n" and not data.strip(b"\r\n"):  # (no copy of every message)
            self.stats["keepalives"] += 1  # RFC 5626 4.4.1 CRLF keep-alive
            return
        if data[:4] == b"ACK " and _STATELESS_ACK.search(data) is not None:
            # RFC 3261 8.2.7: the ACK of a stateless refusal is ignored; not even parsed,
            # since a flood sends one for every 503.
            self.stats["acks_absorbed"] += 1
            return
        if data[:7] == b"INVITE " and self._refuse_new_invite_raw(data, addr, now, transport):
            return
        try:
            self._receive_bytes(data, addr, now, transport)
        finally:
            self._admitted_early = False

    def _receive_bytes(self, data: bytes, addr: tuple[str, int], now: float,
                       transport: str) -> None:
        try:
            msg = parse_datagram(data, self._limits)
        except IncompleteParse as exc:
            if isinstance(exc.message, SipRequest):
                self._answer_malformed(exc.message, exc.status_hint, exc.reason, addr, transport)
            else:
                self.stats["dropped_malformed"] += 1
            return
        except MessageTooLarge:
            self.stats["dropped_oversize"] += 1
            return
        except SipParseError:
            self.stats["dropped_malformed"] += 1
            return
        self.receive_message(msg, addr, now, transport)

    def receive_message(self, msg: SipMessage, addr: tuple[str, int], now: float,
                        transport: str = "udp") -> None:
        """Feed one parsed message (the glue's TCP framer may call this directly)."""
        try:
            msg.check_mandatory()
        except SipParseError as exc:
            if isinstance(msg, SipRequest):
                self._answer_malformed(msg, 400, exc.reason, addr, transport)
            else:
                self.stats["dropped_malformed"] += 1
            return
        try:
            if isinstance(msg, SipRequest):
                self.stats["requests_received"] += 1
                self._handle_request(msg, addr, now, transport)
            else:
                assert isinstance(msg, SipResponse)
                self.stats["responses_received"] += 1
                self._handle_response(msg, addr, now)
        except SipParseError as exc:
            # A header the handlers needed (Contact, Refer-To, Session-Expires...) is bad.
            if isinstance(msg, SipRequest) and msg.method != "ACK":
                self._answer_malformed(msg, exc.status_hint, exc.reason, addr, transport)
            else:
                self.stats["dropped_malformed"] += 1

    def datagrams_to_send(self, now: float) -> list[Outgoing]:
        """Everything queued for sending since the last call."""
        out = self._outbox
        self._outbox = []
        return out

    def get_timer(self) -> float | None:
        """The next deadline at which :meth:`handle_timer` must be called, or None."""
        return self.timer_queue.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (retransmissions, timeouts, refreshes)."""
        q = self.timer_queue
        while (due := q.pop_due(now)) is not None:
            owner, name = due
            owner.on_timer(name, now)

    def next_event(self) -> SipEvent | None:
        """The next event for the application, or None."""
        return self._events.popleft() if self._events else None

    def connection_failed(self, addr: tuple[str, int], transport: str, now: float) -> None:
        """The glue could not reach ``addr`` (connect refused, ICMP...): fail its transactions
        (RFC 3261 17.1.4, 17.2.4); outbound INVITEs end in CallFailed(503)."""
        for tx in [t for t in self._client_txs.values() if t.addr == addr]:
            tx.transport_error(now)
        for stx in [t for t in self._server_txs.values() if t.addr == addr]:
            stx.transport_error(now)

    # --- transaction host --------------------------------------------------------------------

    def transmit(self, data: bytes, addr: tuple[str, int], transport: str, *,
                 retransmission: bool = False) -> None:
        self._outbox.append(Outgoing(data, addr, transport))
        self.stats["sent"] += 1
        if retransmission:
            self.stats["retransmissions"] += 1

    def transaction_terminated(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            if self._client_txs.get(tx.key) is tx:
                del self._client_txs[tx.key]
        elif self._server_txs.get(tx.key) is tx:
            del self._server_txs[tx.key]

    def on_transaction_timeout(self, tx: ClientTransaction, now: float, status: int) -> None:
        self.stats["transaction_timeouts"] += 1
        self._on_client_timeout(tx, now, status)

    def emit(self, event: SipEvent) -> None:
        self._events.append(event)

    # --- sending -----------------------------------------------------------------------------

    def send_request(self, req: SipRequest, addr: tuple[str, int], transport: str, now: float,
                     owner: Any = None) -> ClientTransaction:
        """Start a client transaction for ``req`` (its top Via must carry a fresh branch)."""
        tx = ClientTransaction(self, req, addr, transport, owner=owner)
        self._client_txs[tx.key] = tx
        tx.start(now)
        return tx

    def respond(self, tx: ServerTransaction, status: int, reason: str | None = None, *,
                now: float, to_tag: str | None = None, headers: Any = (),
                body: bytes = b"") -> SipResponse:
        """Answer ``tx``'s request through the transaction (8.2.6)."""
        h = list(headers)
        h.append(("Server", self.config.user_agent))
        if status in (405, 501):
            h.append(("Allow", ALLOW_VALUE))
        resp = make_response(tx.request, status, reason, to_tag=to_tag, headers=h, body=body)
        tx.send_response(resp, now)
        if status >= 200:
            self.stats[f"responded_{status}"] += 1
        return resp

    def _answer_malformed(self, req: SipRequest, status: int, reason: str,
                          addr: tuple[str, int], transport: str) -> None:
        """400/505 (or the error's hint) with the problem as Reason-Phrase, copying the raw
        Via/From/To/Call-ID/CSeq; dropped if there is no usable Via to answer along."""
        if req.method == "ACK":
            self.stats["dropped_malformed"] += 1
            return
        h = req.headers
        raw_via = h.get("Via")
        if not raw_via or h.get("CSeq") is None or h.get("Call-ID") is None:
            self.stats["dropped_malformed"] += 1
            return
        try:
            dest = self._response_addr(req.top_via, addr, transport)
        except SipParseError:
            self.stats["dropped_malformed"] += 1
            return
        if status < 400 or status > 699:
            status = 400
        phrase = "".join(ch for ch in reason if ch.isprintable())[:100] or "Bad Request"
        resp = make_response(req, status, phrase, to_tag=self.new_tag(),
                             headers=[("Server", self.config.user_agent)])
        self.transmit(resp.serialize(), dest, transport)
        self.stats[f"responded_{status}"] += 1

    # --- receiving ---------------------------------------------------------------------------

    def _response_addr(self, via: Via, addr: tuple[str, int], transport: str) -> tuple[str, int]:
        """Where responses go (RFC 3261 18.2.2, RFC 3581 4): the connection for reliable
        transports, the source address when ``rport`` was asked, else received/sent-by."""
        if transport != "udp" or "rport" in via.params:
            return addr
        host = via.params.get("received") or via.host.strip("[]")
        return host, via.port or 5060

    def _stamp_via(self, req: SipRequest, addr: tuple[str, int]) -> Via:
        """Add ``received`` (18.2.1) and ``rport`` (RFC 3581 4) to the top Via."""
        items = req.headers.items
        for i, (name, value) in enumerate(items):
            if name.lower() in ("via", "v"):
                parts = split_comma_list(value)
                if not parts:
                    raise SipParseError("Empty Via")
                top = Via.parse(parts[0])
                changes: dict[str, str | None] = {}
                if "rport" in top.params:
                    changes["rport"] = str(addr[1])
                    changes["received"] = addr[0]
                elif top.host.strip("[]") != addr[0]:
                    changes["received"] = addr[0]
                if changes:
                    top = top.with_params(**changes)
                    parts[0] = str(top)
                    items[i] = (name, ", ".join(parts))
                    req.headers.changed()
                return top
        raise SipParseError("Missing Via")

    def _handle_request(self, req: SipRequest, addr: tuple[str, int], now: float,
                        transport: str) -> None:
        via = self._stamp_via(req, addr)
        key = server_key(req, via)
        tx = self._server_txs.get(key)
        if tx is not None:
            # 17.2.3: a retransmission (or the ACK of a non-2xx): the transaction absorbs it.
            self.stats["requests_absorbed"] += 1
            if tx.receive_request(req, now):
                self._on_ack(req, addr, now, transport)
            return
        method = req.method
        if method == "ACK":
            self._on_ack(req, addr, now, transport)  # ACK for a 2xx: new branch, the dialog's
            return
        if method == "INVITE" and self._refuse_statelessly(req, via, addr, now, transport):
            return
        dest = self._response_addr(via, addr, transport)
        tx = ServerTransaction(self, req, key, dest, transport)
        self._server_txs[key] = tx
        # RFC 3261 8.2.1 method inspection.
        if method not in ALLOWED_METHODS:
            self.respond(tx, 405 if method in KNOWN_UNSUPPORTED else 501, now=now,
                         to_tag=self.new_tag())
            return
        # 8.2.2.1: Request-URI scheme.
        if req.uri.scheme not in ("sip", "sips"):
            self.respond(tx, 416, now=now, to_tag=self.new_tag())
            return
        # 8.2.2.3: Require (not for CANCEL; ACK never reaches here).
        if method != "CANCEL":
            unknown = [o for o in req.tokens("Require") if o not in SUPPORTED_OPTIONS]
            if unknown:
                self.respond(tx, 420, now=now, to_tag=self.new_tag(),
                             headers=[("Unsupported", ", ".join(unknown))])
                return
        if method == "OPTIONS" and req.max_forwards == 0:
            self.respond(tx, 483, now=now, to_tag=self.new_tag())
            return
        if method == "CANCEL":
            self._handle_cancel(tx, req, via, now)
            return
        self._on_request(tx, req, addr, now, transport)

    def _refuse_statelessly(self, req: SipRequest, via: Via, addr: tuple[str, int], now: float,
                            transport: str) -> bool:
        """Hook, before any transaction exists for ``req``: answer it with
        :meth:`respond_statelessly` and return True, or return False to go on statefully."""
        return False

    def _admission_for(self, addr: tuple[str, int], now: float) -> AdmissionDecision | None:
        """Hook: may a new call from ``addr`` start now (None: no admission control)?"""
        return None

    def _stateless_tag(self, branch: str, call_id: str, from_tag: str) -> str:
        """RFC 3261 8.2.7: the same To tag for the same request, every time."""
        seed = f"{branch}\x00{call_id}\x00{from_tag}".encode()
        digest = hashlib.blake2b(seed, key=self._stateless_key, digest_size=8).hexdigest()
        return "sl" + digest

    def _refuse_new_invite_raw(self, data: bytes, addr: tuple[str, int], now: float,
                               transport: str) -> bool:
        """Admission for a new INVITE before it is parsed: a refusal is a stateless 503 built
        from the raw Via/From/To/Call-ID/CSeq lines (RFC 3261 8.2.6.2, 8.2.7).  Parsing and
        validating a whole INVITE costs ~10 times more, which under a flood decides whether
        the loop keeps up.  Anything unusual (folded lines, a header missing or repeated, no
        RFC 3261 branch, a To tag, a retransmission of a transaction we hold) returns False:
        the full path handles it, and admits or refuses it there."""
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        kept: list[tuple[bytes, bytes]] = []
        for line in data[:head_end].split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if not sep or line[:1] in (b" ", b"\t"):
                return False  # folded or odd: the parser decides
            canon = _RAW_KEEP.get(name.strip().lower())
            if canon is not None:
                if b"\n" in value or b"\r" in value or b"\0" in value:
                    return False  # a bare LF or NUL is never echoed back: the parser decides
                kept.append((canon, value.strip()))
        names = [n for n, _ in kept]
        if b"Via" not in names or any(names.count(n) != 1
                                      for n in (b"From", b"To", b"Call-ID", b"CSeq")):
            return False
        values = dict(kept)
        to, frm = values[b"To"], values[b"From"]
        if _RAW_TAG.search(to.rpartition(b">")[2]) is not None:
            return False  # in a dialog
        first_via_value = next(v for n, v in kept if n == b"Via")
        try:
            vias = split_comma_list(first_via_value.decode())
            top = Via.parse(vias[0])
            call_id = values[b"Call-ID"].decode()
            from_tag_m = _RAW_TAG.search(frm.rpartition(b">")[2])
            from_tag = from_tag_m.group(1).decode() if from_tag_m else ""
        except (SipParseError, UnicodeDecodeError, IndexError):
            return False
        branch = top.branch
        if not branch or not branch.startswith(MAGIC_COOKIE) or not call_id:
            return False
        if (branch, top.host.lower(), top.port, "INVITE") in self._server_txs:
            return False  # a retransmission: its transaction answers it
        decision = self._admission_for(addr, now)
        if decision is None:
            return False
        if decision.admitted:
            self._admitted_early = True
            return False
        changes: dict[str, str | None] = {}
        if "rport" in top.params:  # RFC 3581 4, RFC 3261 18.2.1
            changes = {"rport": str(addr[1]), "received": addr[0]}
        elif top.host.strip("[]") != addr[0]:
            changes = {"received": addr[0]}
        stamped = top.with_params(**changes) if changes else top
        tag = self._stateless_tag(branch, call_id, from_tag).encode()
        out = [b"SIP/2.0 503 " + REASON_PHRASES[503].encode()]
        first_via = True
        for name, value in kept:
            if name == b"Via" and first_via:
                first_via = False
                value = ", ".join([str(stamped), *vias[1:]]).encode()
            elif name == b"To":
                value += b";tag=" + tag
            out.append(name + b": " + value)
        out += [b"Retry-After: " + str(decision.retry_after).encode(),
                b"Server: " + self.config.user_agent.encode(), b"Content-Length: 0", b"", b""]
        self.stats["requests_received"] += 1
        self.transmit(b"\r\n".join(out), self._response_addr(stamped, addr, transport),
                      transport)
        self.stats["responded_503"] += 1
        self.stats["responded_statelessly"] += 1
        return True

    def respond_statelessly(self, req: SipRequest, via: Via, addr: tuple[str, int],
                            transport: str, status: int, *,
                            headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer ``req`` as a stateless UAS (RFC 3261 8.2.7): no transaction, no timer, no
        retransmission; a retransmitted request is simply answered again, with the same To
        tag (derived from the request's branch, Call-ID and From tag), and the ACK of a
        non-2xx answered this way finds no transaction and is ignored, as 8.2.7 asks.
        For refusals that must cost next to nothing (overload: issue 12 finding 4)."""
        dest = self._response_addr(via, addr, transport)
        tag = self._stateless_tag(via.branch or "", req.call_id, req.from_.tag or "")
        resp = make_response(req, status, to_tag=tag,
                             headers=[*headers, ("Server", self.config.user_agent)])
        self.transmit(resp.serialize(), dest, transport)
        self.stats[f"responded_{status}"] += 1
        self.stats["responded_statelessly"] += 1

    def _handle_cancel(self, tx: ServerTransaction, req: SipRequest, via: Via,
                       now: float) -> None:
        """RFC 3261 9.2: 200 to the CANCEL, then 487 to the INVITE if it is still pending."""
        invite_tx = self._server_txs.get(server_key(req, via, method="INVITE"))
        if invite_tx is None:
            self.respond(tx, 481, now=now, to_tag=self.new_tag())
            return
        self.respond(tx, 200, now=now, to_tag=self._local_tag_for(invite_tx))
        if invite_tx.state is TxState.PROCEEDING and invite_tx.kind is TxKind.INVITE_SERVER:
            self._on_cancelled(invite_tx, now)

    def _handle_response(self, resp: SipResponse, addr: tuple[str, int], now: float) -> None:
        if len(resp.headers.get_all("Via")) != 1:
            # RFC 3261 8.1.3.3: a response with more than one Via is misrouted.
            self.stats["dropped_stray_response"] += 1
            return
        key = (resp.top_via.branch or "", resp.cseq.method)
        tx = self._client_txs.get(key)
        if tx is None:
            self._on_stray_response(resp, addr, now)
            return
        if tx.receive_response(resp, now):
            self._on_client_response(tx, resp, now)
        else:
            self.stats["responses_absorbed"] += 1

    # --- hooks for the transaction user ------------------------------------------------------

    def _on_request(self, tx: ServerTransaction, req: SipRequest, addr: tuple[str, int],
                    now: float, transport: str) -> None:
        raise NotImplementedError

    def _on_ack(self, req: SipRequest, addr: tuple[str, int], now: float, transport: str) -> None:
        raise NotImplementedError

    def _on_cancelled(self, invite_tx: ServerTransaction, now: float) -> None:
        raise NotImplementedError

    def _local_tag_for(self, invite_tx: ServerTransaction) -> str | None:
        raise NotImplementedError

    def _on_client_response(self, tx: ClientTransaction, resp: SipResponse, now: float) -> None:
        raise NotImplementedError

    def _on_client_timeout(self, tx: ClientTransaction, now: float, status: int) -> None:
        raise NotImplementedError

    def _authorize(self, owner: Any, request: SipRequest,
                   resp: SipResponse) -> tuple[str, str] | None:
        """The Authorization/Proxy-Authorization header answering a 401/407 (RFC 3261 22.2),
        or None when we have no credentials or they were rejected (no loop)."""
        creds = getattr(owner, "credentials", None)
        if creds is None:
            return None
        if owner.auth is None:
            owner.auth = DigestClient(creds, cnonce_source=lambda: f"{self.rng.getrandbits(64):016x}")
        proxy = resp.status == 407
        values = resp.headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        if not values:
            return None
        try:
            stale = any(c.stale for c in parse_challenges(values))
        except SipParseError:
            stale = False
        owner.auth_rounds += 1
        if owner.auth_rounds > 1 and not stale:
            # RFC 3261 22.2: our credentials were refused (our stateless-nonce peers issue a
            # new nonce every time, so the client's same-nonce check alone would loop).
            self.stats["auth_failures"] += 1
            return None
        try:
            value = owner.auth.authorize(values, method=request.method, uri=str(request.uri),
                                         body=request.body)
        except (AuthenticationError, SipParseError):
            self.stats["auth_failures"] += 1
            return None
        self.stats["auth_retries"] += 1
        return ("Proxy-Authorization" if proxy else "Authorization", value)

    def _on_stray_response(self, resp: SipResponse, addr: tuple[str, int], now: float) -> None:
        self.stats["dropped_stray_response"] += 1

