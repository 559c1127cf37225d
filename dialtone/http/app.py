"""The campaign console: the HTTP API under ``/api/``, the page at ``/``, ``/openapi.json``,
``/health``, ``/ready`` and ``/metrics``.

:func:`create_app` builds it from values (the node's ``http`` section, the dialer store, the
event hub, an agent source, a clock); nothing is read from module globals, so a test builds as
many apps as it likes.  Every API route declares the role it needs (``require``); a route
without one would be open, so the test suite checks every route of the OpenAPI document
without a session.

Campaign status is the store's: start, pause and resume change it there, and the dialer engine
(issue 14) follows the store (it dials a campaign while its status is ``running``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from importlib import resources
from typing import Annotated, Any

from argon2 import PasswordHasher
from fastapi import (
    Depends,
    FastAPI,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from dialer.db import read_session
from dialer.errors import CampaignNotFound, DialerError, ListImportError
from dialer.lists import ColumnMapping
from dialer.models import CampaignZone
from dialer.policy import DEFAULT_RETRIES, CampaignSettings
from dialer.store import DialerStore, _open_zones
from dialtone.config import HttpSection
from dialtone.http import models as m
from dialtone.http.auth import SESSION_COOKIE, LoginLimiter, require
from dialtone.http.hub import EventHub
from dialtone.http.imports import ImportJob, ImportJobs, check_csv, preview_csv
from dialtone.http.ivr_stats import IvrTracker, ivr_period_stats
from dialtone.http.limits import BodyLimit
from dialtone.http.live import AgentSource, LiveFigures, StaticAgents
from dialtone.http.metrics import NodeMetrics, NodeStats
from dialtone.http.reports import compliance, dispositions, recorded_population
from dialtone.http.users import ConsoleError, Principal, Role, UserStore

__all__ = ["create_app"]

Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Manager = Annotated[Principal, Depends(require(Role.MANAGER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]

Since = Annotated[float | None, Query(description="epoch seconds (default: 24 h ago)")]
Until = Annotated[float | None, Query(description="epoch seconds (default: now)")]
Limit = Annotated[int | None, Query(ge=1, le=100000, description="close after this many events")]

TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"created"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "archive": (frozenset({"created", "paused", "done"}), "archived"),
}


def _static_dir() -> str:
    return str(resources.files("dialtone.http") / "static")


def create_app(config: HttpSection, store: DialerStore, *, hub: EventHub | None = None,
               agents: AgentSource | None = None, emit: Callable[[dict[str, Any]], None]
               | None = None, clock: Callable[[], float] = time.time,
               events_path: str | None = None, admin_password: str | None = None,
               ready: Callable[[], bool] | None = None,
               broker_connected: Callable[[], bool] | None = None,
               live_interval: float = 1.0, hasher: PasswordHasher | None = None,
               dialer_trunk: Callable[[], str | None] | None = None,
               node_stats: Callable[[], NodeStats | None] | None = None) -> FastAPI:
    """The console app.

    ``hub``: the node's event hub (a private one if None); ``emit``: where the console's own
    events go (the node's event stream, so they reach the log, /metrics and the streams;
    default: the hub); ``events_path``: the event log the IVR statistics read;
    ``admin_password``: creates user ``admin`` when there is no user yet
    (``DIALTONE_ADMIN_PASSWORD``); ``ready``: the node's readiness; ``hasher``: argon2
    parameters (default: argon2-cffi's, RFC 9106; tests pass cheaper ones); ``node_stats``:
    the SIP and media counters ``/metrics`` reads when scraped (:class:`NodeCounters`).
    """
    hub = hub or EventHub()
    emit_event = emit or hub.emit
    agent_source = agents or StaticAgents()
    users = UserStore(store.engine, hasher=hasher)
    if admin_password and users.count() == 0:
        users.add_user("admin", admin_password, Role.ADMIN, now=clock())
    metrics = NodeMetrics(node_stats=node_stats)
    hub.add_listener(metrics.observe)
    ivr = IvrTracker()
    hub.add_listener(ivr.observe)
    live = LiveFigures(store, hub, agent_source, metrics, clock=clock, interval=live_interval)
    limiter = LoginLimiter(per_source=config.login_per_source, per_user=config.login_per_user,
                           window=config.login_window)

    def import_changed(job: ImportJob) -> None:
        hub.publish(f"campaign:{job.campaign}", {"type": "import", **job.to_dict()})
        if job.state != "running":
            event = {"type": "list_imported", "campaign": job.campaign, "import_id": job.id,
                     "state": job.state, "imported": job.report.get("imported", 0),
                     "bad_rows": job.report.get("bad_rows", 0), "error": job.error}
            # called from the import's worker thread: the event log is the loop's
            hub.in_loop(lambda: emit_event(event))

    jobs = ImportJobs(store, clock=clock, on_change=import_changed)
    tasks: set[asyncio.Task[Any]] = set()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        ticker = asyncio.create_task(live.run())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            for t in list(tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    app = FastAPI(title="Dialtone console API", version="1", lifespan=lifespan,
                  description="Campaigns, lists, DNC, agents, reports, the simulator and "
                  "IVR statistics of a Dialtone node. Authenticate with the session cookie "
                  "from POST /api/auth/login (and X-CSRF-Token on changes) or with "
                  "Authorization: Bearer <API token>. Campaign status lives in the dialer "
                  "store; the dialer engine follows it.")
    # a multipart body is spooled before the endpoint runs: cap it while it arrives (the
    # form's other fields and framing get 64 KiB on top of the file's limit)
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + 64 * 1024)
    app.state.users, app.state.clock = users, clock
    app.state.hub, app.state.metrics, app.state.live = hub, metrics, live

    def audit(who: Principal, action: str, target: str, **detail: Any) -> None:
        users.audit(who.name, action, target, detail, now=clock())

    @app.exception_handler(SQLAlchemyError)
    async def _db_error(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        return JSONResponse({"detail": "database unavailable"}, status_code=503)

    # -- public ------------------------------------------------------------------------------

    @app.get("/health", tags=["node"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["node"], responses={503: {"description": "not ready"}})
    def readiness() -> Response:
        """Readiness (no session: probes cannot log in; it says only ready or not): the
        database answers and the node says it is up."""
        try:
            with read_session(store.engine) as s:
                s.execute(select(1))
        except SQLAlchemyError:
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        if ready is not None and not ready():
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        html = (resources.files("dialtone.http") / "static" / "index.html").read_text("utf-8")
        return HTMLResponse(html, headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                       "style-src 'self'; script-src 'self'; "
                                       "frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})

    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")

    @app.post("/api/auth/login", tags=["auth"], responses={401: {}, 429: {}})
    def login(body: m.LoginIn, request: Request, response: Response) -> m.LoginOut:
        """Log in: sets the session cookie; returns the CSRF token."""
        source = request.client.host if request.client else "?"
        wait = limiter.retry_after(source, body.name)
        if wait is not None:
            raise HTTPException(429, "too many failed logins: try again later",
                                headers={"Retry-After": str(int(wait) + 1)})
        who = users.authenticate(body.name, body.password)
        if who is None:
            limiter.failed(source, body.name)
            raise HTTPException(401, "wrong name or password")
        limiter.succeeded(body.name)
        sid, csrf = users.open_session(who, now=clock(), ttl=config.session_ttl)
        secure = config.secure_cookies or request.url.scheme == "https"
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict",
                            secure=secure, max_age=int(config.session_ttl), path="/")
        users.audit(who.name, "login", "session", {"source": source}, now=clock())
        return m.LoginOut(name=who.name, role=who.role, csrf_token=csrf)

    # -- auth --------------------------------------------------------------------------------

    @app.post("/api/auth/logout", tags=["auth"], status_code=204)
    def logout(request: Request, who: Viewer) -> Response:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            users.close_session(sid)
        r = Response(status_code=204)
        r.delete_cookie(SESSION_COOKIE, path="/")
        return r

    @app.get("/api/auth/me", tags=["auth"])
    def me(who: Viewer) -> m.LoginOut:
        """Who is logged in, and the session's CSRF token (the page reloads it)."""
        return m.LoginOut(name=who.name, role=who.role, csrf_token=who.csrf or "")

    @app.get("/api/users", tags=["auth"])
    def list_users(who: Admin) -> list[m.UserOut]:
        return [m.UserOut(id=i, name=n, role=r, created_at=c) for i, n, r, c in users.users()]

    @app.post("/api/users", tags=["auth"], status_code=201, responses={409: {}})
    def add_user(body: m.UserCreate, who: Admin) -> m.UserOut:
        try:
            uid = users.add_user(body.name, body.password, body.role, now=clock())
        except ConsoleError as exc:
            raise HTTPException(409, str(exc)) from None
        audit(who, "user_add", body.name, role=body.role.value)
        return m.UserOut(id=uid, name=body.name, role=body.role, created_at=clock())

    @app.get("/api/tokens", tags=["auth"])
    def list_tokens(who: Admin) -> list[m.TokenOut]:
        return [m.TokenOut(**t) for t in users.tokens()]

    @app.post("/api/tokens", tags=["auth"], status_code=201)
    def create_token(body: m.TokenCreate, who: Manager) -> m.TokenCreated:
        """An API token acting as the caller (shown once)."""
        tid, token = users.create_token(who.user_id, body.name, now=clock())
        audit(who, "token_create", body.name, id=tid)
        return m.TokenCreated(id=tid, name=body.name, token=token)

    @app.delete("/api/tokens/{token_id}", tags=["auth"], status_code=204, responses={404: {}})
    def revoke_token(token_id: int, who: Admin) -> Response:
        if not users.revoke_token(token_id, now=clock()):
            raise HTTPException(404, f"no live token {token_id}")
        audit(who, "token_revoke", str(token_id))
        return Response(status_code=204)

    @app.get("/api/audit", tags=["auth"])
    def audit_log(who: Manager, target: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[m.AuditOut]:
        """Who started, paused or changed what (newest first)."""
        return [m.AuditOut(id=e.id, at=e.at, user=e.user, action=e.action, target=e.target,
                           detail=e.detail) for e in users.audit_log(limit=limit, target=target)]

    # -- campaigns ---------------------------------------------------------------------------

    def _campaign_out(name: str) -> m.CampaignOut:
        try:
            info = store.campaign(name)
        except CampaignNotFound:
            raise HTTPException(404, f"no campaign named {name!r}") from None
        return m.CampaignOut(name=info.name, status=info.status, created_at=info.created_at,
                             settings=info.settings.to_dict())

    @app.get("/api/campaigns", tags=["campaigns"])
    def campaigns(who: Viewer) -> list[m.CampaignOut]:
        return [m.CampaignOut(name=i.name, status=i.status, created_at=i.created_at,
                              settings=i.settings.to_dict()) for i in store.campaigns()]

    @app.post("/api/campaigns", tags=["campaigns"], status_code=201,
              responses={409: {}, 422: {}})
    def create_campaign(body: m.CampaignCreate, who: Manager) -> m.CampaignOut:
        try:
            settings = CampaignSettings.from_dict(
                _merge_retries(DEFAULT_RETRIES, body.settings))
            store.create_campaign(body.name, settings, now=clock())
        except (DialerError, TypeError, ValueError) as exc:
            code = 409 if "already exists" in str(exc) else 422
            raise HTTPException(code, f"campaign not created: {exc}") from None
        audit(who, "campaign_create", body.name, settings=body.settings)
        return _campaign_out(body.name)

    @app.get("/api/campaigns/{name}", tags=["campaigns"], responses={404: {}})
    def campaign(name: str, who: Viewer) -> m.CampaignOut:
        return _campaign_out(name)

    @app.patch("/api/campaigns/{name}", tags=["campaigns"], responses={404: {}, 422: {}})
    def edit_campaign(name: str, body: m.CampaignEdit, who: Manager) -> m.CampaignOut:
        current = _campaign_out(name)
        if current.status == "archived":
            raise HTTPException(409, "an archived campaign cannot change")
        try:
            settings = CampaignSettings.from_dict(
                {**current.settings, **_merge_retries(current.settings["retries"],
                                                      body.settings)})
            store.update_settings(name, settings)
        except (DialerError, TypeError, ValueError) as exc:
            raise HTTPException(422, f"settings not changed: {exc}") from None
        audit(who, "campaign_edit", name, changes=body.settings)
        return _campaign_out(name)

    def cannot_start(name: str) -> list[str]:
        """Why the campaign cannot dial now (empty: it can)."""
        info = store.campaign(name)
        st = info.settings
        reasons = []
        if not st.caller_id:
            reasons.append("no caller ID: set settings.caller_id (a number the callee "
                           "can call back)")
        summary = store.summary(name, now=clock())
        pending = summary["by_state"].get("pending", 0)
        if pending == 0:
            reasons.append("no contacts left to call: upload a list")
        if st.kind == "agents" and not st.extra.get("agents"):
            # agents listed in the campaign are dialled by the engine itself; otherwise they
            # come from the routing core's presence
            logged = [a for a in agent_source.agents() if a.state != "offline"]
            if not logged:
                reasons.append("no agents logged in")
        if dialer_trunk is not None and dialer_trunk() is None:
            reasons.append("this node dials no campaigns: serve it with --trunk "
                           "sip:HOST:PORT (or dial from `dialtone campaign run`)")
        with read_session(store.engine) as s:
            zones = list(s.scalars(select(CampaignZone.zones)
                                   .where(CampaignZone.campaign_id == info.id)))
        open_zones = _open_zones(st.window, zones, clock())
        if open_zones is not None and zones and not open_zones:
            reasons.append(f"outside every calling window now (window: "
                           f"{json.dumps(st.window.to_spec())})")
        return reasons

    def transition(name: str, action: str, who: Principal) -> m.CampaignOut:
        current = _campaign_out(name)
        allowed, target = TRANSITIONS[action]
        if current.status not in allowed:
            raise HTTPException(409, f"cannot {action} a campaign that is {current.status}")
        if action in ("start", "resume"):
            reasons = cannot_start(name)
            if reasons:
                return JSONResponse(  # type: ignore[return-value]
                    {"detail": f"campaign {name!r} cannot {action}: " + "; ".join(reasons),
                     "reasons": reasons}, status_code=409)
        store.set_status(name, target)
        audit(who, f"campaign_{action}", name, previous=current.status, status=target)
        emit_event({"type": "campaign_status", "campaign": name, "status": target,
                    "previous": current.status, "by": who.name})
        return _campaign_out(name)

    refusals: dict[int | str, dict[str, Any]] = {
        404: {}, 409: {"model": m.StartRefused,
                       "description": "wrong status, or why it cannot dial now"}}

    @app.post("/api/campaigns/{name}/start", tags=["campaigns"], responses=refusals)
    def start(name: str, who: Manager) -> m.CampaignOut:
        """created -> running (refused with the reasons when it cannot dial now)."""
        return transition(name, "start", who)

    @app.post("/api/campaigns/{name}/pause", tags=["campaigns"], responses=refusals)
    def pause(name: str, who: Manager) -> m.CampaignOut:
        """running -> paused: the engine stops leasing; calls up finish."""
        return transition(name, "pause", who)

    @app.post("/api/campaigns/{name}/resume", tags=["campaigns"], responses=refusals)
    def resume(name: str, who: Manager) -> m.CampaignOut:
        return transition(name, "resume", who)

    @app.post("/api/campaigns/{name}/archive", tags=["campaigns"], responses=refusals)
    def archive(name: str, who: Manager) -> m.CampaignOut:
        return transition(name, "archive", who)

    @app.get("/api/campaigns/{name}/live", tags=["live"], responses={404: {}})
    async def campaign_live(name: str, who: Viewer) -> dict[str, Any]:
        """The figures the live view shows, now, and the last hour's samples."""
        _campaign_out(name)
        figures = await asyncio.to_thread(live.campaign, name)
        return {**figures, "history": live.history(name)}

    # -- lists -------------------------------------------------------------------------------

    async def _save_upload(upload: UploadFile) -> str:
        fd, path = tempfile.mkstemp(prefix="dialtone-upload-", suffix=".csv")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := await upload.read(1 << 16):
                    size += len(chunk)
                    if size > config.max_upload_bytes:
                        raise HTTPException(413, f"file larger than the limit of "
                                                 f"{config.max_upload_bytes} bytes: nothing "
                                                 f"imported")
                    out.write(chunk)
        except BaseException:
            os.unlink(path)
            raise
        return path

    @app.post("/api/lists/preview", tags=["lists"], responses={413: {}, 422: {}})
    async def preview(who: Manager, file: UploadFile = File(...)) -> m.PreviewOut:  # noqa: B008
        """The header and first rows of a CSV, to map its columns."""
        path = await _save_upload(file)
        try:
            return m.PreviewOut(**preview_csv(path))
        except ListImportError as exc:
            raise HTTPException(422, f"{file.filename}: {exc}") from None
        finally:
            os.unlink(path)

    @app.post("/api/campaigns/{name}/lists", tags=["lists"], status_code=202,
              responses={404: {}, 413: {}, 422: {}})
    async def upload_list(name: str, who: Manager,
                          file: UploadFile = File(...),  # noqa: B008
                          mapping: str = Form("phone=phone"),
                          delimiter: str = Form(",")) -> m.ImportOut:
        """Upload a CSV: checked whole (text, header, mapped columns) before anything is
        written, then imported in the background; poll /api/lists/{id}."""
        _campaign_out(name)
        if len(delimiter) != 1:
            raise HTTPException(422, "delimiter must be one character")
        try:
            cols = ColumnMapping.parse(mapping)
        except ListImportError as exc:
            raise HTTPException(422, f"mapping: {exc.reason}") from None
        path = await _save_upload(file)
        try:
            check_csv(path, cols, delimiter=delimiter)
        except ListImportError as exc:
            os.unlink(path)
            raise HTTPException(422, f"{file.filename}: {exc} (nothing imported)") from None
        job = jobs.new(name, file.filename or "upload.csv", path)
        task = asyncio.create_task(asyncio.to_thread(jobs.run, job, path, cols, delimiter))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        audit(who, "list_upload", name, file=job.filename, bytes=job.bytes_total, id=job.id)
        return m.ImportOut(**job.to_dict())

    def _job(job_id: str) -> ImportJob:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no import {job_id!r}")
        return job

    @app.get("/api/lists", tags=["lists"])
    def uploads(who: Viewer, campaign: str | None = None) -> list[m.ImportOut]:
        """The uploads this node remembers (the last 200), newest first."""
        return [m.ImportOut(**j.to_dict()) for j in jobs.all(campaign)]

    @app.get("/api/lists/{job_id}", tags=["lists"], responses={404: {}})
    def import_progress(job_id: str, who: Viewer) -> m.ImportOut:
        return m.ImportOut(**_job(job_id).to_dict())

    @app.get("/api/lists/{job_id}/bad-rows", tags=["lists"], responses={404: {}})
    def bad_rows(job_id: str, who: Viewer) -> list[m.Problem]:
        """The rows not imported (and warnings), with their reasons."""
        return [m.Problem(**p) for p in _job(job_id).problems()]

    @app.get("/api/lists/{job_id}/bad-rows.csv", tags=["lists"], responses={404: {}})
    def bad_rows_csv(job_id: str, who: Viewer) -> Response:
        rows = _job(job_id).problems()
        return _csv(["row", "column", "reason", "value"], rows, f"{job_id}-bad-rows.csv")

    # -- DNC ---------------------------------------------------------------------------------

    def _scope(campaign: str | None) -> int | None:
        if campaign is None:
            return None
        try:
            return store.campaign(campaign).id
        except CampaignNotFound:
            raise HTTPException(404, f"no campaign named {campaign!r}") from None

    @app.post("/api/dnc", tags=["dnc"], status_code=201, responses={404: {}, 422: {}})
    def dnc_add(body: m.DncIn, who: Manager) -> m.DncCheckOut:
        try:
            e164 = store.dnc.add(body.number, now=clock(), campaign_id=_scope(body.campaign),
                                 source=f"console:{who.name}")
        except ListImportError as exc:
            raise HTTPException(422, f"number: {exc.reason}") from None
        audit(who, "dnc_add", e164, campaign=body.campaign)
        return dnc_check(body.number, who, body.campaign)

    @app.get("/api/dnc/{number}", tags=["dnc"], responses={404: {}, 422: {}})
    def dnc_check(number: str, who: Viewer, campaign: str | None = None) -> m.DncCheckOut:
        try:
            entries = store.dnc.check(number, campaign_id=_scope(campaign))
            e164 = store.dnc.normalise(number)
        except ListImportError as exc:
            raise HTTPException(422, f"number: {exc.reason}") from None
        lists = ["global" if e.campaign_id == 0 else (campaign or str(e.campaign_id))
                 for e in entries]
        return m.DncCheckOut(number=number, e164=e164, blocked=bool(entries), lists=lists)

    @app.delete("/api/dnc/{number}", tags=["dnc"], status_code=204,
                responses={404: {}, 422: {}})
    def dnc_remove(number: str, who: Manager, campaign: str | None = None) -> Response:
        try:
            found = store.dnc.remove(number, campaign_id=_scope(campaign))
        except ListImportError as exc:
            raise HTTPException(422, f"number: {exc.reason}") from None
        if not found:
            raise HTTPException(404, f"{number} is not on that list")
        audit(who, "dnc_remove", number, campaign=campaign)
        return Response(status_code=204)

    @app.post("/api/dnc/import", tags=["dnc"], responses={404: {}, 413: {}, 422: {}})
    async def dnc_import(who: Manager, file: UploadFile = File(...),  # noqa: B008
                         campaign: str | None = Form(None),
                         column: str | None = Form(None)) -> m.DncImportOut:
        """One number per line, or a CSV with a ``phone`` (or ``column``) column."""
        scope = _scope(campaign)
        path = await _save_upload(file)
        try:
            preview_csv(path, rows=0)  # text, not binary: refused before anything is added
            report = await asyncio.to_thread(store.dnc.import_file, path, now=clock(),
                                             campaign_id=scope, column=column,
                                             source_name=f"console:{who.name}")
        except ListImportError as exc:
            raise HTTPException(422, f"{file.filename}: {exc} (nothing imported)") from None
        finally:
            os.unlink(path)
        audit(who, "dnc_import", campaign or "global", added=report.added)
        return m.DncImportOut(added=report.added, already=report.already, problems=[
            m.Problem(row=p.row, column=p.column, reason=p.reason, value=p.value)
            for p in report.problems[:1000]])

    # -- agents, reports ---------------------------------------------------------------------

    @app.get("/api/agents", tags=["agents"])
    def agents_now(who: Viewer) -> list[m.AgentOut]:
        """Agents and how long they have been in their state."""
        return [m.AgentOut(**a) for a in live.agents()]

    def _period(since: float | None, until: float | None) -> tuple[float, float]:
        until = clock() if until is None else until
        since = until - 86400.0 if since is None else since
        if since > until:
            raise HTTPException(422, "since is after until")
        return since, until

    def _cid(name: str) -> int:
        try:
            return store.campaign(name).id
        except CampaignNotFound:
            raise HTTPException(404, f"no campaign named {name!r}") from None

    @app.get("/api/campaigns/{name}/reports/dispositions", tags=["reports"],
             responses={404: {}})
    def report_dispositions(name: str, who: Viewer, since: Since = None,
                            until: Until = None) -> dict[str, Any]:
        """Outcomes of the attempts in the period, in total and per hour (UTC)."""
        a, b = _period(since, until)
        return dispositions(store.engine, _cid(name), since=a, until=b)

    @app.get("/api/campaigns/{name}/reports/dispositions.csv", tags=["reports"],
             responses={404: {}})
    def report_dispositions_csv(name: str, who: Viewer, since: Since = None,
                                until: Until = None) -> Response:
        a, b = _period(since, until)
        rep = dispositions(store.engine, _cid(name), since=a, until=b)
        rows = [{"hour": h["hour"], "disposition": d, "count": n}
                for h in rep["per_hour"] for d, n in sorted(h["counts"].items())]
        return _csv(["hour", "disposition", "count"], rows, f"{name}-dispositions.csv")

    @app.get("/api/campaigns/{name}/reports/compliance", tags=["reports"],
             responses={404: {}})
    def report_compliance(name: str, who: Viewer) -> dict[str, Any]:
        """Abandonment over the last 24 h and the current 30-day period (FTC 16 CFR
        310.4(b)(4)(i)), against the cap, with the abandoned calls behind them."""
        _cid(name)
        return compliance(store, name, now=clock())

    @app.get("/api/campaigns/{name}/reports/compliance.csv", tags=["reports"],
             responses={404: {}})
    def report_compliance_csv(name: str, who: Viewer) -> Response:
        _cid(name)
        rep = compliance(store, name, now=clock())
        cols = ["attempt", "number", "dialled_at", "ended_at", "outcome", "amd",
                "time_to_agent_s", "message_played", "agent"]
        return _csv(cols, rep["abandoned_calls"], f"{name}-compliance.csv")

    @app.get("/api/campaigns/{name}/reports/contacts.csv", tags=["reports"],
             responses={404: {}})
    def report_contacts_csv(name: str, who: Viewer) -> Response:
        """Every contact's outcome (the dialer's contact report), streamed."""
        _cid(name)
        cols = ["phone", "row", "status", "disposition", "attempts", "amd", "agent", "wait_s",
                "timezone"]

        def rows() -> Iterator[str]:
            buf = io.StringIO()
            w = csv.DictWriter(buf, cols, extrasaction="ignore")
            w.writeheader()
            for r in store.contact_report(name):
                w.writerow(r)
                if buf.tell() > 1 << 16:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue()

        return StreamingResponse(rows(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{name}-contacts.csv"'})

    # -- the simulator -----------------------------------------------------------------------

    @app.post("/api/simulate", tags=["simulator"], responses={404: {}, 422: {}})
    async def simulate_what_if(body: m.SimulateIn, who: Viewer) -> m.SimulateOut:
        """Two pacing settings side by side on one population: the campaign's recorded
        attempts replayed, or a modelled list (``dialtone dialer simulate``)."""
        from dialer.pacing import PacerConfig, PacingConfigError, default_registry
        from dialer.population import (
            DialOutcome,
            FilePopulation,
            ModelledPopulation,
            PopulationModel,
        )
        from dialer.simulate import SimConfig, simulate
        from dialtone_errors import ConfigError

        rows: list[DialOutcome] | None = None
        if body.population == "recorded":
            if body.campaign is None:
                raise HTTPException(422, "population recorded needs a campaign")
            rows = recorded_population(store.engine, _cid(body.campaign))
            if not rows:
                raise HTTPException(422, f"campaign {body.campaign!r} has no finished "
                                         f"attempts to replay")

        def run(pacing: str) -> dict[str, Any]:
            default_registry().create(pacing, PacerConfig(abandon_target=body.abandon_target))
            cfg = SimConfig(agents=body.agents, hours=body.hours, wrap=body.wrap,
                            pacing=pacing, abandon_target=body.abandon_target)
            if rows is not None:
                pop: Any = FilePopulation(rows)
            else:
                mm = body.model
                pop = ModelledPopulation(PopulationModel(
                    answer_rate=mm.answer_rate, machine_rate=mm.machine_rate,
                    busy_rate=mm.busy_rate, failed_rate=mm.failed_rate,
                    talk_mean=mm.talk_mean, hours=body.hours), seed=body.seed)
            return simulate(cfg, pop).summary()

        try:
            a = await asyncio.to_thread(run, body.pacing_a)
            b = await asyncio.to_thread(run, body.pacing_b)
        except (ConfigError, PacingConfigError, DialerError) as exc:
            raise HTTPException(422, f"simulation: {exc}") from None
        return m.SimulateOut(population=body.population,
                             rows=len(rows) if rows is not None else None, a=a, b=b)

    # -- IVR ---------------------------------------------------------------------------------

    @app.get("/api/ivr/now", tags=["ivr"])
    def ivr_now(who: Viewer) -> dict[str, Any]:
        """Calls in the IVR now, per node."""
        return ivr.now()

    @app.get("/api/ivr/stats", tags=["ivr"])
    async def ivr_stats(who: Viewer, since: Since = None, until: Until = None
                        ) -> dict[str, Any]:
        """For the period: the flow's edges with how many callers took each, and where
        callers hung up (from the event log)."""
        a, b = _period(since, until)
        stats = await asyncio.to_thread(ivr_period_stats, events_path, since=a, until=b)
        return {**stats, "now": ivr.now(), "event_log": events_path is not None}

    # -- live streams, metrics ---------------------------------------------------------------

    async def _stream(topic: str, first: dict[str, Any] | None, limit: int | None
                      ) -> AsyncIterator[str]:
        sub = hub.subscribe(topic)
        try:
            yield "retry: 3000\n\n"
            sent = 0
            if first is not None:
                yield f"event: {first.get('type', 'message')}\ndata: {json.dumps(first)}\n\n"
                sent += 1
            while limit is None or sent < limit:
                try:
                    msg = await asyncio.wait_for(sub.queue.get(), 15.0)
                except TimeoutError:
                    yield ": keep-alive\n\n"  # proxies close idle connections
                    continue
                yield f"event: {msg.get('type', 'message')}\ndata: {json.dumps(msg)}\n\n"
                sent += 1
        finally:
            sub.close()

    @app.get("/api/campaigns/{name}/stream", tags=["live"], responses={
        200: {"content": {"text/event-stream": {}}}, 404: {}})
    async def campaign_stream(name: str, who: Viewer, limit: Limit = None) -> StreamingResponse:
        """Server-Sent Events: ``figures`` every second, ``import``, ``campaign_status``,
        and the engine's ``dialer_call`` events for this campaign."""
        _campaign_out(name)
        first = await asyncio.to_thread(live.campaign, name)
        return StreamingResponse(_stream(f"campaign:{name}", first, limit),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    @app.get("/api/stream", tags=["live"], responses={200: {"content": {"text/event-stream": {}}}})
    async def node_stream(who: Viewer, limit: Limit = None) -> StreamingResponse:
        """Server-Sent Events for the node: ``node_figures`` every second and every node
        event (calls, flows, campaigns)."""
        return StreamingResponse(_stream("node", None, limit), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    @app.get("/metrics", tags=["node"], response_class=PlainTextResponse)
    def metrics_text(who: Viewer) -> Response:
        """Prometheus text format (scrape with an API token as the bearer)."""
        if broker_connected is not None:
            metrics.broker_connected.set(1 if broker_connected() else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _merge_retries(base: Mapping[str, float], settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with its ``retries`` laid over ``base`` (a delay of null removes the
    outcome: it becomes final), so a form that shows three delays keeps the others, such as
    the 72 h after an abandoned call."""
    if not isinstance(settings.get("retries"), dict):
        return settings
    merged: dict[str, Any] = dict(base)
    for key, delay in settings["retries"].items():
        if delay is None:
            merged.pop(key, None)
        else:
            merged[key] = delay
    return {**settings, "retries": merged}


def _csv(columns: list[str], rows: list[dict[str, Any]], filename: str) -> Response:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
