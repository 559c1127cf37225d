"""Issue 14's last pieces, without I/O: per-language campaign prompts (the choice and the
campaign file's validation), the PBX account and the registration's states, the node's
dialer configuration, and the CDR rows of campaign calls."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dialer.campaign_file import CampaignFileError, campaign_schema, load_campaign_file
from dialer.errors import DialerError
from dialer.prompts import choose_prompt, normalise_language, prompt_variants
from dialer.registration import PbxAccount, PbxRegistration
from dialer.run_cli import PASSWORD_ENV, pbx_account
from dialtone.cdr import CdrRecorder
from dialtone.config import MASK, SERVE_FLAGS, load_config
from dialtone.dialing import pbx_account as node_pbx_account
from dialtone_errors import ConfigError

# --- choosing a prompt ---------------------------------------------------------------------------

BY_LANGUAGE = {"en": "hello.wav", "es": "Hola, le llamamos de Acme.", "pt-br": "Olá"}


@pytest.mark.parametrize(("contact", "expected"), [
    ("es", ("Hola, le llamamos de Acme.", "es")),
    ("ES_mx", ("Hola, le llamamos de Acme.", "es")),    # the primary language
    ("pt-BR", ("Olá", "pt-br")),                         # the exact tag first
    ("pt", ("hello.wav", "en")),                         # no pt entry: the fallback
    ("fr", ("hello.wav", "en")),
    (None, ("hello.wav", "en")),
    ("", ("hello.wav", "en")),
    ("not a language", ("hello.wav", "en")),
])
def test_the_contact_language_picks_the_prompt_else_the_campaign_language(
        contact: Any, expected: tuple[str, str]) -> None:
    assert choose_prompt(BY_LANGUAGE, contact, "en") == expected


def test_a_single_prompt_is_in_the_campaign_language_for_everyone() -> None:
    assert choose_prompt("Hello", "es", "en") == ("Hello", "en")
    assert choose_prompt(None, "es", "de") == (None, "de")
    # a stored mapping without the fallback (never from a validated file): not silence
    assert choose_prompt({"es": "Hola"}, "fr", "en") == ("Hola", "es")


def test_every_variant_is_rendered_before_dialling() -> None:
    assert list(prompt_variants(BY_LANGUAGE, "en")) == [
        ("hello.wav", "en"), ("Hola, le llamamos de Acme.", "es"), ("Olá", "pt-br")]
    assert list(prompt_variants("Hi", "EN")) == [("Hi", "en")]
    assert list(prompt_variants(None, "en")) == []
    assert normalise_language(" Zh_Yue ") == "zh-yue" and normalise_language(3) is None


# --- the campaign file ---------------------------------------------------------------------------

HEAD = """\
name: parcels
list: contacts.csv
caller_id: "+442079460999"
agents: [sip:alice@127.0.0.1:5070]
"""


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "contacts.csv").write_text("phone,language\n")
    (tmp_path / "en.wav").write_bytes(b"")
    path = tmp_path / "campaign.yaml"
    path.write_text(HEAD + body)
    return path


def test_per_language_prompts_map_onto_the_settings_with_wavs_resolved(tmp_path: Path) -> None:
    path = write(tmp_path, """\
language: en
safe_harbour_prompt:
  en: en.wav
  ES: "Esta llamada era de Acme."
