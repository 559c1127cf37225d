"""The campaign store: campaigns, contacts, leases, outcomes, callbacks and the ledger.

Every method that decides takes ``now`` (epoch seconds); nothing here reads a clock.

Leasing (:meth:`DialerStore.lease`) is the dial path: it returns contacts that are dialable
now (not on a DNC list, checked here in the lease's transaction; inside the calling window in
every zone of the number; not locked out; due; under the attempt limit), due callbacks first.
On PostgreSQL the candidates are locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` so several
dialer processes share a campaign without ever leasing one contact twice; on SQLite the whole
lease runs in a ``BEGIN IMMEDIATE`` transaction (the database's single writer lock).  A lease
expires after ``lease_s``; its attempt stays in the ledger as ``lease_expired`` when another
dialer takes the contact over.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import IO, Any

from sqlalchemy import Engine, Float, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from dialer.callbacks import CallbackStore
from dialer.db import make_engine, read_session, write_session
from dialer.dnc import DncList, blocked
from dialer.errors import CampaignNotFound, DialerError, LeaseLost, ListImportError
from dialer.importer import ContactImporter, ImportReport, ProblemSink
from dialer.lists import ColumnMapping, NumberParser, read_rows
from dialer.models import (
    LEASE_ORDER_INDEX,
    Attempt,
    Campaign,
    CampaignZone,
    Contact,
    ContactPhone,
    DialerBase,
    EngineStatus,
)
from dialer.policy import CampaignSettings, Disposition, decide, is_live_answer
from dialer.windows import CallingWindow, zones_from_key

__all__ = ["NEVER_RECYCLED", "RECYCLE_DEFAULT", "AbandonmentReport", "CampaignInfo",
           "DialerStore", "ImportReport", "Lease", "Outcome", "RecycleReport"]

PERIOD_S = 30 * 86400.0
"""FTC 16 CFR 310.4(b)(4)(i): abandonment is measured per campaign over each successive
30-day period (or the campaign, if shorter)."""
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """A campaign as read from the store."""

    id: int
    name: str
    status: str
    created_at: float
    settings: CampaignSettings


@dataclass(frozen=True, slots=True)
class Lease:
    """A contact handed to one dialer for one call attempt."""

    campaign: str
    campaign_id: int
    contact_id: int
    attempt_id: int
    """The ledger row of this attempt; also the lease's token."""
    e164: str
    label: str
    zones: tuple[str, ...]
    fields: dict[str, str]
    language: str | None
    attempt: int
    """1 for the first attempt on this contact."""
    callback: bool
    owner: str
    until: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: what :meth:`DialerStore.record_outcome` takes, as a value so
    that :meth:`DialerStore.record_outcomes` can write many in one transaction."""

    lease: Lease
    disposition: str
    now: float
    live_answer: bool | None = None
    """None: from the disposition (:func:`dialer.policy.is_live_answer`)."""
    amd: str | None = None
    time_to_agent_s: float | None = None
    message_played: str | None = None
    agent: str | None = None
    sip_status: int | None = None


_CHUNK = 500
"""Most ids in one ``IN (...)`` list (well under SQLite's bound-parameter limit)."""


@lru_cache(maxsize=64)
def _settings(text: str) -> CampaignSettings:
    """A campaign's settings from its JSON, parsed once per distinct text (the outcome and
    lease paths read them on every transaction; a changed text is parsed afresh)."""
    return CampaignSettings.from_json(text)


def _ledger_row(o: Outcome) -> dict[str, Any]:
    """The attempt's closing values (parameters of ``_Sql.close_attempt``)."""
    disposition = str(o.disposition)
    live = is_live_answer(disposition) if o.live_answer is None else o.live_answer
    return {"a_id": o.lease.attempt_id, "a_end": o.now, "a_disp": disposition,
            "a_live": live, "a_ab": disposition == Disposition.ABANDONED, "a_amd": o.amd,
            "a_tta": o.time_to_agent_s, "a_msg": o.message_played, "a_agent": o.agent,
            "a_sip": o.sip_status}


def _chunks(xs: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(xs), n):
        yield xs[i:i + n]


NEVER_RECYCLED = frozenset({Disposition.DNC.value, Disposition.OPTED_OUT.value,
                            Disposition.INVALID_NUMBER.value})
"""Final dispositions recycling refuses: the person asked not to be called, or the number
cannot be reached (FTC 16 CFR 310.4(b)(1)(iii)(A): a do-not-call request is honoured)."""

RECYCLE_DEFAULT = (Disposition.NO_ANSWER.value, Disposition.BUSY.value,
                   Disposition.MACHINE.value, Disposition.FAILED.value)
"""What ``campaign recycle`` takes back by default: calls that reached nobody."""


@dataclass(slots=True)
class RecycleReport:
    """What :meth:`DialerStore.recycle` did."""

    dispositions: tuple[str, ...]
    recycled: int = 0
    skipped_at_limit: int = 0
    """At ``max_attempts`` and ``reset_attempts`` not asked: left final."""
    skipped_dnc: int = 0
    """Every number invalid or on a DNC list: left final."""
    by_disposition: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"dispositions": list(self.dispositions), "recycled": self.recycled,
                "skipped_at_limit": self.skipped_at_limit, "skipped_dnc": self.skipped_dnc,
                "by_disposition": dict(sorted(self.by_disposition.items()))}


