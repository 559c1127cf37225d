"""The Call API: what flows, the dialer and tests use to drive one call leg.

A :class:`Call` binds one SIP dialog (through the :class:`~telephony.aio.useragent.UserAgent`)
to one sans-IO :class:`~telephony.media.CallMedia` (ticked by the shared
:class:`~telephony.aio.media_engine.MediaEngine`).  Low-level, non-blocking methods
(``start_playback``, ``stop_playback``, ``set_listening``, ``events()``) serve the flow
engine, which owns its own timers; the awaitable ones (``play``, ``collect_digits``,
``listen``, ``record``, ``transfer``, ``hangup``) serve scripts and tests.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from telephony.errors import CallEnded, CallFailed, TransferFailed
from telephony.events import (
    CallEvent,
    DtmfReceived,
    PromptFinished,
    SpeechEnded,
    SpeechStarted,
)
from telephony.media import CallMedia, Recording
from telephony.sip.events import CallRef

if TYPE_CHECKING:
    from .useragent import UserAgent

log = logging.getLogger(__name__)


class CallState(enum.Enum):
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class PlayResult:
    prompt: str
    interrupted: bool
    """True if barge-in stopped the prompt."""


@dataclass(frozen=True, slots=True)
class DigitsResult:
    digits: str
    terminator: str | None
    reason: str
    """``max_digits``, ``terminator``, ``inter_digit_timeout``, ``no_input`` or ``hangup``."""
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Utterance:
    audio: bytes
    """8 kHz int16 PCM."""
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ReferResult:
    """How a REFER we sent ended (RFC 3515): the final status of the referred call as the
    peer's NOTIFY sipfrag reported it, or the REFER's own error response."""

    status: int
    """The sipfrag's final status (200: the target answered), the REFER's error response
    when ``refused``, or 408 when no final NOTIFY came in time."""
    refused: bool = False
    """The peer refused the REFER itself (403, 405, 501...): it will not transfer."""

    @property
    def ok(self) -> bool:
        return not self.refused and 200 <= self.status < 300


class Call:
    """One call leg.  Created by the UserAgent; never construct it yourself."""

    def __init__(self, ua: UserAgent, ref: CallRef, media: CallMedia, *, direction: str,
                 caller: str, called: str, sip_call_id: str, remote: tuple[str, int]) -> None:
        self._ua = ua
        self.ref = ref
        self.media = media
        self.direction = direction
        self.caller = caller
        self.called = called
        self.sip_call_id = sip_call_id
        self.remote = remote
        self.state = CallState.RINGING
        self.end_cause: str | None = None
        self.vars: dict[str, Any] = {}
        self._subscribers: list[asyncio.Queue[CallEvent]] = []
        self._ended = asyncio.Event()
        self._answered = asyncio.Event()
        self._refer_result: asyncio.Future[int] | None = None
        # Type-ahead (VoiceXML): digits pressed while nobody collects (during a prompt that the
        # digit barged in on, say) wait here for the next collect_digits.
        self._typeahead: deque[DtmfReceived] = deque(maxlen=32)
        self._collectors = 0

    # --- identity --------------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        """Dialtone's id for this leg (stable in the event log and CDRs)."""
        return self.ref

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    def __repr__(self) -> str:
        return f"<Call {self.ref} {self.direction} {self.caller}->{self.called} {self.state.value}>"

    # --- events ----------------------------------------------------------------------------

    def _dispatch(self, event: CallEvent) -> None:
        if isinstance(event, DtmfReceived) and not self._collectors:
            self._typeahead.append(event)
        for q in self._subscribers:
            q.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[CallEvent]:
        q: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[CallEvent]) -> None:
        if q in self._subscribers:
            self._subscribers.remove(q)

    async def events(self) -> AsyncIterator[CallEvent]:
        """Every call event from now on, until the call ends (the RemoteHangup is the last)."""
        q = self.subscribe()
        try:
            while True:
                if self.ended and q.empty():
                    return
                get = asyncio.ensure_future(q.get())
                ended = asyncio.ensure_future(self._ended.wait())
                done, _ = await asyncio.wait({get, ended}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    ended.cancel()
                    yield get.result()
                else:
                    get.cancel()
                    while not q.empty():
                        yield q.get_nowait()
                    return
        finally:
            self.unsubscribe(q)

    def _mark_answered(self) -> None:
        if self.state is CallState.RINGING:
            self.state = CallState.ANSWERED
            self._answered.set()

    def _mark_ended(self, cause: str) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.end_cause = cause
        if self._refer_result is not None and not self._refer_result.done():
            self._refer_result.set_result(0)
        self._ended.set()

    async def wait_ended(self, timeout: float | None = None) -> str | None:
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            return None
        return self.end_cause

    def _check_live(self) -> None:
        if self.ended:
            raise CallEnded(f"call {self.ref} has ended ({self.end_cause})")

    # --- low-level media control (what the flow engine uses) -------------------------------

    def start_playback(self, audio: np.ndarray, prompt: str, barge_in: bool = True) -> None:
        """Queue ``audio`` (8 kHz int16) after what is playing; PromptStarted/Finished follow."""
        self._check_live()
        self.media.play(prompt, audio, barge_in=barge_in, now=self._ua.now())

    def stop_playback(self) -> None:
        if not self.ended:
            self.media.stop_playback(now=self._ua.now())

    def set_listening(self, enabled: bool) -> None:
        """Enable the endpointer (SpeechStarted/SpeechEnded events)."""
        if not self.ended:
            self.media.set_listening(enabled, now=self._ua.now())

    # --- awaitable operations --------------------------------------------------------------

    async def answer(self) -> None:
        await self._ua._answer(self)

    async def play(self, prompt: str | Path | np.ndarray, *, barge_in: bool = False,
                   language: str = "en") -> PlayResult:
        """Play a WAV file (any rate/width), a prompt array, or text (TTS); return when it ends.

        With ``barge_in`` a DTMF digit or the start of speech stops it within one frame (the
        digit stays available to a following :meth:`collect_digits`)."""
        self._check_live()
        audio, name = self._ua.prompts.resolve(prompt, language=language)
        q = self.subscribe()
        try:
            self.start_playback(audio, name, barge_in)
            if barge_in:
                self.set_listening(True)
            while True:
                event = await self._next(q)
                if isinstance(event, PromptFinished) and event.prompt == name:
                    return PlayResult(name, event.interrupted)
        finally:
            self.unsubscribe(q)

    async def collect_digits(self, max_digits: int = 1, *, timeout: float = 5.0,
                             inter_digit_timeout: float = 3.0,
                             terminators: str = "#") -> DigitsResult:
        """Collect up to ``max_digits`` (VoiceXML timer model: initial ``timeout`` for the first
        digit, then ``inter_digit_timeout``; a terminator ends collection and is not included).
        Digits pressed during a barge-in prompt just before are included."""
        self._check_live()
        digits: list[str] = []
        sources: list[str] = []
        q = self.subscribe()
        self._collectors += 1
        while self._typeahead:
            q.put_nowait(self._typeahead.popleft())
        try:
            wait = timeout
            while True:
                try:
                    event = await asyncio.wait_for(self._next(q), wait)
                except TimeoutError:
                    reason = "no_input" if not digits else "inter_digit_timeout"
                    return DigitsResult("".join(digits), None, reason, tuple(sources))
                if isinstance(event, DtmfReceived):
                    if event.digit in terminators:
                        return DigitsResult("".join(digits), event.digit, "terminator", tuple(sources))
                    digits.append(event.digit)
                    sources.append(event.source)
                    if len(digits) >= max_digits:
                        return DigitsResult("".join(digits), None, "max_digits", tuple(sources))
                    wait = inter_digit_timeout
        except CallEnded:
            return DigitsResult("".join(digits), None, "hangup", tuple(sources))
        finally:
            self._collectors -= 1
            self.unsubscribe(q)
            # digits that arrived after the result was complete are type-ahead for the next one
            while not q.empty():
                ev = q.get_nowait()
                if isinstance(ev, DtmfReceived):
                    self._typeahead.append(ev)

    async def listen(self, *, timeout: float = 5.0, max_seconds: float = 15.0) -> Utterance | None:
        """One utterance, gated by VAD; None if nobody spoke within ``timeout``."""
        self._check_live()
        q = self.subscribe()
        self.set_listening(True)
        try:
            deadline = self._ua.now() + timeout
            started = False
            while True:
                remaining = (deadline - self._ua.now()) if not started else max_seconds
                if remaining <= 0:
                    return None
                try:
                    event = await asyncio.wait_for(self._next(q), remaining)
                except TimeoutError:
                    return None
                if isinstance(event, SpeechStarted):
                    started = True
                elif isinstance(event, SpeechEnded):
                    return Utterance(event.audio, event.duration_ms)
        finally:
            self.set_listening(False)
            self.unsubscribe(q)

    async def record(self, path: str | Path, *, max_seconds: float = 60.0,
                     stop_on_silence_s: float | None = None, stop_digits: str = "#",
                     both_directions: bool = True) -> Recording:
        """Record to a WAV (8 kHz; stereo caller/Dialtone with ``both_directions``) until
        ``max_seconds``, a stop digit, ``stop_on_silence_s`` of silence, or hang-up."""
        self._check_live()
        recording = self.media.start_recording(now=self._ua.now())
        q = self.subscribe()
        if stop_on_silence_s is not None:
            self.set_listening(True)
        stop_reason = "max_length"
        try:
            deadline = self._ua.now() + max_seconds
            while True:
                remaining = deadline - self._ua.now()
                if remaining <= 0:
                    break
                wait = remaining
                if stop_on_silence_s is not None:
                    silent_for = recording.silence_s
                    wait = min(wait, max(0.05, stop_on_silence_s - silent_for))
                try:
                    event = await asyncio.wait_for(self._next(q), wait)
                except TimeoutError:
                    if stop_on_silence_s is not None and recording.silence_s >= stop_on_silence_s:
                        stop_reason = "silence"
                        break
                    continue
                except CallEnded:
                    stop_reason = "hangup"
                    break
                if isinstance(event, DtmfReceived) and event.digit in stop_digits:
                    stop_reason = "digit"
                    break
        finally:
            self.unsubscribe(q)
            self.media.stop_recording(recording, now=self._ua.now())
        recording.stop_reason = stop_reason
        recording.write_wav(Path(path), both_directions=both_directions)
        return recording

    async def send_dtmf(self, digits: str, *, duration_ms: int = 100, gap_ms: int = 60,
                        method: str = "rfc4733") -> None:
        """Send digits as RFC 4733 events (default), SIP INFO, or in-band tones."""
        self._check_live()
        for digit in digits:
            if method == "info":
                self._ua._send_info(self, digit, duration_ms)
            else:
                self.media.send_dtmf(digit, duration_ms, inband=(method == "inband"),
                                     now=self._ua.now())
            await asyncio.sleep((duration_ms + gap_ms) / 1000)

    async def transfer(self, target: str, *, timeout: float = 10.0) -> None:
        """Blind transfer (REFER); raises :class:`TransferFailed` if the peer refuses or the
        transfer fails (the caller can then bridge with :meth:`UserAgent.bridge`).

        The node's transfer policy (``UserAgentConfig.transfer_policy``) is asked first: a
        target outside it raises :class:`TransferFailed` at once, before any REFER or call."""
        self._check_live()
        decision = self._ua.check_transfer(target, call_ref=self.ref)
        if not decision.allowed:
            raise TransferFailed(f"transfer to {target} refused: {decision.reason}")
        self._refer_result = self._ua.loop.create_future()
        self._ua._refer(self, target)
        try:
            status = await asyncio.wait_for(self._refer_result, timeout)
        except TimeoutError as exc:
            raise TransferFailed(f"no result for transfer to {target}") from exc
        if self._refer_rejected and status != 408:
            # The peer will not do REFER: bridge a new leg to the target ourselves.
            try:
                other = await self._ua.dial(target, timeout=timeout, transfer=True)
            except CallFailed as exc:
                raise TransferFailed(f"transfer to {target} failed with {exc.status}") from exc
            self._ua.bridge(self, other)
            return
        if not 200 <= status < 300:
            raise TransferFailed(f"transfer to {target} failed with {status}")

    async def refer(self, target: str, *, timeout: float = 10.0) -> ReferResult:
        """Send REFER to the peer (Refer-To ``target``) and follow the NOTIFY sipfrag to the
        referred call's final status (RFC 3515 2.4.4); no fallback (compare
        :meth:`transfer`).  The transfer policy is asked first, as for :meth:`transfer`;
        a refusal raises :class:`TransferFailed`.  Our leg stays up: end it on success."""
        self._check_live()
        decision = self._ua.check_transfer(target, call_ref=self.ref)
        if not decision.allowed:
            raise TransferFailed(f"transfer to {target} refused: {decision.reason}")
        self._refer_result = self._ua.loop.create_future()
        self._refer_rejected = False
        self._ua._refer(self, target)
        try:
            status = await asyncio.wait_for(asyncio.shield(self._refer_result), timeout)
        except TimeoutError:
            return ReferResult(408)
        return ReferResult(status, refused=self._refer_rejected)

    _refer_rejected = False

    def _refer_done(self, status: int, *, rejected: bool = False) -> None:
        self._refer_rejected = rejected
        if self._refer_result is not None and not self._refer_result.done():
            self._refer_result.set_result(status)

    async def hangup(self, reason: str = "normal") -> None:
        if self.ended:
            return
        self._ua._hangup(self, reason)
        await self.wait_ended(5.0)

    async def _next(self, q: asyncio.Queue[CallEvent]) -> CallEvent:
        if self.ended and q.empty():
            raise CallEnded(f"call {self.ref} has ended ({self.end_cause})")
        get = asyncio.ensure_future(q.get())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            done, _ = await asyncio.wait({get, ended}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            get.cancel()
            ended.cancel()
            raise
        if get in done:
            ended.cancel()
            event = get.result()
            return event
        get.cancel()
        if not q.empty():
            return q.get_nowait()
        raise CallEnded(f"call {self.ref} has ended ({self.end_cause})")


__all__: Sequence[str] = ("Call", "CallState", "DigitsResult", "PlayResult", "ReferResult",
                          "Utterance")
