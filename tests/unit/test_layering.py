"""The architecture, checked from the source: the one test that owns it.

1. Dependencies point down (README "A short tour"): ``dialtone_errors`` imports no project
   package; ``telephony`` imports none of ivr_flows, routing, dialer, dialtone; ``ivr_flows``,
   ``routing`` and ``dialer`` import no ``dialtone``.
2. The sans-IO cores (STYLE.md 1-2) never import asyncio, socket, threading, time, select,
   selectors or subprocess, and never call time.time()/monotonic()/perf_counter()/sleep():
   SIP, SDP, RTP, codecs, DSP, the per-call media pipeline, the flow engine, the routing
   decisions and the dialer's pacing.
3. Test doubles stay out of the serving path: nothing imports ``telephony.testing`` or
   ``ivr_flows.testing`` except the developer tools built on them (the flow harness).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = ("dialtone_errors", "telephony", "ivr_flows", "routing", "dialer", "dialtone")

# package -> project packages it must not import
FORBIDDEN_LAYERS: dict[str, set[str]] = {
    "dialtone_errors": set(PROJECT) - {"dialtone_errors"},
    "telephony": {"ivr_flows", "routing", "dialer", "dialtone"},
    "ivr_flows": {"dialtone"},
    "routing": {"dialtone", "ivr_flows", "dialer"},
    "dialer": {"dialtone"},
}

SANS_IO_PACKAGES = ("telephony/sip", "telephony/rtp", "telephony/codecs", "telephony/dsp",
                    "dialer/pacing")
SANS_IO_MODULES = ("telephony/media.py", "telephony/sdp.py", "ivr_flows/engine.py",
                   "ivr_flows/actions.py", "ivr_flows/model.py", "ivr_flows/calendar.py",
                   "ivr_flows/inputs.py", "routing/router_core.py")
FORBIDDEN_MODULES = {"asyncio", "socket", "threading", "time", "select", "selectors",
                     "subprocess"}
FORBIDDEN_CALLS = {("time", "time"), ("time", "monotonic"), ("time", "perf_counter"),
                   ("time", "sleep")}

TEST_DOUBLES = {"telephony.testing", "ivr_flows.testing"}
# developer tools that drive flows with the test doubles (dialtone flow run, the pytest plugin)
DOUBLE_USERS = {"ivr_flows/harness.py", "ivr_flows/testing.py",
                "ivr_flows/pytest_plugin.py", "ivr_flows/cli.py", "telephony/testing.py"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def sans_io_violations(path: Path) -> list[str]:
    found = [f"{path.name}:{line} imports {mod}" for line, mod in imported_modules(path)
             if mod.split(".")[0] in FORBIDDEN_MODULES]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            if isinstance(base, ast.Name) and (base.id, node.func.attr) in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno} calls {base.id}.{node.func.attr}()")
    return found


def package_files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def sans_io_files() -> list[Path]:
    files = [p for pkg in SANS_IO_PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]
    return files + [REPO / m for m in SANS_IO_MODULES]


@pytest.mark.parametrize("package", sorted(FORBIDDEN_LAYERS))
def test_dependencies_point_down(package: str) -> None:
    banned = FORBIDDEN_LAYERS[package]
    bad = [f"{p.relative_to(REPO)}:{line} imports {mod}"
           for p in package_files(package) for line, mod in imported_modules(p)
           if mod.split(".")[0] in banned]
    assert bad == []


@pytest.mark.parametrize("path", sans_io_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_sans_io_core(path: Path) -> None:
    assert sans_io_violations(path) == []


def test_sip_auth_stands_alone() -> None:
    """Digest auth is usable without the rest of the SIP stack (message, transaction...)."""
    mods = {m for _, m in imported_modules(REPO / "telephony/sip/auth.py")}
    assert not {m for m in mods if m.startswith("telephony.sip")}


def test_sdp_needs_only_the_standard_library() -> None:
    mods = {m.split(".")[0] for _, m in imported_modules(REPO / "telephony/sdp.py")}
    assert mods <= {"__future__", "dataclasses", "ipaddress", "re", "typing", "telephony"}


def test_test_doubles_stay_out_of_the_serving_path() -> None:
    bad = [f"{p.relative_to(REPO)}:{line} imports {mod}"
           for package in PROJECT for p in package_files(package)
           for line, mod in imported_modules(p)
           if mod in TEST_DOUBLES and str(p.relative_to(REPO)) not in DOUBLE_USERS]
    assert bad == []


def test_the_checks_cover_what_they_claim() -> None:
    names = {p.relative_to(REPO).as_posix() for p in sans_io_files()}
    assert {"telephony/sip/endpoint.py", "telephony/sip/transaction.py",
            "telephony/rtp/jitter.py", "telephony/dsp/dtmf.py", "telephony/media.py",
            "ivr_flows/engine.py", "routing/router_core.py"} <= names
    assert all(package_files(p) for p in PROJECT)


def test_checkers_catch_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom socket import socket\nimport time\nx = time.monotonic()\n"
                   "from dialtone.cli import main\n")
    assert len(sans_io_violations(bad)) == 4
    assert (5, "dialtone.cli") in imported_modules(bad)