@dataclass(frozen=True, slots=True)
class AbandonmentReport:
    """Abandoned calls over live answers, per window, and the budget left."""

    target: float
    live: int
    abandoned: int
    period_start: float | None
    period_live: int
    period_abandoned: int
    live_24h: int
    abandoned_24h: int

    @staticmethod
    def _rate(a: int, n: int) -> float:
        return a / n if n else 0.0

    def plus(self, live: int, abandoned: int) -> AbandonmentReport:
        """These counts with ``live`` answers and ``abandoned`` calls more in every window
        (outcomes written since they were counted)."""
        if not (live or abandoned):
            return self
        return replace(
            self, live=self.live + live, abandoned=self.abandoned + abandoned,
            period_live=self.period_live + live,
            period_abandoned=self.period_abandoned + abandoned,
            live_24h=self.live_24h + live, abandoned_24h=self.abandoned_24h + abandoned)

    @property
    def rate(self) -> float:
        """Over the whole campaign."""
        return self._rate(self.abandoned, self.live)

    @property
    def period_rate(self) -> float:
        """Over the current 30-day period (FTC)."""
        return self._rate(self.period_abandoned, self.period_live)

    @property
    def rate_24h(self) -> float:
        """Over the last 24 h (Ofcom reports it)."""
        return self._rate(self.abandoned_24h, self.live_24h)

    @property
    def budget_left(self) -> float:
        """Abandoned calls the current period can still take and stay at the target
        (negative: over it).  What the pacer is told."""
        return self.target * self.period_live - self.period_abandoned

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"target": self.target, "live": self.live, "abandoned": self.abandoned,
                "rate": self.rate, "period_start": self.period_start,
                "period_live": self.period_live, "period_abandoned": self.period_abandoned,
                "period_rate": self.period_rate, "live_24h": self.live_24h,
                "abandoned_24h": self.abandoned_24h, "rate_24h": self.rate_24h,
                "budget_left": self.budget_left}


def _ids(name: str) -> Any:
    return bindparam(name, expanding=True)


class _Sql:
    """The statements of the dial path (a lease, a renewal, an outcome per call attempt),
    built once: on SQLite building a statement costs more CPU than running it.  Values are
    bound per execution (``a_``/``c_`` names: parameters of executemany)."""

    campaign = select(Campaign.id, Campaign.name, Campaign.settings_json).where(
        Campaign.name == bindparam("name"))
    zones = select(CampaignZone.zones).where(CampaignZone.campaign_id == bindparam("cid"))
    expire = (update(Attempt).where(Attempt.id == bindparam("a_id"),
                                    Attempt.disposition.is_(None))
              .values(disposition=Disposition.LEASE_EXPIRED.value,
                      ended_at=bindparam("a_end")))
    open_attempts = insert(Attempt).returning(Attempt.id, sort_by_parameter_order=True)
    hold = (update(Contact).where(Contact.id == bindparam("c_id"))
            .values(attempts=Contact.attempts + 1, lease_owner=bindparam("owner"),
                    lease_until=bindparam("until"), lease_attempt=bindparam("c_att")))
    # An attempt belongs to one contact, so "id in the contacts and lease_attempt in the
    # attempts" matches exactly the (contact, attempt) pairs, and by the primary key.
    renew = (update(Contact)
             .where(Contact.id.in_(_ids("cids")), Contact.lease_attempt.in_(_ids("aids")),
                    Contact.lease_until > bindparam("now"))
             .values(lease_until=bindparam("until")).returning(Contact.lease_attempt))
    attempts = select(Attempt.id, Attempt.disposition).where(Attempt.id.in_(_ids("ids")))
    close_attempt = update(Attempt).where(Attempt.id == bindparam("a_id")).values(
        ended_at=bindparam("a_end"), disposition=bindparam("a_disp"),
        live_answer=bindparam("a_live"), abandoned=bindparam("a_ab"), amd=bindparam("a_amd"),
        time_to_agent_s=bindparam("a_tta"), message_played=bindparam("a_msg"),
        agent=bindparam("a_agent"), sip_status=bindparam("a_sip"))
    contacts = (select(Contact.id, Contact.campaign_id, Contact.lease_attempt,
                       Contact.attempts, Contact.phone_pos, Contact.locked_until)
                .where(Contact.id.in_(_ids("ids"))))
    settings = select(Campaign.id, Campaign.settings_json).where(Campaign.id.in_(_ids("ids")))
    valid_positions = (select(ContactPhone.contact_id, ContactPhone.position)
                       .where(ContactPhone.contact_id.in_(_ids("ids")),
                              ContactPhone.invalid.is_(False))
                       .order_by(ContactPhone.contact_id, ContactPhone.position))
    next_state = update(Contact).where(Contact.id == bindparam("c_id")).values(
        status=bindparam("c_status"), disposition=bindparam("c_disp"),
        next_due=bindparam("c_due"), phone_pos=bindparam("c_pos"),
        locked_until=bindparam("c_lock"), lease_owner=None, lease_until=0.0,
        lease_attempt=None)
    next_state_no_callback = next_state.values(callback_at=None, callback_until=None,
                                               callback_source=None)


