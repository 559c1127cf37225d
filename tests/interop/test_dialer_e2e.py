"""Outbound campaigns end to end (issue 14), on loopback: ``dialtone campaign run`` as a
subprocess dials a called population of Dialtone user agents (a human who says "hello?",
an answering machine with a recorded greeting and a beep that records what it receives,
busy, no answer, an unknown number, a failure) and bridges humans to agents (one of them
busy, so the safe-harbour path runs); then a kill -9 in the middle of a campaign."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialer.store import DialerStore
from telephony.dsp.wavio import read_wav_8k
from tests.interop.dialer_peers import SOUNDS, Agents, Population

pytestmark = [pytest.mark.interop]

CALLER_ID = "+442079460999"
BASE = "+4420794600"
MACHINE_MESSAGE = SOUNDS / "demo-thanks.wav"
SAFE_HARBOUR = SOUNDS / "auth-thankyou.wav"


@pytest.fixture(autouse=True)
def _sounds() -> None:
    if not (SOUNDS / "hello.wav").is_file():
        pytest.skip("Asterisk sounds not installed (asterisk-core-sounds-en-wav)")


@pytest.fixture
async def peers(tmp_path: Path) -> AsyncIterator[tuple[Population, Agents, int, int]]:
    pop = Population(41000, tmp_path)
    agents = Agents(43000, talk_s=3.0)
    pport = await pop.start_population()
    aport = await agents.start_agents()
    try:
        yield pop, agents, pport, aport
    finally:
        await pop.close()
        await agents.close()


def write_campaign(tmp: Path, name: str, numbers: list[str], agents: list[str], *,
                   pacing: str, extra: str = "") -> Path:
    (tmp / f"{name}.csv").write_text("phone,name\n" + "".join(
        f"{n},person{i}\n" for i, n in enumerate(numbers)))
    path = tmp / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
kind: agents
list: {name}.csv
region: GB
caller_id: "{CALLER_ID}"
pacing: "{pacing}"
agents: [{", ".join(agents)}]
machine_message: {MACHINE_MESSAGE}
safe_harbour_prompt: {SAFE_HARBOUR}
window: always
ring_timeout: 15
max_attempts: 1
{extra}""")
    return path


def run_args(campaign: Path, pport: int, db: str, *more: str) -> list[str]:
    return [sys.executable, "-m", "dialtone", "campaign", "run", str(campaign),
            "--trunk", f"sip:127.0.0.1:{pport}", "--db", db, "--rtp-ports", "45000-47000",
            *more]


