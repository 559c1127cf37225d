"""The dialer engine: campaigns on real calls (issue 14).

A thin asyncio layer.  Decisions live elsewhere: how many calls to place in the sans-IO
:class:`~dialer.pacing.Pacer`, which contact and what an outcome does in the
:class:`~dialer.store.DialerStore`, SIP and media in :class:`~telephony.aio.useragent.UserAgent`,
machine or person in the streaming AMD (:class:`~telephony.dsp.amdbank.AmdBank`).  This module
wires them:

* every round it asks the pacer for ``calls_to_place(now)``, leases that many contacts
  (the store writes each attempt to the ledger at lease time, so a crash loses no attempt)
  and dials each over the trunk with the campaign's caller ID in From and
  P-Asserted-Identity (RFC 3325 9.1); a campaign without one does not start;
* a call rings at most ``ring_timeout`` seconds (at least 15: Ofcom, FTC TSR), then CANCEL;
  SIP final responses map to dispositions (:func:`disposition_for_status`);
* an answered call's audio goes frame by frame, as it arrives, to the AMD detector;
  a person is bridged to a free agent (their leg dialled then, ``UserAgent.bridge``)
  within ``connect_within`` (2 s) of the end of the greeting, or hears the safe-harbour
  message and is counted abandoned (FTC 16 CFR 310.4(b)(4)(iii); the store locks the
  number out for 72 h); a machine is hung up on, or gets ``machine_message`` after the
  beep (or the end of the greeting); a late machine (a human verdict revised) is acted on;
* pause/resume (the store's campaign status, so ``dialtone campaign pause`` from another
  process works) stop and restart dialling; calls in progress go on;
* leases of calls in progress are renewed; at start the engine closes the attempts its
  previous run left open (a ``kill -9``) as ``failed``, so no outcome stays unknown and no
  contact is dialled again as if new.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dialer.agent_legs import EarlyAgentLeg
from dialer.agents import AgentBook, AgentClaimRefused, AgentWants, RoutingAgents, parse_agents
from dialer.agents import DialerAgent as _Agent
from dialer.errors import DialerError, LeaseLost
from dialer.pacing import (
    AbandonBudget,
    AgentBusy,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentReady,
    AgentWrap,
    AmdDecided,
    CallAbandoned,
    CallAnswered,
    CallConnected,
    CallDialled,
    CallEnded,
    CallOutcome,
    Pacer,
    PacerConfig,
)
from dialer.policy import CampaignSettings, Disposition, is_live_answer
from dialer.prompts import choose_prompt, prompt_variants
from dialer.store import AbandonmentReport, DialerStore, Lease, Outcome
from dialer.store_batch import OutcomeWriter
from telephony.aio.call import Call
from telephony.aio.useragent import UserAgent
from telephony.dsp.amd import FRAME, AmdConfig, AmdDecider, AmdResult
from telephony.dsp.amdbank import AmdBank
from telephony.dsp.bank import grow_channels
from telephony.errors import CallEnded as CallEndedError
from telephony.errors import CallFailed
from telephony.eventlog import EventSink, NullEventLog
from telephony.media import Recording

if TYPE_CHECKING:
    from routing.bus import RoutingBus

__all__ = ["SHUTDOWN_GRACE_S", "CampaignConfigError", "CampaignEngine", "EngineConfig",
           "EngineStats", "disposition_for_status", "trunk_target", "verdict_silence_ms"]

SHUTDOWN_GRACE_S = 2.0
"""After :meth:`CampaignEngine.shutdown`, the longest wait for the calls in progress (hung
up at once) to write their outcomes; a call that has not by then (a store that does not
answer) is left open, for the restart's recovery (``orphan_leases`` -> ``failed``)."""

log = logging.getLogger(__name__)

Pcm = npt.NDArray[np.int16]


class CampaignConfigError(DialerError):
    """The campaign cannot dial as configured (no caller ID, the trunk refuses us: 403/407)."""


def disposition_for_status(status: int, *, cancelled_by_us: bool = False) -> Disposition:
    """The disposition of a call that failed with SIP final response ``status``.

    486/600 busy; 480/408 and 487 (after our CANCEL at the ring timeout) no answer;
    404/484/604 an invalid number (never retried on that number); everything else, 503 and
    the other 5xx, transaction timeouts (status 0), failed (retried later).  403/407 are a
    configuration error the engine handles before this (the campaign pauses).
    """
    if status in (486, 600):
        return Disposition.BUSY
    if status in (480, 408) or (status == 487 and cancelled_by_us):
        return Disposition.NO_ANSWER
    if status in (404, 484, 604):
        return Disposition.INVALID_NUMBER
    return Disposition.FAILED


def trunk_target(trunk: str, number: str) -> str:
    """``sip:HOST:PORT`` and ``+4420...`` -> ``sip:+4420...@HOST:PORT`` (a trunk: no
    registration, the number is the Request-URI's user part, RFC 3261 19.1.1)."""
    t = trunk.strip()
    scheme, _, rest = t.partition(":")
    if scheme.lower() not in ("sip", "sips") or not rest:
        raise CampaignConfigError(f"bad trunk {trunk!r}: expected sip:HOST[:PORT]")
    rest = rest.split("@", 1)[-1]
    return f"{scheme}:{number}@{rest}"


