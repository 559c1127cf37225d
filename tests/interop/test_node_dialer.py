"""``dialtone serve --trunk``: the node dials every campaign whose status is ``running`` (the
console's Start, ``dialtone campaign start``), follows pause and resume, stops on archive,
and refuses to dial a campaign that cannot (no caller ID) with the reason in its log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dialtone.config import load_config
from dialtone.node import Node
from telephony.eventlog import MemoryEventLog
from tests.interop.dialer_peers import SOUNDS, Agents, Population
from tests.interop.test_dialer_e2e import peers  # noqa: F401 - the called population
from tests.interop.test_dialer_engine import BASE, make_store, until

pytestmark = [pytest.mark.interop]


@pytest.fixture(autouse=True)
def _sounds() -> None:
    """Before the population (which loads them) starts."""
    if not (SOUNDS / "hello.wav").is_file():
        pytest.skip("Asterisk sounds not installed (asterisk-core-sounds-en-wav)")


async def test_the_node_dials_running_campaigns_and_follows_their_status(
        peers: tuple[Population, Agents, int, int], tmp_path: Path) -> None:  # noqa: F811
    pop, agents, pport, aport = peers
    first, later = [BASE + "01", BASE + "11"], [BASE + "21"]
    store = make_store(tmp_path, "outreach", first + later,
                       [f"sip:agent1@127.0.0.1:{aport}", f"sip:agent2@127.0.0.1:{aport}"])
    make_store(tmp_path, "no-cli", [BASE + "31"], [f"sip:agent1@127.0.0.1:{aport}"],
               caller_id=None)
    config = load_config(env={}, flags={
        "sip.listen": "127.0.0.1:0", "sip.tcp": False, "media.rtp_ports": "47000-48000",
        "db": f"sqlite:///{tmp_path / 'd.db'}", "dialer.trunk": f"sip:127.0.0.1:{pport}"})
    async with Node.running(config) as node:
        assert node.dialer is not None
        log = MemoryEventLog()
        assert node.events is not None
        node.events.observers.append(log.emit)
        node.dialer.poll_s = 0.1
        await asyncio.sleep(0.3)
        assert all(pop.invites[n] == 0 for n in first + later)  # created: nothing dialled
        store.set_status("outreach", "running")       # the console's Start
        store.set_status("no-cli", "running")
        await until(lambda: sum(agents.answered.values()) >= 2, 20.0)
        store.set_status("outreach", "paused")        # Pause: calls in progress go on
        await until(lambda: {c["disposition"] for c in store.contact_report("outreach")
                             if c["phone"] in first} == {"connected"}, 15.0)
        assert pop.invites[later[0]] == 0
        store.set_status("outreach", "running")       # Resume
        await until(lambda: any(c["phone"] == later[0] and c["disposition"] == "connected"
                                for c in store.contact_report("outreach")), 20.0)
        store.set_status("outreach", "archived")      # the engine stops
        await until(lambda: "outreach" not in node.dialer.engines, 10.0)  # type: ignore[union-attr]
        # the campaign without caller ID never dialled, and says why
        assert pop.invites[BASE + "31"] == 0
        assert store.campaign("no-cli").status == "paused"
        reasons = [e["reason"] for e in log.of_type("campaign_paused")
                   if e["campaign"] == "no-cli"]
        assert reasons and "caller" in reasons[0].lower()
    assert all(pop.invites[n] == 1 for n in first + later)
