"""The UserAgent: answers inbound calls (each handed to an application coroutine) and places
outbound ones, registered to a PBX or as a trunk endpoint.

It glues the sans-IO :class:`SipEndpoint` (through :class:`SipTransportLayer`), SDP
offer/answer (:mod:`telephony.sdp`) and the media engine together, and writes the call
event log.  Decisions about SIP live in the endpoint; decisions about media in
:class:`~telephony.media.CallMedia`; this module only wires them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from telephony.aio.call import Call, CallState
from telephony.aio.logcontext import call_context, current_call_id
from telephony.aio.media_engine import MediaEngine, MediaEngineConfig
from telephony.aio.memory import TrimPolicy, malloc_trim, trim_available
from telephony.aio.sip_transport import SipTrace, SipTransportLayer, bind_ephemeral
from telephony.errors import (
    CallFailed,
    LocalProtocolError,
    MediaError,
    SdpError,
    SipParseError,
)
from telephony.eventlog import EventSink, NullEventLog
from telephony.events import (
    CallEvent,
    DtmfReceived,
    HoldChanged,
    MediaFailed,
    MediaTimeout,
    PromptFinished,
    PromptStarted,
    RemoteHangup,
)
from telephony.media import CallMedia, MediaConfig
from telephony.prompts import PromptLibrary
from telephony.sdp import NegotiatedMedia, SdpSession, SessionDescription, parse_answer
from telephony.sip import events as sev
from telephony.sip.auth import DigestCredentials
from telephony.sip.endpoint import SipConfig, SipEndpoint
from telephony.sip.transfer_policy import TransferDecision, TransferPolicy, normalise_number

log = logging.getLogger(__name__)

_TRIM_CHECK = 2.0
"""Seconds between looks at the load for :meth:`UserAgent._check_memory`."""

CallHandler = Callable[[Call], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class UserAgentConfig:
    sip: SipConfig = field(default_factory=SipConfig)
    media: MediaEngineConfig = field(default_factory=MediaEngineConfig)
    media_defaults: MediaConfig = field(default_factory=MediaConfig)
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    listen_tcp: bool = True
    auto_answer: bool = True
    answer_delay: float = 0.0
    """With ``auto_answer``: ring (180) for this many seconds before answering (0: at once)."""
    sip_trace: SipTrace | None = None
    """Called with every SIP message received and sent (debugging, capture tests)."""
    transfer_policy: TransferPolicy = field(default_factory=TransferPolicy)
    """Which targets transfers may call (inbound REFER, ``Call.transfer``, its bridge
    fallback, ``dial(..., transfer=True)``); inbound REFER is refused (403) by default."""
    tel_gateway: str | None = None
    """``host[:port]`` that ``tel:`` targets are sent to as ``sip:NUMBER@gateway`` (RFC 3966
    has no host); None: a ``tel:`` target fails with 416."""


def _uri_user(uri: str) -> str:
    """``sip:alice@host`` -> ``alice`` (or the whole URI if it has no user part)."""
    body = uri.split(":", 1)[-1]
    return body.split("@", 1)[0] if "@" in body else body


class UserAgent:
    """Dialtone's SIP user agent on one socket pair (UDP + TCP)."""

    def __init__(self, config: UserAgentConfig | None = None, *,
                 handler: CallHandler | None = None, events: EventSink | None = None,
                 prompts: PromptLibrary | None = None, rng: random.Random | None = None) -> None:
        self.config = config or UserAgentConfig()
        self.handler = handler
        self.events: EventSink = events or NullEventLog()
        self.prompts = prompts or PromptLibrary()
        self.rng = rng or random.Random()
        self.calls: dict[str, Call] = {}
        self._sdp: dict[str, SdpSession] = {}
        self._pending_dials: dict[str, asyncio.Future[Call]] = {}
        self._registrations: dict[str, asyncio.Future[bool]] = {}
        self._reinvites: dict[str, asyncio.Future[int]] = {}
        self._bridged: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started_at: dict[str, float] = {}
        # Inbound calls between IncomingCall and their Call object (the RTP port is being
        # opened), with the CallTerminated that arrived meanwhile, if any.
        self._setting_up: dict[str, sev.CallTerminated | None] = {}
        # Calls to end, drained by one loop (_run_teardown): never ended re-entrantly.
        self._teardown: deque[_Teardown] = deque()
        self._tearing_down = False
        self._teardown_hold = 0
        self.endpoint: SipEndpoint
        self.transport: SipTransportLayer
        self.media: MediaEngine
        self.loop: asyncio.AbstractEventLoop
        self.local_addr: tuple[str, int] = ("", 0)
        self._trim_policy = TrimPolicy()
        self._trim_timer: asyncio.TimerHandle | None = None
        self.heap_trims = 0
        """Times malloc's free heap was given back after a burst (glibc only)."""

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self.loop = asyncio.get_running_loop()
        udp_sock = tcp_sock = None
        if self.config.sip.port == 0:
            # the OS picks the port and we hold it; Via and Contact carry the real one
            udp_sock, tcp_sock = bind_ephemeral(self.config.sip.host,
                                                tcp=self.config.listen_tcp)
            port = udp_sock.getsockname()[1]
            self.config = replace(self.config, sip=replace(self.config.sip, port=port))
        self.endpoint = SipEndpoint(self.config.sip, rng=self.rng)
        self.transport = SipTransportLayer(self.endpoint, self._on_sip_event,
                                           trace=self.config.sip_trace)
        cfg = self.config.sip
        self.local_addr = await self.transport.listen_udp(cfg.host, cfg.port, sock=udp_sock)
        if self.config.listen_tcp:
            await self.transport.listen_tcp(cfg.host, self.local_addr[1], sock=tcp_sock)
        self.media = MediaEngine(self.config.media)
        self.media.after_tick.append(self._drain_media_events)
        self.media.after_tick.append(self._observe_tick)
        if trim_available():
            self._trim_timer = self.loop.call_later(_TRIM_CHECK, self._check_memory)
        return self.local_addr

    def _check_memory(self) -> None:
        """Every few seconds: once a burst of calls is over (the calls and transactions held
        fell to half their peak, and stayed there), give the heap malloc freed back to the
        system (see telephony.aio.memory)."""
        load = self.endpoint.footprint + len(self.media.mixer.calls)
        if self._trim_policy.observe(load, now=self.now()):
            took = malloc_trim()
            self.heap_trims += 1
            log.info("heap trimmed after load fell to %d (%.1f ms)", load,
                     (took or 0.0) * 1000)
        self._trim_timer = self.loop.call_later(_TRIM_CHECK, self._check_memory)

    def _observe_tick(self, due: float) -> None:
        """Admission's live load signal: how late the media tick ran (issue 12 finding 4)."""
        self.endpoint.admission.observe_lateness(self.media.clock() - due, now=self.now())

    async def close(self) -> None:
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        for call in list(self.calls.values()):
            if not call.ended:
                self._hangup(call, "shutdown")
        self.transport.flush()
        await asyncio.sleep(0.05)
        for task in list(self._tasks):
            task.cancel()
        await self.media.close()
        await self.transport.close()

    def now(self) -> float:
        return self.loop.time()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- media events --------------------------------------------------------------------------

    def _drain_media_events(self, now: float) -> None:
        """Every call's media events, delivered; calls whose media timed out or failed are
        queued for teardown and ended together after the loop (see :meth:`_run_teardown`)."""
        self._teardown_hold += 1
        try:
            for call in list(self.calls.values()):
                media = call.media
                while (event := media.next_event()) is not None:
                    self._deliver(call, event)
                    if call.ended:
                        continue
                    if isinstance(event, MediaTimeout):
                        self._hangup(call, "media_timeout")
                    elif isinstance(event, MediaFailed):
                        with call_context(call.ref):
                            log.error("call %s: media failed (%s): hanging up", call.ref,
                                      event.cause)
                        self._hangup(call, "media_error")
        finally:
            self._teardown_hold -= 1
        self._run_teardown()

    def _deliver(self, call: Call, event: CallEvent) -> None:
        if isinstance(event, DtmfReceived):
            self.events.emit({"type": "dtmf", "call_id": call.ref, "digit": event.digit,
                              "duration_ms": event.duration_ms, "source": event.source})
        elif isinstance(event, PromptStarted):
            self.events.emit({"type": "prompt_started", "call_id": call.ref,
                              "prompt": event.prompt})
        elif isinstance(event, PromptFinished):
            self.events.emit({"type": "prompt_finished", "call_id": call.ref,
                              "prompt": event.prompt, "interrupted": event.interrupted})
        call._dispatch(event)

    # --- SIP events ----------------------------------------------------------------------------

    def _on_sip_event(self, ev: sev.SipEvent) -> None:
        if isinstance(ev, sev.IncomingCall):
            self._setting_up[ev.call] = None  # before the task runs: a CANCEL may come first
            self._spawn(self._incoming(ev))
        elif isinstance(ev, sev.CallTerminated):
            call = self.calls.get(ev.call)
            if call is None and ev.call in self._setting_up:
                # CANCEL (or BYE) before _incoming has built the Call: it finishes the job.
                self._setting_up[ev.call] = ev
            if call is not None:
                # a BYE from the peer is logged as "remote_bye"; other ends keep their reason
                remote_bye = ev.by_remote and ev.reason.lower() == "bye"
                self._ended(call, "remote_bye" if remote_bye else ev.reason,
                            by_remote=ev.by_remote, status=ev.status)
            dial = self._pending_dials.pop(ev.call, None)
            if dial is not None and not dial.done():
                dial.set_exception(CallFailed(ev.reason, ev.status or 0))
        elif isinstance(ev, sev.CallConfirmed):
            call = self.calls.get(ev.call)
            if call is not None:
                self._late_answer(call, ev.body)
        elif isinstance(ev, sev.DtmfInfoReceived):
            call = self.calls.get(ev.call)
            if call is not None:
                call.media.receive_info_dtmf(ev.digit, ev.duration_ms, now=self.now())
                self._drain_media_events(self.now())
        elif isinstance(ev, sev.ReinviteReceived):
            self._reoffer(ev.call, ev.offer, update=False)
        elif isinstance(ev, sev.UpdateReceived):
            if ev.offer:
                self._reoffer(ev.call, ev.offer, update=True)
        elif isinstance(ev, sev.CallProgress):
            call = self.calls.get(ev.call)
            if call is not None:
                self.events.emit({"type": "call_progress", "call_id": call.ref,
                                  "status": ev.status, "reason": ev.reason})
        elif isinstance(ev, sev.CallAnswered):
            self._outbound_answered(ev)
        elif isinstance(ev, sev.CallFailed):
            self._outbound_failed(ev)
        elif isinstance(ev, sev.ReferProgress):
            call = self.calls.get(ev.call)
            if call is not None and ev.final:
                call._refer_done(ev.status)
        elif isinstance(ev, sev.ReferRejected):
            call = self.calls.get(ev.call)
            if call is not None:
                call._refer_done(ev.status, rejected=True)
        elif isinstance(ev, sev.ReferReceived):
            self._refer_received(ev)
        elif isinstance(ev, sev.ReinviteResult):
            reinvite = self._reinvites.pop(ev.call, None)
            call = self.calls.get(ev.call)
            if call is not None and 200 <= ev.status < 300 and ev.body:
                offer = call.vars.pop("_reoffer", None)
                try:
                    if offer is not None:
                        self._apply(call, parse_answer(offer, SessionDescription.parse(ev.body)))
                except SdpError as exc:
                    log.info("bad SDP answer to our re-INVITE on %s: %s", ev.call, exc)
            if reinvite is not None and not reinvite.done():
                reinvite.set_result(ev.status)
        elif isinstance(ev, sev.RegistrationChanged):
            registration = self._registrations.get(ev.reg)
            if registration is not None and not registration.done():
                registration.set_result(ev.registered)
            self.events.emit({"type": "registration", "reg": ev.reg,
                              "registered": ev.registered, "status": ev.status,
                              "expires": ev.expires})

    # --- inbound -------------------------------------------------------------------------------

    async def _incoming(self, ev: sev.IncomingCall) -> None:
        ref = ev.call
        # this task is the call's: its log lines, and its handler's (a task created from
        # here inherits the context), carry the call's reference (telephony.aio.logcontext)
        current_call_id.set(ref)
        log.info("inbound call %s from %s:%d (Call-ID %s)", ref, ev.remote_addr[0],
                 ev.remote_addr[1], ev.request.call_id[:80])
        now = self.now()
        session = SdpSession(session_id=self.rng.getrandbits(48) or 1, username="dialtone")
        host = self.media.advertised_host
        media = CallMedia(self.config.media_defaults, now=now, rng=self.rng,
                          wallclock_offset=time.time() - now)
        try:
            port = await self.media.open(media)
        except Exception as exc:  # noqa: BLE001 - no port: the call cannot have media; logged
            log.warning("rejecting call %s: %s", ref, exc)
            if self._setting_up.pop(ref, None) is None:
                self.endpoint.reject(ref, 503, now=self.now())
                self.transport.flush()
            return
        early_end = self._setting_up.pop(ref, None)
        if early_end is not None:
            # RFC 3261 9.2: the CANCEL came while the port was opening; the endpoint has
            # already answered 487.  Log the call as started and ended, and free the port.
            self.media.close_media(media)
            self.events.emit({"type": "call_started", "call_id": ref, "direction": "inbound",
                              "caller": _uri_user(ev.from_uri), "called": _uri_user(ev.to_uri),
                              "sip_call_id": ev.request.call_id,
                              "remote": f"{ev.remote_addr[0]}:{ev.remote_addr[1]}"})
            self.events.emit({"type": "call_ended", "call_id": ref, "cause": early_end.reason,
                              "status": early_end.status, "by_remote": early_end.by_remote,
                              "duration_s": round(self.now() - now, 3),
                              "rtp": {"received": 0, "lost": 0, "jitter_ms": 0.0, "sent": 0}})
            return
        late_offer = not ev.offer.strip()
        try:
            if late_offer:
                answer = session.build_offer(address=host, port=port, codecs=self.config.codecs)
                negotiated = None
            else:
                offer = SessionDescription.parse(ev.offer)
                answer, negotiated = session.answer_offer(
                    offer, address=host, port=port, supported=self.config.codecs)
        except SdpError as exc:
            self.media.close_media(media)
            self.endpoint.reject(ref, exc.status_hint if exc.status_hint == 488 else 400,
                                 exc.reason[:80], now=self.now())
            self.transport.flush()
            self.events.emit({"type": "call_rejected", "sip_call_id": ev.request.call_id,
                              "status": 488, "reason": exc.reason})
            return
        call = Call(self, ref, media, direction="inbound", caller=_uri_user(ev.from_uri),
                    called=_uri_user(ev.to_uri), sip_call_id=ev.request.call_id,
                    remote=ev.remote_addr)
        call.vars["caller_display"] = ev.from_display
        self.calls[ref] = call
        self._sdp[ref] = session
        self._started_at[ref] = now
        if negotiated is not None:
            self._apply(call, negotiated)
        self.events.emit({"type": "call_started", "call_id": ref, "direction": "inbound",
                          "caller": call.caller, "called": call.called,
                          "sip_call_id": call.sip_call_id,
                          "remote": f"{ev.remote_addr[0]}:{ev.remote_addr[1]}"})
        call.vars["_answer_sdp"] = answer.serialize().encode()
        if late_offer:
            call.vars["_late_offer"] = answer  # RFC 3261 13.2.1: the ACK brings the answer
        if self.config.auto_answer:
            if self.config.answer_delay > 0:
                self.endpoint.ringing(ref, now=self.now())
                self.transport.flush()
                await asyncio.sleep(self.config.answer_delay)
            await self._answer(call)
        if self.handler is not None:
            self._spawn(self._run_handler(call))

    async def _answer(self, call: Call) -> None:
        if call.state is not CallState.RINGING:
            return
        body = call.vars.pop("_answer_sdp", b"")
        try:
            self.endpoint.answer(call.ref, body, now=self.now())
        except LocalProtocolError as exc:
            # the caller gave up (CANCEL) while we were setting the call up
            log.info("not answering %s: %s", call.ref, exc.reason)
            self.transport.flush()
            return
        self.transport.flush()
        call._mark_answered()
        self.events.emit({"type": "call_answered", "call_id": call.ref})

    def _late_answer(self, call: Call, body: bytes) -> None:
        """The ACK of an INVITE (or re-INVITE) that had no SDP: it carries the answer to the
        offer we put in our 200 (RFC 3261 13.2.1, 14.2; RFC 3264 7); point the media at it."""
        offer = call.vars.pop("_late_offer", None)
        if offer is None:
            return
        if not body.strip():
            # RFC 3261 13.3.1.4 / 14.1: no answer in the ACK is a protocol error: hang up.
            log.info("call %s: ACK without the answer to our offer: hanging up", call.ref)
            self._hangup(call, "bad_sdp")
            return
        try:
            self._apply(call, parse_answer(offer, SessionDescription.parse(body)))
        except SdpError as exc:
            log.info("call %s: bad SDP answer in ACK (%s): hanging up", call.ref, exc)
            self._hangup(call, "bad_sdp")

    async def _run_handler(self, call: Call) -> None:
        assert self.handler is not None
        try:
            await self.handler(call)
            if call.media.bridged_to is not None:
                # the application handed the call to a bridge: it lives until a leg hangs up
                await call.wait_ended()
        except Exception:
            log.exception("call handler failed for %s", call.ref)
        finally:
            if not call.ended:
                self._hangup(call, "normal")

    def _apply(self, call: Call, neg: NegotiatedMedia) -> None:
        """Point the call's media at what SDP settled (codec, PT, DTMF PT, remote, hold)."""
        media = call.media
        cfg = replace(media.config, codec=neg.codec.upper(), payload_type=neg.payload_type,
                      telephone_event_pt=neg.telephone_event_pt)
        media.reconfigure(cfg)
        if neg.remote_port and neg.remote_address not in ("0.0.0.0", "::"):
            media.set_remote((neg.remote_address, neg.remote_port),
                             signalling_host=call.remote[0] or None)
            media.set_remote_rtcp((neg.remote_rtcp_address or neg.remote_address,
                                   neg.remote_rtcp_port))
        was_sending = media.sending
        media.sending = neg.direction in ("sendrecv", "sendonly") and not neg.on_hold
        if was_sending != media.sending:
            call._dispatch(HoldChanged(on_hold=not media.sending))

    def _reoffer(self, ref: sev.CallRef, offer_body: bytes, *, update: bool) -> None:
        call = self.calls.get(ref)
        session = self._sdp.get(ref)
        if call is None or session is None:
            return
        port = getattr(call.media, "local_port", 0)
        if not update and not offer_body.strip():
            # RFC 3261 14.2: a re-INVITE without an offer: we offer in the 2xx and the
            # answer comes in the ACK (CallConfirmed -> _late_answer).
            reoffer = session.build_offer(address=self.media.advertised_host, port=port,
                                          codecs=self.config.codecs)
            call.vars["_late_offer"] = reoffer
            self.endpoint.answer_reinvite(ref, reoffer.serialize().encode(), now=self.now())
            return
        try:
            offer = SessionDescription.parse(offer_body)
            answer, neg = session.answer_offer(offer, address=self.media.advertised_host,
                                               port=port, supported=self.config.codecs)
        except SdpError as exc:
            if update:
                self.endpoint.reject_update(ref, 488, now=self.now())
            else:
                self.endpoint.reject_reinvite(ref, 488, now=self.now())
            log.info("re-offer on %s refused: %s", ref, exc.reason)
            return
        self._apply(call, neg)
        self.events.emit({"type": "hold" if neg.on_hold else "unhold", "call_id": ref})
        body = answer.serialize().encode()
        if update:
            self.endpoint.answer_update(ref, body, now=self.now())
        else:
            self.endpoint.answer_reinvite(ref, body, now=self.now())

    def check_transfer(self, target: str, *, call_ref: str | None = None,
                       refer: bool = False) -> TransferDecision:
        """Ask the node's transfer policy about ``target``; a refusal is logged and emitted
        as a ``transfer_refused`` event (the caller then answers 403 or raises)."""
        policy = self.config.transfer_policy
        decision = policy.permits_refer(target) if refer else policy.permits(target)
        if not decision.allowed:
            log.warning("transfer to %r refused (%s)%s", target[:200], decision.reason,
                        " [inbound REFER]" if refer else "")
            self.events.emit({"type": "transfer_refused", "call_id": call_ref,
                              "target": target[:200], "reason": decision.reason,
                              "refer": refer})
        return decision

    def _refer_received(self, ev: sev.ReferReceived) -> None:
        """A peer asks us to transfer (RFC 3515): only to targets the policy permits."""
        target = str(ev.refer_to.uri)
        decision = self.check_transfer(target, call_ref=ev.call, refer=True)
        if not decision.allowed:
            # RFC 3515 2.4.2: a REFER the UA will not act on is refused (403 Forbidden).
            self.endpoint.reject_refer(ev.call, 403, now=self.now())
            self.transport.flush()
            return
        self._spawn(self._obey_refer(ev, target))

    async def _obey_refer(self, ev: sev.ReferReceived, target: str) -> None:
        """Call the REFER's target and report progress by NOTIFY (RFC 3515 2.4.4)."""
        now = self.now()
        self.endpoint.accept_refer(ev.call, now=now)
        self.transport.flush()
        try:
            new_call = await self.dial(target, timeout=30.0, transfer=True)
        except CallFailed as exc:
            self._notify_refer(ev.call, exc.status or 503)
            return
        self._notify_refer(ev.call, 200)
        old = self.calls.get(ev.call)
        if old is not None:
            self.events.emit({"type": "transferred", "call_id": old.ref, "to": target,
                              "new_call_id": new_call.ref})

    def _notify_refer(self, ref: sev.CallRef, status: int) -> None:
        try:
            self.endpoint.notify_refer_progress(ref, status, now=self.now())
        except LocalProtocolError as exc:  # the referring call is gone (reaped)
            log.info("no NOTIFY for the REFER on %s: %s", ref, exc.reason)
        self.transport.flush()

    def _sip_target(self, target: str) -> str:
        """``tel:`` targets go to the configured gateway (RFC 3966 19.1 / RFC 3261 19.1.6);
        raises :class:`CallFailed` (416) without one, or for a target that does not parse."""
        text = target.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1]
        if text[:4].lower() == "tel:":
            gateway = self.config.tel_gateway
            number = normalise_number(text[4:].split(";", 1)[0])
            if gateway is None or not number:
                raise CallFailed(f"cannot call {text[:80]!r}: no tel: gateway configured", 416)
            return f"sip:{number}@{gateway};user=phone"
        return text

    # --- outbound ------------------------------------------------------------------------------

    async def dial(self, target: str, *, timeout: float = 60.0, caller: str | None = None,
                   credentials: DigestCredentials | None = None,
                   headers: tuple[tuple[str, str], ...] = (),
                   outbound_proxy: tuple[str, int] | None = None,
                   transfer: bool = False, media_config: MediaConfig | None = None) -> Call:
        """Place a call; returns the answered :class:`Call` or raises :class:`CallFailed`
        (status 486 busy, 408/480 no answer, 487 cancelled at our timeout, 503 failure...).

        ``transfer=True`` (a REFER being obeyed, a transfer's bridge leg) first checks the
        node's transfer policy: a target outside it fails with 403 before anything is
        opened.  Whatever fails, the RTP/RTCP ports opened for the call are closed.
        ``media_config``: this call's media settings instead of ``media_defaults`` (codec
        and payload types are still what SDP settles).
        """
        if transfer and not (decision := self.check_transfer(target)).allowed:
            raise CallFailed(f"transfer target refused: {decision.reason}", decision.status)
        sip_target = self._sip_target(target)
        now = self.now()
        media = CallMedia(media_config or self.config.media_defaults, now=now, rng=self.rng,
                          wallclock_offset=time.time() - now)
        try:
            port = await self.media.open(media)
        except (MediaError, OSError) as exc:  # no RTP port: no media, no call
            raise CallFailed(f"no RTP port: {exc}", 503) from exc
        try:
            session = SdpSession(session_id=self.rng.getrandbits(48) or 1, username="dialtone")
            offer = session.build_offer(address=self.media.advertised_host, port=port,
                                        codecs=self.config.codecs)
            from_uri = None
            if caller is not None:
                host, sport = self.local_addr
                from_uri = caller if ":" in caller else f"sip:{caller}@{host}:{sport}"
            ref = self.endpoint.invite(sip_target, body=offer.serialize().encode(), now=now,
                                       from_uri=from_uri, headers=headers,
                                       credentials=credentials, outbound_proxy=outbound_proxy)
        except (SipParseError, LocalProtocolError, SdpError) as exc:
            # RFC 3261 8.1.3.1-like local failure: nothing was sent; free the ports now.
            self.media.close_media(media)
            raise CallFailed(f"cannot call {target[:80]!r}: {exc}",
                             416 if isinstance(exc, SipParseError) else 500) from exc
        except BaseException:
            self.media.close_media(media)
            raise
        info = self.endpoint.call_info(ref)
        call = Call(self, ref, media, direction="outbound", caller=caller or "dialtone",
                    called=_uri_user(sip_target), sip_call_id=str(info.get("sip_call_id", "")),
                    remote=("", 0))
        call.vars["_offer"] = offer
        self.calls[ref] = call
        self._sdp[ref] = session
        self._started_at[ref] = now
        fut: asyncio.Future[Call] = self.loop.create_future()
        self._pending_dials[ref] = fut
        self.events.emit({"type": "call_started", "call_id": ref, "direction": "outbound",
                          "caller": call.caller, "called": call.called, "target": target,
                          "sip_call_id": call.sip_call_id})
        self.transport.flush()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            # we give up (CANCEL): the failure this causes is ours to report, not the future's
            self._pending_dials.pop(ref, None)
            fut.cancel()
            self._hangup(call, "no_answer")
            raise CallFailed("no answer", 408) from None
        except BaseException:
            # cancelled by our caller (or anything unexpected): the call must not live on
            # holding its ports (issue 12 finding 2)
            self._pending_dials.pop(ref, None)
            fut.cancel()
            if not call.ended:
                self._hangup(call, "cancelled")
            raise
        finally:
            self._pending_dials.pop(ref, None)

    def _outbound_answered(self, ev: sev.CallAnswered) -> None:
        call = self.calls.get(ev.call)
        if call is None:
            return
        offer = call.vars.pop("_offer", None)
        try:
            if offer is None:
                raise SdpError("no offer")
            neg = parse_answer(offer, SessionDescription.parse(ev.body))
            self._apply(call, neg)
        except SdpError as exc:
            log.warning("outbound call %s: bad SDP answer (%s): hanging up", call.ref, exc)
            fut = self._pending_dials.get(ev.call)
            self._hangup(call, "bad_sdp")
            if fut is not None and not fut.done():
                fut.set_exception(CallFailed(f"bad SDP answer: {exc}", 488))
            return
        call._mark_answered()
        self.events.emit({"type": "call_answered", "call_id": call.ref})
        fut = self._pending_dials.get(ev.call)
        if fut is not None and not fut.done():
            fut.set_result(call)

    def _outbound_failed(self, ev: sev.CallFailed) -> None:
        call = self.calls.get(ev.call)
        self.events.emit({"type": "call_failed", "call_id": ev.call, "status": ev.status,
                          "reason": ev.reason})
        if call is not None:
            self._ended(call, _failure_cause(ev.status), by_remote=True, status=ev.status)
        fut = self._pending_dials.get(ev.call)
        if fut is not None and not fut.done():
            fut.set_exception(CallFailed(ev.reason, ev.status))

    async def register(self, registrar: str, *, aor: str,
                       credentials: DigestCredentials | None = None, expires: int = 3600,
                       timeout: float = 10.0) -> bool:
        reg = self.endpoint.register(registrar, aor=aor, credentials=credentials,
                                     expires=expires, now=self.now())
        fut: asyncio.Future[bool] = self.loop.create_future()
        self._registrations[reg] = fut
        self.transport.flush()
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            self._registrations.pop(reg, None)

    # --- call control used by Call -----------------------------------------------------------

    def _hangup(self, call: Call, reason: str) -> None:
        """End ``call`` from our side (BYE, CANCEL or 480): queued, see :meth:`_run_teardown`."""
        if call.ended:
            return
        self._teardown.append(_Teardown(call, reason, by_remote=False, status=None,
                                        send_bye=True))
        self._run_teardown()

    def _send_info(self, call: Call, digit: str, duration_ms: int) -> None:
        self.endpoint.send_info_dtmf(call.ref, digit, duration_ms, now=self.now())
        self.transport.flush()

    def _refer(self, call: Call, target: str) -> None:
        self.endpoint.refer(call.ref, target, now=self.now())
        self.transport.flush()

    async def hold(self, call: Call, on_hold: bool, *, timeout: float = 10.0) -> int:
        """Put the peer on hold (re-INVITE with a=sendonly) or take it off (sendrecv); our
        o= version increments each time the SDP changes.  Returns the re-INVITE's status."""
        session = self._sdp[call.ref]
        port = getattr(call.media, "local_port", 0)
        offer = session.build_offer(address=self.media.advertised_host, port=port,
                                    codecs=self.config.codecs,
                                    direction="sendonly" if on_hold else "sendrecv")
        call.vars["_reoffer"] = offer
        fut: asyncio.Future[int] = self.loop.create_future()
        self._reinvites[call.ref] = fut
        self.endpoint.reinvite(call.ref, offer.serialize().encode(), now=self.now())
        self.transport.flush()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._reinvites.pop(call.ref, None)

    def bridge(self, a: Call, b: Call) -> None:
        """Connect two legs' audio (each hears the other), for transfers REFER can't do."""
        a.media.bridge(b.media)
        self._bridged[a.ref] = b.ref
        self._bridged[b.ref] = a.ref
        self.events.emit({"type": "bridged", "call_id": a.ref, "other_call_id": b.ref})

    def _ended(self, call: Call, cause: str, *, by_remote: bool, status: int | None) -> None:
        """``call`` has ended (the peer's BYE, a failure, or our hangup): queued, see
        :meth:`_run_teardown`."""
        if call.ended:
            return
        self._teardown.append(_Teardown(call, cause, by_remote=by_remote, status=status,
                                        send_bye=False))
        self._run_teardown()

    # --- teardown: a queue drained in one loop ---------------------------------------------
    #
    # Ending a call sends a BYE (transport.flush), and flushing dispatches the endpoint's
    # events, which may end other calls (their CallTerminated, a bridge's other leg, media
    # timeouts found meanwhile).  Done on the stack, each of those nested the next: with a
    # few hundred calls ending in one tick the recursion overflowed and left calls
    # half-ended, streaming RTP for ever.  So every end is queued, and one loop (the
    # outermost caller's) ends them all, flushing once per round.

    def _run_teardown(self) -> None:
        """End every queued call, unless a loop further up the stack is already doing it."""
        if self._teardown_hold or self._tearing_down:
            return
        self._tearing_down = True
        try:
            while self._teardown:
                while self._teardown:
                    self._end_one(self._teardown.popleft())
                # this round's BYEs leave; the events they cause queue more ends (or none)
                self.transport.flush()
        finally:
            self._tearing_down = False

    def _end_one(self, item: _Teardown) -> None:
        call = item.call
        if call.ended:
            return
        with call_context(call.ref):
            log.info("call %s ends: %s%s", call.ref, item.cause,
                     " (by the peer)" if item.by_remote else "")
            self._end_one_in_context(item, call)

    def _end_one_in_context(self, item: _Teardown, call: Call) -> None:
        now = self.now()
        try:
            if item.send_bye:
                try:
                    self.endpoint.hangup(call.ref, now=now, reason=item.cause)
                except LocalProtocolError as exc:
                    log.info("hangup of %s: %s", call.ref, exc.reason)
            # the call's own pending media events (a last digit...) before it ends
            while (event := call.media.next_event()) is not None:
                self._deliver(call, event)
            if item.by_remote:
                call._dispatch(RemoteHangup(item.cause))
        except Exception:  # whatever failed, the call must still end
            log.exception("error while ending call %s", call.ref)
        finally:
            call._mark_ended(item.cause)
            # the sockets close and the mixer forgets the call: nothing is sent after this
            self.media.close_media(call.media)
        started = self._started_at.pop(call.ref, now)
        stats = call.media.rx_stats
        self.events.emit({"type": "call_ended", "call_id": call.ref, "cause": item.cause,
                          "status": item.status, "by_remote": item.by_remote,
                          "duration_s": round(now - started, 3),
                          "rtp": {"received": stats.received, "lost": stats.lost,
                                  "jitter_ms": round(stats.jitter_ms, 2),
                                  "sent": call.media.counters["tx_packets"]}})
        self.calls.pop(call.ref, None)
        self._sdp.pop(call.ref, None)
        if call.media.bridged_to is not None:
            call.media.unbridge()
        # a bridge ends with either of its legs
        other_ref = self._bridged.pop(call.ref, None)
        if other_ref is not None:
            self._bridged.pop(other_ref, None)
            other_call = self.calls.get(other_ref)
            if other_call is not None and not other_call.ended:
                self._hangup(other_call, "bridge_ended")


@dataclass(frozen=True, slots=True)
class _Teardown:
    """One queued end of a call."""

    call: Call
    cause: str
    by_remote: bool
    status: int | None
    send_bye: bool
    """We end it (BYE/CANCEL/480 through the endpoint); False: it has ended already."""


def _failure_cause(status: int) -> str:
    if status in (486, 600):
        return "busy"
    if status in (408, 480, 487):
        return "no_answer"
    if status in (404, 484, 604):
        return "invalid_number"
    if status in (403, 603):
        return "rejected"
    return "failed"
