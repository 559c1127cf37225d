"""The dialer engine in process against real SIP/RTP peers on loopback: pause and resume
without dropping calls in progress; a trunk that answers 403 pauses the campaign with a
clear message; a campaign without caller ID does not start."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from dialer.cli import main
from dialer.engine import CampaignConfigError, CampaignEngine, EngineConfig
from dialer.policy import CampaignSettings
from dialer.store import DialerStore
from dialer.windows import ALWAYS
from telephony.aio.media_engine import MediaEngineConfig
from telephony.aio.useragent import UserAgent, UserAgentConfig
from telephony.eventlog import MemoryEventLog
from telephony.sip.config import SipConfig
from tests.interop.dialer_peers import SOUNDS, Agents, Population

pytestmark = [pytest.mark.interop]

BASE = "+4420794600"


@pytest.fixture(autouse=True)
def _sounds() -> None:
    if not (SOUNDS / "hello.wav").is_file():
        pytest.skip("Asterisk sounds not installed (asterisk-core-sounds-en-wav)")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Population, Agents, UserAgent, int,
                                                       int]]:
    pop = Population(41000, tmp_path)
    agents = Agents(43000, talk_s=1.5)
    pport = await pop.start_population()
    aport = await agents.start_agents()
    dialer = UserAgent(UserAgentConfig(
        sip=SipConfig(host="127.0.0.1", port=0),
        media=MediaEngineConfig(host="127.0.0.1", port_min=45000, port_max=47000),
        listen_tcp=False))
    await dialer.start()
    try:
        yield pop, agents, dialer, pport, aport
    finally:
        await dialer.close()
        await pop.close()
        await agents.close()


def make_store(tmp_path: Path, name: str, numbers: list[str],
               agents: list[str] | dict[str, Any],
               caller_id: str | None = "+442079460999", pacing: str = "progressive",
               **extra: str) -> DialerStore:
    store = DialerStore(f"sqlite:///{tmp_path / 'd.db'}")
    csv = tmp_path / f"{name}.csv"
    csv.write_text("phone\n" + "".join(f"{n}\n" for n in numbers))
    st = CampaignSettings(region="GB", caller_id=caller_id, pacing=pacing,
                          window=ALWAYS, max_attempts=1, ring_timeout=15,
                          extra={"agents": agents,
                                 "safe_harbour_prompt": str(SOUNDS / "auth-thankyou.wav"),
                                 **extra})
    store.create_campaign(name, st, now=0.0)
    store.import_contacts(name, csv, now=0.0)
    return store


async def until(cond: Callable[[], bool], timeout: float) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


async def test_pause_stops_dialling_and_keeps_calls_resume_dials_again(
        world: tuple[Population, Agents, UserAgent, int, int], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pop, agents, dialer, pport, aport = world
    first, later = [BASE + "01", BASE + "11"], [BASE + "21", BASE + "31"]
    store = make_store(tmp_path, "pause", first + later,
                       [f"sip:agent1@127.0.0.1:{aport}", f"sip:agent2@127.0.0.1:{aport}"])
    log = MemoryEventLog()
    engine = CampaignEngine(store, "pause", dialer,
                            EngineConfig(trunk=f"sip:127.0.0.1:{pport}", status_every_s=0.1),
                            events=log)
    run = asyncio.ensure_future(engine.run(until_done=True))
    try:
        # two lines (progressive, two agents): both people reach an agent (bridged; an
        # agent's leg is answered earlier, while AMD listens)
        await until(lambda: engine.stats.connected == 2, 15.0)
        assert sum(agents.answered.values()) == 2  # one leg each, no spare one dialled
        store.set_status("pause", "paused")  # as `dialtone campaign pause` does
        await until(lambda: engine.paused, 5.0)
        assert engine.stats.connected == 2
        # the calls in progress go on to their end; nothing new is dialled meanwhile
        await until(lambda: {c["disposition"] for c in store.contact_report("pause")
                             if c["phone"] in first} == {"connected"}, 10.0)
        await asyncio.sleep(0.5)
        assert all(pop.invites[n] == 0 for n in later)
        assert not run.done()
        store.set_status("pause", "running")  # `dialtone campaign resume`
        stats = await asyncio.wait_for(run, 20.0)
    finally:
        if not run.done():
            engine.stop()
            await asyncio.wait_for(run, 10.0)
    report = {c["phone"]: c for c in store.contact_report("pause")}
    assert {n: report[n]["disposition"] for n in first + later} == \
        dict.fromkeys(first + later, "connected")
    assert all(pop.invites[n] == 1 for n in first + later)
    assert stats.connected == 4
    assert [e["type"] for e in log.events if e["type"].startswith("campaign_")
            and e["type"] != "campaign_call"] == ["campaign_paused", "campaign_resumed"]
    # `dialtone campaign status` reads the engine's snapshot from the store
    assert main(["campaign", "status", "pause", "--db", f"sqlite:///{tmp_path / 'd.db'}",
                 "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["engine"]["connected_total"] == 4
    assert {a["uri"] for a in status["engine"]["agents"]} == {
        f"sip:agent1@127.0.0.1:{aport}", f"sip:agent2@127.0.0.1:{aport}"}
    assert status["summary"]["by_state"] == {"connected": 4}
    # the AMD decision time of each call is logged
    calls = log.of_type("campaign_call")
    assert len(calls) == 4 and all(isinstance(e["amd_ms"], int) for e in calls)


async def test_a_403_from_the_trunk_pauses_the_campaign_with_a_clear_message(
        world: tuple[Population, Agents, UserAgent, int, int], tmp_path: Path) -> None:
    pop, _agents, dialer, pport, aport = world
    store = make_store(tmp_path, "forbidden", [BASE + "08", BASE + "03"],
                       [f"sip:agent1@127.0.0.1:{aport}"])
    log = MemoryEventLog()
    engine = CampaignEngine(store, "forbidden", dialer,
                            EngineConfig(trunk=f"sip:127.0.0.1:{pport}"), events=log)
    await asyncio.wait_for(engine.run(until_done=True), 20.0)
    assert engine.config_error is not None and "403" in engine.config_error
    assert "credentials" in engine.config_error
    assert store.campaign("forbidden").status == "paused"
    assert pop.invites[BASE + "03"] == 0  # nothing more dialled
    paused = log.of_type("campaign_paused")
    assert len(paused) == 1 and "403" in str(paused[0]["reason"])


async def test_a_campaign_without_caller_id_does_not_start(
        world: tuple[Population, Agents, UserAgent, int, int], tmp_path: Path) -> None:
    _pop, _agents, dialer, pport, aport = world
    store = make_store(tmp_path, "anon", [BASE + "01"], [f"sip:agent1@127.0.0.1:{aport}"],
                       caller_id=None)
    with pytest.raises(CampaignConfigError, match="no caller_id"):
        CampaignEngine(store, "anon", dialer, EngineConfig(trunk=f"sip:127.0.0.1:{pport}"))


async def test_a_due_callback_agent_first_answers_the_agent_before_dialling_the_customer(
        world: tuple[Population, Agents, UserAgent, int, int], tmp_path: Path) -> None:
    pop, agents, dialer, pport, aport = world
    store = make_store(tmp_path, "callbacks", [], [f"sip:agent1@127.0.0.1:{aport}"],
                       callbacks="agent_first")
    number = BASE + "41"  # a human
    now = time.time()
    store.schedule_callback("callbacks", number, at=now - 1, now=now, source="manager")
    engine = CampaignEngine(store, "callbacks", dialer,
                            EngineConfig(trunk=f"sip:127.0.0.1:{pport}"))
    await asyncio.wait_for(engine.run(until_done=True), 20.0)
    report = {c["phone"]: c for c in store.contact_report("callbacks")}
    assert report[number]["disposition"] == "connected"
    assert report[number]["agent"] == f"sip:agent1@127.0.0.1:{aport}"
    assert pop.invites[number] == 1
    # the agent's leg was answered before the customer's
    assert agents.answered_at and agents.answered_at[0][1] < pop.answered_at[number]
    ledger = list(store.ledger("callbacks"))
    assert len(ledger) == 1 and ledger[0]["callback"] is True


async def test_early_agent_leg_is_ended_on_a_machine_and_when_the_callee_hangs_up(
        world: tuple[Population, Agents, UserAgent, int, int], tmp_path: Path) -> None:
    """The agent's leg is dialled at answer, while AMD listens; a machine verdict, or a
    callee gone before the verdict, ends it (BYE) and the agent is free for the next."""
    pop, agents, dialer, pport, aport = world
    agents.talk_s = 30.0  # an agent who would hold a leaked leg
    machine, gone = BASE + "02", BASE + "51"
    pop.hang_up_after[gone] = 0.6
    store = make_store(tmp_path, "early", [machine, gone], [f"sip:agent1@127.0.0.1:{aport}"])
    engine = CampaignEngine(store, "early", dialer,
                            EngineConfig(trunk=f"sip:127.0.0.1:{pport}"))
    await asyncio.wait_for(engine.run(until_done=True), 20.0)
    report = {c["phone"]: c for c in store.contact_report("early")}
    assert report[machine]["disposition"] == "machine"
    assert report[gone]["disposition"] == "no_answer"
    assert report[machine]["agent"] is None and report[gone]["agent"] is None
    # one leg per answered call (progressive, one agent: one call at a time), each ended by
    # the dialer long before the agent's 30 s
    await until(lambda: len(agents.ended) == 2, 5.0)
    assert agents.answered["agent1"] == 2
    assert all(cause is not None for _user, cause in agents.ended)
    assert [a.state for a in engine.agents.values()] == ["ready"]
    assert not dialer.calls


async def test_a_person_takes_the_early_leg_held_for_a_call_still_in_amd(
        world: tuple[Population, Agents, UserAgent, int, int], tmp_path: Path) -> None:
    """One agent, two calls at once: the machine answers first and its call holds the
    agent's early leg while AMD listens; the person's verdict comes first and takes that
    leg (no second dial); the machine's verdict then has no leg to end."""
    pop, agents, dialer, pport, aport = world
    agents.talk_s = 30.0
    machine, person = BASE + "02", BASE + "61"
    pop.answer_delay[person] = 0.8
    pop.human_talk_s = 2.0
    store = make_store(tmp_path, "held", [machine, person], [f"sip:agent1@127.0.0.1:{aport}"],
                       pacing="ratio:2")
    engine = CampaignEngine(store, "held", dialer, EngineConfig(trunk=f"sip:127.0.0.1:{pport}"))
    await asyncio.wait_for(engine.run(until_done=True), 20.0)
    report = {c["phone"]: c for c in store.contact_report("held")}
    assert report[machine]["disposition"] == "machine"
    assert report[person]["disposition"] == "connected"
    assert report[person]["agent"] == f"sip:agent1@127.0.0.1:{aport}"
    assert report[person]["wait_s"] < 0.1  # bridged at the verdict: no dial after it
    assert agents.answered["agent1"] == 1
    await until(lambda: len(agents.ended) == 1, 5.0)
    assert agents.ended[0][1] is not None  # ended by the dialer, not the agent's 30 s
    assert [a.state for a in engine.agents.values()] == ["ready"]
    assert not dialer.calls
