"""Authentication as a FastAPI dependency: every API route declares the role it needs.

* A browser logs in (``POST /api/auth/login``) and gets a session cookie (HttpOnly,
  SameSite=Strict, Secure when the console is behind TLS) and a CSRF token.  Every
  state-changing request made with the cookie must carry that token in ``X-CSRF-Token``
  (the synchronizer-token pattern, OWASP CSRF Prevention Cheat Sheet): a page on another
  origin cannot read it, so it cannot forge the header.
* An integration sends ``Authorization: Bearer dt_...`` (an API token, revocable); no CSRF
  token is needed there: a browser never attaches that header on its own.
* Login attempts are limited per source address and per user name (a sliding window), so a
  password cannot be guessed quickly from one place or against one account from many.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request

from dialtone.http.users import Principal, Role, UserStore

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "LoginLimiter", "current_user", "require"]

SESSION_COOKIE = "dialtone_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginLimiter:
    """At most ``per_source`` failed logins from one address and ``per_user`` against one
    name within ``window`` seconds; a success clears the name's failures."""

    def __init__(self, *, per_source: int = 20, per_user: int = 5, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_source, self.per_user, self.window = per_source, per_user, window
        self.clock = clock
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, source: str, user: str) -> float | None:
        """Seconds to wait if either limit is reached, else None."""
        now = self.clock()
        waits = []
        for key, limit in ((f"src:{source}", self.per_source), (f"user:{user}", self.per_user)):
            q = self._recent(key, now)
            if len(q) >= limit:
                waits.append(q[0] + self.window - now)
        if len(self._fails) > 10_000:  # bounded memory under a spray of names
            for key in [k for k, q in self._fails.items() if not self._recent(k, now)]:
                del self._fails[key]
        return max(waits) if waits else None

    def failed(self, source: str, user: str) -> None:
        now = self.clock()
        self._recent(f"src:{source}", now).append(now)
        self._recent(f"user:{user}", now).append(now)

    def succeeded(self, user: str) -> None:
        self._fails.pop(f"user:{user}", None)


def _users(request: Request) -> UserStore:
    users: UserStore = request.app.state.users
    return users


def _now(request: Request) -> float:
    clock: Callable[[], float] = request.app.state.clock
    return clock()


def principal_of(request: Request) -> Principal | None:
    """Who the request is from (token or session), or None; no CSRF check here."""
    users = _users(request)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return users.token(auth[7:].strip(), now=_now(request))
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        return users.session(sid, now=_now(request))
    return None


async def current_user(request: Request) -> Principal:
    """The authenticated principal; 401 without one, 403 on a state-changing request made
    with a session cookie but without its CSRF token."""
    who = principal_of(request)
    if who is None:
        raise HTTPException(401, "not logged in (session cookie or Bearer token required)",
                            headers={"WWW-Authenticate": "Bearer"})
    if who.csrf is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None or sent != who.csrf:
            raise HTTPException(403, f"missing or wrong CSRF token ({CSRF_HEADER} header)")
    request.state.principal = who
    return who


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency: the principal, if their role is at least ``role`` (403 otherwise)."""

    async def dependency(who: Principal = Depends(current_user)) -> Principal:  # noqa: B008
        if not who.may(role):
            raise HTTPException(403, f"{who.name} is a {who.role.value}: this needs "
                                     f"{role.value} or above")
        return who

    dependency.__name__ = f"require_{role.value}"
    return dependency