def verdict_silence_ms(result: AmdResult, config: AmdConfig) -> int:
    """The silence after the greeting that made a human verdict (``HUMAN-words-silence``;
    it is shorter after a short "Hello?" than after a longer opening), so the end of the
    greeting is the verdict less it.  Other verdicts (``unknown`` treated as a person):
    ``after_greeting_silence_ms``."""
    parts = result.reason.split("-")
    if result.result == "human" and len(parts) == 3 and parts[0] == "HUMAN" \
            and parts[2].isdigit():
        return int(parts[2])
    return config.after_greeting_silence_ms


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How one engine dials one campaign (the campaign's own settings come from the store)."""

    trunk: str
    """``sip:HOST:PORT`` of the trunk (or PBX) the calls go to."""
    owner: str = ""
    """The lease owner: stable across restarts of this dialer (its open attempts are closed
    at start).  Default: ``HOSTNAME:CAMPAIGN``."""
    lease_s: float = 60.0
    """Lease length; renewed every third of it while the call lasts."""
    amd: AmdConfig = field(default_factory=AmdConfig)
    machine_greeting_end_s: float = 1.5
    """Silence after a machine's speech that ends its greeting (when no beep comes)."""
    machine_wait_s: float = 20.0
    """Longest wait for a machine's beep or the end of its greeting."""
    agent_unavailable_s: float = 30.0
    """An agent whose leg failed (busy, no answer) is not offered calls for this long."""
    poll_s: float = 0.2
    """Longest sleep between two pacing rounds."""
    status_every_s: float = 1.0
    """How often the campaign's status (pause/resume) and the abandonment budget are read."""
    abandon_recount_s: float = 60.0
    """How often the abandonment counts are counted afresh from the ledger (every dialer's
    calls, the 24 h and 30-day windows moving on); in between, this engine adds its own
    outcomes to the last count.  Counting is a scan of the campaign's attempts: 0.4 s of
    CPU at a million attempts, too much for every second of an all-day campaign."""
    store_batch_s: float = 0.05
    """Group commit: outcomes of calls that end within this long are written in one
    transaction, and pacing rounds (each leasing what the pacer asks for in one
    transaction) come at most this often."""
    credentials: Any = None
    """:class:`~telephony.sip.auth.DigestCredentials` answering the trunk's (the PBX's)
    401/407 challenges to our INVITEs; None: a trunk that does not challenge."""
    from_uri: str | None = None
    """From of the calls to the trunk: the identity registered to the PBX (its AOR);
    None: the campaign's caller ID at our address.  P-Asserted-Identity always carries the
    caller ID."""
    may_dial: Callable[[], bool] | None = None
    """Asked before each round of new calls: False holds dialling (the PBX registration is
    being renewed after a failure); calls in progress go on."""
    registration: Callable[[], dict[str, Any]] | None = None
    """The PBX registration's state for the status view (``PbxRegistration.snapshot``);
    None: a trunk, no registration."""
    idle_tx: str = "suppress"
    """What the dialer's calls send while they only listen (AMD, the wait for a beep, an
    agent's leg held for a bridge): ``suppress`` (default: 100 ms of silence, then nothing
    but a keep-alive every 10 s until a prompt or a bridge, as Asterisk's AMD) or ``silence``
    (a silence packet every 20 ms).  See :attr:`telephony.media.MediaConfig.idle_tx`."""


@dataclass(slots=True)
class EngineStats:
    """What the engine did in this run (status view, benchmarks)."""

    placed: int = 0
    answered: int = 0
    connected: int = 0
    connected_late: int = 0
    """Of ``connected``: REFERs sent in time whose agent answered after ``connect_within``
    (dialer/refer.py: a transfer in flight cannot be taken back)."""
    abandoned: int = 0
    machines: int = 0
    failed: int = 0
    by_disposition: dict[str, int] = field(default_factory=dict)
    amd_decision_ms: list[int] = field(default_factory=list)
    wait_s: list[float] = field(default_factory=list)
    """AMD human decision to agent leg bridged."""
    greeting_to_bridge_s: list[float] = field(default_factory=list)
    """End of the greeting (decision less the silence that made it) to bridged."""
    talk_s: list[float] = field(default_factory=list)
    """Bridged to an agent until either leg hung up."""
    peak_answered: int = 0
    answered_now: int = 0
    dialling_now: int = 0
    waiting_now: int = 0
    """People answered, waiting for an agent's leg (at most ``connect_within``)."""


@dataclass(slots=True)
class _Verdict:
    """What the AMD tap's callback saw, in the media tick: when each result was reached,
    and the bridge it made at once for a person whose agent's leg was up."""

    heard: list[float] = field(default_factory=list)
    bridged: tuple[_Agent, Call, float] | None = None
    """(agent, their leg, when) when the first verdict bridged the call."""


class _AmdTap(Recording):
    """A recording that keeps nothing: each received frame goes into the engine's AMD bank
    (:class:`_AmdBankFeed`) as the media tick delivers it; the bank decides for every call
    at once after the tick, so decisions come in the tick of the frame that makes them."""

    def __init__(self, start: float, amd: _AmdBankFeed,
                 on_result: Callable[[AmdResult], None]) -> None:
        super().__init__(start)
        self._amd = amd
        self.on_result = on_result
        self.channel = amd.open(self)
        self.detector: AmdDecider = amd.bank.decider(self.channel)
        """The call's AMD state machine (verdict, beep, stream time)."""

    @property
    def quiet_frames(self) -> int:
        """Frames at or under the level floor since the last one above it."""
        return int(self._amd.quiet[self.channel])

    @property
    def heard_voice(self) -> bool:
        """A frame above the level floor was heard."""
        return bool(self._amd.heard[self.channel])

    def add(self, rx: Pcm, tx: Pcm, speech: bool) -> None:
        if rx.size == FRAME and self.channel >= 0:
            self._amd.bank.feed(self.channel, rx)

    def close(self) -> None:
        if self.channel >= 0:
            self._amd.close(self.channel)
            self.channel = -1


class _AmdBankFeed:
    """The engine's AMD: one :class:`~telephony.dsp.amdbank.AmdBank` for all its answered
    calls, run once per media tick (``MediaEngine.after_tick``, hooked while a call is
    open) over the frames the calls' taps fed it; one numpy pass for every call instead of
    a detector's ~100 us per call per frame."""

    def __init__(self, config: AmdConfig, after_tick: list[Any], level_floor: float) -> None:
        self.bank = AmdBank(config)
        self._after_tick = after_tick
        self._taps: dict[int, _AmdTap] = {}
        self._floor = level_floor
        self.quiet = np.zeros(self.bank.n_channels, dtype=np.int64)
        """Per channel: frames at or under ``level_floor`` since the last above it."""
        self.heard = np.zeros(self.bank.n_channels, dtype=bool)
        """Per channel: a frame above ``level_floor`` was heard."""

    def open(self, tap: _AmdTap) -> int:
        ch = self.bank.open()
        n = self.bank.n_channels
        if n > self.quiet.shape[0]:
            self.quiet = grow_channels(self.quiet, n, 0)
            self.heard = grow_channels(self.heard, n, False)
        self.quiet[ch], self.heard[ch] = 0, False
        self._taps[ch] = tap
        if self.tick not in self._after_tick:
            self._after_tick.append(self.tick)
        return ch

    def close(self, channel: int) -> None:
        self.bank.close(channel)
        self._taps.pop(channel, None)
        if not self._taps and self.tick in self._after_tick:
            self._after_tick.remove(self.tick)

    def tick(self, now: float) -> None:
        bank = self.bank
        fed = bank.fed.copy()
        results = bank.process()
        loud = bank.features.power > self._floor
        self.quiet[fed] = np.where(loud[fed], 0, self.quiet[fed] + 1)
        self.heard |= fed & loud
        for ch, result in results:
            tap = self._taps.get(ch)
            if tap is not None:
                tap.on_result(result)


class CampaignEngine:
    """Dials one campaign of the store through one user agent."""

    def __init__(self, store: DialerStore, campaign: str, ua: UserAgent,
                 config: EngineConfig, *, events: EventSink | None = None,
                 clock: Callable[[], float] = time.time, bus: RoutingBus | None = None
                 ) -> None:
        self.store = store
        self.campaign = campaign
        self.ua = ua
        self.config = config
        if not config.owner:
            self.config = replace(config, owner=f"{socket.gethostname()}:{campaign}")
        self.events: EventSink = events or NullEventLog()
        self.clock = clock
        info = store.campaign(campaign)
        self.settings: CampaignSettings = info.settings
        if not self.settings.caller_id:
            # Caller ID on every call (Ofcom persistent misuse, FCC 47 CFR 64.1601(e)).
            raise CampaignConfigError(
                f"campaign {campaign!r} has no caller_id: it cannot start")
        extra = self.settings.extra
        self.connect_within = float(extra.get("connect_within", 2.0))
        self.wrap_s = float(extra.get("wrap_s", 0.0))
        self.callbacks_agent_first = str(extra.get("callbacks") or "customer_first") \
            == "agent_first"
        self.language = str(extra.get("language") or "en")
        # One prompt, or language -> prompt (dialer.prompts picks by the contact's language).
        self.machine_message: Any = extra.get("machine_message")
        self.safe_harbour: Any = extra.get("safe_harbour_prompt") or (
            f"This call was from {self.settings.caller_id}. We are sorry we could not connect "
            f"you. Please call us back on {self.settings.caller_id}.")
        # The agents: listed in the campaign, or the routing core's (dialer/agents.py).
        self.agent_spec = parse_agents(extra.get("agents"))
        self.agents = {uri: _Agent(uri) for uri in self.agent_spec.uris}
        self.agent_book = AgentBook(self.agent_spec, self._agent_event, self.agents)
        self.connect_mode = str(extra.get("connect") or "bridge")
        self.routing_agents: RoutingAgents | None = None
        if self.agent_spec.source == "routing" and self.settings.kind == "agents":
            if bus is None:
                raise CampaignConfigError(f"campaign {campaign!r} takes its agents from the "
                                          "routing core: it needs a routing bus (--mqtt)")
            self.routing_agents = RoutingAgents(bus, self.agent_book, campaign=campaign,
                                                clock=clock, wake=lambda: self._wake.set())
        self.agent_leg = str(extra.get("agent_leg") or "early")
        """``early``: an agent's leg is dialled at answer, held while AMD listens, bridged
        at a human verdict (dropped otherwise); ``on_verdict``: dialled after it."""
        self._ports: list[str] = []
        self._flow: Any = None
        self._flow_services: Any = None
        if self.settings.kind == "message":
            self._load_flow(extra.get("flow"))
            # The flow is the agent: each of ``lines`` IVR ports counts as one for the pacer
            # (progressive: never more calls than ports), and is never dialled.
            for i in range(int(extra.get("lines") or 10)):
                self._ports.append(f"ivr-port-{i + 1}")
        self.pacer = Pacer.from_name(self.settings.pacing, config=PacerConfig(
            abandon_target=self.settings.abandon_target or 0.03,
            connect_within=self.connect_within, ring_timeout=self.settings.ring_timeout))
        self._media_config = replace(ua.config.media_defaults, idle_tx=self.config.idle_tx,
                                     inband_dtmf=self.settings.kind == "message")
        """Every call this engine dials (the callee's and the agents' legs).  Only a message
        campaign's flow reads digits; without in-band DTMF on any call the media mixer skips
        the detector's pass (RFC 4733 digits are received either way)."""
        self.stats = EngineStats()
        self.paused = False
        self.pause_reason: str | None = None
        self.config_error: str | None = None
        """Why the campaign paused itself (the trunk refused us), for the operator."""
        self._wake = asyncio.Event()
        self._ab_base: AbandonmentReport | None = None
        self._ab_at = 0.0
        self._ab_own = [0, 0]  # live answers, abandoned: own outcomes since the last count
        self._outcomes = OutcomeWriter(self.store, delay_s=self.config.store_batch_s,
                                       run=self._db)
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._leases: dict[str, Lease] = {}
        self._pacing: set[str] = set()
        """Calls dialled (CallDialled) not yet ended for the pacer (CallEnded): each is
        ended exactly once, whatever way its task ends (:meth:`_pacer_ended`)."""
        self._stopping = False
        self._shutting_down = False
        self.shutdown_grace_s = SHUTDOWN_GRACE_S
        """After :meth:`shutdown`: how long :meth:`run` waits for the calls it hung up to
        write their outcomes before it returns without them."""
        self._last_lease_short = False
        self._ua_host = ""
        self._amd: _AmdBankFeed | None = None
        """AMD for every answered call, batched (made at the first answer)."""
        self._early: dict[int, EarlyAgentLeg[_Agent]] = {}
        """Early agent legs of calls still waiting for AMD's verdict (by ``id``)."""

    def _load_flow(self, path: Any) -> None:
        """A message campaign's IVR flow, validated before the first call (a broken flow
        never dials), and the services its session needs."""
        from dialer.callbacks import CallbackStore
        from ivr_flows.loader import load_flow
        from ivr_flows.prompts import PromptRenderer
        from ivr_flows.session import FlowServices

        if not path:
            raise CampaignConfigError(f"message campaign {self.campaign!r} has no flow")
        self._flow = load_flow(str(path))
        self._flow_services = FlowServices(
            renderer=PromptRenderer(self._flow.catalogue),
            event_logger=self._emit, callback_store=CallbackStore(self.store.engine),
            clock=self.ua.now, wall_clock=time.time, node_id=self.config.owner)

    # --- the loop -------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock()

    async def _db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        # The store blocks (SQLite's writer lock, PostgreSQL round trips): off the loop, so
        # the media ticks keep their 20 ms.
        return await asyncio.to_thread(fn, *args, **kw)

    def _emit(self, event: dict[str, Any]) -> None:
        self.events.emit(event)

    async def recover(self) -> int:
        """Close the attempts a previous run of this owner left open (killed mid-call) as
        ``failed``; returns how many."""
        now = self._now()
        orphans: list[Lease] = await self._db(self.store.orphan_leases, self.campaign,
                                              owner=self.config.owner)
        # One transaction for all; an orphan whose contact was leased again (LeaseLost) or
        # already closed (DialerError) keeps what it has.
        errors = await self._db(self.store.record_outcomes, [
            Outcome(lease, Disposition.FAILED.value, now, live_answer=False)
            for lease in orphans])
        for err in errors:
            if err is not None and not isinstance(err, DialerError):
                raise err
        return len(orphans)

    async def run(self, *, until_done: bool = False, max_seconds: float | None = None
                  ) -> EngineStats:
        """Dial the campaign.  With ``until_done``, return when no call is in progress and
        no contact can be dialled now (every one final, or waiting for a retry later);
        otherwise run until :meth:`stop` (or ``max_seconds``)."""
        host, _ = self.ua.local_addr
        self._ua_host = host
        for uri in [*self.agents, *self._ports]:
            self._agent_event(AgentLoggedIn(uri))
            self._agent_event(AgentReady(uri))
        if self.routing_agents is not None:
            self.routing_agents.start()
        # Render the prompts now: TTS on the first abandoned call would cost its 2 s.
        for spec in (self.safe_harbour, self.machine_message):
            for prompt, language in prompt_variants(spec, self.language):
                await asyncio.to_thread(self.ua.prompts.resolve, prompt, language=language)
        await self.recover()
        await self._db(self.store.set_status, self.campaign, "running")
        started = self._now()
        renew = asyncio.ensure_future(self._renew_loop())
        status_at = 0.0
        try:
            while not self._stopping:
                round_at = asyncio.get_running_loop().time()
                now = self._now()
                if max_seconds is not None and now - started >= max_seconds:
                    break
                if now - status_at >= self.config.status_every_s:
                    status_at = now
                    await self._refresh(now)
                self._agents_back(now)
                placed = 0
                if not self.paused and (self.config.may_dial is None or self.config.may_dial()):
                    placed = await self._place(now)
                if until_done and not self._calls and placed == 0 and (
                        self._idle_done() or self.config_error is not None):
                    break
                self._wake.clear()
                timer = self.pacer.get_timer(now=now)
                wait = self.config.poll_s
                if timer is not None:
                    wait = max(0.0, min(wait, timer - now))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                # Rounds at most every store_batch_s: lines freed meanwhile are refilled
                # together, by one lease (one transaction) sized to the pacer's need.
                rest = round_at + self.config.store_batch_s - asyncio.get_running_loop().time()
                if rest > 0 and not self._stopping:
                    await asyncio.sleep(rest)
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
        if self._shutting_down:
            await self._wind_down()
            return self.stats
        if self._calls:
            await asyncio.gather(*self._calls.values(), return_exceptions=True)
        if self.routing_agents is not None:
            await self.routing_agents.close()
        await self._db(self.store.write_engine_status, self.campaign, self.config.owner,
                       self.status(), now=self._now())
        return self.stats

    async def _wind_down(self) -> None:
        """The end of :meth:`run` after :meth:`shutdown`: every wait bounded by
        ``shutdown_grace_s`` in all (a call task stuck in the store, a claim, a peer that
        never answers must not hold the process)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.shutdown_grace_s
        for task in list(self._calls.values()):
            task.cancel()  # again: one that started after shutdown(), or a swallowed cancel
        if self._calls:
            await asyncio.wait(list(self._calls.values()), timeout=self.shutdown_grace_s)
        if self._calls:
            log.warning("campaign %s: %d call(s) did not write their outcome within %.1f s "
                        "of the shutdown; the restart closes them as failed", self.campaign,
                        len(self._calls), self.shutdown_grace_s)
        closing: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._db(
            self.store.write_engine_status, self.campaign, self.config.owner, self.status(),
            now=self._now()))]
        if self.routing_agents is not None:
            closing.append(asyncio.ensure_future(self.routing_agents.close()))
        left = max(0.1, until - loop.time())
        _, pending = await asyncio.wait(closing, timeout=left)
        for f in pending:
            f.cancel()

    def _idle_done(self) -> bool:
        # Done when the last lease asked for calls and got fewer: nothing dialable now.
        # (While no agent is free the pacer asks for nothing: not done, wait for one.)
        wrapping = any(a.state in ("wrap", "reserved") for a in self.agents.values())
        return self._last_lease_short and not wrapping

    def stop(self) -> None:
        """Stop dialling; :meth:`run` returns once the calls in progress end."""
        self._stopping = True
        self._wake.set()

    def shutdown(self) -> None:
        """Stop now (SIGTERM): dial no more and hang up every call in progress (BYE, or
        CANCEL while it rings; an agent's leg with it); each writes its outcome
        (:meth:`_cut_disposition`).  :meth:`run` returns within ``shutdown_grace_s``,
        leaving the outcomes not written by then to the restart's recovery."""
        self._shutting_down = True
        self.stop()
        for task in list(self._calls.values()):
            task.cancel()

    async def _refresh(self, now: float) -> None:
        info = await self._db(self.store.campaign, self.campaign)
        paused = info.status == "paused"
        if paused != self.paused:
            self.paused = paused
            self._emit({"type": "campaign_paused" if paused else "campaign_resumed",
                        "campaign": self.campaign,
                        **({"reason": self.pause_reason or "paused"} if paused else {})})
        await self._db(self.store.write_engine_status, self.campaign, self.config.owner,
                       self.status(), now=now)
        ab = await self._abandonment(now)
        self.pacer.set_budget(AbandonBudget(ab.period_abandoned, ab.period_live, ab.target),
                              now=now)

    async def _abandonment(self, now: float) -> AbandonmentReport:
        """The ledger's abandonment counts, counted afresh every ``abandon_recount_s`` and
        kept up to date in between with this engine's own outcomes."""
        if self._ab_base is None or now - self._ab_at >= self.config.abandon_recount_s:
            # Own outcomes committed while the count runs may be counted twice until the
            # next count (never missed): those before it are in the ledger it reads.
            seen_live, seen_ab = self._ab_own
            self._ab_base = await self._db(self.store.abandonment, self.campaign, now=now)
            self._ab_at = now
            self._ab_own = [self._ab_own[0] - seen_live, self._ab_own[1] - seen_ab]
        return self._ab_base.plus(*self._ab_own)

    def _count_own(self, disposition: str, live: bool | None) -> None:
        if is_live_answer(disposition) if live is None else live:
            self._ab_own[0] += 1
        if disposition == Disposition.ABANDONED:
            self._ab_own[1] += 1

    async def pause(self, reason: str = "paused") -> None:
        """Stop placing calls (calls in progress go on)."""
        self.pause_reason = reason
        await self._db(self.store.set_status, self.campaign, "paused")
        self.paused = True
        self._emit({"type": "campaign_paused", "campaign": self.campaign, "reason": reason})

    async def resume(self) -> None:
        """Dial again."""
        await self._db(self.store.set_status, self.campaign, "running")
        self.paused = False
        self.pause_reason = None
        self._emit({"type": "campaign_resumed", "campaign": self.campaign})
        self._wake.set()

    async def _place(self, now: float) -> int:
        n = self.pacer.calls_to_place(now=now)
        if n <= 0:
            return 0
        leases: list[Lease] = await self._db(self.store.lease, self.campaign, now=now,
                                             count=n, owner=self.config.owner,
                                             lease_s=self.config.lease_s)
        self._last_lease_short = len(leases) < n
        for lease in leases:
            call_id = f"{self.campaign}-{lease.attempt_id}"
            self._leases[call_id] = lease
            self.pacer.on_event(CallDialled(call_id), now=now)
            self._pacing.add(call_id)
            self.stats.placed += 1
            task = asyncio.ensure_future(self._call(call_id, lease))
            self._calls[call_id] = task
            task.add_done_callback(functools.partial(self._call_done, call_id))
        return len(leases)

    def _call_done(self, call_id: str, task: asyncio.Task[None]) -> None:
        self._calls.pop(call_id, None)
        self._leases.pop(call_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: its task failed", call_id, exc_info=task.exception())
        # Whatever way the task ended (cancelled before it ran, an error writing the
        # outcome...): the pacer no longer counts the call in flight.
        self._pacer_ended(call_id, CallOutcome.FAILED, now=self._now())
        self._wake.set()

    def _pacer_ended(self, call_id: str, outcome: CallOutcome, *, now: float) -> None:
        """CallEnded for ``call_id``, once: the first caller's outcome counts."""
        if call_id in self._pacing:
            self._pacing.discard(call_id)
            self.pacer.on_event(CallEnded(call_id, outcome), now=now)

    async def _renew_loop(self) -> None:
        every = self.config.lease_s / 3
        while True:
            await asyncio.sleep(every)
            now = self._now()
            held = list(self._leases.items())
            renewed: list[Lease | None] = await self._db(
                self.store.renew_many, [lease for _, lease in held], now=now,
                lease_s=self.config.lease_s)
            for (call_id, _), new in zip(held, renewed, strict=True):
                if new is None:
                    log.warning("lease of %s lost", call_id)
                elif call_id in self._leases:
                    self._leases[call_id] = new

    # --- agents ---------------------------------------------------------------------------------

    def _agent_event(self, ev: Any) -> None:
        self.pacer.on_event(ev, now=self._now())

    def _set_agent(self, agent: _Agent, state: str, call_id: str | None = None) -> None:
        now = self._now()
        agent.state, agent.since = state, now
        ev = {"ready": AgentReady, "busy": AgentBusy, "wrap": AgentWrap,
              "away": AgentLoggedOut}.get(state)
        if ev is not None:
            self._agent_event(ev(agent.uri))
        if self.routing_agents is not None:  # the routing core and other dialers see it
            self.routing_agents.local_state(agent, state, call_id)

    async def _claim(self, agent: _Agent, call_id: str | None,
                     deadline: float | None = None) -> bool:
        """After reserving ``agent`` for ``call_id``: may they be dialled?  An agent of the
        routing core is claimed there first (dialer/agents.py); False: refused, another
        dialer or an inbound call has them (the agent is no longer reserved by us).  With a
        person waiting (``deadline``) the claim waits at most a quarter of the time left."""
        if self.routing_agents is None or agent.agent_id is None or call_id is None:
            return True
        timeout = None if deadline is None else (deadline - self._now()) / 4
        return await self.routing_agents.claim(agent, call_id, timeout=timeout)

    def _connected(self, call_id: str, lease: Lease, out: dict[str, Any], agent: _Agent, *,
                   at: float, decided_at: float, greeting_end: float) -> None:
        """A person reached ``agent`` at ``at`` (bridged, or the REFER's final NOTIFY): the
        call's figures, the agent busy, the pacer told, the contact offered to routing."""
        out["agent"], out["live"] = agent.uri, True
        out["wait_s"] = round(at - decided_at, 4)
        out["greeting_to_bridge_s"] = round(at - greeting_end, 4)
        self.stats.wait_s.append(at - decided_at)
        self.stats.greeting_to_bridge_s.append(at - greeting_end)
        self.stats.connected += 1
        self._set_agent(agent, "busy", call_id)
        self.pacer.on_event(CallConnected(call_id, agent.uri), now=at)
        self._offer_contact(agent, call_id, lease)

    def _wants(self, lease: Lease) -> AgentWants:
        """What the contact needs of an agent (language, skills)."""
        return AgentWants.for_contact(lease.fields, lease.language or self.language)

    def _offer_contact(self, agent: _Agent, call_id: str, lease: Lease) -> None:
        """A person is connected: their fields go to the routing core (as inbound)."""
        if self.routing_agents is not None and agent.agent_id is not None:
            wants = self._wants(lease)
            self.routing_agents.offer(agent, call_id=call_id, phone=lease.e164,
                                      called=str(self.settings.caller_id),
                                      fields=lease.fields, language=wants.language,
                                      skills=wants.skills)

    def _agents_back(self, now: float) -> None:
        for a in self.agents.values():
            if a.state == "wrap" and now - a.since >= self.wrap_s:
                self._set_agent(a, "ready")
            elif a.state == "away" and now - a.since >= self.config.agent_unavailable_s:
                self._agent_event(AgentLoggedIn(a.uri))
                self._set_agent(a, "ready")

    def _free_agent(self, tried: set[str], wants: AgentWants | None = None) -> _Agent | None:
        # Longest idle first, among those who fit the contact: fair to agents (the ACD rule).
        return self.agent_book.free(tried, wants)

    # --- one call -------------------------------------------------------------------------------

    def _caller(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        cid = str(self.settings.caller_id)
        pai = f"<tel:{cid}>" if cid.startswith("+") else f"<sip:{cid}@{self._ua_host}>"
        # RFC 3325 9.1: the identity the trunk asserts; From carries the same number (or,
        # registered to a PBX, the registered identity the PBX authenticates).
        return self.config.from_uri or cid, (("P-Asserted-Identity", pai),)

    def _agent_credentials(self, uri: str) -> Any:
        """The PBX's credentials for an agent who is one of its extensions (same host and
        port as the trunk); none for an agent elsewhere (no digest answer leaves the PBX)."""
        if self.config.credentials is None:
            return None

        def where(u: str) -> str:
            return u.split(":", 1)[-1].split("@", 1)[-1].split(";", 1)[0].lower()
        return self.config.credentials if where(uri) == where(self.config.trunk) else None

    async def _call(self, call_id: str, lease: Lease) -> None:
        out: dict[str, Any] = {"amd": None, "agent": None, "wait_s": None,
                               "message_played": None, "sip_status": None, "live": None,
                               "language": lease.language or lease.fields.get("language")}
        disposition: Disposition | str = Disposition.FAILED
        try:
            disposition = await self._dial_and_handle(call_id, lease, out)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self._shutting_down:
                # shutdown(): the finally blocks on the way out hung the call (and an
                # agent's leg) up; its outcome is written as far as it went.
                disposition = self._cut_disposition(out)
            elif me is not None and me.cancelling():
                raise
            else:
                # Nobody cancelled this call: a CancelledError out of a task it awaited
                # (a claim, an agent's dial) that was cancelled.  Left to propagate it
                # ended the call with no outcome (the attempt open until a restart).
                log.exception("call %s: a cancellation not meant for it", call_id)
                disposition = Disposition.FAILED
        except Exception:  # a bug in one call must not lose its outcome nor stop the campaign
            log.exception("call %s failed", call_id)
            disposition = Disposition.FAILED
        await self._finish(call_id, lease, disposition, out)

    @staticmethod
    def _cut_disposition(out: dict[str, Any]) -> Disposition:
        """A call hung up by :meth:`shutdown`: ``connected`` once bridged to an agent;
        ``abandoned`` for a person (AMD's verdict) not yet connected (a live answer hung up
        on without an agent: counted against the cap, never hidden); ``machine`` for a
        machine; ``failed`` before a verdict (ringing, AMD listening: retried later)."""
        if out.get("live") and out.get("agent") is not None and out.get("wait_s") is not None:
            return Disposition.CONNECTED
        if out.get("amd") == "human":
            out["live"] = True
            return Disposition.ABANDONED
        if out.get("amd") == "machine":
            out["live"] = False
            return Disposition.MACHINE
        return Disposition.FAILED

    async def _finish(self, call_id: str, lease: Lease, disposition: Disposition | str,
                      out: dict[str, Any]) -> None:
        now = self._now()
        d = str(disposition)
        self.stats.by_disposition[d] = self.stats.by_disposition.get(d, 0) + 1
        outcome = {Disposition.BUSY: CallOutcome.BUSY, Disposition.NO_ANSWER:
                   CallOutcome.NO_ANSWER, Disposition.MACHINE: CallOutcome.MACHINE,
                   Disposition.MACHINE_MESSAGE: CallOutcome.MACHINE,
                   Disposition.CONNECTED: CallOutcome.COMPLETED,
                   Disposition.ABANDONED: CallOutcome.ABANDONED}.get(
                       Disposition(d) if d in Disposition._value2member_map_ else
                       Disposition.CONNECTED, CallOutcome.FAILED)  # a flow's outcome: done
        try:
            try:
                await self._outcomes.record(Outcome(
                    lease, d, now, live_answer=out["live"], amd=out["amd"],
                    time_to_agent_s=out["wait_s"], message_played=out["message_played"],
                    agent=out["agent"], sip_status=out["sip_status"]))
            except LeaseLost:
                log.warning("%s: outcome %s written to the ledger; the contact was leased "
                            "again", call_id, d)
            except DialerError as exc:  # already closed (a recovery raced us): keep that
                log.warning("%s: outcome %s not written: %s", call_id, d, exc)
                return
            self._count_own(d, out["live"])  # in the ledger either way
            if out.get("callback"):
                # After the outcome (which closes the contact): the flow's request reopens
                # it as a callback due in the slot the person chose, in their time zone.
                from dialer.callbacks import CallbackStore
                await self._db(self.store.ingest_ivr_callbacks, self.campaign,
                               CallbackStore(self.store.engine), now=now)
        finally:
            # Written, refused, or the store failed (the error goes on, the attempt stays
            # open for the lease's expiry or the restart): the line is free for the pacer.
            self._pacer_ended(call_id, outcome, now=now)
        self._emit({"type": "campaign_call", "call_id": call_id, "campaign": self.campaign,
                    "number": lease.e164, "disposition": d, "attempt": lease.attempt,
                    "amd": out["amd"], "amd_ms": out.get("amd_ms"),
                    "agent": out["agent"], "wait_s": out["wait_s"],
                    "greeting_to_bridge_s": out.get("greeting_to_bridge_s"),
                    "sip_status": out["sip_status"], "language": out.get("prompt_language")})

    async def _agent_first(self, call_id: str, lease: Lease, out: dict[str, Any]
                           ) -> Disposition | str | None:
        """A callback, agent first: an agent is reserved and their leg answered before the
        customer is dialled, so the person who asked for the call never waits.  None: no
        agent answered; dial customer-first instead."""
        caller, _ = self._caller()
        tried: set[str] = set()
        while (agent := self._free_agent(tried, self._wants(lease))) is not None:
            tried.add(agent.uri)
            self._set_agent(agent, "reserved", call_id)
            if not await self._claim(agent, call_id):
                continue
            try:
                leg = await self.ua.dial(agent.uri, timeout=self.settings.ring_timeout,
                                         caller=caller,
                                         credentials=self._agent_credentials(agent.uri),
                                         media_config=self._media_config)
            except CallFailed as exc:
                log.info("agent %s for callback %s: %s", agent.uri, call_id, exc.status)
                self._set_agent(agent, "away")
                continue
            out["agent"] = agent.uri
            self._set_agent(agent, "busy", call_id)
            try:
                return await self._customer_to_agent(call_id, lease, out, agent, leg)
            finally:
                if not leg.ended:
                    await leg.hangup("normal")
                self._set_agent(agent, "wrap")
        return None

    async def _customer_to_agent(self, call_id: str, lease: Lease, out: dict[str, Any],
                                 agent: _Agent, leg: Call) -> Disposition | str:
        caller, headers = self._caller()
        try:
            call = await self.ua.dial(trunk_target(self.config.trunk, lease.e164),
                                      timeout=self.settings.ring_timeout, caller=caller,
                                      headers=headers, credentials=self.config.credentials,
                                      media_config=self._media_config)
        except CallFailed as exc:
            out["sip_status"], out["live"], out["agent"] = exc.status or None, False, None
            ours = exc.status == 408 and exc.reason == "no answer"
            return disposition_for_status(exc.status, cancelled_by_us=ours)
        out["sip_status"], out["live"], out["wait_s"] = 200, True, 0.0
        self.stats.answered += 1
        self.stats.connected += 1
        self.pacer.on_event(CallAnswered(call_id), now=self._now())
        self.pacer.on_event(CallConnected(call_id, agent.uri), now=self._now())
        self.ua.bridge(call, leg)
        bridged_at = self._now()
        self._offer_contact(agent, call_id, lease)
        ends = {asyncio.ensure_future(call.wait_ended()),
                asyncio.ensure_future(leg.wait_ended())}
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        for f in ends:
            f.cancel()
        if not call.ended:
            await call.hangup("normal")
        self.stats.talk_s.append(self._now() - bridged_at)
        return Disposition.CONNECTED

    async def _dial_and_handle(self, call_id: str, lease: Lease, out: dict[str, Any]
                               ) -> Disposition | str:
        if lease.callback and self.callbacks_agent_first and self.agents:
            done = await self._agent_first(call_id, lease, out)
            if done is not None:
                return done
        caller, headers = self._caller()
        target = trunk_target(self.config.trunk, lease.e164)
        self.stats.dialling_now += 1
        try:
            call = await self.ua.dial(target, timeout=self.settings.ring_timeout,
                                      caller=caller, headers=headers,
                                      credentials=self.config.credentials,
                                      media_config=self._media_config)
        except CallFailed as exc:
            out["sip_status"] = exc.status or None
            out["live"] = False
            if exc.status in (403, 407):
                # Without credentials the trunk refuses every call alike: stop dialling
                # rather than burn the list; a person must fix the trunk or the caller ID.
                creds = ("our credentials" if self.config.credentials is not None
                         else "a call without credentials")
                self.config_error = (f"the trunk refused {creds} with {exc.status} "
                                     f"{exc.reason!r}: check the trunk's credentials and "
                                     f"the caller ID {caller}; campaign paused")
                await self.pause(self.config_error)
                log.error("campaign %s paused: trunk answered %s", self.campaign, exc.status)
                return Disposition.FAILED
            # dial() raises 408 "no answer" when our ring timeout fires (it sent CANCEL).
            ours = exc.status == 408 and exc.reason == "no answer"
            return disposition_for_status(exc.status, cancelled_by_us=ours)
        finally:
            self.stats.dialling_now -= 1
        out["sip_status"] = 200
        self.stats.answered += 1
        self.stats.answered_now += 1
        self.stats.peak_answered = max(self.stats.peak_answered, self.stats.answered_now)
        try:
            return await self._answered(call_id, call, lease, out)
        finally:
            self.stats.answered_now -= 1
            if not call.ended:
                await call.hangup("normal")

    async def _answered(self, call_id: str, call: Call, lease: Lease, out: dict[str, Any]
                        ) -> Disposition | str:
        now = self._now()
        self.pacer.on_event(CallAnswered(call_id), now=now)
        results: asyncio.Queue[AmdResult] = asyncio.Queue()
        if self._amd is None:
            self._amd = _AmdBankFeed(self.config.amd, self.ua.media.after_tick,
                                     level_floor=300.0 ** 2)
        early = self._early_leg(call_id, lease)
        verdict = _Verdict()

        def on_result(r: AmdResult) -> None:
            # In the media tick, at the frame that made the result.
            t = self._now()
            verdict.heard.append(t)
            if (len(verdict.heard) == 1 and r.kind == "decision" and r.result != "machine"
                    and early is not None and not call.ended
                    and (leg := early.take_now()) is not None):
                # A person and the agent's leg is up: bridged in this very step; nothing
                # (queue, tasks, a loaded event loop) stands between verdict and bridge.
                self.ua.bridge(call, leg)
                verdict.bridged = (early.agent, leg, self._now())
            results.put_nowait(r)

        tap = _AmdTap(now, self._amd, on_result)
        call.media.attach_recording(tap)
        try:
            return await self._after_answer(call_id, call, lease, out, results, tap, early,
                                            verdict)
        finally:
            call.media.stop_recording(tap, now=self._now())
            tap.close()
            if early is not None:
                # Every path that did not bridge it ends it: a machine, a late machine, the
                # callee gone before the verdict, an error, the engine stopping.
                await self._end_early_leg(early, "caller_gone" if call.ended else "amd_machine")

    def _early_leg(self, call_id: str, lease: Lease) -> EarlyAgentLeg[_Agent] | None:
        """At answer, in parallel with AMD: reserve the longest-idle free agent and dial
        their leg (agents campaigns with ``agent_leg: early``); None when none is free."""
        if self._flow is not None or self.agent_leg != "early" or self.connect_mode == "refer":
            return None
        agent = self._free_agent(set(), self._wants(lease))
        if agent is None:
            return None
        self._set_agent(agent, "reserved", call_id)
        caller, _ = self._caller()
        # Rings at most as long as AMD may take plus the time a person may wait.
        timeout = self.config.amd.total_analysis_ms / 1000 + self.connect_within
        async def dial() -> Call:
            # Claimed at the routing core first, while AMD listens: the round trip is hidden
            # behind the greeting, not added to the person's wait.
            if not await self._claim(agent, call_id):
                raise AgentClaimRefused(f"agent {agent.agent_id} is taken", 0)
            return await self.ua.dial(agent.uri, timeout=timeout, caller=caller,
                                      credentials=self._agent_credentials(agent.uri),
                                      media_config=self._media_config)

        early = EarlyAgentLeg(agent, dial)
        self._early[id(early)] = early
        return early

    async def _end_early_leg(self, early: EarlyAgentLeg[_Agent], reason: str) -> None:
        """Release an early leg not bridged, and give its agent back."""
        self._early.pop(id(early), None)
        if not await early.release(reason):
            return  # bridged, or given back already
        if isinstance(early.refused, AgentClaimRefused):
            return  # never dialled: the claim's refusal gave the agent back already
        if early.state in ("refused", "gone"):
            log.info("agent %s: early leg %s%s", early.agent.uri, early.state,
                     f" ({early.refused.status})" if early.refused else "")
            if early.agent.state == "reserved":
                self._set_agent(early.agent, "away")
            return
        self._release_agent(early.agent)

    async def _next_result(self, call: Call, results: asyncio.Queue[AmdResult],
                           timeout: float) -> AmdResult | None:
        """The next AMD result, or None at the timeout or when the call ends."""
        get = asyncio.ensure_future(results.get())
        ended = asyncio.ensure_future(call.wait_ended())
        try:
            done, _ = await asyncio.wait({get, ended}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (get, ended):
                if not f.done():
                    f.cancel()
        if get in done:
            return get.result()
        return None

    async def _after_answer(self, call_id: str, call: Call, lease: Lease, out: dict[str, Any],
                            results: asyncio.Queue[AmdResult], tap: _AmdTap,
                            early: EarlyAgentLeg[_Agent] | None = None,
                            verdict: _Verdict | None = None) -> Disposition | str:
        amd_cfg = self.config.amd
        # The detector decides by stream time (``total_analysis_ms`` at most); the wall-clock
        # limit only guards against audio that never comes.
        first = await self._next_result(call, results, amd_cfg.total_analysis_ms / 1000 + 5.0)
        if first is None and call.ended:
            # The callee hung up before AMD could decide: nobody was spoken to.
            out["live"] = False
            return Disposition.NO_ANSWER
        if first is None:
            first = AmdResult("unknown", "NOAUDIO", tap.detector.elapsed_ms)
        out["amd_ms"] = first.decision_ms
        self.stats.amd_decision_ms.append(first.decision_ms)
        human = first.result != "machine"  # "unknown" is treated as a person: never abandon one
        out["amd"] = "human" if human else "machine"
        log.info("%s AMD %s (%s) in %d ms", call_id, first.result, first.reason,
                 first.decision_ms)
        self.pacer.on_event(AmdDecided(call_id, human=human), now=self._now())
        if not human:
            if early is not None:
                await self._end_early_leg(early, "amd_machine")  # the agent is free at once
            return await self._machine(call, out, results, tap, first)
        if self._flow is not None:
            return await self._message(call, lease, out)
        return await self._human(call_id, call, lease, out, results, tap, first, early,
                                 verdict)

    async def _message(self, call: Call, lease: Lease, out: dict[str, Any]) -> str:
        """A message campaign: the IVR flow runs on the answered call with the contact's
        fields as variables; its outcome (a hangup node's ``reason``) is the disposition.
        ``opted_out`` puts the number on the DNC list at once (the store, with the
        outcome); a callback node's request becomes a scheduled callback of the campaign."""
        from ivr_flows.session import FlowSession

        out["live"] = True
        # The flow speaks of "the caller" as the person on the line: on an outbound call
        # that is the number dialled (the callback node offers to call it back).
        call.caller, call.called = lease.e164, str(self.settings.caller_id)
        session = FlowSession(call, self._flow, self._flow_services)
        session.runner.vars.update({str(k): v for k, v in lease.fields.items()})
        session.runner.vars["phone"] = lease.e164
        cdr = await session.run()
        if cdr is None:
            return Disposition.FAILED
        out["message_played"] = f"flow:{cdr.flow}"[:128]
        outcome = cdr.disposition or "completed"
        if outcome in ("opt_out", "opted_out", "optout"):
            return Disposition.OPTED_OUT
        if cdr.callback_slot is not None:
            out["callback"] = True
            return "callback_scheduled"
        return outcome

    async def _machine(self, call: Call, out: dict[str, Any],
                       results: asyncio.Queue[AmdResult], tap: _AmdTap,
                       decision: AmdResult) -> Disposition:
        out["live"] = False
        self.stats.machines += 1
        if not self.machine_message:
            return Disposition.MACHINE
        # Wait for the beep (the detector watches for it after a machine verdict) or the end
        # of the greeting, then leave the message.
        if decision.beep_ms is None:
            deadline = self._now() + self.config.machine_wait_s
            quiet_needed = math.ceil(self.config.machine_greeting_end_s * 1000 / 20)
            while self._now() < deadline and not call.ended:
                r = await self._next_result(call, results, 0.1)
                if r is not None and r.kind == "beep":
                    break
                if tap.heard_voice and tap.quiet_frames >= quiet_needed:
                    break
        if call.ended:
            return Disposition.MACHINE
        message, language = choose_prompt(self.machine_message, out.get("language"),
                                          self.language)
        try:
            played = await call.play(message or "", language=language)
        except CallEndedError:
            return Disposition.MACHINE
        out["message_played"], out["prompt_language"] = played.prompt[:128], language
        return Disposition.MACHINE_MESSAGE

    async def _human(self, call_id: str, call: Call, lease: Lease, out: dict[str, Any],
                     results: asyncio.Queue[AmdResult], tap: _AmdTap,
                     decision: AmdResult, early: EarlyAgentLeg[_Agent] | None = None,
                     verdict: _Verdict | None = None) -> Disposition:
        verdict = verdict or _Verdict()
        decided_at = verdict.heard[0] if verdict.heard else self._now()
        # The greeting ended when the silence that made the verdict began (FTC: 2 s from
        # the end of the greeting).
        greeting_end = decided_at - verdict_silence_ms(decision, self.config.amd) / 1000
        deadline = greeting_end + self.connect_within
        if self.connect_mode == "refer":
            from dialer.refer import human_by_refer
            return await human_by_refer(self, call_id, call, lease, out, results, tap,
                                        decided_at=decided_at, greeting_end=greeting_end,
                                        deadline=deadline)
        late: asyncio.Task[AmdResult | None] = asyncio.ensure_future(
            self._late_machine(call, results))
        held = early.take_now() if early is not None and not call.ended else None
        got: tuple[_Agent, Call] | None
        if verdict.bridged is not None:
            got = verdict.bridged[0], verdict.bridged[1]  # bridged at the verdict's frame
        elif early is not None and held is not None:
            # The early leg is up: bridged in this very step (no task, no loop round trip
            # on a loaded event loop between the verdict and the bridge).
            got = early.agent, held
        else:
            agent_task: asyncio.Task[tuple[_Agent, Call] | None] = asyncio.ensure_future(
                self._connect_agent(call, deadline, call_id, self._wants(lease), early))
            self.stats.waiting_now += 1
            try:
                await asyncio.wait({agent_task, late}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                agent_task.cancel()  # shutdown: no agent is dialled for a call hung up
                late.cancel()
                raise
            finally:
                self.stats.waiting_now -= 1
            revised = late.result() if late.done() else None
            if revised is not None and not agent_task.done():
                # A machine after all, before an agent was on: stop looking for one.
                agent_task.cancel()
                found: tuple[_Agent, Call] | None = None
                with contextlib.suppress(asyncio.CancelledError):
                    found = await agent_task
                if found is not None:
                    # The agent answered as we cancelled (3.11's wait_for kept the result
                    # and dropped the cancel): their leg must not stay up nor them reserved.
                    await found[1].hangup("amd_machine")
                    self._release_agent(found[0])
                out["amd"] = "machine"
                return await self._machine(call, out, results, tap, revised)
            got = await agent_task
        if got is None:
            late.cancel()
            return await self._safe_harbour(call_id, call, out)
        agent, leg = got
        if verdict.bridged is not None:
            bridged_at = verdict.bridged[2]
        else:
            bridged_at = self._now()
            self.ua.bridge(call, leg)
        self._connected(call_id, lease, out, agent, at=bridged_at, decided_at=decided_at,
                        greeting_end=greeting_end)
        try:
            ended: asyncio.Future[Any] = asyncio.ensure_future(call.wait_ended())
            leg_ended: asyncio.Future[Any] = asyncio.ensure_future(leg.wait_ended())
            waits: set[asyncio.Future[Any]] = {ended, leg_ended}
            if not late.done():
                waits.add(late)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if late in done and late.result() is not None:
                # A machine after all (its greeting went on, or a beep): the agent is freed.
                out["amd"], out["live"] = "machine", False
                await leg.hangup("late_machine")
                await call.hangup("late_machine")
                return Disposition.MACHINE
            for f in waits:
                if not f.done():
                    f.cancel()
        finally:
            late.cancel()
            if not leg.ended:
                await leg.hangup("normal")
            self.stats.talk_s.append(self._now() - bridged_at)
            self._set_agent(agent, "wrap")
        return Disposition.CONNECTED

    async def _safe_harbour(self, call_id: str, call: Call, out: dict[str, Any]
                            ) -> Disposition:
        """No agent in time: the safe-harbour message, and the call counted abandoned."""
        out["live"] = True
        self.pacer.on_event(CallAbandoned(call_id), now=self._now())
        self.stats.abandoned += 1
        if call.ended:
            # They hung up while we looked for an agent: still an abandoned live answer.
            return Disposition.ABANDONED
        prompt, language = choose_prompt(self.safe_harbour, out.get("language"), self.language)
        try:
            played = await call.play(prompt or "", language=language)
            out["message_played"], out["prompt_language"] = played.prompt[:128], language
        except CallEndedError:
            out["message_played"] = None
        return Disposition.ABANDONED

    def _release_agent(self, agent: _Agent) -> None:
        if agent.state == "reserved":
            self._set_agent(agent, "ready")

    async def _late_machine(self, call: Call, results: asyncio.Queue[AmdResult]
                            ) -> AmdResult | None:
        while not call.ended:
            r = await self._next_result(call, results, 1.0)
            if r is not None and r.kind == "late_machine":
                return r
        return None

    async def _held_leg(self, wants: AgentWants | None) -> tuple[_Agent, Call] | None:
        """A person waits while another call, still in AMD, holds an answered early leg:
        the leg goes to the person (that call, if it turns human, looks for an agent
        then, as one without an early leg does)."""
        for other in list(self._early.values()):
            if (other.answered and (wants is None or wants.fits(other.agent))
                    and (leg := await other.take(0.0)) is not None):
                self._early.pop(id(other), None)
                return other.agent, leg
        return None

    async def _connect_agent(self, call: Call, deadline: float, call_id: str | None = None,
                             wants: AgentWants | None = None,
                             early: EarlyAgentLeg[_Agent] | None = None
                             ) -> tuple[_Agent, Call] | None:
        """The early leg when it is up (or comes up in time); otherwise dial free agents
        one after another until one answers or ``deadline`` passes."""
        tried: set[str] = set()
        caller, _ = self._caller()
        if early is not None:
            tried.add(early.agent.uri)
            leg = await early.take(deadline - self._now())
            if leg is not None:
                if call.ended:
                    await leg.hangup("caller_gone")
                    self._release_agent(early.agent)
                    return None
                return early.agent, leg
            await self._end_early_leg(early, "agent_too_slow")
        while not call.ended:
            if (held := await self._held_leg(wants)) is not None:
                if call.ended:
                    await held[1].hangup("caller_gone")
                    self._release_agent(held[0])
                    return None
                return held
            agent = await self._wait_free_agent(call, tried, deadline, wants, poll_once=True)
            if agent is None:
                if self._now() >= deadline:
                    return None
                continue  # none free yet: look at the held legs again, then wait on
            self._set_agent(agent, "reserved", call_id)
            try:
                if not await self._claim(agent, call_id, deadline):
                    continue
                leg = await self.ua.dial(agent.uri, timeout=deadline - self._now(),
                                         caller=caller,
                                         credentials=self._agent_credentials(agent.uri),
                                         media_config=self._media_config)
            except CallFailed as exc:
                log.info("agent %s: %s %s", agent.uri, exc.status, exc.reason)
                self._set_agent(agent, "away")
                continue
            except asyncio.CancelledError:
                self._release_agent(agent)
                raise
            if call.ended:
                await leg.hangup("caller_gone")
                self._release_agent(agent)
                return None
            return agent, leg
        return None

    async def _wait_free_agent(self, call: Call, tried: set[str], deadline: float,
                               wants: AgentWants | None, *, poll_once: bool = False
                               ) -> _Agent | None:
        """The longest-idle free agent not yet ``tried`` who fits ``wants`` (added to
        ``tried``), waiting for one to come free (wrap ending, a call ending) until
        ``deadline``; None then, or when ``call`` ends, or after one wait with
        ``poll_once`` (the caller has something else to look at between waits)."""
        while not call.ended:
            left = deadline - self._now()
            if left <= 0:
                return None
            agent = self._free_agent(tried, wants)
            if agent is not None:
                tried.add(agent.uri)
                return agent
            await asyncio.sleep(min(0.02, left))
            self._agents_back(self._now())
            if poll_once:
                return None
        return None

    # --- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A snapshot for ``dialtone campaign status`` (written to the store by the CLI)."""
        now = self._now()
        st = self.pacer.state
        return {"campaign": self.campaign, "owner": self.config.owner, "at": now,
                "paused": self.paused, "pause_reason": self.pause_reason,
                "dial_level": round(self.pacer.dial_level, 3),
                "dialling": self.stats.dialling_now, "answered_now": self.stats.answered_now,
                "waiting": self.stats.waiting_now,
                "in_flight": st.in_flight, "connected": st.connected,
                "agents": [{"uri": a.uri, "state": a.state,
                            "since_s": round(now - a.since, 1)} for a in self.agents.values()],
                "placed": self.stats.placed, "answered": self.stats.answered,
                "connected_total": self.stats.connected,
                "connected_late": self.stats.connected_late, "abandoned": self.stats.abandoned,
                "machines": self.stats.machines,
                "amd_share": (self.stats.machines / self.stats.answered
                              if self.stats.answered else 0.0),
                "wait_s_mean": (sum(self.stats.wait_s) / len(self.stats.wait_s)
                                if self.stats.wait_s else None),
                "talk_s_mean": (sum(self.stats.talk_s) / len(self.stats.talk_s)
                                if self.stats.talk_s else None),
                "wrap_s": self.wrap_s,
                "registration": (self.config.registration()
                                 if self.config.registration is not None else None)}