async def run_to_end(args: list[str], timeout: float = 60.0) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(*args, "--until-done", "--json",
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()[-2000:]
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return report


def correlation(recorded: np.ndarray, reference: np.ndarray) -> float:
    """The best normalised cross-correlation of ``reference`` inside ``recorded`` over
    every lag where at least half of the reference overlaps (FFT; sample-exact)."""
    r = recorded.astype(np.float64)
    m = reference.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(r) + len(m))))
    full = np.fft.irfft(np.fft.rfft(r, n) * np.conj(np.fft.rfft(m, n)), n)
    r2 = np.concatenate([[0.0], np.cumsum(r * r)])
    m2 = np.concatenate([[0.0], np.cumsum(m * m)])
    lags = np.arange(-(len(m) // 2), len(r) - len(m) // 2)
    j0 = np.maximum(0, -lags)
    j1 = np.minimum(len(m), len(r) - lags)
    ok = j1 - j0 >= len(m) // 2
    lags, j0, j1 = lags[ok], j0[ok], j1[ok]
    den = np.sqrt((r2[j1 + lags] - r2[j0 + lags]) * (m2[j1] - m2[j0]))
    num = full[lags % n]
    best = float(np.max(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)))
    return best


async def test_campaign_every_disposition_then_dnc_skipped(
        peers: tuple[Population, Agents, int, int], tmp_path: Path) -> None:
    pop, agents, pport, aport = peers
    db = f"sqlite:///{tmp_path / 'dialer.db'}"
    numbers = {BASE + s: kind for s, kind in (
        ("01", "human"), ("17", "human"), ("02", "machine"), ("03", "busy"),
        ("04", "no_answer"), ("05", "invalid"), ("06", "failed"))}
    agent_uris = [f"sip:agent1@127.0.0.1:{aport}", f"sip:busyagent@127.0.0.1:{aport}"]
    camp = write_campaign(tmp_path, "e2e", list(numbers), agent_uris, pacing="ratio:4")
    events = tmp_path / "e2e_events.jsonl"
    report = await run_to_end(run_args(camp, pport, db, "--events", str(events)))
    by = {c["phone"]: c for c in report["contacts"]}
    assert set(by) == set(numbers)
    assert by[BASE + "02"]["disposition"] == "machine_message"
    assert by[BASE + "02"]["amd"] == "machine"
    assert by[BASE + "03"]["disposition"] == "busy"
    assert by[BASE + "04"]["disposition"] == "no_answer"
    assert by[BASE + "05"]["disposition"] == "invalid_number"
    assert by[BASE + "06"]["disposition"] == "failed"
    humans = [by[BASE + "01"], by[BASE + "17"]]
    assert sorted(h["disposition"] for h in humans) == ["abandoned", "connected"]
    assert all(h["amd"] == "human" for h in humans)
    connected = next(h for h in humans if h["disposition"] == "connected")
    abandoned = next(h for h in humans if h["disposition"] == "abandoned")
    assert connected["agent"] == agent_uris[0]
    assert connected["wait_s"] is not None and connected["wait_s"] < 2.0
    assert abandoned["agent"] is None
    for c in report["contacts"]:
        assert c["attempts"] == 1
    # Bridged within 2 s of the end of the greeting as the called side saw it (the agent's
    # leg is answered earlier, while AMD listens: the dialer's "bridged" event says when
    # the two legs were joined).
    hello_end = next(c["hello_end_wall"] for c in pop.calls
                     if c["number"] == connected["phone"])
    evs = _events(events)
    call_id = next(e["call_id"] for e in evs if e["type"] == "call_started"
                   and e["called"] == connected["phone"])
    bridged = [_epoch(e["ts"]) for e in evs if e["type"] == "bridged"
               and call_id in (e["call_id"], e["other_call_id"])]
    assert len(bridged) == 1 and 0 <= bridged[0] - hello_end < 2.0
    assert [user for user, _t in agents.answered_at].count("agent1") >= 1
    # Every number dialled once, with the caller ID in From and P-Asserted-Identity.
    assert {n: pop.invites[n] for n in numbers} == dict.fromkeys(numbers, 1)
    for n in numbers:
        assert CALLER_ID in pop.pai[n] and CALLER_ID in pop.from_[n]
    # The message after the beep is in what the machine recorded.
    # (in half-second pieces: a late packet concealed on a loaded machine shifts what
    # follows it by a frame, which a whole-message correlation would not forgive)
    recorded = read_wav_8k(pop.recordings[BASE + "02"])
    message = read_wav_8k(MACHINE_MESSAGE)
    pieces = [message[k:k + 4000] for k in range(0, len(message) - 4000, 4000)]
    found = [correlation(recorded, piece) > 0.9 for piece in pieces]
    assert sum(found) >= 0.8 * len(pieces), found
    # The ledger: the safe-harbour message on the abandoned call; abandonment 1 of 2 live.
    store = DialerStore(db)
    ledger = {row["number"]: row for row in store.ledger("e2e")}
    assert ledger[abandoned["phone"]]["message_played"] == SAFE_HARBOUR.stem
    assert ledger[abandoned["phone"]]["abandoned"] is True
    assert ledger[BASE + "02"]["message_played"] == MACHINE_MESSAGE.stem
    ab = report["summary"]["abandonment"]
    assert (ab["live"], ab["abandoned"]) == (2, 1)

    # The agent's disposition: the connected person asked not to be called again.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialtone", "dnc", "add", connected["phone"], "--db", db,
        "--source", "agent", stdout=asyncio.subprocess.DEVNULL)
    assert await proc.wait() == 0
    camp2 = write_campaign(tmp_path, "second", [connected["phone"], BASE + "13"],
                           agent_uris[:1], pacing="progressive")
    report2 = await run_to_end(run_args(camp2, pport, db))
    by2 = {c["phone"]: c for c in report2["contacts"]}
    assert by2[connected["phone"]]["disposition"] == "dnc"
    assert by2[connected["phone"]]["attempts"] == 0
    assert by2[BASE + "13"]["disposition"] == "busy"
    assert pop.invites[connected["phone"]] == 1  # not dialled by the second campaign


async def _wait_for(cond: Any, timeout: float) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


