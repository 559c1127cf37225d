"""A bounded property-based run of schemathesis over the console's /openapi.json: no 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings

from tests.layer.console_helpers import PASSWORDS, logged_in, make_console


def test_no_server_errors_on_generated_requests(tmp_path: Path) -> None:
    console = make_console(tmp_path)
    with logged_in(console, "ada") as client:
        client.post("/api/campaigns", json={"name": "s", "settings": {"window": "always"}})
        schema = schemathesis.openapi.from_asgi("/openapi.json", console.app)
        token = client.post("/api/tokens", json={"name": "fuzz"}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        failures: list[str] = []
        codes: dict[int, int] = {}
        ops = 0
        for result in schema.get_all_operations():
            op = result.ok()
            if op.path.endswith("/stream"):
                continue  # endless by design (a limit query closes it; tested elsewhere)
            ops += 1

            @settings(max_examples=6, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def check(case: object) -> None:
                response = case.call(headers=headers)  # type: ignore[attr-defined]
                codes[response.status_code] = codes.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: "  # type: ignore
                                    f"{response.status_code}")

            check()
        assert ops >= 30
        assert not failures, failures
        # the requests were authenticated: many got through to the handlers
        assert sum(n for code, n in codes.items() if code < 300) >= 20, codes
    assert PASSWORDS
