"""The campaign file (issue 14): its keys, file:line problems, the JSON Schema, and its
mapping onto the store's settings; the SIP-status-to-disposition table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialer.campaign_file import (
    CampaignFileError,
    campaign_schema,
    load_campaign_file,
)
from dialer.cli import main
from dialer.engine import CampaignConfigError, disposition_for_status, trunk_target
from dialer.policy import Disposition
from dialer.windows import ALWAYS, CallingWindow

GOOD = """\
name: parcels
kind: agents
list: contacts.csv
region: gb
caller_id: "+442079460999"
pacing: "ratio:2"
agents: [sip:alice@127.0.0.1:5070, "sip:bob@127.0.0.1:5070"]
machine_message: "Hello from Acme, please call us back."
safe_harbour_prompt: harbour.wav
window: {days: [mon, tue, wed], start: "09:00", end: "20:00"}
ring_timeout: 25
max_attempts: 2
retries: {busy: 600}
"""


def write(tmp_path: Path, text: str, *, files: tuple[str, ...] = ("contacts.csv",
                                                                    "harbour.wav")) -> Path:
    for f in files:
        (tmp_path / f).write_text("phone\n")
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return path


def test_a_good_file_maps_onto_the_settings(tmp_path: Path) -> None:
    loaded = load_campaign_file(write(tmp_path, GOOD))
    st = loaded.settings()
    assert loaded.spec.name == "parcels"
    assert loaded.list_path == (tmp_path / "contacts.csv").resolve()
    assert (st.region, st.kind, st.caller_id, st.pacing) == ("GB", "agents",
                                                              "+442079460999", "ratio:2")
    assert (st.ring_timeout, st.max_attempts, dict(st.retries)) == (25.0, 2, {"busy": 600.0})
    assert st.window == CallingWindow.daily("09:00", "20:00", ["mon", "tue", "wed"])
    assert st.extra["agents"] == ["sip:alice@127.0.0.1:5070", "sip:bob@127.0.0.1:5070"]
    # a WAV is a path (resolved against the file); other text is spoken by TTS
    assert st.extra["safe_harbour_prompt"] == str((tmp_path / "harbour.wav").resolve())
    assert st.extra["machine_message"] == "Hello from Acme, please call us back."
    # the settings survive the store's JSON
    assert type(st).from_json(st.to_json()) == st


def test_agent_leg_early_by_default_or_after_the_verdict(tmp_path: Path) -> None:
    assert load_campaign_file(write(tmp_path, GOOD)).settings().extra["agent_leg"] == "early"
    later = load_campaign_file(write(tmp_path, GOOD + "agent_leg: on_verdict\n"))
    assert later.settings().extra["agent_leg"] == "on_verdict"
    with pytest.raises(CampaignFileError) as err:
        load_campaign_file(write(tmp_path, GOOD + "agent_leg: sometimes\n"))
    assert [str(p).startswith(f"{tmp_path / 'campaign.yaml'}:14: agent_leg:")
            for p in err.value.problems] == [True]


def test_window_always(tmp_path: Path) -> None:
    text = GOOD.replace('window: {days: [mon, tue, wed], start: "09:00", end: "20:00"}',
                        "window: always")
    assert load_campaign_file(write(tmp_path, text)).settings().window == ALWAYS


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    text = GOOD.replace('agents: [sip:alice@127.0.0.1:5070, "sip:bob@127.0.0.1:5070"]',
                        'agents: [sip:alice@127.0.0.1:5070, "bob"]')
    text = text.replace("[mon, tue, wed]", "[mon, tue, wod]")
    text = text.replace("ring_timeout: 25", "ring_timeout: 10")
    text = text.replace("max_attempts: 2", "max_attempts: 0")
    text += "colour: blue\n"
    with pytest.raises(CampaignFileError) as err:
        load_campaign_file(write(tmp_path, text))
    lines = [str(p) for p in err.value.problems]
    f = str(tmp_path / "campaign.yaml")
    assert f"{f}:7: agents: agent 'bob' is not a SIP URI (sip:user@host[:port])" in lines
    assert any(x.startswith(f"{f}:10: window.days: unknown day 'wod'") for x in lines)
    assert any(x.startswith(f"{f}:11: ring_timeout:") and "15" in x for x in lines)
    assert any(x.startswith(f"{f}:12: max_attempts:") for x in lines)
    assert any(x.startswith(f"{f}:14: colour:") for x in lines)
    assert len(lines) == 5


def test_missing_files_and_kinds(tmp_path: Path) -> None:
    with pytest.raises(CampaignFileError) as err:
        load_campaign_file(write(tmp_path, GOOD, files=()))
    msgs = [str(p) for p in err.value.problems]
    assert any(":3: list: no file 'contacts.csv'" in m for m in msgs)
    assert any(":9: safe_harbour_prompt: no file 'harbour.wav'" in m for m in msgs)
    text = GOOD.replace("kind: agents", "kind: message")
    text = text.replace("agents: [sip:alice@127.0.0.1:5070, \"sip:bob@127.0.0.1:5070\"]\n",
                        "")
    with pytest.raises(CampaignFileError, match="a message campaign names its flow file"):
        load_campaign_file(write(tmp_path, text))
    with pytest.raises(CampaignFileError, match="unknown pacing"):
        load_campaign_file(write(tmp_path, GOOD.replace('"ratio:2"', "turbo")))
    with pytest.raises(CampaignFileError, match=r"campaign.yaml:3: bad YAML"):
        load_campaign_file(write(tmp_path, "name: x\nkind: [agents\n"))


def test_schema_names_the_issue_keys(capsys: pytest.CaptureFixture[str]) -> None:
    schema = campaign_schema()
    for key in ("name", "kind", "list", "region", "caller_id", "pacing", "agents", "flow",
                "machine_message", "safe_harbour_prompt", "window", "ring_timeout",
                "max_attempts", "retries"):
        assert key in schema["properties"], key
    assert schema["properties"]["ring_timeout"]["minimum"] == 15
    assert main(["campaign", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["properties"].keys() == \
        schema["properties"].keys()


@pytest.mark.parametrize(("status", "ours", "expected"), [
    (486, False, Disposition.BUSY), (600, False, Disposition.BUSY),
    (480, False, Disposition.NO_ANSWER), (408, False, Disposition.NO_ANSWER),
    (487, True, Disposition.NO_ANSWER), (487, False, Disposition.FAILED),
    (404, False, Disposition.INVALID_NUMBER), (484, False, Disposition.INVALID_NUMBER),
    (604, False, Disposition.INVALID_NUMBER), (503, False, Disposition.FAILED),
    (500, False, Disposition.FAILED), (0, False, Disposition.FAILED),
])
def test_sip_status_to_disposition(status: int, ours: bool, expected: Disposition) -> None:
    assert disposition_for_status(status, cancelled_by_us=ours) is expected


def test_trunk_target() -> None:
    assert trunk_target("sip:127.0.0.1:5060", "+442079460001") == \
        "sip:+442079460001@127.0.0.1:5060"
    with pytest.raises(CampaignConfigError):
        trunk_target("127.0.0.1:5060", "+1")


def test_agents_from_the_routing_core_and_connect_by_refer(tmp_path: Path) -> None:
    text = GOOD.replace('agents: [sip:alice@127.0.0.1:5070, "sip:bob@127.0.0.1:5070"]',
                        "agents: {from: routing, skills: [sales], languages: [en, es]}\n"
                        "connect: refer")
    st = load_campaign_file(write(tmp_path, text)).settings()
    assert st.extra["agents"] == {"from": "routing", "skills": ["sales"],
                                  "languages": ["en", "es"]}
    assert st.extra["connect"] == "refer"
    assert type(st).from_json(st.to_json()) == st
    assert load_campaign_file(write(tmp_path, GOOD)).settings().extra["connect"] == "bridge"
    bad = GOOD.replace('agents: [sip:alice@127.0.0.1:5070, "sip:bob@127.0.0.1:5070"]',
                       "agents:\n  from: pbx\n  skils: [sales]\nconnect: xfer")
    with pytest.raises(CampaignFileError) as err:
        load_campaign_file(write(tmp_path, bad))
    f = str(tmp_path / "campaign.yaml")
    lines = [str(p) for p in err.value.problems]
    assert lines == [f"{f}:8: agents.from: Input should be 'routing'",
                     f"{f}:9: agents.skils: Extra inputs are not permitted",
                     f"{f}:10: connect: Input should be 'bridge' or 'refer'"]
    props = campaign_schema()["properties"]
    assert "connect" in props and len(props["agents"]["anyOf"]) == 2
