"""Dialling registered to a PBX (issue 14): Kamailio as the PBX, on loopback, challenges our
REGISTER (401) and every new INVITE (407), lets an INVITE through only from the identity it
authenticated and that is registered, and forwards it to the called population.

* ``dialtone campaign run --register`` (password from the environment) registers, dials
  through Kamailio, and unregisters; a Spanish contact hears the Spanish safe-harbour message
  (TTS with the Spanish voice), an English one the English WAV, as the called side recorded;
  ``dialtone cdr export`` then lists one row per call with its campaign and disposition.
* A wrong password: the registration is refused, nothing is dialled, the campaign pauses
  with a message that says why (``campaign run`` and the node's dialer alike).
* ``dialtone serve --trunk ... --trunk-register``: the node's dialer registers, dials through
  the PBX, records the call's CDR with its campaign, and unregisters on stop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialer.registration import PbxAccount
from dialer.run_cli import run_campaign
from dialer.store import DialerStore
from dialtone.cli import main
from dialtone.config import load_config
from dialtone.node import Node
from telephony.aio.call import Call
from telephony.dsp.wavio import read_wav_8k
from telephony.eventlog import MemoryEventLog
from telephony.speech.tts import EspeakTts
from tests.conftest import free_port, require_tool
from tests.interop.dialer_peers import SOUNDS, Agents, Population
from tests.interop.peers import CONFIGS, Proc, wait_until
from tests.interop.test_dialer_e2e import correlation
from tests.interop.test_dialer_engine import make_store, until

pytestmark = [pytest.mark.interop]

PASSWORD = "pbx-s3cret"
CALLER_ID = "+442079460999"
BASE = "+4420794611"
SAFE_EN = SOUNDS / "auth-thankyou.wav"
SAFE_ES = "Esta llamada era de Acme. Llámenos, por favor."


@pytest.fixture(autouse=True)
def _sounds() -> None:
    if not (SOUNDS / "hello.wav").is_file():
        pytest.skip("Asterisk sounds not installed (asterisk-core-sounds-en-wav)")


class Pbx:
    """Kamailio with tests/interop/configs/kamailio-pbx.cfg.in."""

    def __init__(self, workdir: Path, population_port: int, agents_port: int) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cfg = workdir / "kamailio.cfg"
        cfg.write_text((CONFIGS / "kamailio-pbx.cfg.in").read_text().format(
            port=self.port, password=PASSWORD, population=f"127.0.0.1:{population_port}",
            agents=f"127.0.0.1:{agents_port}"))
        self.proc = Proc(["kamailio", "-f", str(cfg), "-DD", "-E", "-w", str(workdir),
                          "-m", "32", "-M", "8"], log=workdir / "kamailio.log", limit=90,
                         cwd=workdir)
        if not wait_until(lambda: "SO_RCVBUF is finally" in self.proc.output()
                          or not self.proc.running, 10) or not self.proc.running:
            out = self.proc.output()
            self.proc.stop()
            raise RuntimeError(f"kamailio did not start: {out[-2000:]}")

    def aor(self, user: str) -> str:
        return f"sip:{user}@127.0.0.1:{self.port}"

    def log_lines(self, text: str) -> list[str]:
        return [line for line in self.proc.output().splitlines() if text in line]


class ListeningPopulation(Population):
    """The population, where numbers in ``listeners`` are people who say hello and then
    record what they hear (the safe-harbour message) until the dialer hangs up."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.listeners: set[str] = set()

    async def handle(self, call: Call) -> None:
        number = call.called
        if number not in self.listeners:
            await super().handle(call)
            return
        self.ringing(call)
        await asyncio.sleep(self.answer_after_s)
        await call.answer()
        await call.play(self.hello)
        path = self.record_dir / f"heard-{number.lstrip('+')}.wav"
        self.recordings[number] = path
        await call.record(path, max_seconds=30, both_directions=False)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[ListeningPopulation, Agents, Pbx]]:
    require_tool("kamailio")
    pop = ListeningPopulation(51000, tmp_path, human_talk_s=6.0)
    agents = Agents(53000, talk_s=1.0)
    pport = await pop.start_population()
    aport = await agents.start_agents()
    pbx = Pbx(tmp_path / "kamailio", pport, aport)
    try:
        yield pop, agents, pbx
    finally:
        pbx.proc.stop()
        await pop.close()
        await agents.close()


def heard(recorded: np.ndarray, reference: np.ndarray) -> float:
    """The share of the reference's half-second pieces found in the recording (a late
    packet concealed on a loaded machine shifts what follows it by a frame)."""
    pieces = [reference[k:k + 4000] for k in range(0, len(reference) - 4000, 4000)]
    return sum(correlation(recorded, p) > 0.9 for p in pieces) / len(pieces)


