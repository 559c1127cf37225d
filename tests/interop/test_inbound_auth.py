"""Inbound digest challenge: `dialtone serve --trusted ... --auth-user` makes INVITEs from
other sources authenticate (SIPp computes the digest: MD5, its only algorithm)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.interop.peers import DialtoneProcess, sipp

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    require_tool("sipp", "sip-tester")
    # 127.0.0.1 (where SIPp calls from) is not in the trusted list: it must authenticate
    proc = DialtoneProcess(tmp_path_factory.mktemp("guarded"), name="guarded",
                           extra=["--trusted", "127.0.0.2", "--auth-user", "alice:wonderland",
                                  "--auth-realm", "dialtone-test",
                                  "--auth-algorithm", "MD5"])
    yield proc
    proc.stop()


def test_right_password_gets_the_call_through(guarded: DialtoneProcess, tmp_path: Path) -> None:
    rc, out = sipp(tmp_path, guarded.addr, scenario="uac_digest.xml",
                   extra=["-au", "alice", "-ap", "wonderland",
                          # SIPp digests "sip:HOST:PORT" unless told the Request-URI (it adds "sip:")
                          "-auth_uri", f"ivr@{guarded.addr}"], limit=15)
    assert rc == 0, out
    assert guarded.wait_for("call_answered")
    challenges = [r for r in guarded.trace() if r.status == 401]
    assert challenges and 'realm="dialtone-test"' in (challenges[0].header("WWW-Authenticate") or "")


def test_wrong_password_never_reaches_the_ivr(guarded: DialtoneProcess, tmp_path: Path) -> None:
    before = len(guarded.of_type("call_started"))
    rc, _out = sipp(tmp_path, guarded.addr, scenario="uac_digest.xml",
                   extra=["-au", "alice", "-ap", "guess", "-auth_uri", f"ivr@{guarded.addr}"],
                   limit=4, name="intruder")
    assert rc != 0
    assert len(guarded.of_type("call_started")) == before