machine_message: "Hello from Acme."
""")
    extra = load_campaign_file(path).settings().extra
    assert extra["safe_harbour_prompt"] == {"en": str((tmp_path / "en.wav").resolve()),
                                            "es": "Esta llamada era de Acme."}
    assert extra["machine_message"] == "Hello from Acme."  # the single form is kept


@pytest.mark.parametrize(("body", "line", "message"), [
    ("safe_harbour_prompt:\n  es: Hola\n", 5,
     "safe_harbour_prompt: no entry for the campaign's language 'en'"),
    ("language: es\nmachine_message: {en: Hi}\n", 6,
     "machine_message: no entry for the campaign's language 'es'"),
    ("safe_harbour_prompt:\n  en: Hi\n  spanish!: Hola\n", 5,
     "safe_harbour_prompt: 'spanish!' is not a language tag"),
    ("safe_harbour_prompt:\n  en: Hi\n  es: 3\n", 5, "safe_harbour_prompt: es: want a WAV"),
    ("safe_harbour_prompt: {}\n", 5, "safe_harbour_prompt: an empty mapping"),
    ("safe_harbour_prompt: [a, b]\n", 5, "safe_harbour_prompt: want a WAV path, a text"),
    ("safe_harbour_prompt:\n  en: Hi\n  es: missing-es.wav\n", 7,
     "safe_harbour_prompt.es: no file 'missing-es.wav'"),
    ("language: english\n", 5, "language: 'english' is not a language tag"),
])
def test_bad_per_language_prompts_are_reported_with_file_and_line(
        tmp_path: Path, body: str, line: int, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(CampaignFileError) as err:
        load_campaign_file(path)
    (problem,) = err.value.problems
    assert (problem.file, problem.line) == (str(path), line)
    assert problem.message.startswith(message), problem.message


def test_the_schema_allows_a_prompt_or_a_mapping_and_keeps_the_keys() -> None:
    props = campaign_schema()["properties"]
    for key in ("safe_harbour_prompt", "machine_message"):
        kinds = {s.get("type") for s in props[key]["anyOf"]}
        assert kinds == {"string", "object", "null"}
    assert {"name", "kind", "list", "region", "caller_id", "pacing", "agents", "flow",
            "machine_message", "safe_harbour_prompt", "window", "ring_timeout",
            "max_attempts", "retries", "language"} <= set(props)


# --- the PBX account and its registration ------------------------------------------------------


def test_the_account_from_a_registration_uri(tmp_path: Path) -> None:
    a = PbxAccount.parse("sip:1001@pbx.example:5062", password="pw")
    assert (a.aor, a.registrar, a.auth_user) == ("sip:1001@pbx.example:5062",
                                                 "sip:pbx.example:5062", "1001")
    assert "pw" not in repr(a)
    assert PbxAccount.parse("1001@[::1]", password="pw", auth_user="u").registrar == "sip:[::1]"
    for bad in ("sip:pbx.example", "sip:@", "tel:+44"):
        with pytest.raises(DialerError):
            PbxAccount.parse(bad, password="pw")
    secret = tmp_path / "secret"
    secret.write_text("from-file\nignored\n")
    assert pbx_account("sip:1@h", auth_user=None, password_file=str(secret)).password == \
        "from-file"
    assert pbx_account("sip:1@h", auth_user=None, password_file=None,
                       env={PASSWORD_ENV: "from-env"}).password == "from-env"
    with pytest.raises(DialerError, match=PASSWORD_ENV):
        pbx_account("sip:1@h", auth_user=None, password_file=None, env={})
    with pytest.raises(DialerError, match="--password-file"):
        pbx_account("sip:1@h", auth_user=None, password_file=str(tmp_path / "none"))



def test_auth_user_with_a_password_in_it_warns_without_showing_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``campaign run --auth-user 1001:hunter2`` (the form ``serve --auth-user`` takes): used
    as given, as before, with a warning on stderr that names the file and the environment
    variable and never the password; a plain user name says nothing."""
    env = {PASSWORD_ENV: "from-env"}
    account = pbx_account("sip:1001@h", auth_user="1001:hunter2", password_file=None, env=env)
    assert account.auth_user == "1001:hunter2" and account.password == "from-env"
    out, err = capsys.readouterr()
    assert "warning:" in err and "--auth-user" in err and "(ps)" in err
    assert "--password-file" in err and PASSWORD_ENV in err
    assert "hunter2" not in out + err and "from-env" not in out + err
    assert pbx_account("sip:1001@h", auth_user="ops", password_file=None, env=env
                       ).auth_user == "ops"
    assert capsys.readouterr() == ("", "")

class _FakeEndpoint:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def register(self, registrar: str, **kw: Any) -> str:
        self.sent.append(("register", kw["expires"]))
        return "reg-1"

    def unregister(self, ref: str, *, now: float) -> None:
        self.sent.append(("unregister", ref))

    def registrations(self) -> dict[str, bool]:
        return {"reg-1": False}


class _FakeUa:
    def __init__(self) -> None:
        self.endpoint = _FakeEndpoint()
        self.transport = type("T", (), {"flush": lambda self: None})()

    def now(self) -> float:
        return 0.0


def _reg_event(registered: bool, status: int, ref: str = "reg-1") -> dict[str, Any]:
    return {"type": "registration", "reg": ref, "registered": registered, "status": status,
            "expires": 300 if registered else 0}


async def test_registration_states_gate_dialling_and_a_refusal_says_why() -> None:
    ua = _FakeUa()
    refusals: list[str] = []
    reg = PbxRegistration(ua, PbxAccount.parse("sip:1001@pbx:5060", password="x"),  # type: ignore[arg-type]
                          on_refused=refusals.append)
    assert not reg.may_dial()
    start = asyncio.ensure_future(reg.start(timeout=5))
    await asyncio.sleep(0)
    reg.observe(_reg_event(True, 200, ref="reg-other"))  # not ours
    assert not start.done()
    reg.observe(_reg_event(True, 200))
    assert await start is True and reg.may_dial()
    reg.observe(_reg_event(False, 503))                  # lost: hold, the core retries
    assert reg.state == "retrying" and not reg.may_dial() and refusals == []
    reg.observe(_reg_event(True, 200))
    assert reg.may_dial()
    reg.observe(_reg_event(False, 401))                  # the password no longer works
    reg.observe(_reg_event(False, 401))                  # the back-off's retry: said once
    assert reg.state == "refused" and not reg.may_dial()
    assert len(refusals) == 1 and "refused" in refusals[0] and "password" in refusals[0]
    await reg.close(timeout=0.05)
    assert ua.endpoint.sent == [("register", 300), ("unregister", "reg-1")]
    assert reg.state == "unregistered"