@lru_cache(maxsize=32)
def _candidates_query(callback: bool, by_zone: bool, agent_reserved: bool,
                      for_update: bool) -> Any:
    """The contacts to lease: the contact's columns and its current number's (columns, not
    ORM objects: this runs once per pacing round)."""
    now = bindparam("now", type_=Float)
    conds = [Contact.campaign_id == bindparam("cid"), Contact.status == "pending",
             Contact.lease_until <= now, ContactPhone.invalid.is_(False)]
    if by_zone:
        conds.append(ContactPhone.zones.in_(_ids("zones")))
    if not agent_reserved:
        conds.append(Contact.locked_until <= now)
    if callback:
        conds += [Contact.callback_at.is_not(None), Contact.callback_at <= now,
                  or_(Contact.callback_until.is_(None), Contact.callback_until > now)]
        order = (Contact.callback_at, Contact.id)
    else:
        conds += [Contact.callback_at.is_(None), Contact.next_due <= now,
                  Contact.attempts < bindparam("max_attempts")]
        order = (Contact.priority.desc(), Contact.next_due, Contact.id)  # type: ignore[assignment]
    q = (select(Contact.id, Contact.fields_json, Contact.language, Contact.attempts,
                Contact.phone_pos, Contact.lease_attempt, Contact.lease_until,
                ContactPhone.e164, ContactPhone.label, ContactPhone.zones)
         .join(ContactPhone, and_(ContactPhone.contact_id == Contact.id,
                                  ContactPhone.position == Contact.phone_pos))
         .where(*conds).order_by(*order).limit(bindparam("limit")))
    if for_update:
        q = q.with_for_update(skip_locked=True, of=Contact)
    return q