async def test_campaign_run_registered_to_a_pbx_per_language_safe_harbour_and_cdrs(
        world: tuple[ListeningPopulation, Agents, Pbx], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pop, agents, pbx = world
    spanish, english, busy = BASE + "01", BASE + "17", BASE + "03"
    pop.listeners |= {spanish, english}
    (tmp_path / "pbx.csv").write_text(
        f"phone,name,language\n{spanish},Ana,es\n{english},Bob,en\n{busy},Carl,\n")
    campaign = tmp_path / "pbx.yaml"
    # The only agent, an extension of the PBX, is busy: both people hear the safe-harbour
    # message, each in their own language (the contact's language column picks; the file's
    # language is the fallback).
    campaign.write_text(f"""\
name: pbx
kind: agents
list: pbx.csv
region: GB
caller_id: "{CALLER_ID}"
pacing: "ratio:4"
agents: [{pbx.aor("busyagent")}]
language: en
safe_harbour_prompt:
  en: {SAFE_EN}
  es: "{SAFE_ES}"
window: always
ring_timeout: 15
max_attempts: 1
""")
    db = f"sqlite:///{tmp_path / 'run.db'}"
    events = tmp_path / "events.jsonl"
    # The command line, in this process (a thread runs its own event loop): the password
    # from the environment, never from an argument.
    monkeypatch.setenv("DIALTONE_DIALER__PASSWORD", PASSWORD)
    capsys.readouterr()
    code = await asyncio.wait_for(asyncio.to_thread(main, [
        "campaign", "run", str(campaign), "--register", pbx.aor("1001"), "--db", db,
        "--rtp-ports", "55000-56000", "--events", str(events), "--until-done", "--json"]), 60)
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["summary"]["registration"]["status"] == 200
    by = {c["phone"]: c for c in report["contacts"]}
    assert {n: by[n]["disposition"] for n in (spanish, english, busy)} == {
        spanish: "abandoned", english: "abandoned", busy: "busy"}

    # Every call went through the PBX, authenticated (407 answered) as the registered 1001,
    # with that identity in From and the caller ID in P-Asserted-Identity.
    assert {n: pop.invites[n] for n in (spanish, english, busy)} == dict.fromkeys(
        (spanish, english, busy), 1)
    for n in (spanish, english, busy):
        assert f"sip:1001@127.0.0.1:{pbx.port}" in pop.from_[n]
        assert CALLER_ID in pop.pai[n]
    # ... and so did the agent's leg (the PBX's extension: the same credentials)
    assert agents.invites["busyagent"] >= 1
    assert len(pbx.log_lines("authenticated as 1001, registered")) == 3 + agents.invites[
        "busyagent"]
    # Registered before the first call, unregistered at the end (Expires: 0 answered 200).
    regs = [e for e in map(json.loads, events.read_text().splitlines())
            if e["type"] == "registration"]
    assert [(r["registered"], r["status"]) for r in regs] == [(True, 200), (False, 200)]

    # What each person heard: the message in their language.
    spanish_pcm = EspeakTts().synthesize(SAFE_ES, language="es")
    english_pcm = read_wav_8k(SAFE_EN)
    heard_es = read_wav_8k(pop.recordings[spanish])
    heard_en = read_wav_8k(pop.recordings[english])
    assert heard(heard_es, spanish_pcm) >= 0.8
    assert heard(heard_en, english_pcm) >= 0.8
    assert heard(heard_es, english_pcm) < 0.5 and heard(heard_en, spanish_pcm) < 0.5
    ledger = {row["number"]: row for row in DialerStore(db).ledger("pbx")}
    assert ledger[english]["message_played"] == SAFE_EN.stem
    assert ledger[spanish]["message_played"].startswith("tts:Esta llamada")

    # `dialtone cdr export`: one row per customer call, with campaign and disposition.
    assert main(["cdr", "export", "--db", db, "--format", "jsonl",
                 "--since", "2000-01-01T00:00:00Z"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    customer = {r["called"]: r for r in rows if r["campaign"] == "pbx"}
    assert {n: customer[n]["disposition"] for n in customer} == {
        spanish: "abandoned", english: "abandoned", busy: "busy"}
    for n, row in customer.items():
        assert row["direction"] == "outbound" and row["started_at"] and row["ended_at"]
    assert customer[spanish]["amd"] == "human" and customer[spanish]["language"] == "es"
    assert customer[english]["language"] == "en" and customer[busy]["sip_status"] == 486
    assert customer[spanish]["answered_at"] is not None and customer[busy]["answered_at"] is None
    # the agent leg tried (486) is a call of its own, not the campaign's customer call
    assert any(r["called"] == "busyagent" and r["campaign"] is None for r in rows)


async def test_a_wrong_password_pauses_the_campaign_and_dials_nothing(
        world: tuple[ListeningPopulation, Agents, Pbx], tmp_path: Path) -> None:
    pop, _, pbx = world
    (tmp_path / "c.csv").write_text(f"phone\n{BASE}21\n")
    campaign = tmp_path / "c.yaml"
    campaign.write_text(f"""\
name: wrong
list: c.csv
region: GB
caller_id: "{CALLER_ID}"
agents: [sip:agent1@127.0.0.1:5999]
window: always
""")
    db = f"sqlite:///{tmp_path / 'w.db'}"
    report = await run_campaign(
        campaign, db=db, rtp_ports=(56000, 56200), max_seconds=10,
        account=PbxAccount.parse(pbx.aor("1001"), password="not-it"))
    error = report["summary"]["error"]
    assert "refused to register" in error and "401" in error and "password" in error
    assert report["summary"]["status"] == "paused"
    assert pop.invites[BASE + "21"] == 0

    # The node's dialer, refused: a campaign started there is paused with the same message.
    store = make_store(tmp_path, "node-wrong", [BASE + "23"], ["sip:agent1@127.0.0.1:5999"])
    config = load_config(env={"DIALTONE_DIALER__PASSWORD": "not-it"}, flags={
        "sip.listen": "127.0.0.1:0", "sip.tcp": False, "media.rtp_ports": "56200-56400",
        "db": f"sqlite:///{tmp_path / 'd.db'}", "dialer.trunk": f"sip:127.0.0.1:{pbx.port}",
        "dialer.register_as": pbx.aor("1003")})
    async with Node.running(config) as node:
        assert node.dialer is not None and node.events is not None
        log = MemoryEventLog()
        node.events.observers.append(log.emit)
        node.dialer.poll_s = 0.1
        registration = node.dialer.registration
        assert registration is not None
        await until(lambda: registration.state == "refused", 10.0)
        store.set_status("node-wrong", "running")
        await until(lambda: store.campaign("node-wrong").status == "paused", 10.0)
        reasons = [e["reason"] for e in log.of_type("campaign_paused")]
        assert reasons and "refused to register" in reasons[0]
    assert pop.invites[BASE + "23"] == 0


async def test_the_node_dialer_registers_dials_through_the_pbx_and_records_cdrs(
        world: tuple[ListeningPopulation, Agents, Pbx], tmp_path: Path) -> None:
    from dialer.db import make_engine
    from dialtone.cdr import iter_cdrs

    pop, _, pbx = world
    busy = BASE + "33"
    store = make_store(tmp_path, "node-pbx", [busy], ["sip:agent1@127.0.0.1:5999"])
    secret = tmp_path / "pbx.secret"
    secret.write_text(PASSWORD + "\n")
    events = tmp_path / "node-events.jsonl"
    config = load_config(env={}, flags={
        "sip.listen": "127.0.0.1:0", "sip.tcp": False, "media.rtp_ports": "56400-56600",
        "db": f"sqlite:///{tmp_path / 'd.db'}", "events": str(events),
        "dialer.trunk": f"sip:127.0.0.1:{pbx.port}", "dialer.register_as": pbx.aor("1002"),
        "dialer.password_file": str(secret)})
    async with Node.running(config) as node:
        dialer = node.dialer
        assert dialer is not None and dialer.registration is not None
        dialer.poll_s = 0.1
        assert await dialer.registration.wait_registered(10.0)
        store.set_status("node-pbx", "running")
        await until(lambda: any(c["disposition"] == "busy"
                                for c in store.contact_report("node-pbx")), 20.0)
        assert node.cdr_writer is not None
        writer = node.cdr_writer
        await until(lambda: writer.written >= 2, 10.0)  # the row, then its campaign
        # the engine's status (campaign status, the console) shows the registration
        await until(lambda: (store.engine_status("node-pbx") or (0, {}))[1].get(
            "registration") is not None, 5.0)
        reg = store.engine_status("node-pbx")[1]["registration"]  # type: ignore[index]
        assert (reg["state"], reg["status"], reg["reason"], reg["aor"]) == (
            "registered", 200, "OK", pbx.aor("1002"))
        assert 0 < reg["expires_in"] <= reg["expires"]
    assert pop.from_[busy].startswith(f"<sip:1002@127.0.0.1:{pbx.port}")
    assert len(pbx.log_lines("authenticated as 1002, registered")) == 1
    engine = make_engine(config.db)
    rows = [r for r in iter_cdrs(engine, since=0) if r["called"] == busy]
    engine.dispose()
    assert [(r["campaign"], r["disposition"], r["sip_status"]) for r in rows] == [
        ("node-pbx", "busy", 486)]
    # registered before the call, unregistered on stop (the Expires: 0 REGISTER answered)
    regs = [e for e in map(json.loads, events.read_text().splitlines())
            if e["type"] == "registration"]
    assert [(r["registered"], r["status"]) for r in regs] == [(True, 200), (False, 200)]
