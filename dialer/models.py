"""The dialer's tables (SQLAlchemy 2 ORM), kept simple to put under Alembic later.

Times are epoch seconds (float, UTC) throughout: the sans-IO cores pass ``now`` as a float,
and a float compares the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "GLOBAL_SCOPE",
    "LEASE_ORDER_INDEX",
    "Attempt",
    "Campaign",
    "CampaignZone",
    "Contact",
    "ContactPhone",
    "DialerBase",
    "DncEntry",
    "EngineStatus",
]

GLOBAL_SCOPE = 0
"""``DncEntry.campaign_id`` of the global list (campaign ids start at 1)."""


class DialerBase(DeclarativeBase):
    """Declarative base of the dialer's tables (apart from other layers' metadata)."""


class Campaign(DialerBase):
    """A campaign: its settings as JSON (:class:`dialer.policy.CampaignSettings`)."""

    __tablename__ = "dialer_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="created")
    created_at: Mapped[float] = mapped_column(Float)
    settings_json: Mapped[str] = mapped_column(Text, default="{}")


class Contact(DialerBase):
    """A person to call: their fields, where they stand, and who holds their lease.

    ``status``: ``pending`` (to dial, when ``next_due`` comes), ``final`` (``disposition``
    says why), ``no_timezone`` (no zone known for any number: not dialled, reported).
    """

    __tablename__ = "dialer_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("dialer_campaigns.id"))
    row: Mapped[int] = mapped_column(Integer, default=0)
    fields_json: Mapped[str] = mapped_column(Text, default="{}")
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    phone_pos: Mapped[int] = mapped_column(Integer, default=0)
    """Position of the number to dial next (:class:`ContactPhone.position`)."""
    next_due: Mapped[float] = mapped_column(Float, default=0.0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    """No redial before this unless an agent is reserved (72 h after an abandoned call)."""
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)
    lease_attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    callback_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """A scheduled callback, dialled first when due (``callback_until``: end of its slot)."""
    callback_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    callback_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    callback_request: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        Index("ix_dialer_contacts_select", "campaign_id", "status", "next_due"),
        Index("ix_dialer_contacts_callback", "campaign_id", "callback_at"),
    )


# The lease's order (priority first, then how long due): the selection walks this index and
# stops at the rows it needs instead of sorting every pending contact of the campaign.
LEASE_ORDER_INDEX = Index("ix_dialer_contacts_lease_order", Contact.campaign_id, Contact.status,
      Contact.priority.desc(), Contact.next_due, Contact.id)


class ContactPhone(DialerBase):
    """One number of a contact (``position`` 0 is dialled first)."""

    __tablename__ = "dialer_contact_phones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("dialer_contacts.id"))
    campaign_id: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(64))
    e164: Mapped[str] = mapped_column(String(20))
    zones: Mapped[str] = mapped_column(String(256), default="")
    """The number's zones (:func:`dialer.windows.zones_key`), or the contact's column zone."""
    invalid: Mapped[bool] = mapped_column(Boolean, default=False)
    """Set on an ``invalid_number`` outcome: never dialled again."""

    __table_args__ = (
        UniqueConstraint("campaign_id", "e164", name="uq_dialer_phone_campaign_e164"),
        Index("ix_dialer_phones_contact", "contact_id", "position"),
        Index("ix_dialer_phones_e164", "e164"),
    )


class CampaignZone(DialerBase):
    """The distinct zone sets of a campaign's numbers: the selection asks which are inside
    the window now and filters on them in SQL (a few dozen rows, not one per contact)."""

    __tablename__ = "dialer_campaign_zones"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zones: Mapped[str] = mapped_column(String(256), primary_key=True)


class DncEntry(DialerBase):
    """A do-not-call number, global (``campaign_id`` 0) or for one campaign."""

    __tablename__ = "dialer_dnc"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(Integer, default=GLOBAL_SCOPE)
    e164: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(32), default="manual")
    added_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("e164", "campaign_id", name="uq_dialer_dnc"),
    )


class Attempt(DialerBase):
    """The compliance ledger: one row per call attempt, opened when the contact is leased
    and closed, atomically with the contact's new state, by the outcome.

    What a regulator asks for: when (``dialled_at``), which number, the outcome, whether a
    live person answered, the time to an agent and the message played (FTC 16 CFR
    310.4(b)(4)(iii): the safe-harbour message on an abandoned call; Ofcom's persistent
    misuse policy: abandoned and silent calls).
    """

    __tablename__ = "dialer_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(Integer)
    e164: Mapped[str] = mapped_column(String(20))
    owner: Mapped[str] = mapped_column(String(64))
    dialled_at: Mapped[float] = mapped_column(Float)
    callback: Mapped[bool] = mapped_column(Boolean, default=False)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    live_answer: Mapped[bool] = mapped_column(Boolean, default=False)
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False)
    amd: Mapped[str | None] = mapped_column(String(16), nullable=True)
    time_to_agent_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    message_played: Mapped[str | None] = mapped_column(String(128), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sip_status: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        Index("ix_dialer_attempts_campaign", "campaign_id", "dialled_at"),
        Index("ix_dialer_attempts_contact", "contact_id"),
    )


class EngineStatus(DialerBase):
    """The running dialer's live snapshot of a campaign (``dialtone campaign status`` reads
    it from another process): dial level, calls by phase, agents by state."""

    __tablename__ = "dialer_engine_status"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[float] = mapped_column(Float)
    status_json: Mapped[str] = mapped_column(Text, default="{}")
