"""The INVITE usage of the endpoint: placing, answering, changing and ending calls.

RFC 3261 13 (INVITE), 14 (re-INVITE and glare), 15 (BYE), 9 (CANCEL), 12 (dialogs),
RFC 3311 (UPDATE), RFC 4028 (session timers), RFC 3515 (REFER), RFC 2976 INFO DTMF.
"""

from __future__ import annotations

import logging
from itertools import count
from typing import Any, Literal

from telephony.errors import LocalProtocolError, SipParseError

from .admission import AdmissionControl, AdmissionDecision
from .call_leg import CallLeg, CallState
from .config import SUPPORTED_OPTIONS
from .core import ALLOW_VALUE, EndpointCore
from .dialog import Dialog, DialogState
from .events import (
    CallAnswered,
    CallConfirmed,
    CallFailed,
    CallProgress,
    CallRef,
    CallTerminated,
    DtmfInfoReceived,
    IncomingCall,
    OptionsReceived,
    ReferProgress,
    ReferReceived,
    ReferRejected,
    ReinviteReceived,
    ReinviteResult,
    UpdateReceived,
)
from .headers import NameAddr, SipUri, Via, uint
from .message import REASON_PHRASES, Headers, SipRequest, SipResponse, share_view
from .transaction import ClientTransaction, ServerTransaction, TxState

log = logging.getLogger(__name__)

SUPPORTED_VALUE = ", ".join(sorted(SUPPORTED_OPTIONS))
_DTMF_SIGNALS = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}
_DTMF_DIGITS = frozenset("0123456789*#ABCD")
_NEEDS_DIALOG = frozenset({"BYE", "INFO", "NOTIFY", "REFER", "UPDATE", "INVITE"})


def parse_target(target: str) -> SipUri:
    """``sip:1000@host:port`` (or ``1000@host``, ``host:port``) as a SIP URI."""
    target = target.strip()
    if target.startswith("<") and target.endswith(">"):
        target = target[1:-1]
    low = target.lower()
    if not low.startswith(("sip:", "sips:")):
        target = "sip:" + target
    return SipUri.parse(target)


