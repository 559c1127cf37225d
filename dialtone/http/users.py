"""The console's users, sessions, API tokens and audit log (SQLAlchemy, the store's database).

Passwords are argon2id hashes (argon2-cffi's defaults, RFC 9106's second recommended option);
session ids and API tokens are random (``secrets.token_urlsafe(32)``) and only their SHA-256
is stored, so a copy of the database does not let anyone in.  There is no default password:
the first admin comes from ``dialtone user add`` or from ``DIALTONE_ADMIN_PASSWORD`` on the
first run.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, Engine, Float, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dialer.db import read_session, write_session
from dialtone_errors import DialtoneError

__all__ = ["AuditEntry", "ConsoleBase", "ConsoleError", "Principal", "Role", "UserStore"]


class ConsoleError(DialtoneError):
    """A console request that cannot be done (a name taken, a bad role...)."""


class Role(StrEnum):
    """What a user may do: viewers read, managers run campaigns, admins manage users too."""

    VIEWER = "viewer"
    MANAGER = "manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "manager": 1, "admin": 2}[self.value]


class ConsoleBase(DeclarativeBase):
    """The console's tables, next to the dialer's in the same database."""


class User(ConsoleBase):
    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Float)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class SessionRow(ConsoleBase):
    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class ApiToken(ConsoleBase):
    __tablename__ = "console_api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditRow(ConsoleBase):
    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    detail_json: Mapped[str] = mapped_column(Text, default="{}")

    __table_args__ = (Index("ix_console_audit_at", "at"),)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user by session (``csrf`` set) or by API token."""

    user_id: int
    name: str
    role: Role
    csrf: str | None = None
    """The session's CSRF token (None for an API token: no ambient credential to forge)."""
    via: str = "session"

    def may(self, role: Role) -> bool:
        return self.role.rank >= role.rank


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    user: str
    action: str
    target: str
    detail: dict[str, Any]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Users, sessions, tokens and the audit log on ``engine``."""

    TOKEN_PREFIX = "dt_"

    def __init__(self, engine: Engine, *, hasher: PasswordHasher | None = None) -> None:
        self.engine = engine
        ConsoleBase.metadata.create_all(engine)
        self.hasher = hasher or PasswordHasher()
        # verify() against this when the user does not exist, so a wrong name costs the same
        # time as a wrong password (no user enumeration by timing)
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    # -- users -------------------------------------------------------------------------------

    def add_user(self, name: str, password: str, role: Role | str, *, now: float) -> int:
        """A new user; raises ConsoleError if the name is taken or the password too short."""
        role = Role(role)
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "")\
                .replace(".", "").replace("@", "").isalnum():
            raise ConsoleError(f"bad user name {name!r}: letters, digits, - _ . @ (1-64)")
        if len(password) < 8:
            raise ConsoleError("password too short: at least 8 characters")
        with write_session(self.engine) as s:
            if s.scalar(select(User.id).where(User.name == name)) is not None:
                raise ConsoleError(f"user {name!r} already exists")
            row = User(name=name, role=role.value, password_hash=self.hasher.hash(password),
                       created_at=now, disabled=False)
            s.add(row)
            s.flush()
            return row.id

    def users(self) -> list[tuple[int, str, Role, float]]:
        with read_session(self.engine) as s:
            return [(u.id, u.name, Role(u.role), u.created_at)
                    for u in s.scalars(select(User).where(User.disabled.is_(False))
                                       .order_by(User.name))]

    def count(self) -> int:
        return len(self.users())

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The user if ``password`` is theirs (argon2 verify), else None."""
        with read_session(self.engine) as s:
            row = s.scalar(select(User).where(User.name == name, User.disabled.is_(False)))
        try:
            if row is None:
                self.hasher.verify(self._dummy, password)
                return None
            self.hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if self.hasher.check_needs_rehash(row.password_hash):
            with write_session(self.engine) as s:
                u = s.get(User, row.id)
                if u is not None:
                    u.password_hash = self.hasher.hash(password)
        return Principal(row.id, row.name, Role(row.role))

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, who: Principal, *, now: float, ttl: float) -> tuple[str, str]:
        """(session id for the cookie, CSRF token) for a logged-in user."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with write_session(self.engine) as s:
            s.add(SessionRow(id_hash=_digest(sid), user_id=who.user_id, csrf=csrf,
                             created_at=now, expires_at=now + ttl))
        return sid, csrf

    def session(self, sid: str, *, now: float) -> Principal | None:
        with read_session(self.engine) as s:
            row = s.get(SessionRow, _digest(sid))
            if row is None or row.expires_at <= now:
                return None
            user = s.get(User, row.user_id)
            if user is None or user.disabled:
                return None
            return Principal(user.id, user.name, Role(user.role), csrf=row.csrf)

    def close_session(self, sid: str) -> None:
        with write_session(self.engine) as s:
            row = s.get(SessionRow, _digest(sid))
            if row is not None:
                s.delete(row)

    # -- API tokens --------------------------------------------------------------------------

    def create_token(self, user_id: int, name: str, *, now: float) -> tuple[int, str]:
        """(id, the token): the token is shown once; only its hash is kept."""
        token = self.TOKEN_PREFIX + secrets.token_urlsafe(32)
        with write_session(self.engine) as s:
            row = ApiToken(name=name, user_id=user_id, token_hash=_digest(token),
                           created_at=now)
            s.add(row)
            s.flush()
            return row.id, token

    def tokens(self) -> list[dict[str, Any]]:
        with read_session(self.engine) as s:
            out = []
            for t, u in s.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                                  .order_by(ApiToken.id)):
                out.append({"id": t.id, "name": t.name, "user": u.name,
                            "created_at": t.created_at, "revoked_at": t.revoked_at,
                            "last_used_at": t.last_used_at})
            return out

    def revoke_token(self, token_id: int, *, now: float) -> bool:
        with write_session(self.engine) as s:
            row = s.get(ApiToken, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = now
            return True

    def token(self, token: str, *, now: float) -> Principal | None:
        """The token's user, unless it is unknown or revoked.  ``last_used_at`` is written
        at most once a minute: a write per request would serialise every API call on
        SQLite's one writer."""
        with read_session(self.engine) as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
            if row is None or row.revoked_at is not None:
                return None
            user = s.get(User, row.user_id)
            if user is None or user.disabled:
                return None
            stale = row.last_used_at is None or row.last_used_at < now - 60.0
        if stale:
            with write_session(self.engine) as s:
                r = s.get(ApiToken, row.id)
                if r is not None:
                    r.last_used_at = now
        return Principal(user.id, user.name, Role(user.role), via="token")

    # -- audit -------------------------------------------------------------------------------

    def audit(self, who: str, action: str, target: str, detail: dict[str, Any] | None = None,
              *, now: float) -> None:
        """Record who did what to which target."""
        with write_session(self.engine) as s:
            s.add(AuditRow(at=now, user=who, action=action, target=target,
                           detail_json=json.dumps(detail or {}, sort_keys=True, default=str)))

    def audit_log(self, *, limit: int = 200, target: str | None = None) -> list[AuditEntry]:
        with read_session(self.engine) as s:
            q = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
            if target is not None:
                q = q.where(AuditRow.target == target)
            return [AuditEntry(r.id, r.at, r.user, r.action, r.target, json.loads(r.detail_json))
                    for r in s.scalars(q)]
