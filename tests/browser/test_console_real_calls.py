"""The console on a node that dials (``dialtone serve --http ... --trunk ...``), in real
Chromium: a manager logs in, starts a campaign against a called population on loopback
(Dialtone user agents that answer with recorded speech, and agents that answer and talk),
watches the live figures change as the calls are really placed and bridged, and pauses."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from dialer.store import DialerStore
from dialtone.config import load_config
from dialtone.node import Node
from tests.browser.test_console_page import CHROMIUM, browser  # noqa: F401 - the fixture
from tests.conftest import require_tool
from tests.interop.dialer_peers import SOUNDS, Agents, Population
from tests.interop.test_dialer_engine import BASE, make_store

pytestmark = [pytest.mark.browser, pytest.mark.interop]
playwright = pytest.importorskip("playwright.sync_api")
ADMIN_PASSWORD = "console-test-password"
NUMBERS = [BASE + "01", BASE + "11", BASE + "21"]


class _DiallingNode:
    """A node with the console and a trunk to the population, and the population and the
    agents, in a thread with its own event loop."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.url = ""
        self.store: DialerStore | None = None
        self._stop = threading.Event()
        self._up = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by __enter__ to the test
            self._error = exc
            self._up.set()

    async def _main(self) -> None:
        pop = Population(41000, self.tmp_path)
        agents = Agents(43000, talk_s=2.0)
        pport = await pop.start_population()
        aport = await agents.start_agents()
        try:
            self.store = make_store(self.tmp_path, "outreach", NUMBERS,
                                    [f"sip:agent1@127.0.0.1:{aport}",
                                     f"sip:agent2@127.0.0.1:{aport}"])
            config = load_config(env={}, flags={
                "sip.listen": "127.0.0.1:0", "sip.tcp": False,
                "media.rtp_ports": "47000-48000", "db": f"sqlite:///{self.tmp_path / 'd.db'}",
                "dialer.trunk": f"sip:127.0.0.1:{pport}", "http.listen": "127.0.0.1:0"})
            async with Node.running(config) as node:
                assert node.http_address is not None and node.dialer is not None
                node.dialer.poll_s = 0.2
                self.url = "http://{}:{}".format(*node.http_address)
                self._up.set()
                await asyncio.to_thread(self._stop.wait)
        finally:
            await pop.close()
            await agents.close()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._up.wait(60), "the node did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_DiallingNode]:
    require_tool("chromium")
    if not (SOUNDS / "hello.wav").is_file():
        pytest.skip("Asterisk sounds not installed (asterisk-core-sounds-en-wav)")
    monkeypatch.setenv("DIALTONE_ADMIN_PASSWORD", ADMIN_PASSWORD)  # the first admin
    with _DiallingNode(tmp_path) as served:
        yield served


def test_start_a_campaign_watch_real_calls_and_pause(node: _DiallingNode,
                                                     browser: Any) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(node.url + "/")
        page.get_by_label("Name", exact=True).fill("admin")
        page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        playwright.expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
        page.get_by_role("button", name="Open").click()
        playwright.expect(page.locator("#live-status")).to_have_text("created")
        playwright.expect(page.locator("#f-contacts")).to_have_text("0 dialled, 3 left")
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Start").click()
        playwright.expect(page.locator("#live-status")).to_have_text("running", timeout=15_000)
        # the node's engine dials for real; the page shows the calls as they happen
        playwright.expect(page.locator("#f-contacts")).to_have_text("3 dialled, 0 left",
                                                                    timeout=40_000)
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Pause").click()
        playwright.expect(page.locator("#live-status")).to_have_text("paused", timeout=15_000)
    finally:
        context.close()
    assert node.store is not None
    assert node.store.campaign("outreach").status == "paused"
    report = {c["phone"]: c["disposition"] for c in node.store.contact_report("outreach")}
    assert set(report) == set(NUMBERS)
    assert "connected" in report.values()