async def test_the_registration_snapshot_says_state_answer_expiry_and_last_failure() -> None:
    from dialer.run_cli import registration_text

    clock = [1000.0]
    reg = PbxRegistration(_FakeUa(), PbxAccount.parse("sip:1001@pbx:5060", password="x"),  # type: ignore[arg-type]
                          clock=lambda: clock[0])
    snap = reg.snapshot()
    assert (snap["state"], snap["registered"], snap["status"], snap["last_failure"]) == (
        "unregistered", False, None, None)
    start = asyncio.ensure_future(reg.start(timeout=5))
    await asyncio.sleep(0)
    reg.observe(_reg_event(True, 200))
    await start
    clock[0] += 60
    snap = reg.snapshot()
    assert snap == {"state": "registered", "registered": True, "aor": "sip:1001@pbx:5060",
                    "registrar": "sip:pbx:5060", "auth_user": "1001", "status": 200,
                    "reason": "OK", "expires": 300, "expires_in": 240,
                    "registered_at": 1000.0, "last_failure": None, "message": None}
    assert registration_text(snap) == (
        "registered as sip:1001@pbx:5060 at sip:pbx:5060 (200 OK, expires in 240 s)")
    reg.observe(_reg_event(False, 503))  # the refresh failed: retrying
    clock[0] += 5
    snap = reg.snapshot()
    assert (snap["state"], snap["registered"], snap["expires_in"]) == ("retrying", False, None)
    assert snap["last_failure"] == {"at": 1060.0, "ago_s": 5.0, "status": 503,
                                    "reason": "Service Unavailable"}
    assert registration_text(snap) == (
        "retrying: sip:1001@pbx:5060 at sip:pbx:5060 (503 Service Unavailable); "
        "last failure 503 Service Unavailable, 5 s ago")
    reg.observe(_reg_event(False, 0))  # no answer at all
    assert reg.snapshot()["last_failure"]["reason"] == "no answer"
    reg.observe(_reg_event(True, 200))
    reg.observe(_reg_event(False, 403))  # refused: the message says why
    snap = reg.snapshot()
    assert (snap["state"], snap["status"], snap["reason"]) == ("refused", 403, "Forbidden")
    assert "refused" in snap["message"] and snap["last_failure"]["status"] == 403
    assert registration_text(None) == "none (a trunk)"


