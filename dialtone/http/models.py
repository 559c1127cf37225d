"""The console API's request and response models (pydantic): the OpenAPI document's schemas.

Campaign settings are the store's own :class:`dialer.policy.CampaignSettings` keys (the
campaign file's, issue 14), validated by the store, so the API, the CLI and the file agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialtone.http.users import Role

__all__ = [
    "AgentOut", "AuditOut", "CampaignCreate", "CampaignEdit", "CampaignOut", "DncCheckOut",
    "DncIn", "ImportOut", "LoginIn", "LoginOut", "Problem", "SimulateIn", "StartRefused",
    "TokenCreate", "TokenCreated", "UserCreate", "UserOut",
]

CampaignName = str


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    name: str
    role: Role
    csrf_token: str
    """Send it back in ``X-CSRF-Token`` on every state-changing request."""


class UserCreate(_In):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Role


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    created_at: float


class TokenCreate(_In):
    name: str = Field(min_length=1, max_length=64)


class TokenCreated(BaseModel):
    id: int
    name: str
    token: str
    """Shown once: only its hash is kept."""


class TokenOut(BaseModel):
    id: int
    name: str
    user: str
    created_at: float
    revoked_at: float | None
    last_used_at: float | None


class AuditOut(BaseModel):
    id: int
    at: float
    user: str
    action: str
    target: str
    detail: dict[str, Any]


class CampaignCreate(_In):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
    settings: dict[str, Any] = Field(default_factory=dict)
    """CampaignSettings keys: region, kind, caller_id, pacing, window, max_attempts,
    retries, abandon_target, ring_timeout, ... (docs/dialer.md).  ``retries`` is laid over
    the defaults (a null delay makes that outcome final)."""


class CampaignEdit(_In):
    settings: dict[str, Any]
    """Keys to change; the others keep their values (``retries`` is laid over the current
    delays; a null delay makes that outcome final)."""


class CampaignOut(BaseModel):
    name: str
    status: str
    """created, running, paused, done, archived."""
    created_at: float
    settings: dict[str, Any]


class StartRefused(BaseModel):
    detail: str
    reasons: list[str]


class Problem(BaseModel):
    row: int
    column: str | None = None
    reason: str
    value: str | None = None


class ImportOut(BaseModel):
    id: str
    campaign: str
    filename: str
    state: Literal["running", "done", "failed"]
    bytes_total: int
    bytes_read: int
    progress: float
    started_at: float
    finished_at: float | None
    error: str | None
    imported: int
    merged: int
    rows: int
    bad_rows: int
    warnings: int


class PreviewOut(BaseModel):
    columns: list[str]
    rows: list[list[str]]
    delimiter: str


class DncIn(_In):
    number: str = Field(min_length=1, max_length=64)
    campaign: str | None = None
    """None: the global list."""


class DncCheckOut(BaseModel):
    number: str
    e164: str
    blocked: bool
    lists: list[str]
    """``global`` and/or the campaign's name."""


class DncImportOut(BaseModel):
    added: int
    already: int
    problems: list[Problem]


class AgentOut(BaseModel):
    id: str
    state: str
    since: float | None
    in_state_s: float
    campaign: str | None = None


class PopulationModelIn(_In):
    answer_rate: float = Field(default=0.25, ge=0, le=1)
    machine_rate: float = Field(default=0.20, ge=0, le=1)
    busy_rate: float = Field(default=0.06, ge=0, le=1)
    failed_rate: float = Field(default=0.04, ge=0, le=1)
    talk_mean: float = Field(default=120.0, gt=0, le=7200)


class SimulateIn(_In):
    campaign: str | None = None
    """Replay this campaign's recorded attempts (``population: recorded``)."""
    population: Literal["recorded", "model"] = "model"
    model: PopulationModelIn = PopulationModelIn()
    agents: int = Field(default=10, ge=1, le=200)
    hours: float = Field(default=1.0, gt=0, le=8)
    wrap: float = Field(default=10.0, ge=0, le=600)
    pacing_a: str = Field(default="progressive", max_length=64)
    pacing_b: str = Field(default="predictive", max_length=64)
    abandon_target: float = Field(default=0.03, ge=0, le=1)
    seed: int = Field(default=1, ge=0, le=2**31)


class SimulateOut(BaseModel):
    population: str
    rows: int | None
    a: dict[str, Any]
    b: dict[str, Any]
