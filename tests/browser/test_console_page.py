"""The console page in real Chromium (Debian's, driven by Playwright): like a user would.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``scripts/system-deps.sh
test``).  Here the live figures are driven through the store (leases, outcomes) and
``dialer_call`` events; test_console_real_calls.py drives them with a node that really dials.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialer.policy import Disposition
from tests.conftest import require_tool
from tests.layer.console_helpers import GOOD_CSV, PASSWORDS, Console, add_agent, make_console

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/ when refreshing them (DIALTONE_SCREENSHOTS=1), else a
    temporary directory, so a test run leaves the tree clean."""
    return DOCS if os.environ.get("DIALTONE_SCREENSHOTS") == "1" else tmp_path


class _Served:
    """The console on a free loopback port, in a thread with its own event loop."""

    def __init__(self, console: Console) -> None:
        from dialtone.http.server import ConsoleServer

        self.server = ConsoleServer(console.app, "127.0.0.1", 0)
        self._stop = threading.Event()
        self._up = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        await self.server.start()
        self._up.set()
        await asyncio.to_thread(self._stop.wait)
        await self.server.close()

    def __enter__(self) -> str:
        self._thread.start()
        assert self._up.wait(20), "the console did not start"
        assert self.server.address is not None
        return "http://{}:{}".format(*self.server.address)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(20)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Console, str]]:
    require_tool("chromium")  # skip (fail under CI=true) without Debian's chromium
    console = make_console(tmp_path)
    with _Served(console) as url:
        yield console, url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module (a launch costs seconds); a fresh context per test."""
    require_tool("chromium")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(served: tuple[Console, str], browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100,
                                                                    "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def _login(page: Any, url: str, name: str) -> None:
    page.goto(url + "/")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORDS[name])
    page.get_by_role("button", name="Log in").click()
    playwright.expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()


def test_log_in_upload_start_watch_pause_export(served: tuple[Console, str], page: Any,
                                                tmp_path: Path) -> None:
    console, url = served
    add_agent(console, "agent-7", "available")
    add_agent(console, "agent-9", "busy")
    page.goto(url + "/")
    page.get_by_label("Name", exact=True).fill("max")
    page.get_by_label("Password", exact=True).fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    playwright.expect(page.get_by_role("alert").first).to_have_text("wrong name or password")
    _login(page, url, "max")

    # new campaign: a list with bad rows
    page.get_by_role("button", name="New campaign").click()
    page.get_by_label("Campaign name").fill("spring")
    page.get_by_label("Caller ID").fill("+12125550199")
    csv_path = tmp_path / "contacts.csv"
    csv_path.write_bytes(GOOD_CSV)
    page.locator("#file").set_input_files(str(csv_path))
    playwright.expect(page.get_by_role("cell", name="Ann")).to_be_visible()  # the preview
    page.get_by_role("button", name="Create and import").click()
    playwright.expect(page.locator("#import-text")).to_contain_text(
        "done: 2 imported, 2 bad rows")
    bad = page.locator("#bad-rows")
    playwright.expect(bad.get_by_role("row")).to_have_count(2)
    playwright.expect(bad).to_contain_text("unknown time zone")
    playwright.expect(bad).to_contain_text("Mars/Olympus")

    # the live view: start (with confirmation)
    page.get_by_role("button", name="Open the campaign").click()
    playwright.expect(page.locator("#live-status")).to_have_text("created")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Start").click()
    playwright.expect(page.locator("#live-status")).to_have_text("running")
    playwright.expect(page.locator("#f-contacts")).to_have_text("0 dialled, 2 left")
    playwright.expect(page.locator("#agent-rows")).to_contain_text("agent-7")

    # the engine's part, as it will do it: lease, events, outcomes
    now = time.time()
    leases = console.store.lease("spring", now=now, count=2, owner="engine")
    console.hub.emit({"type": "dialer_call", "campaign": "spring", "call_id": "c1",
                      "state": "ringing"})
    console.hub.emit({"type": "dialer_status", "campaign": "spring", "dial_level": 1.5})
    playwright.expect(page.locator("#f-dial")).to_have_text("1.50")
    playwright.expect(page.locator("[data-state=ringing]")).to_have_text("1")
    console.store.record_outcome(leases[0], Disposition.CONNECTED, now=now + 1,
                                 time_to_agent_s=1.0, agent="agent-9", amd="human")
    console.store.record_outcome(leases[1], Disposition.ABANDONED, now=now + 1, amd="human")
    playwright.expect(page.locator("#f-contacts")).to_have_text("2 dialled, 1 left")  # the abandoned one is retried later
    gauge = page.get_by_role("meter", name="abandonment 1h")
    playwright.expect(gauge).to_contain_text("50.0 % (1/2) at the cap")
    page.wait_for_timeout(1500)  # a few more seconds on the chart
    page.screenshot(path=str(shots(tmp_path) / "console-live.png"), full_page=True)

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Pause").click()
    playwright.expect(page.locator("#live-status")).to_have_text("paused")
    assert console.store.campaign("spring").status == "paused"

    # reports and the CSV export
    page.get_by_role("button", name="Reports").click()
    playwright.expect(page.locator("#rep-rows")).to_contain_text("abandoned")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Export dispositions (CSV)").click()
    text = Path(dl.value.path()).read_text()
    assert text.splitlines()[0] == "hour,disposition,count"
    assert ",abandoned,1" in text and ",connected,1" in text


def test_a_campaign_that_cannot_start_says_why(served: tuple[Console, str], page: Any) -> None:
    console, url = served
    console.store.create_campaign("empty", now=time.time())
    _login(page, url, "max")
    page.get_by_role("button", name="Open").click()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Start").click()
    alert = page.locator("#live-error")
    playwright.expect(alert).to_contain_text("Cannot start")
    playwright.expect(alert).to_contain_text("no caller ID")
    playwright.expect(alert).to_contain_text("no agents logged in")
    assert console.store.campaign("empty").status == "created"


def test_viewer_on_a_phone_the_ivr_graph_and_what_if(served: tuple[Console, str], page: Any,
                                                     tmp_path: Path) -> None:
    console, url = served
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    lines: list[dict[str, Any]] = []
    for i, (path, hang) in enumerate([(["lang", "menu", "billing"], False),
                                       (["lang", "menu", "sales"], False),
                                       (["lang", "menu"], True), (["lang"], True)]):
        prev = None
        lines.append({"type": "flow_started", "call_id": f"c{i}"})
        for node in path:
            lines.append({"type": "node_entered", "call_id": f"c{i}", "node": node,
                          "kind": "menu", "edge": "next", "from": prev})
            prev = node
        if hang:
            lines.append({"type": "remote_hangup", "call_id": f"c{i}", "node": prev})
    console.events_path.write_text("".join(json.dumps({"ts": ts, **e}) + "\n" for e in lines))
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    _login(page, url, "vic")
    page.get_by_role("button", name="IVR").click()
    graph = page.get_by_role("img", name="The flow with callers per edge")
    playwright.expect(graph).to_contain_text("billing")
    playwright.expect(graph).to_contain_text("menu ✕1")
    playwright.expect(page.locator("#ivr-hangups")).to_contain_text("lang")
    page.set_viewport_size({"width": 1000, "height": 700})
    page.screenshot(path=str(shots(tmp_path) / "console-ivr.png"), full_page=True)
    # what if: two pacing settings side by side on a modelled list
    page.get_by_role("button", name="What if").click()
    page.get_by_role("spinbutton", name="Agents").fill("5")
    page.get_by_label("Pacing B").fill("ratio:2")
    page.get_by_role("button", name="Simulate").click()
    out = page.locator("#whatif-out")
    playwright.expect(out.get_by_role("columnheader", name="ratio:2")).to_be_visible()
    playwright.expect(out.get_by_role("columnheader", name="progressive")).to_be_visible()
    playwright.expect(out).to_contain_text("talk min per agent-hour")
    page.get_by_label("Pacing B").fill("warp-speed")
    page.get_by_role("button", name="Simulate").click()
    playwright.expect(page.locator("#whatif-error")).to_contain_text("unknown pacing")
    # keyboard: tab to the navigation and open campaigns with Enter
    page.get_by_role("button", name="Campaigns").focus()
    page.keyboard.press("Enter")
    playwright.expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()


def test_the_pbx_registration_tile_follows_the_dialers_snapshot(
        served: tuple[Console, str], page: Any) -> None:
    """The campaign page's 'PBX registration' tile shows what the running engine's snapshot
    says (dialer.registration.PbxRegistration.snapshot, pushed in the live figures): the
    state, the AOR, the registrar's answer and expiry; then a lost registration with the
    registrar's 503 and the last failure; and for a trunk (no registration) no PBX, no
    state, no stale answer."""
    from dialer.registration import PbxAccount, PbxRegistration

    console, url = served
    console.store.create_campaign("reg", now=time.time())
    account = PbxAccount.parse("sip:1001@pbx.example:5060", password="pw", expires=300)
    reg = PbxRegistration(None, account)  # type: ignore[arg-type]  # snapshot() needs no UA
    reg.state, reg.status, reg.expires = "registered", 200, 300
    reg.registered_at = time.time() - 60

    def engine(registration: dict[str, Any] | None) -> None:
        console.store.write_engine_status("reg", "host:reg", {
            "dial_level": 1.0, "registration": registration}, now=time.time())

    engine(reg.snapshot())
    _login(page, url, "max")
    page.get_by_role("button", name="Open").click()
    tile = page.get_by_role("heading", name="PBX registration").locator("..")
    playwright.expect(tile).to_contain_text(
        "registered as sip:1001@pbx.example:5060 (200 OK, expires in 4 min)")

    reg.state, reg.status = "retrying", 503
    reg.last_failure = (time.time() - 3, 503)
    engine(reg.snapshot())
    playwright.expect(tile).to_contain_text(
        "retrying: sip:1001@pbx.example:5060 (503 Service Unavailable); "
        "last failure 503 Service Unavailable, 3 s ago")
    assert "registered as" not in tile.inner_text()

    engine(None)  # the engine dials over a trunk
    playwright.expect(tile).to_contain_text("none (trunk)")
    text = tile.inner_text()
    for stale in ("pbx.example", "1001", "503", "200", "registered", "retrying", "expires"):
        assert stale not in text, (stale, text)
