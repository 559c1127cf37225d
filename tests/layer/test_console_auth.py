"""The console's authentication: sessions, roles, CSRF, rate limits, API tokens (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.layer.console_helpers import PASSWORDS, Console, logged_in, make_console

PUBLIC = {("/health", "get"), ("/ready", "get"), ("/api/auth/login", "post")}


@pytest.fixture
def console(tmp_path: Path) -> Console:
    return make_console(tmp_path, login_per_user=3, login_per_source=6)


def _fill(path: str) -> str:
    return (path.replace("{name}", "s").replace("{job_id}", "list-1")
            .replace("{number}", "+12125550100").replace("{token_id}", "1"))


def test_nothing_but_health_and_login_without_a_session(console: Console) -> None:
    with TestClient(console.app) as c:
        doc = c.get("/openapi.json").json()
        checked = 0
        for path, ops in doc["paths"].items():
            for method in ops:
                if (path, method) in PUBLIC:
                    continue
                r = c.request(method.upper(), _fill(path))
                assert r.status_code == 401, (method, path, r.status_code)
                checked += 1
        assert checked >= 30
        assert c.get("/metrics").status_code == 401
        # the page itself is public (it is the login form), its data is not
        assert c.get("/").status_code == 200


def test_viewer_reads_but_cannot_start_or_change(console: Console) -> None:
    with logged_in(console, "max") as m:
        m.post("/api/campaigns", json={"name": "s", "settings": {"window": "always"}})
    with logged_in(console, "vic") as v:
        assert v.get("/api/campaigns").status_code == 200
        r = v.post("/api/campaigns/s/start")
        assert r.status_code == 403 and "viewer" in r.json()["detail"]
        assert v.post("/api/campaigns", json={"name": "t"}).status_code == 403
        assert v.post("/api/dnc", json={"number": "+12125550100"}).status_code == 403
        assert v.get("/api/users").status_code == 403
    assert console.store.campaign("s").status == "created"


def test_state_change_without_csrf_token_is_refused(console: Console) -> None:
    with logged_in(console, "max") as c:
        token = c.headers.pop("X-CSRF-Token")
        r = c.post("/api/campaigns", json={"name": "s"})
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        c.headers["X-CSRF-Token"] = "forged"
        assert c.post("/api/campaigns", json={"name": "s"}).status_code == 403
        assert c.get("/api/campaigns").json() == []  # reads need no token
        c.headers["X-CSRF-Token"] = token
        assert c.post("/api/campaigns", json={"name": "s"}).status_code == 201
        assert c.get("/api/auth/me").json()["csrf_token"] == token


def test_session_cookie_flags_and_logout(console: Console) -> None:
    with TestClient(console.app) as c:
        r = c.post("/api/auth/login", json={"name": "vic", "password": PASSWORDS["vic"]})
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        assert c.post("/api/auth/logout").status_code == 204
        assert c.get("/api/campaigns").status_code == 401
    (console.events_path.parent / "tls").mkdir()
    tls = make_console(console.events_path.parent / "tls", secure_cookies=True)
    with TestClient(tls.app) as c:
        r = c.post("/api/auth/login", json={"name": "vic", "password": PASSWORDS["vic"]})
        assert "secure" in r.headers["set-cookie"].lower()


def test_login_rate_limited_per_user_and_per_source(console: Console) -> None:
    with TestClient(console.app) as c:
        for _ in range(3):
            assert c.post("/api/auth/login",
                          json={"name": "max", "password": "wrong"}).status_code == 401
        r = c.post("/api/auth/login", json={"name": "max", "password": PASSWORDS["max"]})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        # another name from the same source still gets in, until the source's limit
        assert c.post("/api/auth/login",
                      json={"name": "vic", "password": PASSWORDS["vic"]}).status_code == 200
        for name in ("a", "b", "c"):
            c.post("/api/auth/login", json={"name": name, "password": "nope-nope"})
        assert c.post("/api/auth/login", json={"name": "ada", "password": PASSWORDS["ada"]}
                      ).status_code == 429


def test_api_tokens_work_without_csrf_and_can_be_revoked(console: Console) -> None:
    with logged_in(console, "ada") as admin:
        r = admin.post("/api/tokens", json={"name": "crm"})
        assert r.status_code == 201
        token, tid = r.json()["token"], r.json()["id"]
        with TestClient(console.app) as crm:
            crm.headers["Authorization"] = f"Bearer {token}"
            assert crm.post("/api/campaigns", json={"name": "from-crm"}).status_code == 201
            assert crm.get("/metrics").status_code == 200
            listed = admin.get("/api/tokens").json()
            assert listed[0]["name"] == "crm" and listed[0]["last_used_at"] is not None
            assert "token" not in listed[0]
            assert admin.delete(f"/api/tokens/{tid}").status_code == 204
            assert crm.get("/api/campaigns").status_code == 401
            assert admin.delete(f"/api/tokens/{tid}").status_code == 404
        with TestClient(console.app) as other:
            other.headers["Authorization"] = "Bearer dt_made_up"
            assert other.get("/api/campaigns").status_code == 401
        log = admin.get("/api/audit").json()
        assert {"token_create", "token_revoke", "campaign_create"} <= {e["action"] for e in log}
        assert next(e for e in log if e["action"] == "campaign_create")["user"] == "ada"


def test_admin_adds_users_and_roles_apply(console: Console) -> None:
    with logged_in(console, "ada") as admin:
        r = admin.post("/api/users", json={"name": "newbie", "password": "long-enough-1",
                                           "role": "viewer"})
        assert r.status_code == 201
        assert admin.post("/api/users", json={"name": "newbie", "password": "long-enough-1",
                                               "role": "viewer"}).status_code == 409
        assert admin.post("/api/users", json={"name": "x", "password": "short",
                                               "role": "viewer"}).status_code == 422
        assert admin.post("/api/users", json={"name": "y", "password": "long-enough-1",
                                               "role": "root"}).status_code == 422
        assert "newbie" in [u["name"] for u in admin.get("/api/users").json()]
    with logged_in(console, "max") as m:
        assert m.get("/api/users").status_code == 403
        assert m.get("/api/tokens").status_code == 403


def test_first_admin_from_the_environment_and_no_default(tmp_path: Path) -> None:
    from dialer.store import DialerStore
    from dialtone.config import HttpSection
    from dialtone.http.app import create_app

    store = DialerStore(f"sqlite:///{tmp_path / 'a.db'}")
    app = create_app(HttpSection(), store)
    with TestClient(app) as c:  # no user, no password: nobody gets in
        for pw in ("admin", "password", ""):
            assert c.post("/api/auth/login", json={"name": "admin", "password": pw or "x"}
                          ).status_code == 401
    app = create_app(HttpSection(), store, admin_password="from-the-env-1")
    with TestClient(app) as c:
        r = c.post("/api/auth/login", json={"name": "admin", "password": "from-the-env-1"})
        assert r.status_code == 200 and r.json()["role"] == "admin"
    # a second start does not reset it
    create_app(HttpSection(), store, admin_password="another-one-22")
    with TestClient(app) as c:
        assert c.post("/api/auth/login", json={"name": "admin", "password": "another-one-22"}
                      ).status_code == 401


def test_user_add_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from dialtone.cli import main

    db = f"sqlite:///{tmp_path / 'u.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    assert main(["user", "add", "carol", "--role", "manager", "--password-stdin",
                 "--db", db]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    assert main(["user", "add", "carol", "--role", "viewer", "--password-stdin",
                 "--db", db]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["user", "list", "--db", db]) == 0
    assert "carol\tmanager" in capsys.readouterr().out
    from dialer.db import make_engine
    from dialtone.http.users import UserStore
    who = UserStore(make_engine(db)).authenticate("carol", "a-good-password")
    assert who is not None and who.role.value == "manager"