def _epoch(ts: str) -> float:
    """An event's ``ts`` (UTC ISO 8601, ``Z``) as seconds since the epoch."""
    return datetime.datetime.fromisoformat(ts).timestamp()


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_kill_9_mid_campaign_dials_no_contact_twice_and_loses_no_outcome(
        peers: tuple[Population, Agents, int, int], tmp_path: Path) -> None:
    pop, _agents, pport, aport = peers
    db = f"sqlite:///{tmp_path / 'dialer.db'}"
    # Progressive with two agents: two lines.  03/05 end at once, then 04/14 ring (in
    # flight at the kill), 13/15 wait for a line.
    order = ["03", "05", "04", "14", "13", "15"]
    numbers = [BASE + s for s in order]
    agent_uris = [f"sip:agent1@127.0.0.1:{aport}", f"sip:agent2@127.0.0.1:{aport}"]
    camp = write_campaign(tmp_path, "crash", numbers, agent_uris, pacing="progressive")
    events = tmp_path / "events.jsonl"
    proc = await asyncio.create_subprocess_exec(
        *run_args(camp, pport, db, "--until-done", "--events", str(events)),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        def finished() -> set[str]:
            return {e["number"] for e in _events(events) if e["type"] == "campaign_call"}

        await _wait_for(lambda: pop.invites[BASE + "04"] and pop.invites[BASE + "14"]
                        and finished() >= {BASE + "03", BASE + "05"}, 20.0)
        assert proc.returncode is None
        os.kill(proc.pid, signal.SIGKILL)  # calls 04 and 14 are ringing
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    done_before = finished()
    assert BASE + "13" not in done_before and BASE + "15" not in done_before
    report = await run_to_end(run_args(camp, pport, db))
    by = {c["phone"]: c for c in report["contacts"]}
    # No contact dialled twice: one INVITE per number at the called side.
    assert {n: pop.invites[n] for n in numbers} == dict.fromkeys(numbers, 1)
    # No outcome lost: the finished calls kept theirs, the ones in flight are closed as
    # failed (interrupted), the rest were dialled after the restart.
    assert by[BASE + "03"]["disposition"] == "busy"
    assert by[BASE + "05"]["disposition"] == "invalid_number"
    assert by[BASE + "04"]["disposition"] == "failed"
    assert by[BASE + "14"]["disposition"] == "failed"
    assert by[BASE + "13"]["disposition"] == "busy"
    assert by[BASE + "15"]["disposition"] == "invalid_number"
    assert all(c["status"] == "final" and c["attempts"] == 1 for c in report["contacts"])
    ledger = list(DialerStore(db).ledger("crash"))
    assert len(ledger) == len(numbers)
    assert all(row["outcome"] is not None for row in ledger)
    # (closed at the restart: no SIP final response was ever received for them)
    interrupted = {r["number"] for r in ledger if r["sip_status"] is None}
    assert interrupted == {BASE + "04", BASE + "14"}


FLOW = """\
flow: parcel_outreach
version: 1
languages: [en]
start: offer
settings:
  language: en
  timeout: 6
  max_no_input: 1
  max_no_match: 1
nodes:
  offer:
    type: menu
    say: {text: "Hello ${name}. Your parcel arrives on ${date}. Press 1 to confirm, 9 to stop these calls."}
    choices:
      - {dtmf: "1", next: confirmed}
      - {dtmf: "9", next: opt_out}
      - {dtmf: "2", next: another_day}
    on_fail: no_reply
  another_day:
    type: callback
    confirm: {text: "Press 1 to be called on this number."}
    slots_prompt: {text: "Press 1 for the morning."}
    slots:
      - {dtmf: "1", slot: morning}
    done: {text: "Done."}
    next: rescheduled
  rescheduled:
    type: hangup
    reason: callback_scheduled
  confirmed:
    type: hangup
    say: {text: "Thank you, see you on ${date}."}
    reason: confirmed
  opt_out:
    type: hangup
    say: {text: "You will not be called again."}
    reason: opted_out
  no_reply:
    type: hangup
    reason: no_reply
"""


async def test_message_campaign_outcomes_and_opt_out_skipped_by_the_next_campaign(
        peers: tuple[Population, Agents, int, int], tmp_path: Path) -> None:
    pop, _agents, pport, aport = peers
    db = f"sqlite:///{tmp_path / 'dialer.db'}"
    (tmp_path / "flow.yaml").write_text(FLOW)
    confirm, optout, machine = BASE + "10", BASE + "19", BASE + "02"
    later = BASE + "50"
    pop.scripts[later] = [(2.0, "2"), (2.5, "1"), (2.0, "1")]
    (tmp_path / "outreach.csv").write_text(
        f"phone,name,date\n{confirm},Ann,Tuesday\n{optout},Ben,Wednesday\n"
        f"{machine},Cat,Friday\n{later},Dot,Monday\n")
    (tmp_path / "outreach.yaml").write_text(f"""\
name: outreach
kind: message
list: outreach.csv
region: GB
caller_id: "{CALLER_ID}"
pacing: progressive
flow: flow.yaml
lines: 4
window: always
ring_timeout: 15
max_attempts: 1
""")
    report = await run_to_end(run_args(tmp_path / "outreach.yaml", pport, db))
    by = {c["phone"]: c for c in report["contacts"]}
    assert pop.pressed == {confirm: "1", optout: "9", later: "211"}
    assert by[confirm]["disposition"] == "confirmed"
    # "another day": a callback in the morning slot, in the callee's time zone
    assert by[later]["disposition"] == "callback_scheduled"
    assert by[later]["status"] == "pending"
    assert report["summary"]["callbacks_pending"] == 1
    assert by[optout]["disposition"] == "opted_out"
    assert by[machine]["disposition"] == "machine"
    assert by[confirm]["amd"] == by[optout]["amd"] == "human"
    # the opt-out is on the DNC list at once: the next campaign skips the number
    camp2 = write_campaign(tmp_path, "next", [optout, BASE + "13"],
                           [f"sip:agent1@127.0.0.1:{aport}"], pacing="progressive")
    report2 = await run_to_end(run_args(camp2, pport, db))
    by2 = {c["phone"]: c for c in report2["contacts"]}
    assert by2[optout]["disposition"] == "dnc" and by2[optout]["attempts"] == 0
    assert by2[BASE + "13"]["disposition"] == "busy"
    assert pop.invites[optout] == 1