class CallHandling(EndpointCore):
    """Call legs on top of :class:`EndpointCore`; see :class:`SipEndpoint` for the API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls: dict[CallRef, CallLeg] = {}
        self._dialog_legs: dict[tuple[str, str, str], CallLeg] = {}
        self._refs = count(1)
        self._live: set[CallRef] = set()
        """Calls not yet ended (for admission: ``max_calls``)."""
        self.admission = AdmissionControl(self.config.admission)
        self._from_memo: dict[tuple[str | None, str | None], tuple[NameAddr, str, bool]] = {}
        """(from_uri, display name) -> our From without its tag, its text, and whether
        parsing that text gives the same value back."""

    # ------------------------------------------------------------------------------------------
    # helpers

    def _leg(self, call: CallRef) -> CallLeg:
        leg = self._calls.get(call)
        if leg is None:
            raise LocalProtocolError(f"unknown call {call!r}")
        return leg

    def _new_ref(self) -> CallRef:
        return CallRef(f"call-{next(self._refs)}")

    def _bind_dialog(self, leg: CallLeg, dialog: Dialog) -> None:
        old = leg.dialog
        if old is not None and self._dialog_legs.get(old.key) is leg:
            del self._dialog_legs[old.key]
        leg.dialog = dialog
        self._dialog_legs[dialog.key] = leg

    def _common_headers(self, transport: str, *, sdp: bool) -> list[tuple[str, str]]:
        h = [("Contact", self.contact_value(transport)), ("Allow", ALLOW_VALUE),
             ("Supported", SUPPORTED_VALUE)]
        if sdp:
            h.append(("Content-Type", "application/sdp"))
        return h

    def _send_in_dialog(self, leg: CallLeg, method: str, now: float, *,
                        headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                        cseq: int | None = None) -> ClientTransaction:
        d = leg.dialog
        assert d is not None
        dest, transport = d.destination()
        if leg.outbound_proxy is not None and not d.route_set:
            dest = leg.outbound_proxy
        hdrs = [("User-Agent", self.config.user_agent)] + (headers or [])
        req = d.create_request(method, via=self.via_value(transport), cseq=cseq,
                               headers=hdrs, body=body)
        return self.send_request(req, dest, transport, now, owner=leg)

    def _end(self, leg: CallLeg, now: float, event: Any = None) -> None:
        """Finish the leg once: cancel its timers, emit its last event, linger then forget."""
        if leg.state is CallState.TERMINATED:
            return
        leg.state = CallState.TERMINATED
        self._live.discard(leg.ref)
        if leg.dialog is not None:
            leg.dialog.state = DialogState.TERMINATED
        keep = {k: v for k, v in leg.timers.items() if k in ("2xx", "2xx_giveup", "cancel_guard")}
        leg.timers.clear()
        leg.timers.update(keep)
        if event is not None:
            self.emit(event)
        # what lingers only matches retransmissions: not the parsed header values
        if leg.invite is not None:
            leg.invite.drop_views()
        for name in ("invite_tx", "reinvite_tx", "reinvite_in", "update_in", "refer_in"):
            tx = getattr(leg, name)
            if tx is not None:
                tx.request.drop_views()
        linger = self.config.linger if self.config.linger is not None else 64 * self.t1
        self.timer_queue.set(leg, "reap", now + linger)

    def _forget(self, leg: CallLeg) -> None:
        self._calls.pop(leg.ref, None)
        self._live.discard(leg.ref)
        d = leg.dialog
        if d is not None and self._dialog_legs.get(d.key) is leg:
            del self._dialog_legs[d.key]
        leg.timers.clear()
        # Break the leg <-> transaction cycles (tx.owner is the leg) so reference counting
        # frees a finished call at once; left to the cyclic collector, thousands of ended
        # calls pile up between its rare full passes at high call rates.
        for name in ("invite_tx", "reinvite_tx", "reinvite_in", "update_in", "refer_in"):
            tx = getattr(leg, name)
            if tx is not None:
                if tx.owner is leg:
                    tx.owner = None
                setattr(leg, name, None)

    def _send_bye(self, leg: CallLeg, now: float, reason: str | None = None) -> None:
        hdrs: list[tuple[str, str]] = []
        if reason:
            hdrs.append(("Reason", f'SIP;cause=200;text="{reason}"'))
        self._send_in_dialog(leg, "BYE", now, headers=hdrs)
        self.stats["bye_sent"] += 1

    # ------------------------------------------------------------------------------------------
    # UAC: outbound INVITE (RFC 3261 13.2)

    def invite(self, target: str, *, body: bytes, now: float, from_uri: str | None = None,
               headers: Any = (), credentials: Any = None,
               outbound_proxy: tuple[str, int] | None = None,
               display_name: str | None = None) -> CallRef:
        """Place a call to ``target`` with SDP offer ``body``; returns its handle."""
        uri = parse_target(target)
        transport = uri.transport if "transport" in uri.params else self.config.transport
        dest = outbound_proxy or uri.host_port
        local_tag = self.new_tag()
        ref = self._new_ref()
        leg = CallLeg(self, ref, outbound=True, state=CallState.OUT_CALLING, transport=transport,
                      remote_addr=dest, local_tag=local_tag)
        leg.credentials = credentials
        leg.outbound_proxy = outbound_proxy
        leg.local_sdp = body
        name = display_name or self.config.display_name
        memo = self._from_memo.get((from_uri, name))
        if memo is None:
            # a campaign places every call from the same caller ID: parsed and formatted once
            untagged = NameAddr(parse_target(from_uri) if from_uri else
                                SipUri(user=self.config.username, host=self.config.sent_by_host,
                                       port=self.config.sent_by_port), name)
            text = str(untagged)
            # the 1xx and 2xx echo our From and the dialog reads it: when parsing the text
            # gives back exactly this value, it is shared rather than parsed for every call
            try:
                same = NameAddr.parse(text + ";tag=0") == untagged.with_tag("0")
            except SipParseError:
                same = False
            if len(self._from_memo) >= 64:
                self._from_memo.clear()
            memo = self._from_memo[(from_uri, name)] = (untagged, text, same)
        untagged, text, same = memo
        frm_text = text + ";tag=" + local_tag
        if same:
            share_view("na", frm_text, untagged.with_tag(local_tag))
        to_uri = SipUri(uri.scheme, uri.user, None, uri.host, uri.port)
        h = Headers()
        h.add("Via", self.via_value(transport))
        h.add("Max-Forwards", "70")
        h.add("From", frm_text)
        h.add("To", str(NameAddr(to_uri)))
        h.add("Call-ID", self.new_call_id())
        h.add("CSeq", "1 INVITE")
        if outbound_proxy is not None:
            h.add("Route", f"<sip:{outbound_proxy[0]}:{outbound_proxy[1]};lr>")
        for name, value in self._common_headers(transport, sdp=bool(body)):
            h.add(name, value)
        # RFC 4028 7.1: propose our interval; the UAS picks the refresher.
        h.add("Session-Expires", str(self.config.session_expires))
        h.add("Min-SE", str(self.config.min_se))
        h.add("User-Agent", self.config.user_agent)
        for name, value in headers:
            h.add(name, value)
        req = SipRequest("INVITE", uri, h, body)
        leg.invite = req
        self._calls[ref] = leg
        self._live.add(ref)
        leg.invite_tx = self.send_request(req, dest, transport, now, owner=leg)
        self.timer_queue.set(leg, "C", now + self.config.timer_c)
        self.stats["calls_out"] += 1
        return ref

    def _resend_invite(self, leg: CallLeg, now: float, extra: list[tuple[str, str]],
                       replace: list[tuple[str, str]] | None = None) -> None:
        """Re-send the INVITE with a new branch and CSeq+1 (RFC 3261 22.2, RFC 4028 7.4)."""
        old = leg.invite
        assert old is not None
        h = old.headers.copy()
        h.set("Via", self.via_value(leg.transport))
        h.set("CSeq", f"{old.cseq.seq + 1} INVITE")
        for name, value in (replace or []) + extra:
            h.set(name, value)
        req = SipRequest("INVITE", old.uri, h, old.body)
        leg.invite = req
        leg.invite_tx = self.send_request(req, leg.remote_addr, leg.transport, now, owner=leg)

    def _invite_response(self, leg: CallLeg, tx: ClientTransaction, resp: SipResponse,
                         now: float) -> None:
        status = resp.status
        if 200 <= status < 300 and leg.ack_cseq == resp.cseq.seq and leg.ack_data is not None:
            d = leg.dialog
            if d is not None and resp.to.tag == d.remote_tag:
                # A retransmitted 2xx: the ACK got lost; send it again (13.2.2.4).
                dest, transport = d.destination()
                self.transmit(leg.ack_data, dest, transport, retransmission=True)
                return
        if tx is not leg.invite_tx:
            if 200 <= status < 300:
                self._ack_and_bye(tx, resp, now)  # a 2xx to an INVITE we gave up on
            return
        if status < 200:
            if leg.state is CallState.OUT_CALLING:
                leg.state = CallState.OUT_PROCEEDING
            if leg.cancel_pending:
                leg.cancel_pending = False
                self._send_cancel(leg, now)
                return
            if status == 100 or leg.state is not CallState.OUT_PROCEEDING:
                return
            tag = resp.to.tag
            if tag and (leg.dialog is None or leg.dialog.remote_tag != tag):
                self._bind_dialog(leg, Dialog.from_uac(tx.request, resp, transport=leg.transport,
                                                       remote_addr=leg.remote_addr))
            self.timer_queue.set(leg, "C", now + self.config.timer_c)  # reset on 1xx
            self.emit(CallProgress(leg.ref, status, resp.reason, resp.body))
            return
        self.timer_queue.cancel(leg, "C")
        self.timer_queue.cancel(leg, "cancel_guard")
        if status < 300:
            d = leg.dialog
            if d is not None and d.state is DialogState.CONFIRMED and d.remote_tag != resp.to.tag:
                self._ack_and_bye(tx, resp, now)  # a second fork answered (13.2.2.4)
                return
            dialog = Dialog.from_uac(tx.request, resp, transport=leg.transport,
                                     remote_addr=leg.remote_addr)
            self._bind_dialog(leg, dialog)
            self._send_ack(leg, tx.request, now)
            leg.peer_allow = frozenset(resp.tokens("Allow"))
            if leg.state in (CallState.OUT_CANCELLING, CallState.TERMINATED) or leg.cancel_pending:
                # CANCEL lost the race against the 200 (RFC 3261 9.1): ACK, then BYE.
                self._send_bye(leg, now)
                self._end(leg, now)
                return
            leg.state = CallState.CONFIRMED
            leg.invite = None  # only needed for CANCEL and auth resends (memory per call)
            leg.auth_rounds = 0
            leg.remote_sdp = resp.body
            self._se_from_2xx(leg, resp, now)
            self.emit(CallAnswered(leg.ref, resp.body))
            return
        # 300-699 (the transaction already sent the ACK, 17.1.1.3)
        if status in (401, 407) and leg.state in (CallState.OUT_CALLING,
                                                  CallState.OUT_PROCEEDING):
            auth = self._authorize(leg, tx.request, resp)
            if auth is not None:
                self._resend_invite(leg, now, [auth])
                return
        if status == 422 and not leg.se_retried and leg.state in (CallState.OUT_CALLING,
                                                                   CallState.OUT_PROCEEDING):
            min_se = resp.param_header("Min-SE")
            if min_se is not None and uint(min_se.value) is not None:
                leg.se_retried = True  # RFC 4028 7.4: retry with the larger interval
                self._resend_invite(leg, now, [], [("Session-Expires", min_se.value),
                                                   ("Min-SE", min_se.value)])
                return
        if leg.state in (CallState.OUT_CANCELLING, CallState.TERMINATED):
            self._end(leg, now)
            return
        self._end(leg, now, CallFailed(leg.ref, status, resp.reason))

    def _send_ack(self, leg: CallLeg, invite: SipRequest, now: float) -> None:
        """The ACK for a 2xx: a new transaction-less request in the dialog (13.2.2.4), with
        the INVITE's CSeq number and credentials."""
        d = leg.dialog
        assert d is not None
        dest, transport = d.destination()
        if leg.outbound_proxy is not None and not d.route_set:
            dest = leg.outbound_proxy
        extra = [(n, v) for n, v in invite.headers
                 if n.lower() in ("authorization", "proxy-authorization")]
        ack = d.create_request("ACK", via=self.via_value(transport, remember=False),
                               cseq=invite.cseq.seq,
                               headers=extra)
        leg.ack_data = ack.serialize()
        leg.ack_cseq = invite.cseq.seq
        self.transmit(leg.ack_data, dest, transport)

    def _ack_and_bye(self, tx: ClientTransaction, resp: SipResponse, now: float) -> None:
        transport = tx.transport
        d = Dialog.from_uac(tx.request, resp, transport=transport, remote_addr=tx.addr)
        dest, transport = d.destination()
        ack = d.create_request("ACK", via=self.via_value(transport, remember=False),
                               cseq=tx.request.cseq.seq)
        self.transmit(ack.serialize(), dest, transport)
        bye = d.create_request("BYE", via=self.via_value(transport))
        self.send_request(bye, dest, transport, now)

    def _send_cancel(self, leg: CallLeg, now: float) -> None:
        """CANCEL (RFC 3261 9.1): same Request-URI, Call-ID, From, To, CSeq number, top Via
        and Route as the INVITE; only after a provisional response."""
        inv = leg.invite
        assert inv is not None
        h = Headers()
        src = inv.headers
        for name in ("Via", "From", "To", "Call-ID"):
            v = src.get(name)
            if v is not None:
                h.add(name, v)
        h.add("Max-Forwards", "70")
        h.add("CSeq", f"{inv.cseq.seq} CANCEL")
        for r in src.get_all("Route"):
            h.add("Route", r)
        h.add("User-Agent", self.config.user_agent)
        req = SipRequest("CANCEL", inv.uri, h)
        self.send_request(req, leg.remote_addr, leg.transport, now, owner=leg)
        self.timer_queue.set(leg, "cancel_guard", now + 64 * self.t1)

    # ------------------------------------------------------------------------------------------
    # UAS: inbound INVITE (RFC 3261 13.3)

    def _admission_for(self, addr: tuple[str, int], now: float) -> AdmissionDecision:
        """One admission decision per new INVITE (counted when refused)."""
        decision = self.admission.admit(addr[0], now=now, active_calls=len(self._live))
        if not decision.admitted:
            self.stats["overload_503"] += 1
            self.stats[f"overload_{decision.reason}"] += 1
        return decision

    def _refuse_statelessly(self, req: SipRequest, via: Via, addr: tuple[str, int], now: float,
                            transport: str) -> bool:
        """Overload control (issue 12 finding 4), decided when a new INVITE arrives, before
        any transaction, digest computation, leg or RTP port: a refusal is a stateless 503
        with Retry-After (RFC 3261 8.2.7, 21.5.4).  Answered through a transaction, each
        refusal kept its request and response for 5-32 s (timers H and I): a 2,000 INVITE/s
        flood held ~30,000 of them, whose full garbage-collection passes stalled the loop
        for up to 440 ms (held calls' RTP and OPTIONS late) and grew RSS by 260 MB."""
        if req.to.tag is not None or self._admitted_early:
            return False  # a re-INVITE (the dialog decides), or admitted before parsing
        decision = self._admission_for(addr, now)
        if decision.admitted:
            return False
        self.respond_statelessly(req, via, addr, transport, 503,
                                 headers=[("Retry-After", str(decision.retry_after))])
        return True

    def _incoming_invite(self, tx: ServerTransaction, req: SipRequest, addr: tuple[str, int],
                         now: float, transport: str) -> None:
        # Admission was decided before the transaction existed (_refuse_statelessly).
        if not self._check_inbound_auth(tx, req, addr, now):
            return
        if req.body:
            ct = req.content_type
            if ct is None or ct.mime != "application/sdp":
                self.respond(tx, 415, now=now, to_tag=self.new_tag(),
                             headers=[("Accept", "application/sdp")])
                return
        se = self._se_negotiate(tx, req, now)
        if se is False:
            return
        local_tag = self.new_tag()
        leg = CallLeg(self, self._new_ref(), outbound=False, state=CallState.IN_RINGING,
                      transport=transport, remote_addr=addr, local_tag=local_tag)
        tx.owner = leg
        leg.invite_tx = tx
        leg.invite = req
        leg.remote_sdp = req.body
        leg.peer_allow = frozenset(req.tokens("Allow"))
        leg.se_pending = se
        self._bind_dialog(leg, Dialog.from_uas(req, local_tag=local_tag, transport=transport,
                                               remote_addr=addr))
        self._calls[leg.ref] = leg
        self._live.add(leg.ref)
        self.respond(tx, 100, now=now)  # RFC 3261 17.2.1: stop the INVITE retransmissions
        # Safety net against an application that never answers (the caller's timer C would
        # have CANCELled by then): give up with 480 so the leg cannot leak.
        self.timer_queue.set(leg, "ring_guard", now + self.config.timer_c + 64 * self.t1)
        frm = req.from_
        self.stats["calls_in"] += 1
        self.emit(IncomingCall(leg.ref, req, req.body, addr, str(frm.uri), str(req.to.uri),
                               frm.display_name))

    def _check_inbound_auth(self, tx: ServerTransaction, req: SipRequest,
                            addr: tuple[str, int], now: float) -> bool:
        """Challenge INVITEs from untrusted sources (RFC 3261 22.1, RFC 7616 3.3)."""
        trusted = self.config.trusted_sources
        if trusted is None or addr[0] in trusted:
            return True
        server = self.config.inbound_auth
        if server is None:
            self.respond(tx, 403, now=now, to_tag=self.new_tag())
            return False
        source = addr[0]
        if server.locked_out(source, now=now):
            # Too many failures from this address: 403 without looking at the password
            # (issue 12 finding 6; RFC 3261 21.4.4 "understood, but refused").
            self.stats["auth_locked_out"] += 1
            self.respond(tx, 403, "Too many authentication failures", now=now,
                         to_tag=self.new_tag())
            return False
        header = req.headers.get("Authorization")
        stale = False
        if header is not None:
            # the nonce must come back from the address it was sent to, with a fresh nc
            result = server.verify(header, method=req.method, uri=str(req.uri), now=now,
                                   body=req.body, source=source)
            if result.ok:
                return True
            stale = result.status.value == "stale"
            self.stats["auth_failures"] += 1
            if server.locked_out(source, now=now):
                log.warning("SIP digest: %s locked out for %.0f s after %d failures (last: %s)",
                            source, server.limiter.lockout, server.limiter.max_failures,
                            result.reason)
                self.stats["auth_lockouts"] += 1
                self.respond(tx, 403, "Too many authentication failures", now=now,
                             to_tag=self.new_tag())
                return False
        challenges = server.challenge(now=now, stale=stale, source=source)
        self.respond(tx, 401, now=now, to_tag=self.new_tag(),
                     headers=[("WWW-Authenticate", c) for c in challenges])
        return False

    def ringing(self, call: CallRef, *, now: float, body: bytes | None = None) -> None:
        """Send 180 Ringing (183 Session Progress with early media if ``body``)."""
        leg = self._leg(call)
        leg.require("ringing")
        assert isinstance(leg.invite_tx, ServerTransaction)
        hdrs = [("Contact", self.contact_value(leg.transport))]
        if body:
            hdrs.append(("Content-Type", "application/sdp"))
            leg.local_sdp = body
        self.respond(leg.invite_tx, 183 if body else 180, now=now, to_tag=leg.local_tag,
                     headers=hdrs, body=body or b"")

    def answer(self, call: CallRef, body: bytes, *, now: float) -> None:
        """200 OK with our SDP; retransmitted until the ACK comes (RFC 3261 13.3.1.4)."""
        leg = self._leg(call)
        leg.require("answer")
        tx = leg.invite_tx
        assert isinstance(tx, ServerTransaction)
        hdrs = self._common_headers(leg.transport, sdp=bool(body))
        if leg.se_pending is not None:
            hdrs += leg.se_pending[2]
        resp = self.respond(tx, 200, now=now, to_tag=leg.local_tag, headers=hdrs, body=body)
        self.timer_queue.cancel(leg, "ring_guard")
        leg.local_sdp = body
        leg.state = CallState.IN_ANSWERED
        assert leg.dialog is not None
        leg.dialog.state = DialogState.CONFIRMED
        self._start_2xx_retransmit(leg, resp, tx, now)
        if leg.se_pending is not None:
            self._se_start(leg, leg.se_pending[0], leg.se_pending[1], now)
            leg.se_pending = None

    def _start_2xx_retransmit(self, leg: CallLeg, resp: SipResponse, tx: ServerTransaction,
                              now: float) -> None:
        leg.ok_data = resp.serialize()
        leg.ok_cseq = tx.request.cseq.seq
        leg.dest = tx.addr
        leg.ok_interval = self.t1
        self.timer_queue.set(leg, "2xx", now + self.t1)
        self.timer_queue.set(leg, "2xx_giveup", now + 64 * self.t1)

    def reject(self, call: CallRef, status: int, reason: str | None = None, *, now: float,
               headers: Any = ()) -> None:
        """Refuse an inbound call with a final response >= 300."""
        leg = self._leg(call)
        leg.require("reject")
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"reject needs a status 300-699, not {status}")
        assert isinstance(leg.invite_tx, ServerTransaction)
        self.respond(leg.invite_tx, status, reason, now=now, to_tag=leg.local_tag,
                     headers=list(headers))
        self._end(leg, now, CallTerminated(leg.ref, reason or "rejected", False, status))

    def _on_ack(self, req: SipRequest, addr: tuple[str, int], now: float, transport: str) -> None:
        key = (req.call_id, req.to.tag or "", req.from_.tag or "")
        leg = self._dialog_legs.get(key)
        if leg is None or leg.ok_cseq != req.cseq.seq or leg.ok_data is None:
            self.stats["acks_absorbed"] += 1
            return
        leg.ok_data = None
        self.timer_queue.cancel(leg, "2xx")
        self.timer_queue.cancel(leg, "2xx_giveup")
        if leg.state is CallState.IN_ANSWERED:
            leg.state = CallState.CONFIRMED
            leg.invite = None
            self.emit(CallConfirmed(leg.ref, req.body))
        elif leg.bye_pending:
            # RFC 3261 15: the BYE waited for the ACK of our 2xx.
            leg.bye_pending = False
            self._send_bye(leg, now)
        elif req.body and leg.state is CallState.CONFIRMED:
            # RFC 3261 14.2: the ACK of a re-INVITE that had no offer carries the answer.
            self.emit(CallConfirmed(leg.ref, req.body))

    def _on_cancelled(self, invite_tx: ServerTransaction, now: float) -> None:
        leg = invite_tx.owner
        if not isinstance(leg, CallLeg):
            self.respond(invite_tx, 487, now=now, to_tag=self.new_tag())
            return
        self.respond(invite_tx, 487, now=now, to_tag=leg.local_tag)
        if leg.reinvite_in is invite_tx:  # CANCEL of a re-INVITE: the call goes on
            leg.reinvite_in = None
            return
        self._end(leg, now, CallTerminated(leg.ref, "cancelled", True, 487))

    def _local_tag_for(self, invite_tx: ServerTransaction) -> str | None:
        leg = invite_tx.owner
        return leg.local_tag if isinstance(leg, CallLeg) else self.new_tag()

    # ------------------------------------------------------------------------------------------
    # both sides

    def hangup(self, call: CallRef, *, now: float, reason: str | None = None) -> None:
        """End the call whatever its state: BYE, CANCEL or 480 (emits CallTerminated)."""
        leg = self._leg(call)
        st = leg.state
        ev = CallTerminated(leg.ref, reason or "local hangup", False, None)
        if st is CallState.TERMINATED:
            return
        if st is CallState.OUT_CALLING:
            leg.cancel_pending = True  # RFC 3261 9.1: no CANCEL before a provisional
            leg.state = CallState.OUT_CANCELLING
            self.timer_queue.set(leg, "cancel_guard", now + 64 * self.t1)
            self._end_keep(leg, now, ev)
        elif st is CallState.OUT_PROCEEDING:
            leg.state = CallState.OUT_CANCELLING
            self._send_cancel(leg, now)
            self._end_keep(leg, now, ev)
        elif st is CallState.OUT_CANCELLING:
            return
        elif st is CallState.IN_RINGING:
            assert isinstance(leg.invite_tx, ServerTransaction)
            self.respond(leg.invite_tx, 480, now=now, to_tag=leg.local_tag)
            self._end(leg, now, ev)
        elif st is CallState.IN_ANSWERED:
            leg.bye_pending = True  # RFC 3261 15: wait for the ACK (or its timeout)
            self._end(leg, now, ev)
        else:
            self._send_bye(leg, now, reason)
            self._end(leg, now, ev)

    def _end_keep(self, leg: CallLeg, now: float, event: Any) -> None:
        """Report the end now but keep the leg in OUT_CANCELLING until the INVITE finishes."""
        self._live.discard(leg.ref)
        self.emit(event)
        self.timer_queue.cancel(leg, "C")

    def _call_timer(self, leg: CallLeg, name: str, now: float) -> None:
        if name == "reap":
            self._forget(leg)
        elif name == "2xx" and leg.ok_data is not None:
            self.transmit(leg.ok_data, leg.dest, leg.transport, retransmission=True)
            leg.ok_interval = min(2 * leg.ok_interval, self.t2)
            self.timer_queue.set(leg, "2xx", now + leg.ok_interval)
        elif name == "2xx_giveup":
            # RFC 3261 13.3.1.4: no ACK after 64*T1: confirm, then end the session with BYE.
            self.timer_queue.cancel(leg, "2xx")
            leg.ok_data = None
            leg.bye_pending = False
            self._send_bye(leg, now, "no ACK")
            self._end(leg, now, CallTerminated(leg.ref, "no ACK", False, 408))
        elif name == "C":
            if leg.state in (CallState.OUT_CALLING, CallState.OUT_PROCEEDING):
                if leg.state is CallState.OUT_PROCEEDING:
                    self._send_cancel(leg, now)
                else:
                    leg.cancel_pending = True
                    self.timer_queue.set(leg, "cancel_guard", now + 64 * self.t1)
                leg.state = CallState.OUT_CANCELLING
                self.emit(CallFailed(leg.ref, 408, "No Answer"))
        elif name == "cancel_guard":
            # RFC 3261 9.1: no final response 64*T1 after the CANCEL: the INVITE is over.
            tx = leg.invite_tx
            if isinstance(tx, ClientTransaction) and tx.state is not TxState.TERMINATED:
                tx.on_timer("B", now)
            self._end(leg, now)
        elif name == "glare":
            if leg.state is CallState.CONFIRMED and leg.reinvite_tx is None:
                self._send_reinvite(leg, leg.reinvite_body, now, leg.refreshing)
        elif name == "ring_guard" and leg.state is CallState.IN_RINGING:
            assert isinstance(leg.invite_tx, ServerTransaction)
            self.respond(leg.invite_tx, 480, now=now, to_tag=leg.local_tag)
            self._end(leg, now, CallTerminated(leg.ref, "not answered", False, 480))
        elif name == "se_refresh":
            self._session_refresh(leg, now)
        elif name == "se_expire" and leg.state is CallState.CONFIRMED:
            self._send_bye(leg, now, "session timer expired")
            self._end(leg, now, CallTerminated(leg.ref, "session timer expired", False, None))

    # ------------------------------------------------------------------------------------------
    # requests

    def _on_request(self, tx: ServerTransaction, req: SipRequest, addr: tuple[str, int],
                    now: float, transport: str) -> None:
        method = req.method
        to_tag = req.to.tag
        if to_tag:
            leg = self._dialog_legs.get((req.call_id, to_tag, req.from_.tag or ""))
            if leg is not None:
                self._in_dialog(leg, tx, req, now)
                return
            if method != "OPTIONS":
                # RFC 3261 12.2.2: no such dialog.
                self.respond(tx, 481, now=now)
                return
        if method == "OPTIONS":
            self._answer_options(tx, req, now)
        elif method == "INVITE":
            self._incoming_invite(tx, req, addr, now, transport)
        else:  # BYE, INFO, NOTIFY, REFER, UPDATE outside any dialog
            self.respond(tx, 481, now=now, to_tag=self.new_tag())

    def _answer_options(self, tx: ServerTransaction, req: SipRequest, now: float) -> None:
        """RFC 3261 11.2: 200 with Allow, Accept, Supported."""
        self.respond(tx, 200, now=now, to_tag=req.to.tag or self.new_tag(), headers=[
            ("Allow", ALLOW_VALUE), ("Accept", "application/sdp"),
            ("Supported", SUPPORTED_VALUE), ("Contact", self.contact_value(tx.transport))])
        self.emit(OptionsReceived(req))

    def _in_dialog(self, leg: CallLeg, tx: ServerTransaction, req: SipRequest,
                   now: float) -> None:
        d = leg.dialog
        assert d is not None
        method = req.method
        seq = req.cseq.seq
        if d.remote_seq is not None and seq < d.remote_seq:
            # RFC 3261 12.2.2: lower CSeq than the last request: out of order.
            self.respond(tx, 500, "Out of order CSeq", now=now)
            return
        d.remote_seq = seq
        if leg.state is CallState.TERMINATED:
            self.respond(tx, 200 if method == "BYE" else 481, now=now)
            return
        if method == "BYE":
            self.respond(tx, 200, now=now)
            pending = leg.reinvite_in
            if pending is not None and pending.state is TxState.PROCEEDING:
                self.respond(pending, 487, now=now)  # RFC 3261 15.1.2
            if isinstance(leg.invite_tx, ServerTransaction) and \
                    leg.invite_tx.state is TxState.PROCEEDING:
                self.respond(leg.invite_tx, 487, now=now, to_tag=leg.local_tag)
            self._end(leg, now, CallTerminated(leg.ref, "bye", True, None))
        elif method == "INVITE":
            self._incoming_reinvite(leg, tx, req, now)
        elif method == "UPDATE":
            self._incoming_update(leg, tx, req, now)
        elif method == "INFO":
            self._incoming_info(leg, tx, req, now)
        elif method == "REFER":
            self._incoming_refer(leg, tx, req, now)
        elif method == "NOTIFY":
            self._incoming_notify(leg, tx, req, now)
        elif method == "OPTIONS":
            self._answer_options(tx, req, now)
        else:
            self.respond(tx, 501, now=now)

    # --- re-INVITE (RFC 3261 14) ---------------------------------------------------------------

    def reinvite(self, call: CallRef, body: bytes, *, now: float) -> None:
        """Send a re-INVITE with a new offer (hold/unhold); the result comes as ReinviteResult."""
        leg = self._leg(call)
        leg.require("reinvite")
        if leg.reinvite_tx is not None or leg.reinvite_in is not None:
            raise LocalProtocolError("an offer/answer exchange is already in progress")
        self._send_reinvite(leg, body, now, refresh=False)

    def _send_reinvite(self, leg: CallLeg, body: bytes, now: float, refresh: bool) -> None:
        hdrs = self._common_headers(leg.transport, sdp=bool(body))
        if leg.se_interval:
            hdrs.append(("Session-Expires",
                         f"{leg.se_interval};refresher={'uac' if leg.se_we_refresh else 'uas'}"))
            hdrs.append(("Min-SE", str(self.config.min_se)))
        leg.reinvite_body = body
        leg.refreshing = refresh
        leg.local_sdp = body or leg.local_sdp
        leg.reinvite_tx = self._send_in_dialog(leg, "INVITE", now, headers=hdrs, body=body)

    def _reinvite_response(self, leg: CallLeg, tx: ClientTransaction, resp: SipResponse,
                           now: float) -> None:
        status = resp.status
        if status < 200:
            return
        if 200 <= status < 300 and leg.ack_cseq == resp.cseq.seq and leg.ack_data is not None:
            assert leg.dialog is not None
            dest, transport = leg.dialog.destination()
            self.transmit(leg.ack_data, dest, transport, retransmission=True)
            return
        if tx is not leg.reinvite_tx:
            return
        leg.reinvite_tx = None
        refresh = leg.refreshing
        if status not in (401, 407):
            leg.auth_rounds = 0
        if status < 300:
            contacts = resp.contacts
            if contacts and leg.dialog is not None:
                leg.dialog.remote_target = contacts[0].uri  # 12.2.1.2 target refresh
            self._send_ack(leg, tx.request, now)
            if resp.body:
                leg.remote_sdp = resp.body
            self._se_from_2xx(leg, resp, now)
            if not refresh:
                self.emit(ReinviteResult(leg.ref, status, resp.body))
        elif status == 491:
            # RFC 3261 14.1: retry after 2.1-4 s if we own the Call-ID, else 0-2 s.
            assert leg.dialog is not None
            delay = (self.rng.uniform(2.1, 4.0) if leg.dialog.we_are_uac
                     else self.rng.uniform(0.0, 2.0))
            self.timer_queue.set(leg, "glare", now + delay)
        elif status in (401, 407) and (auth := self._authorize(leg, tx.request, resp)):
            hdrs = [(n, v) for n, v in tx.request.headers
                    if n.lower() not in ("via", "cseq", "max-forwards", "from", "to", "call-id",
                                         "route", "user-agent", "authorization",
                                         "proxy-authorization")]
            leg.reinvite_tx = self._send_in_dialog(leg, "INVITE", now, headers=hdrs + [auth],
                                                   body=tx.request.body)
        elif status in (408, 481):
            # RFC 3261 12.2.1.2 / 14.1: the dialog is gone.
            if status == 408:
                self._send_bye(leg, now)
            self._end(leg, now, CallTerminated(leg.ref, "re-INVITE failed", False, status))
        elif not refresh:
            self.emit(ReinviteResult(leg.ref, status, resp.body))

    def _incoming_reinvite(self, leg: CallLeg, tx: ServerTransaction, req: SipRequest,
                           now: float) -> None:
        if leg.reinvite_tx is not None:
            self.respond(tx, 491, now=now)  # RFC 3261 14.2: glare
            return
        if leg.reinvite_in is not None or leg.state is not CallState.CONFIRMED or \
                leg.update_in is not None:
            self.respond(tx, 500, now=now,
                         headers=[("Retry-After", str(self.rng.randint(0, 10)))])
            return
        if req.body:
            ct = req.content_type
            if ct is None or ct.mime != "application/sdp":
                self.respond(tx, 415, now=now, headers=[("Accept", "application/sdp")])
                return
        se = self._se_negotiate(tx, req, now)
        if se is False:
            return
        tx.owner = leg
        leg.reinvite_in = tx
        leg.se_pending = se
        if req.body and req.body == leg.remote_sdp and leg.local_sdp:
            # RFC 3264 8 / RFC 4028 10: an unchanged offer is a session refresh; the answer
            # is our previous one.  No need to bother the application.
            self._answer_reinvite(leg, leg.local_sdp, now)
            return
        self.respond(tx, 100, now=now)  # RFC 3261 17.2.1: the application may take a while
        self.emit(ReinviteReceived(leg.ref, req.body, req))

    def answer_reinvite(self, call: CallRef, body: bytes, *, now: float) -> None:
        """200 to the pending re-INVITE with our answer ``body``."""
        leg = self._leg(call)
        leg.require("answer_reinvite")
        if leg.reinvite_in is None:
            raise LocalProtocolError("no re-INVITE to answer")
        self._answer_reinvite(leg, body, now)

    def _answer_reinvite(self, leg: CallLeg, body: bytes, now: float) -> None:
        tx = leg.reinvite_in
        assert tx is not None and leg.dialog is not None
        req = tx.request
        hdrs = self._common_headers(leg.transport, sdp=bool(body))
        if leg.se_pending is not None:
            hdrs += leg.se_pending[2]
        resp = self.respond(tx, 200, now=now, headers=hdrs, body=body)
        contacts = req.contacts
        if contacts:
            leg.dialog.remote_target = contacts[0].uri  # 12.2.2 target refresh
        leg.local_sdp = body
        if req.body:
            leg.remote_sdp = req.body
        self._start_2xx_retransmit(leg, resp, tx, now)
        leg.reinvite_in = None
        self._se_refreshed(leg, now)

    def reject_reinvite(self, call: CallRef, status: int, *, now: float) -> None:
        """Refuse the pending re-INVITE (488, 491...); the call goes on unchanged."""
        leg = self._leg(call)
        if leg.reinvite_in is None:
            raise LocalProtocolError("no re-INVITE to reject")
        self.respond(leg.reinvite_in, status, now=now)
        leg.reinvite_in = None
        leg.se_pending = None

    # --- UPDATE (RFC 3311) ---------------------------------------------------------------------

    def update(self, call: CallRef, body: bytes | None = None, *, now: float) -> None:
        """Send an UPDATE (a session refresh without ``body``, a new offer with it)."""
        leg = self._leg(call)
        leg.require("update")
        self._send_update(leg, body or b"", now)

    def _send_update(self, leg: CallLeg, body: bytes, now: float) -> None:
        hdrs = self._common_headers(leg.transport, sdp=bool(body))
        if leg.se_interval:
            hdrs.append(("Session-Expires",
                         f"{leg.se_interval};refresher={'uac' if leg.se_we_refresh else 'uas'}"))
        if body:
            leg.local_sdp = body
        self._send_in_dialog(leg, "UPDATE", now, headers=hdrs, body=body)

    def _incoming_update(self, leg: CallLeg, tx: ServerTransaction, req: SipRequest,
                         now: float) -> None:
        if leg.update_in is not None:
            self.respond(tx, 500, now=now, headers=[("Retry-After", "1")])
            return
        if req.body and (leg.reinvite_tx is not None or leg.reinvite_in is not None):
            self.respond(tx, 491, now=now)  # RFC 3311 5.2: an offer is already in progress
            return
        se = self._se_negotiate(tx, req, now)
        if se is False:
            return
        tx.owner = leg
        leg.update_in = tx
        leg.se_pending = se
        if not req.body:
            self._answer_update(leg, b"", now)
            self.emit(UpdateReceived(leg.ref, None))
        elif req.body == leg.remote_sdp and leg.local_sdp:
            self._answer_update(leg, leg.local_sdp, now)
        else:
            self.emit(UpdateReceived(leg.ref, req.body))

    def answer_update(self, call: CallRef, body: bytes, *, now: float) -> None:
        """200 to the pending UPDATE carrying an offer, with our answer ``body``."""
        leg = self._leg(call)
        if leg.update_in is None:
            raise LocalProtocolError("no UPDATE to answer")
        self._answer_update(leg, body, now)

    def reject_update(self, call: CallRef, status: int, *, now: float) -> None:
        leg = self._leg(call)
        if leg.update_in is None:
            raise LocalProtocolError("no UPDATE to reject")
        self.respond(leg.update_in, status, now=now)
        leg.update_in = None
        leg.se_pending = None

    def _answer_update(self, leg: CallLeg, body: bytes, now: float) -> None:
        tx = leg.update_in
        assert tx is not None and leg.dialog is not None
        hdrs = self._common_headers(leg.transport, sdp=bool(body))
        if leg.se_pending is not None:
            hdrs += leg.se_pending[2]
        self.respond(tx, 200, now=now, headers=hdrs, body=body)
        contacts = tx.request.contacts
        if contacts:
            leg.dialog.remote_target = contacts[0].uri
        if body:
            leg.local_sdp = body
            leg.remote_sdp = tx.request.body
        leg.update_in = None
        self._se_refreshed(leg, now)

    # --- session timers (RFC 4028) -------------------------------------------------------------

    def _se_negotiate(self, tx: ServerTransaction, req: SipRequest,
                      now: float) -> tuple[int, bool, list[tuple[str, str]]] | None | Literal[False]:
        """As UAS of a session refresh request: False if answered 422, None if no session
        timer, else (interval, we refresh, headers for the 2xx) (RFC 4028 9)."""
        se = req.param_header("Session-Expires")
        if se is None:
            return None
        value = uint(se.value)
        if value is None:
            raise SipParseError("Bad Session-Expires")
        min_se_hdr = req.param_header("Min-SE")
        req_min = (uint(min_se_hdr.value) if min_se_hdr else None) or 90
        if value < self.config.min_se:
            self.respond(tx, 422, now=now, to_tag=self._tag_for_response(tx, req),
                         headers=[("Min-SE", str(self.config.min_se))])
            return False
        interval = max(min(value, self.config.session_expires), req_min, self.config.min_se)
        supported = "timer" in req.tokens("Supported")
        refresher = se.params.get("refresher") or ("uac" if supported else "uas")
        if refresher not in ("uac", "uas"):
            refresher = "uas"
        hdrs = [("Session-Expires", f"{interval};refresher={refresher}")]
        if supported:
            hdrs.append(("Require", "timer"))
        return interval, refresher == "uas", hdrs

    def _tag_for_response(self, tx: ServerTransaction, req: SipRequest) -> str | None:
        return None if req.to.tag else self.new_tag()

    def _se_from_2xx(self, leg: CallLeg, resp: SipResponse, now: float) -> None:
        """As UAC of a refresh request: the 2xx decides interval and refresher (RFC 4028 7.2)."""
        se = resp.param_header("Session-Expires")
        interval = uint(se.value) if se is not None else None
        if se is None or not interval:
            self.timer_queue.cancel(leg, "se_refresh")
            self.timer_queue.cancel(leg, "se_expire")
            leg.se_interval = 0
            return
        self._se_start(leg, interval, se.params.get("refresher", "uac") != "uas", now)

    def _se_refreshed(self, leg: CallLeg, now: float) -> None:
        """A re-INVITE or UPDATE we answered 2xx refreshes the session (RFC 4028 10), with
        the interval it negotiated, or the current one if it carried no Session-Expires."""
        if leg.se_pending is not None:
            self._se_start(leg, leg.se_pending[0], leg.se_pending[1], now)
            leg.se_pending = None
        elif leg.se_interval:
            self._se_start(leg, leg.se_interval, leg.se_we_refresh, now)

    def _se_start(self, leg: CallLeg, interval: int, we_refresh: bool, now: float) -> None:
        leg.se_interval = interval
        leg.se_we_refresh = we_refresh
        q = self.timer_queue
        q.cancel(leg, "se_refresh")
        q.cancel(leg, "se_expire")
        if we_refresh:
            q.set(leg, "se_refresh", now + interval / 2)  # RFC 4028 10: at half the interval
        else:
            # RFC 4028 10: BYE min(32, interval/3) seconds before the session expires.
            q.set(leg, "se_expire", now + interval - min(32.0, interval / 3))

    def _session_refresh(self, leg: CallLeg, now: float) -> None:
        if leg.state is not CallState.CONFIRMED:
            return
        if leg.reinvite_tx is not None or leg.reinvite_in is not None:
            self.timer_queue.set(leg, "se_refresh", now + 2.0)
            return
        self.stats["session_refreshes"] += 1
        if "UPDATE" in leg.peer_allow:
            self._send_update(leg, b"", now)
        else:
            self._send_reinvite(leg, leg.local_sdp, now, refresh=True)

    # --- INFO DTMF (RFC 2976 + the de-facto application/dtmf-relay body) -----------------------

    def send_info_dtmf(self, call: CallRef, digit: str, duration_ms: int, *, now: float) -> None:
        """Send one digit by SIP INFO (application/dtmf-relay)."""
        leg = self._leg(call)
        leg.require("info")
        if digit not in _DTMF_DIGITS:
            raise LocalProtocolError(f"not a DTMF digit: {digit!r}")
        body = f"Signal={digit}\r\nDuration={int(duration_ms)}\r\n".encode()
        self._send_in_dialog(leg, "INFO", now, headers=[
            ("Content-Type", "application/dtmf-relay")], body=body)

    def _incoming_info(self, leg: CallLeg, tx: ServerTransaction, req: SipRequest,
                       now: float) -> None:
        ct = req.content_type
        mime = ct.mime if ct is not None else ""
        digit: str | None = None
        duration = 0
        text = req.body.decode("latin-1")
        if mime == "application/dtmf-relay":
            for line in text.splitlines():
                name, _, value = line.partition("=")
                name, value = name.strip().lower(), value.strip()
                if name == "signal":
                    digit = _DTMF_SIGNALS.get(value, value.upper())
                elif name == "duration" and uint(value) is not None:
                    duration = uint(value) or 0
        elif mime == "application/dtmf":
            value = text.strip()
            digit = _DTMF_SIGNALS.get(value, value.upper())
        if mime in ("application/dtmf-relay", "application/dtmf"):
            if digit is None or digit not in _DTMF_DIGITS:
                self.respond(tx, 400, "Bad DTMF body", now=now)
                return
            self.respond(tx, 200, now=now)
            self.emit(DtmfInfoReceived(leg.ref, digit, duration))
            return
        self.respond(tx, 200, now=now)  # other INFO bodies: accepted and ignored

    # --- REFER / NOTIFY (RFC 3515) -------------------------------------------------------------

    def refer(self, call: CallRef, target: str, *, now: float) -> None:
        """Blind transfer: REFER the peer to ``target``; progress comes as ReferProgress."""
        leg = self._leg(call)
        leg.require("refer")
        d = leg.dialog
        assert d is not None
        leg.refer_out = True
        # RFC 3515 2.1: Refer-To may hold any URI; tel: (RFC 3966) goes as written.
        stripped = target.strip().strip("<>")
        refer_to = SipUri.parse(stripped) if stripped[:4].lower() == "tel:" else \
            parse_target(target)
        self._send_in_dialog(leg, "REFER", now, headers=[
            ("Refer-To", f"<{refer_to}>"),
            ("Referred-By", f"<{d.local_uri.uri}>"),
            ("Contact", self.contact_value(leg.transport))])

    def _incoming_refer(self, leg: CallLeg, tx: ServerTransaction, req: SipRequest,
                        now: float) -> None:
        refer_to = req.refer_to
        if refer_to is None or len(req.headers.get_all("Refer-To")) != 1:
            self.respond(tx, 400, "Missing or multiple Refer-To", now=now)
            return
        if leg.refer_in is not None:
            self.respond(tx, 500, now=now, headers=[("Retry-After", "1")])
            return
        tx.owner = leg
        leg.refer_in = tx
        self.emit(ReferReceived(leg.ref, refer_to, req.headers.get("Referred-By")))

    def accept_refer(self, call: CallRef, *, now: float) -> None:
        """202 Accepted, then the first NOTIFY (100 Trying) of the implicit subscription."""
        leg = self._leg(call)
        if leg.refer_in is None:
            raise LocalProtocolError("no REFER to accept")
        self.respond(leg.refer_in, 202, now=now,
                     headers=[("Contact", self.contact_value(leg.transport))])
        leg.refer_in = None
        leg.refer_sub = True
        self._send_notify(leg, 100, now)

    def reject_refer(self, call: CallRef, status: int, *, now: float) -> None:
        leg = self._leg(call)
        if leg.refer_in is None:
            raise LocalProtocolError("no REFER to reject")
        self.respond(leg.refer_in, status, now=now)
        leg.refer_in = None

    def notify_refer_progress(self, call: CallRef, status: int, *, now: float) -> None:
        """NOTIFY the referrer how the new call goes (sipfrag); final from 200 on.

        A no-op (counted in ``stats["notify_skipped"]``) once the referrer has hung up:
        the subscription died with the dialog, and that race is normal after a transfer.
        """
        leg = self._leg(call)
        if not leg.refer_sub:
            raise LocalProtocolError("no accepted REFER on this call")
        if leg.state is CallState.TERMINATED:
            self.stats["notify_skipped"] += 1
            return
        self._send_notify(leg, status, now)

    def _send_notify(self, leg: CallLeg, status: int, now: float) -> None:
        final = status >= 200
        state = "terminated;reason=noresource" if final else "active;expires=60"
        if final:
            leg.refer_sub = False
        body = f"SIP/2.0 {status} {REASON_PHRASES.get(status, 'Unknown')}\r\n".encode()
        self._send_in_dialog(leg, "NOTIFY", now, headers=[
            ("Event", "refer"), ("Subscription-State", state),
            ("Contact", self.contact_value(leg.transport)),
            ("Content-Type", "message/sipfrag;version=2.0")], body=body)

    def _incoming_notify(self, leg: CallLeg, tx: ServerTransaction, req: SipRequest,
                         now: float) -> None:
        event = req.param_header("Event")
        if event is None or event.value.lower() != "refer" or not leg.refer_out:
            self.respond(tx, 481, now=now)  # RFC 6665 4.1.3: no such subscription
            return
        first = req.body.split(b"\n", 1)[0].decode("latin-1").strip()
        parts = first.split(" ", 2)
        status = uint(parts[1], 3) if len(parts) >= 2 else None
        if status is None or not parts[0].startswith("SIP/") or not 100 <= status <= 699:
            self.respond(tx, 400, "Bad sipfrag body", now=now)
            return
        sub = req.param_header("Subscription-State")
        final = status >= 200 or (sub is not None and sub.value.lower() == "terminated")
        self.respond(tx, 200, now=now)
        if final:
            leg.refer_out = False
        self.emit(ReferProgress(leg.ref, status, final))

    # ------------------------------------------------------------------------------------------
    # responses and timeouts of our requests

    def _call_response(self, leg: CallLeg, tx: ClientTransaction, resp: SipResponse,
                       now: float) -> None:
        method = tx.method
        status = resp.status
        if method == "INVITE":
            if not tx.request.to.tag:  # the initial INVITE (or its resends); re-INVITEs have one
                self._invite_response(leg, tx, resp, now)
            else:
                self._reinvite_response(leg, tx, resp, now)
        elif method == "REFER" and status >= 300:
            leg.refer_out = False
            self.emit(ReferRejected(leg.ref, status))
        elif method == "UPDATE" and 200 <= status < 300:
            self._se_from_2xx(leg, resp, now)
        elif status in (408, 481) and method != "BYE" and leg.state is CallState.CONFIRMED:
            # RFC 3261 12.2.1.2: 481/408 to a request inside the dialog ends the dialog.
            if status == 408:
                self._send_bye(leg, now)
            self._end(leg, now, CallTerminated(leg.ref, f"{method} got {status}", False, status))

    def _call_timeout(self, leg: CallLeg, tx: ClientTransaction, now: float,
                      status: int) -> None:
        method = tx.method
        reason = REASON_PHRASES.get(status, "Timeout")
        if method == "INVITE" and tx is leg.invite_tx:
            self.timer_queue.cancel(leg, "C")
            if leg.state in (CallState.OUT_CALLING, CallState.OUT_PROCEEDING):
                self._end(leg, now, CallFailed(leg.ref, status, reason))
            else:
                self._end(leg, now)
        elif method == "INVITE" and tx is leg.reinvite_tx:
            leg.reinvite_tx = None
            self._send_bye(leg, now)
            self._end(leg, now, CallTerminated(leg.ref, "re-INVITE timed out", False, status))
        elif method == "UPDATE" and leg.state is CallState.CONFIRMED:
            self._send_bye(leg, now)
            self._end(leg, now, CallTerminated(leg.ref, "UPDATE timed out", False, status))
        elif method == "REFER":
            leg.refer_out = False
            self.emit(ReferRejected(leg.ref, status))

    # ------------------------------------------------------------------------------------------
    # introspection

    def call_info(self, call: CallRef) -> dict[str, Any]:
        """State, SIP Call-ID, tags, remote target and address of a call (for logs, tests)."""
        leg = self._leg(call)
        d = leg.dialog
        inv = leg.invite
        return {
            "state": leg.state.name.lower(),
            "direction": "outbound" if leg.outbound else "inbound",
            "sip_call_id": d.call_id if d else (inv.call_id if inv else None),
            "local_tag": leg.local_tag,
            "remote_tag": d.remote_tag if d else None,
            "remote_target": str(d.remote_target) if d else None,
            "remote_addr": leg.remote_addr,
            "route_set": list(d.route_set) if d else [],
            "local_cseq": d.local_seq if d else None,
            "remote_cseq": d.remote_seq if d else None,
            "session_expires": leg.se_interval or None,
            "we_refresh": leg.se_we_refresh if leg.se_interval else None,
            "transport": leg.transport,
        }

    def has_calls_with(self, addr: tuple[str, int]) -> bool:
        """True if a call not yet ended was set up with (or is sent to) ``addr``: its TCP
        connection is not idle however long it is quiet (RFC 5923 reuse, RFC 3261 18.3)."""
        for ref in self._live:
            leg = self._calls.get(ref)
            if leg is not None and addr in (leg.remote_addr, leg.dest):
                return True
        return False

    def live_calls(self) -> int:
        """Calls not yet ended (what admission's ``max_calls`` counts)."""
        return len(self._live)

    @property
    def calls(self) -> list[CallRef]:
        """Handles of the calls not yet forgotten."""
        return list(self._calls)