def test_campaign_status_shows_the_pbx_registration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import time

    from dialer.cli import main
    from dialer.policy import CampaignSettings
    from dialer.store import DialerStore

    url = f"sqlite:///{tmp_path / 'd.db'}"
    store = DialerStore(url)
    store.create_campaign("reg", CampaignSettings(caller_id="+15550100"), now=time.time())
    reg = {"state": "registered", "registered": True, "aor": "sip:1001@pbx:5060",
           "registrar": "sip:pbx:5060", "auth_user": "1001", "status": 200, "reason": "OK",
           "expires": 300, "expires_in": 240, "registered_at": time.time() - 60,
           "last_failure": {"at": time.time() - 90, "ago_s": 90.0, "status": 503,
                            "reason": "Service Unavailable"}, "message": None}
    store.write_engine_status("reg", "host:reg", {"dial_level": 1.0, "registration": reg},
                              now=time.time())
    assert main(["campaign", "status", "reg", "--db", url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["engine"]["registration"] == reg
    monkeypatch.setenv("COLUMNS", "250")  # the row on one line, as on a wide terminal
    assert main(["campaign", "status", "reg", "--db", url, "--once"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "PBX registration" in out
    assert "registered as sip:1001@pbx:5060" in out and "expires in 240 s" in out
    assert "last failure 503 Service Unavailable, 90 s ago" in out


# --- the node's dialer configuration -----------------------------------------------------------


def test_the_node_dialer_registration_config(tmp_path: Path) -> None:
    flags = {f.flag: f.path for f in SERVE_FLAGS}
    assert flags["--trunk-register"] == "dialer.register_as"
    assert flags["--trunk-password-file"] == "dialer.password_file"
    assert not any("password" in f.flag and "file" not in f.flag and f.path.startswith("dialer")
                   for f in SERVE_FLAGS)  # no password on a command line
    base = {"dialer.trunk": "sip:pbx:5060", "dialer.register_as": "sip:1001@pbx:5060"}
    config = load_config(env={"DIALTONE_DIALER__PASSWORD": "pw"}, flags=base)
    account = node_pbx_account(config.dialer)
    assert account is not None and account.password == "pw" and account.auth_user == "1001"
    assert config.masked()["dialer"]["password"] == MASK
    with pytest.raises(ConfigError, match="needs a password"):
        load_config(env={}, flags=base)
    with pytest.raises(ConfigError, match="applies only with --trunk"):
        load_config(env={"DIALTONE_DIALER__PASSWORD": "pw"},
                    flags={"dialer.register_as": "sip:1001@pbx"})
    with pytest.raises(ConfigError, match="applies only with --trunk-register"):
        load_config(env={}, flags={"dialer.password_file": "x"})
    with pytest.raises(ConfigError, match="want sip:USER@HOST"):
        load_config(env={"DIALTONE_DIALER__PASSWORD": "pw"},
                    flags={**base, "dialer.register_as": "sip:pbx"})
    # the password alone (exported for `campaign run --register`) does not stop other commands
    assert load_config(env={"DIALTONE_DIALER__PASSWORD": "pw"}).dialer.register_as is None
    secret = tmp_path / "pw"
    secret.write_text("file-pw\n")
    config = load_config(env={}, flags={**base, "dialer.password_file": str(secret)})
    account = node_pbx_account(config.dialer)
    assert account is not None and account.password == "file-pw"
    config = load_config(env={}, flags={**base, "dialer.password_file": str(tmp_path / "no")})
    with pytest.raises(ConfigError, match="cannot read"):
        node_pbx_account(config.dialer)


# --- CDR rows of campaign calls ------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.updates: list[tuple[str, float, dict[str, Any]]] = []

    def insert(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))

    def update(self, call_id: str, started_at: float, values: dict[str, Any]) -> None:
        self.updates.append((call_id, started_at, values))


def _recorder() -> tuple[CdrRecorder, _Writer, list[float]]:
    clock = [100.0]
    writer = _Writer()
    return CdrRecorder(writer, "n1", wall_clock=lambda: clock[0]) , writer, clock  # type: ignore[arg-type]


def _leg(rec: CdrRecorder, ref: str, called: str) -> None:
    rec.observe({"type": "call_started", "call_id": ref, "direction": "outbound",
                 "caller": "sip:1001@pbx", "called": called, "sip_call_id": f"{ref}@x"})


def _outcome(number: str, disposition: str, **more: Any) -> dict[str, Any]:
    return {"type": "campaign_call", "call_id": f"c-{number}", "campaign": "c",
            "number": number, "disposition": disposition, "attempt": 1, "amd": None,
            "agent": None, **more}


def test_a_campaign_call_outcome_lands_on_its_customer_legs_row() -> None:
    rec, writer, clock = _recorder()
    _leg(rec, "call-1", "+441")
    _leg(rec, "call-2", "agent1")                       # the agent's leg: a row of its own
    clock[0] = 105.0
    rec.observe({"type": "call_ended", "call_id": "call-2", "cause": "normal"})
    rec.observe({"type": "call_ended", "call_id": "call-1", "cause": "normal"})
    rec.observe(_outcome("+441", "connected", amd="human", agent="sip:agent1@h"))
    assert [r["called"] for r in writer.rows] == ["agent1", "+441"]
    assert writer.updates == [("call-1", 100.0, {"campaign": "c", "disposition": "connected",
                                                 "amd": "human", "agent": "sip:agent1@h"})]
    # the outcome before the leg's end: the row is written with it
    _leg(rec, "call-3", "+442")
    rec.observe(_outcome("+442", "abandoned", amd="human", language="es"))
    rec.observe({"type": "call_ended", "call_id": "call-3", "cause": "normal"})
    assert writer.rows[-1]["campaign"] == "c" and writer.rows[-1]["language"] == "es"
    assert writer.rows[-1]["disposition"] == "abandoned"
    # no SIP leg (never dialled), or an outcome seen twice: nothing to update
    rec.observe(_outcome("+449", "failed"))
    rec.observe(_outcome("+442", "abandoned"))
    assert len(writer.updates) == 1


def test_a_message_campaign_flow_cdr_then_the_outcome_both_land() -> None:
    rec, writer, _ = _recorder()
    _leg(rec, "call-1", "+441")
    rec.observe({"type": "call_ended", "call_id": "call-1", "cause": "normal"})
    rec.observe({"type": "cdr", "call_id": "call-1", "flow": "outreach", "path": ["a"],
                 "disposition": "confirmed"})
    rec.observe(_outcome("+441", "confirmed"))
    assert [u[2].get("disposition") for u in writer.updates] == ["confirmed", "confirmed"]
    assert writer.updates[1][2]["campaign"] == "c"
