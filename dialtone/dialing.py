"""The node's dialer: a :class:`dialer.engine.CampaignEngine` for every running campaign.

A campaign is started, paused and resumed by its status in the store (the console's buttons,
``dialtone campaign start|pause|resume``, the API).  A node given a trunk (``dialtone serve
--trunk sip:HOST:PORT``) watches the store: for each campaign whose status is ``running`` it
runs an engine on the node's own user agent; an engine follows ``paused`` itself (calls in
progress go on) and is stopped when its campaign is archived, done or deleted.  The engine's
lease owner is ``NODE_ID:CAMPAIGN``, so a node restarted after a crash closes its own open
attempts and dials no contact twice (the store's leases; docs/dialer-engine.md).

Registered to a PBX (``--trunk-register sip:USER@HOST[:PORT]``, config ``dialer.register_as``)
the dialer registers before its first call (no engine starts before the registrar answered),
holds new calls while the binding is lost (the SIP core retries with back-off), pauses every
campaign with a message when the PBX refuses the account, and unregisters when the node stops
(dialer.registration).  Its calls carry the registered identity and answer the PBX's
challenges with the same credentials.

Every call's CDR row (dialtone.cdr) gets its campaign, disposition, AMD verdict and agent from
the engine's ``campaign_call`` event on the node's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from dialer.engine import CampaignEngine, EngineConfig
from dialer.errors import DialerError
from dialer.registration import PbxAccount, PbxRegistration
from dialer.store import DialerStore
from dialtone.config import DialerSection
from routing.bus import RoutingBus
from telephony.aio.useragent import UserAgent

log = logging.getLogger(__name__)

DIALLING = frozenset({"running", "paused"})
"""Statuses an engine runs in (paused: it holds, and its calls in progress go on)."""


def pbx_account(section: DialerSection) -> PbxAccount | None:
    """The PBX account of the node's dialer configuration (None: a trunk, no registration)."""
    if section.register_as is None:
        return None
    return PbxAccount.parse(section.register_as, password=section.password_value(),
                            auth_user=section.auth_user, expires=section.register_expires)


class DialerSupervisor:
    """Starts and stops the node's campaign engines as the store's statuses say."""

    def __init__(self, store: DialerStore, ua: UserAgent, *, trunk: str, node_id: str,
                 emit: Callable[[dict[str, Any]], None], poll_s: float = 1.0,
                 bus: RoutingBus | None = None, account: PbxAccount | None = None) -> None:
        self.store = store
        self.bus = bus
        """The node's routing bus (``--mqtt``): agents from the routing core, offers."""
        self.ua = ua
        self.trunk = trunk
        self.node_id = node_id
        self.emit = emit
        self.poll_s = poll_s
        self.engines: dict[str, CampaignEngine] = {}
        self._runs: dict[str, asyncio.Task[Any]] = {}
        self._loop: asyncio.Task[None] | None = None
        self.registration: PbxRegistration | None = (
            PbxRegistration(ua, account, on_refused=self._refused) if account is not None
            else None)
        self._pausing: set[asyncio.Task[None]] = set()

    def observe(self, event: dict[str, Any]) -> None:
        """An event of the node's stream (the user agent's registration events)."""
        if self.registration is not None:
            self.registration.observe(event)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._watch())

    def _refused(self, message: str) -> None:
        """The PBX refused our account: every campaign dialling pauses, saying why."""
        for engine in self.engines.values():
            engine.config_error = message
            task = asyncio.get_running_loop().create_task(engine.pause(message))
            self._pausing.add(task)
            task.add_done_callback(self._pausing.discard)

    async def _watch(self) -> None:
        if self.registration is not None:
            # Register before the first call (refused: the engines started below pause).
            await self.registration.start()
        while True:
            try:
                statuses = {c.name: c.status
                            for c in await asyncio.to_thread(self.store.campaigns)}
            except (DialerError, SQLAlchemyError) as exc:  # the database is away: next round
                log.warning("dialer: cannot read the campaigns: %s", exc)
                statuses = None
            if statuses is not None:
                self._reconcile(statuses)
            await asyncio.sleep(self.poll_s)

    def _reconcile(self, statuses: dict[str, str]) -> None:
        for name, status in statuses.items():
            if status == "running" and name not in self._runs:
                self._start_engine(name)
        for name, engine in list(self.engines.items()):
            if statuses.get(name) not in DIALLING:
                engine.stop()  # archived, done or deleted: finish the calls up, dial no more

    def _start_engine(self, name: str) -> None:
        reg = self.registration
        config = EngineConfig(trunk=self.trunk, owner=f"{self.node_id}:{name}")
        if reg is not None:
            config = EngineConfig(trunk=self.trunk, owner=config.owner,
                                  credentials=reg.account.credentials,
                                  from_uri=reg.account.aor, may_dial=reg.may_dial,
                                  registration=reg.snapshot)
        try:
            if reg is not None and reg.state == "refused":
                raise DialerError(reg.message or "the PBX refused our registration")
            engine = CampaignEngine(self.store, name, self.ua, config,
                                    events=_Emitter(self.emit), bus=self.bus)
        except DialerError as exc:  # no caller ID, a bad trunk: say why, and do not dial
            log.warning("campaign %s cannot dial: %s", name, exc)
            self.store.set_status(name, "paused")
            self.emit({"type": "campaign_paused", "campaign": name, "reason": str(exc)})
            return
        self.engines[name] = engine
        task = asyncio.get_running_loop().create_task(engine.run())
        self._runs[name] = task
        task.add_done_callback(functools.partial(self._ended, name))

    def _ended(self, name: str, task: asyncio.Task[Any]) -> None:
        self.engines.pop(name, None)
        self._runs.pop(name, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("campaign %s: the engine stopped: %r", name, task.exception())

    async def close(self, timeout: float = 10.0) -> None:
        """Stop dialling; wait (bounded) for the calls in progress to end."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for engine in self.engines.values():
            engine.stop()
        runs = list(self._runs.values())
        if runs:
            _, pending = await asyncio.wait(runs, timeout=timeout)
            for task in pending:
                task.cancel()
        if self.registration is not None:
            await self.registration.close()  # unregister: no call is left to place


class _Emitter:
    """An event sink that hands every event to the node's stream."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self._emit = emit

    def emit(self, event: dict[str, Any]) -> None:
        self._emit(event)