class DialerStore:
    """The dialer's repository on one engine (``create_all`` on first use)."""

    def __init__(self, engine: Engine | str) -> None:
        self.engine = make_engine(engine) if isinstance(engine, str) else engine
        DialerBase.metadata.create_all(self.engine)
        # create_all skips the tables that exist, and with them their indexes: a database
        # made before this index had it added by migration 0005 or here.
        LEASE_ORDER_INDEX.create(self.engine, checkfirst=True)
        self.dnc = DncList(self.engine)
        self._is_pg = self.engine.dialect.name == "postgresql"

    # -- campaigns ---------------------------------------------------------------------------

    def create_campaign(self, name: str, settings: CampaignSettings | None = None, *,
                        now: float) -> CampaignInfo:
        """A new campaign; raises DialerError if the name is taken."""
        settings = settings or CampaignSettings()
        with write_session(self.engine) as s:
            if s.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
                raise DialerError(f"campaign {name!r} already exists")
            row = Campaign(name=name, status="created", created_at=now,
                           settings_json=settings.to_json())
            s.add(row)
            s.flush()
            return self._info(row)

    @staticmethod
    def _info(row: Campaign) -> CampaignInfo:
        return CampaignInfo(row.id, row.name, row.status, row.created_at,
                            _settings(row.settings_json))

    def _campaign(self, s: Session, name: str) -> Campaign:
        row = s.scalar(select(Campaign).where(Campaign.name == name))
        if row is None:
            raise CampaignNotFound(f"no campaign named {name!r}")
        return row

    def campaign(self, name: str) -> CampaignInfo:
        """The campaign called ``name`` (CampaignNotFound if none)."""
        with read_session(self.engine) as s:
            return self._info(self._campaign(s, name))

    def campaigns(self) -> list[CampaignInfo]:
        """Every campaign, by name."""
        with read_session(self.engine) as s:
            return [self._info(r) for r in s.scalars(select(Campaign).order_by(Campaign.name))]

    def update_settings(self, name: str, settings: CampaignSettings) -> CampaignInfo:
        """Replace a campaign's settings."""
        with write_session(self.engine) as s:
            row = self._campaign(s, name)
            row.settings_json = settings.to_json()
            return self._info(row)

    def set_status(self, name: str, status: str) -> None:
        """``created``, ``running``, ``paused``, ``done`` (the engine's business)."""
        with write_session(self.engine) as s:
            self._campaign(s, name).status = status

    def write_engine_status(self, name: str, owner: str, status: dict[str, Any], *,
                            now: float) -> None:
        """The running engine's snapshot (``dialtone campaign status`` reads it)."""
        with write_session(self.engine) as s:
            camp = self._campaign(s, name)
            row = s.get(EngineStatus, camp.id)
            text = json.dumps(status, default=str)
            if row is None:
                s.add(EngineStatus(campaign_id=camp.id, owner=owner, updated_at=now,
                                   status_json=text))
            else:
                row.owner, row.updated_at, row.status_json = owner, now, text

    def engine_status(self, name: str) -> tuple[float, dict[str, Any]] | None:
        """(when, snapshot) of the last engine that ran the campaign, or None."""
        with read_session(self.engine) as s:
            camp = self._campaign(s, name)
            row = s.get(EngineStatus, camp.id)
            return None if row is None else (row.updated_at, json.loads(row.status_json))

    # -- import ------------------------------------------------------------------------------

    def import_contacts(self, name: str,
                        source: str | os.PathLike[str] | IO[bytes] | IO[str],
                        mapping: ColumnMapping | None = None, *, now: float,
                        encoding: str = "utf-8", delimiter: str = ",",
                        batch_size: int = 20000, commit_rows: int | None = None,
                        progress: Callable[[int], None] | None = None,
                        on_problem: ProblemSink | None = None) -> ImportReport:
        """Stream ``source`` into the campaign in batches of ``batch_size`` rows.

        Bad rows are reported (row and reason) and the good ones kept; a number already in
        the campaign (from this file or an earlier import) merges the row into that contact:
        its new numbers are added, fields it lacks filled in, the higher priority kept.
        ``on_problem`` receives every problem as it is found (the report keeps the first
        ones); see :mod:`dialer.importer`.
        """
        mapping = mapping or ColumnMapping()
        info = self.campaign(name)
        region = info.settings.region
        rows = read_rows(source, mapping, region, encoding=encoding, delimiter=delimiter,
                         progress=progress, parser=NumberParser(region))
        return ContactImporter(self.engine, info.id, now=now, batch_size=batch_size,
                               commit_rows=commit_rows, on_problem=on_problem).run(rows)

    @staticmethod
    def _ensure_zone(s: Session, cid: int, zones: str) -> None:
        if s.get(CampaignZone, (cid, zones)) is None:
            s.add(CampaignZone(campaign_id=cid, zones=zones))
            s.flush()

    # -- recycling --------------------------------------------------------------------------

    def recycle(self, name: str, *, now: float,
                dispositions: Iterable[str] = RECYCLE_DEFAULT,
                reset_attempts: bool = False, chunk: int = 2000) -> RecycleReport:
        """Put contacts that ended with one of ``dispositions`` back into the dialable pool.

        Never ``dnc``, ``opted_out`` or ``invalid_number`` (asking for them raises
        DialerError), and never a contact whose numbers are all invalid or on a DNC list now
        (the global list or the campaign's): those are counted in ``skipped_dnc``.  A
        recycled contact is due at ``now`` on its first number that can be dialled; its
        72 h lock after an abandoned call stays.  Without ``reset_attempts`` its attempts are
        kept, so a contact already at ``max_attempts`` would still never be dialled: it is
        left as it is and counted in ``skipped_at_limit``.  Streams the campaign in chunks of
        ``chunk`` contacts, one transaction each.
        """
        wanted = sorted({str(d).strip() for d in dispositions if str(d).strip()})
        refused = [d for d in wanted if d in NEVER_RECYCLED]
        if refused:
            raise DialerError(f"never recycled: {', '.join(refused)} (do-not-call, opted-out "
                              "and invalid numbers stay final)")
        if not wanted:
            raise DialerError("no disposition to recycle")
        info = self.campaign(name)
        limit = info.settings.max_attempts
        report = RecycleReport(dispositions=tuple(wanted))
        last_id = 0
        while True:
            with write_session(self.engine) as s:
                rows = list(s.execute(
                    select(Contact.id, Contact.attempts, Contact.disposition)
                    .where(Contact.campaign_id == info.id, Contact.status == "final",
                           Contact.disposition.in_(wanted), Contact.id > last_id)
                    .order_by(Contact.id).limit(chunk)))
                if not rows:
                    return report
                last_id = rows[-1][0]
                phones: dict[int, list[tuple[int, str]]] = {}
                for cid_, pos, e164 in s.execute(
                        select(ContactPhone.contact_id, ContactPhone.position, ContactPhone.e164)
                        .where(ContactPhone.contact_id.in_([r[0] for r in rows]),
                               ContactPhone.invalid.is_(False))
                        .order_by(ContactPhone.contact_id, ContactPhone.position)):
                    phones.setdefault(cid_, []).append((pos, e164))
                bad = blocked(s, (e for ps in phones.values() for _, e in ps), info.id)
                updates = []
                for cid_, attempts, disp in rows:
                    if not reset_attempts and attempts >= limit:
                        report.skipped_at_limit += 1
                        continue
                    first = next((pos for pos, e in phones.get(cid_, []) if e not in bad),
                                 None)
                    if first is None:
                        report.skipped_dnc += 1
                        continue
                    updates.append({"b_id": cid_, "b_pos": first,
                                    "b_attempts": 0 if reset_attempts else attempts})
                    report.recycled += 1
                    key = str(disp)
                    report.by_disposition[key] = report.by_disposition.get(key, 0) + 1
                if updates:
                    s.connection().execute(
                        update(Contact.__table__).where(  # type: ignore[arg-type]
                            Contact.__table__.c.id == bindparam("b_id"))
                        .values(status="pending", next_due=now, phone_pos=bindparam("b_pos"),
                                attempts=bindparam("b_attempts"), callback_at=None,
                                callback_until=None, callback_source=None),
                        updates)

    # -- leasing -----------------------------------------------------------------------------

    def lease(self, name: str, *, now: float, count: int, owner: str,
              lease_s: float | None = None, agent_reserved: bool = False) -> list[Lease]:
        """Up to ``count`` contacts dialable at ``now``, leased to ``owner``.

        Due callbacks come first (in their own window), then contacts by priority (higher
        first), then by how long they have been due.  ``agent_reserved``: the caller has an
        agent waiting for these calls, which lifts the 72 h lockout after an abandoned call.
        """
        if count <= 0:
            return []
        with write_session(self.engine) as s:
            conn = s.connection()
            camp = conn.execute(_Sql.campaign, {"name": name}).one_or_none()
            if camp is None:
                raise CampaignNotFound(f"no campaign named {name!r}")
            st = _settings(camp.settings_json)
            until = now + (lease_s if lease_s is not None else st.lease_s)
            all_zones = list(conn.scalars(_Sql.zones, {"cid": camp.id}))
            out: list[Lease] = []
            for callback in (True, False):
                window = st.callbacks_window if callback else st.window
                open_zones = _open_zones(window, all_zones, now)
                for _ in range(8):  # each round drops DNC hits; bounded
                    need = count - len(out)
                    if need <= 0 or (open_zones is not None and not open_zones):
                        break
                    rows = self._candidates(s, camp.id, st, now=now, limit=need,
                                            callback=callback, open_zones=open_zones,
                                            agent_reserved=agent_reserved)
                    if not rows:
                        break
                    bad = blocked(s, (r.e164 for r in rows), camp.id)
                    for r in rows:
                        if r.e164 in bad:
                            self._skip_dnc(s, r.id, r.phone_pos, camp.id, now)
                    out += self._take(s, camp, [r for r in rows if r.e164 not in bad],
                                      owner=owner, now=now, until=until, callback=callback)
                    if not bad:
                        break
            return out

    def _candidates(self, s: Session, cid: int, st: CampaignSettings, *, now: float,
                    limit: int, callback: bool, open_zones: list[str] | None,
                    agent_reserved: bool) -> list[Any]:
        q = _candidates_query(callback, open_zones is not None, agent_reserved, self._is_pg)
        params: dict[str, Any] = {"cid": cid, "now": now, "limit": limit,
                                  "max_attempts": st.max_attempts}
        if open_zones is not None:
            params["zones"] = open_zones
        return list(s.connection().execute(q, params))

    def _skip_dnc(self, s: Session, contact_id: int, phone_pos: int, cid: int,
                  now: float) -> None:
        """The number about to be dialled is on a DNC list: move to the contact's next number
        not on one, or close the contact as ``dnc``."""
        phones = list(s.execute(select(ContactPhone.position, ContactPhone.e164).where(
            ContactPhone.contact_id == contact_id, ContactPhone.invalid.is_(False))
            .order_by(ContactPhone.position)))
        bad = blocked(s, (e for _, e in phones), cid)
        ok = [pos for pos, e in phones if e not in bad]
        q = update(Contact).where(Contact.id == contact_id)
        if ok:
            s.execute(q.values(phone_pos=next((p for p in ok if p > phone_pos), ok[0])))
        else:
            s.execute(q.values(status="final", disposition=Disposition.DNC.value,
                               callback_at=None, callback_until=None))

    def _take(self, s: Session, camp: Any, rows: Sequence[Any], *, owner: str,
              now: float, until: float, callback: bool) -> list[Lease]:
        """Lease ``rows`` (from :meth:`_candidates`): one ledger row each and the contact
        marked held, in three statements for the lot."""
        if not rows:
            return []
        conn = s.connection()
        expired = [{"a_id": r.lease_attempt, "a_end": r.lease_until} for r in rows
                   if r.lease_attempt is not None]
        if expired:
            # The previous holder's lease ran out without an outcome (it stopped).
            conn.execute(_Sql.expire, expired)
        ids = list(conn.scalars(_Sql.open_attempts, [{"campaign_id": camp.id, "contact_id": r.id, "e164": r.e164, "owner": owner,
              "dialled_at": now, "callback": callback, "live_answer": False,
              "abandoned": False} for r in rows]))
        conn.execute(_Sql.hold, [{"c_id": r.id, "c_att": a, "owner": owner, "until": until}
                                 for r, a in zip(rows, ids, strict=True)])
        return [Lease(camp.name, camp.id, r.id, a, r.e164, r.label, zones_from_key(r.zones),
                      json.loads(r.fields_json), r.language, r.attempts + 1, callback, owner,
                      until) for r, a in zip(rows, ids, strict=True)]

    def renew(self, lease: Lease, *, now: float, lease_s: float) -> Lease:
        """Extend a lease still held (a long call); raises LeaseLost otherwise."""
        (new,) = self.renew_many([lease], now=now, lease_s=lease_s)
        if new is None:
            raise LeaseLost(f"lease of contact {lease.contact_id} is no longer held")
        return new

    def renew_many(self, leases: Sequence[Lease], *, now: float,
                   lease_s: float) -> list[Lease | None]:
        """Extend every lease of ``leases`` still held, in one transaction (one statement
        per 500 leases); for each, the renewed lease or None if it is no longer held."""
        if not leases:
            return []
        until = now + lease_s
        held: set[int] = set()
        with write_session(self.engine) as s:
            conn = s.connection()
            for part in _chunks(leases):
                held.update(conn.scalars(_Sql.renew, {
                    "cids": [le.contact_id for le in part],
                    "aids": [le.attempt_id for le in part], "now": now, "until": until}))
        return [Lease(le.campaign, le.campaign_id, le.contact_id, le.attempt_id, le.e164,
                      le.label, le.zones, le.fields, le.language, le.attempt, le.callback,
                      le.owner, until) if le.attempt_id in held else None for le in leases]

    def orphan_leases(self, name: str, *, owner: str) -> list[Lease]:
        """The leases ``owner`` holds in the campaign with no outcome written: what a dialer
        of that name left open when it was killed.  Its restart closes them (the calls are
        gone with the process) so that no outcome stays unknown."""
        with read_session(self.engine) as s:
            camp = self._campaign(s, name)
            rows = s.execute(select(Contact, Attempt)
                             .join(Attempt, Attempt.id == Contact.lease_attempt)
                             .where(Contact.campaign_id == camp.id,
                                    Contact.lease_owner == owner,
                                    Attempt.disposition.is_(None))).all()
            out = []
            for contact, att in rows:
                phone = s.scalar(select(ContactPhone).where(
                    ContactPhone.contact_id == contact.id, ContactPhone.e164 == att.e164))
                zones = zones_from_key(phone.zones) if phone is not None else ()
                label = phone.label if phone is not None else ""
                out.append(Lease(camp.name, camp.id, contact.id, att.id, att.e164, label,
                                 zones, json.loads(contact.fields_json), contact.language,
                                 contact.attempts, att.callback, owner, contact.lease_until))
            return out

    def release(self, lease: Lease) -> None:
        """Give a lease back without dialling (the pacer changed its mind): the attempt is
        removed from the ledger and not counted."""
        with write_session(self.engine) as s:
            c = s.get(Contact, lease.contact_id)
            if c is not None and c.lease_attempt == lease.attempt_id:
                c.attempts -= 1
                c.lease_owner, c.lease_until, c.lease_attempt = None, 0.0, None
            att = s.get(Attempt, lease.attempt_id)
            if att is not None and att.disposition is None:
                s.delete(att)

    def record_outcome(self, lease: Lease, disposition: str, *, now: float,
                       live_answer: bool | None = None, amd: str | None = None,
                       time_to_agent_s: float | None = None,
                       message_played: str | None = None, agent: str | None = None,
                       sip_status: int | None = None) -> None:
        """Write the attempt's outcome and the contact's next state in one transaction.

        An ``opted_out`` outcome puts the number on the global DNC list in that same
        transaction.  Raises LeaseLost (after writing the ledger row) if the lease had expired
        and another dialer holds the contact now.
        """
        (err,) = self.record_outcomes([Outcome(
            lease, str(disposition), now, live_answer, amd, time_to_agent_s, message_played,
            agent, sip_status)])
        if err is not None:
            raise err

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> list[Exception | None]:
        """Write many outcomes in one transaction (group commit); for each, None or the error
        :meth:`record_outcome` would have raised for it alone: LeaseLost (its ledger row is
        written, the contact left to its new holder) or DialerError (nothing written for it).

        If the transaction fails as a whole (a database error), each outcome is written again
        in a transaction of its own, so that one bad outcome never loses the others; an error
        there is returned in that outcome's place.
        """
        if not outcomes:
            return []
        try:
            with write_session(self.engine) as s:
                return self._write_outcomes(s, outcomes)
        except Exception as e:  # noqa: BLE001 - handed back to its caller, not swallowed
            if len(outcomes) == 1:
                return [e]
        return [self.record_outcomes([o])[0] for o in outcomes]

    def _write_outcomes(self, s: Session, outcomes: Sequence[Outcome]) -> list[Exception | None]:
        errors: list[Exception | None] = [None] * len(outcomes)
        att_ids = [o.lease.attempt_id for o in outcomes]
        have: dict[int, str | None] = {}
        conn = s.connection()
        for part in _chunks(att_ids):
            have.update(conn.execute(_Sql.attempts, {"ids": part}).all())
        ok: list[int] = []
        for i, o in enumerate(outcomes):
            aid = o.lease.attempt_id
            if aid not in have:
                errors[i] = DialerError(f"no attempt {aid}")
            elif have[aid] not in (None, Disposition.LEASE_EXPIRED.value):
                errors[i] = DialerError(f"attempt {aid} already has outcome {have[aid]}")
            else:
                have[aid] = str(o.disposition)  # a second outcome for it in this batch is refused
                ok.append(i)
        if not ok:
            return errors
        conn.execute(_Sql.close_attempt, [_ledger_row(outcomes[i]) for i in ok])
        contacts: dict[int, Any] = {}
        for part in _chunks([outcomes[i].lease.contact_id for i in ok]):
            contacts.update((r.id, r) for r in conn.execute(_Sql.contacts, {"ids": part}))
        held: list[Outcome] = []
        for i in ok:
            lease = outcomes[i].lease
            c = contacts.get(lease.contact_id)
            if c is None or c.lease_attempt != lease.attempt_id:
                errors[i] = LeaseLost(
                    f"contact {lease.contact_id} was leased again before the outcome")
            else:
                held.append(outcomes[i])
        if held:
            self._apply(s, held, contacts)
        return errors

    def _apply(self, s: Session, held: Sequence[Outcome], contacts: dict[int, Any]) -> None:
        """The contacts' next states (:func:`dialer.policy.decide`) for outcomes whose lease
        is still held: one statement per kind of change for the lot."""
        cids = [o.lease.contact_id for o in held]
        camps = {contacts[c].campaign_id for c in cids}
        conn = s.connection()
        settings = {cid: _settings(text) for cid, text in
                    conn.execute(_Sql.settings, {"ids": list(camps)})}
        valid: dict[int, list[int]] = {c: [] for c in cids}
        for part in _chunks(cids):
            for contact_id, pos in conn.execute(_Sql.valid_positions, {"ids": part}):
                valid[contact_id].append(pos)
        keep_cb: list[dict[str, Any]] = []
        clear_cb: list[dict[str, Any]] = []
        for o in held:
            c = contacts[o.lease.contact_id]
            d = decide(settings[c.campaign_id], disposition=str(o.disposition),
                       attempts=c.attempts, phone_pos=c.phone_pos,
                       valid_positions=valid[c.id], locked_until=c.locked_until, now=o.now)
            if d.mark_invalid:
                s.execute(update(ContactPhone).where(ContactPhone.contact_id == c.id,
                                                     ContactPhone.e164 == o.lease.e164)
                          .values(invalid=True))
            if d.opt_out:
                DncList.add_e164(s, [o.lease.e164], now=o.now, source="opt_out")
            row = {"c_id": c.id, "c_status": d.status, "c_disp": d.disposition,
                   "c_due": d.next_due, "c_pos": d.phone_pos, "c_lock": d.locked_until}
            (clear_cb if o.lease.callback or d.status == "final" else keep_cb).append(row)
        if keep_cb:
            conn.execute(_Sql.next_state, keep_cb)
        if clear_cb:
            conn.execute(_Sql.next_state_no_callback, clear_cb)

    # -- callbacks ---------------------------------------------------------------------------

    def schedule_callback(self, name: str, number: str, *, at: float, now: float,
                          until: float | None = None, source: str = "agent",
                          language: str | None = None, request_id: int | None = None,
                          fields: dict[str, str] | None = None) -> int:
        """A callback for ``number`` at ``at`` (until ``until``): from the IVR, an agent or
        the manager.  The number's contact in the campaign is reopened (created if new);
        returns the contact id.  Callbacks pass before other contacts and past the attempt
        limit (the person asked), but never past a DNC list or the callback window."""
        with write_session(self.engine) as s:
            camp = self._campaign(s, name)
            st = _settings(camp.settings_json)
            parsed = NumberParser(st.region).parse(number)
            if parsed.e164 is None:
                raise ListImportError(0, parsed.reason or "bad number", value=number)
            phone = s.scalar(select(ContactPhone).where(ContactPhone.campaign_id == camp.id,
                                                        ContactPhone.e164 == parsed.e164))
            if phone is None:
                contact = Contact(campaign_id=camp.id, row=0,
                                  fields_json=json.dumps(fields or {}), language=language,
                                  priority=0, status="pending", attempts=0, phone_pos=0,
                                  next_due=now, locked_until=0.0, lease_until=0.0)
                s.add(contact)
                s.flush()
                s.add(ContactPhone(contact_id=contact.id, campaign_id=camp.id, position=0,
                                   label="callback", e164=parsed.e164, zones=parsed.zones,
                                   invalid=False))
                self._ensure_zone(s, camp.id, parsed.zones)
            else:
                c = s.get(Contact, phone.contact_id)
                assert c is not None
                contact = c
                contact.phone_pos = phone.position
                if contact.status == "final" and contact.disposition in (
                        Disposition.DNC, Disposition.OPTED_OUT, Disposition.INVALID_NUMBER):
                    raise DialerError(f"{parsed.e164} is {contact.disposition}: no callback")
                contact.status = "pending"
            contact.callback_at, contact.callback_until = at, until
            contact.callback_source, contact.callback_request = source, request_id
            s.flush()
            return contact.id

    def ingest_ivr_callbacks(self, name: str, callbacks: CallbackStore, *, now: float,
                             limit: int = 1000) -> list[int]:
        """Take the IVR callback node's pending requests (``dialer.callbacks``) into the
        campaign: each slot (``morning``...) becomes its next occurrence in the callee's
        local time; requests are marked ``scheduled`` (or ``rejected``).  Returns the
        request ids scheduled."""
        st = self.campaign(name).settings
        done: list[int] = []
        for req in callbacks.pending(limit):
            parsed = NumberParser(st.region).parse(req.number)
            span = st.callback_slots.get(req.slot)
            zones = zones_from_key(parsed.zones)
            if parsed.e164 is None or span is None or not zones:
                callbacks.mark(req.id, "rejected")
                continue
            at, until = _next_slot(zones[0], span, req.created_at)
            try:
                self.schedule_callback(name, parsed.e164, at=at, until=until, now=now,
                                       source="ivr", language=req.language,
                                       request_id=req.id,
                                       fields={k: str(v) for k, v in req.context.items()
                                               if v is not None})
            except DialerError:
                callbacks.mark(req.id, "rejected")
                continue
            callbacks.mark(req.id, "scheduled")
            done.append(req.id)
        return done

    # -- reports -----------------------------------------------------------------------------

    def abandonment(self, name: str, *, now: float) -> AbandonmentReport:
        """Abandonment over the campaign, its current 30-day period and the last 24 h."""
        with read_session(self.engine) as s:
            camp = self._campaign(s, name)
            st = _settings(camp.settings_json)
            base = (Attempt.campaign_id == camp.id, Attempt.disposition.is_not(None))
            first = s.scalar(select(func.min(Attempt.dialled_at)).where(*base))

            def count(*extra: Any) -> tuple[int, int]:
                live, ab = s.execute(select(
                    func.count().filter(Attempt.live_answer.is_(True)),
                    func.count().filter(Attempt.abandoned.is_(True))).where(*base, *extra)).one()
                return int(live), int(ab)

            live, ab = count()
            if first is None:
                start = None
                plive, pab = 0, 0
            else:
                start = first + ((now - first) // PERIOD_S) * PERIOD_S
                plive, pab = count(Attempt.dialled_at >= start)
            l24, a24 = count(Attempt.dialled_at >= now - DAY_S)
        return AbandonmentReport(st.abandon_target, live, ab, start, plive, pab, l24, a24)

    def summary(self, name: str, *, now: float) -> dict[str, Any]:
        """Counts per state and disposition, the ledger's totals and abandonment."""
        with read_session(self.engine) as s:
            camp = self._campaign(s, name)
            st = _settings(camp.settings_json)
            by: dict[str, int] = {}
            for status, disp, n in s.execute(
                    select(Contact.status, Contact.disposition, func.count())
                    .where(Contact.campaign_id == camp.id)
                    .group_by(Contact.status, Contact.disposition)):
                key = disp if status == "final" and disp else status
                by[key] = by.get(key, 0) + int(n)
            contacts = sum(by.values())
            unknown = s.scalar(select(func.count()).select_from(Contact).join(
                ContactPhone, and_(ContactPhone.contact_id == Contact.id,
                                   ContactPhone.position == Contact.phone_pos))
                .where(Contact.campaign_id == camp.id, Contact.status == "pending",
                       ContactPhone.zones == "")) or 0
            attempts = s.scalar(select(func.count()).select_from(Attempt)
                                .where(Attempt.campaign_id == camp.id)) or 0
            leased = s.scalar(select(func.count()).select_from(Contact).where(
                Contact.campaign_id == camp.id, Contact.lease_until > now)) or 0
            callbacks = s.scalar(select(func.count()).select_from(Contact).where(
                Contact.campaign_id == camp.id, Contact.callback_at.is_not(None))) or 0
        ab = self.abandonment(name, now=now)
        return {"campaign": camp.name, "status": camp.status, "contacts": contacts,
                "by_state": dict(sorted(by.items())), "attempts": int(attempts),
                "leased": int(leased), "callbacks_pending": int(callbacks),
                "unknown_timezone": int(unknown),
                "window": st.window.to_spec(), "abandonment": ab.to_dict()}

    def contact_report(self, name: str, *, batch: int = 2000) -> Iterator[dict[str, Any]]:
        """One dict per contact, streamed (issue 14's report: phone, disposition, attempts,
        amd, agent, wait_s of the last attempt, fields)."""
        info = self.campaign(name)
        last_id = 0
        while True:
            with read_session(self.engine) as s:
                rows = list(s.scalars(select(Contact).where(
                    Contact.campaign_id == info.id, Contact.id > last_id)
                    .order_by(Contact.id).limit(batch)))
                if not rows:
                    return
                ids = [r.id for r in rows]
                phones: dict[int, list[ContactPhone]] = {}
                for p in s.scalars(select(ContactPhone).where(ContactPhone.contact_id.in_(ids))
                                   .order_by(ContactPhone.contact_id, ContactPhone.position)):
                    phones.setdefault(p.contact_id, []).append(p)
                last: dict[int, Attempt] = {}
                for att in s.scalars(select(Attempt).where(Attempt.contact_id.in_(ids))
                                     .order_by(Attempt.id)):
                    last[att.contact_id] = att
            for r in rows:
                ph = phones.get(r.id, [])
                cur = next((p for p in ph if p.position == r.phone_pos), ph[0] if ph else None)
                a = last.get(r.id)
                yield {"phone": (a.e164 if a else cur.e164 if cur else None),
                       "phones": [p.e164 for p in ph],
                       "row": r.row,
                       "status": r.status,
                       "disposition": r.disposition if r.status == "final" else
                       (r.disposition or "pending"),
                       "attempts": r.attempts,
                       "amd": a.amd if a else None, "agent": a.agent if a else None,
                       "wait_s": a.time_to_agent_s if a else None,
                       "next_due": r.next_due if r.status == "pending" else None,
                       "timezone": r.timezone or (cur.zones if cur else None) or None,
                       "fields": json.loads(r.fields_json)}
            last_id = rows[-1].id

    def ledger(self, name: str, *, since: float = 0.0) -> Iterator[dict[str, Any]]:
        """The compliance ledger's rows for the campaign, oldest first."""
        info = self.campaign(name)
        with read_session(self.engine) as s:
            rows = s.scalars(select(Attempt).where(Attempt.campaign_id == info.id,
                                                   Attempt.dialled_at >= since)
                             .order_by(Attempt.dialled_at, Attempt.id))
            for a in rows:
                yield {"attempt": a.id, "contact": a.contact_id, "number": a.e164,
                       "dialled_at": a.dialled_at, "ended_at": a.ended_at,
                       "outcome": a.disposition, "live_answer": a.live_answer,
                       "abandoned": a.abandoned, "amd": a.amd,
                       "time_to_agent_s": a.time_to_agent_s,
                       "message_played": a.message_played, "agent": a.agent, "sip_status": a.sip_status,
                       "owner": a.owner, "callback": a.callback}


def _open_zones(window: CallingWindow, all_zones: Sequence[str], now: float) -> list[str] | None:
    """The campaign's zone sets inside ``window`` at ``now`` (None: every one, ``always``)."""
    if window.always:
        return None
    return [z for z in all_zones if z and window.is_open(zones_from_key(z), now)]


def _next_slot(zone: str, span: tuple[str, str], after: float) -> tuple[float, float]:
    """The next occurrence of local ``span`` (HH:MM, HH:MM) in ``zone`` that has not ended
    at ``after``: (start, end) epoch seconds (the start no earlier than ``after``)."""
    from zoneinfo import ZoneInfo
    tz = ZoneInfo(zone)
    a = time.fromisoformat(span[0])
    b = time.fromisoformat(span[1])
    day: date = datetime.fromtimestamp(after, tz).date()
    for k in range(3):
        d = day + timedelta(days=k)
        start = datetime.combine(d, a, tz).timestamp()
        end = datetime.combine(d, b, tz).timestamp()
        if end > after:
            return max(start, after), end
    raise DialerError("no slot")  # pragma: no cover - a span always recurs within a day


def iter_phone_numbers(values: Iterable[str], region: str) -> Iterator[str | None]:
    """E.164 of each value or None (helper for CLIs)."""
    parser = NumberParser(region)
    for v in values:
        yield parser.parse(v).e164
