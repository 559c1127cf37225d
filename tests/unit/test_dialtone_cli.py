"""The ``dialtone`` command line: every subcommand is registered and answers --help; the
node's configuration (file < environment < flags), secrets masked, inapplicable options
refused; the event log's schema."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dialtone import cli
from dialtone.config import NodeConfig, load_config, mask_url
from dialtone.events import check_event_log, event_log_schema, event_types, validate_event
from dialtone_errors import ConfigError

EXPECTED = {"serve", "config", "events", "flow", "campaign", "dnc", "dialer", "router", "agent",
            "dtmf", "amd"}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def all_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    out = [(path, parser)]
    for name, sub in subcommands(parser).items():
        out += all_parsers(sub, (*path, name))
    return out


def test_every_subcommand_is_registered() -> None:
    assert EXPECTED <= set(subcommands(cli.build_parser()))


@pytest.mark.parametrize("path", [p for p, _ in all_parsers(cli.build_parser())],
                         ids=lambda p: " ".join(p) or "dialtone")
def test_help_of_every_subcommand(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
                                  ) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*path, "--help"])
    assert exit_info.value.code == 0
    assert "usage: dialtone" in capsys.readouterr().out


def test_the_installed_command_lists_every_subcommand() -> None:
    out = subprocess.run([sys.executable, "-m", "dialtone", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for name in EXPECTED:
        assert f"    {name} " in out


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["config", "show", *argv])


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    node_yaml = tmp_path / "node.yaml"
    node_yaml.write_text("node_id: from-file\nsip: {listen: 127.0.0.1:5000, t1: 0.2}\n"
                         "media: {timeout: 11}\n")
    env = {"DIALTONE_SIP__LISTEN": "127.0.0.1:6000", "DIALTONE_MEDIA__TIMEOUT": "22"}
    config = load_config(yaml_path=node_yaml, env=env, flags={"media.timeout": 33.0})
    assert config.node_id == "from-file"        # only the file says it
    assert config.sip.t1 == 0.2                 # the file beats the default
    assert config.sip.port == 6000              # the environment beats the file
    assert config.media.timeout == 33.0         # a flag beats the environment
    assert load_config(env={}).sip.listen == "127.0.0.1:5080"  # the defaults


def test_flags_given_and_only_those_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    node_yaml = tmp_path / "node.yaml"
    node_yaml.write_text("sip: {listen: 127.0.0.1:5001}\n")
    for key in [k for k in __import__("os").environ if k.startswith("DIALTONE_")]:
        monkeypatch.delenv(key)
    config = cli.config_from_args(parse("--config", str(node_yaml), "--trusted",
                                        "10.0.0.1, 10.0.0.2", "--auth-user", "alice:s3cret"))
    assert config.sip.listen == "127.0.0.1:5001"  # --sip not given: the file's value stands
    assert config.sip.trusted == ["10.0.0.1", "10.0.0.2"]
    assert config.sip.auth_users["alice"].get_secret_value() == "s3cret"


def test_inline_auth_user_password_warns_without_showing_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--auth-user USER:PASSWORD`` still works but says on stderr that ``ps`` shows it and
    what to use instead; the password is printed nowhere.  The file and the environment
    give the same users without a warning."""
    for key in [k for k in __import__("os").environ if k.startswith("DIALTONE_")]:
        monkeypatch.delenv(key)
    config = cli.config_from_args(parse("--trusted", "10.0.0.1", "--auth-user", "alice:s3cret",
                                        "--auth-user", "bob:pa55"))
    assert {u: s.get_secret_value() for u, s in config.sip.auth_users.items()} == {
        "alice": "s3cret", "bob": "pa55"}
    out, err = capsys.readouterr()
    assert "warning: --auth-user USER:PASSWORD" in err and "(ps)" in err
    assert "sip.auth_users" in err and "DIALTONE_SIP__AUTH_USERS" in err
    assert "s3cret" not in out + err and "pa55" not in out + err
    show = parse("--trusted", "10.0.0.1", "--auth-user", "alice:s3cret", "--json")
    shown = io.StringIO()
    assert cli.cmd_config_show(show, shown) == 0
    out, err = capsys.readouterr()
    assert "warning: --auth-user" in err
    assert "s3cret" not in out + err + shown.getvalue()
    node_yaml = tmp_path / "node.yaml"
    node_yaml.write_text("sip: {trusted: [10.0.0.1], auth_users: {alice: s3cret}}\n")
    config = cli.config_from_args(parse("--config", str(node_yaml)))
    assert config.sip.auth_users["alice"].get_secret_value() == "s3cret"
    monkeypatch.setenv("DIALTONE_SIP__AUTH_USERS", '{"bob": "pa55"}')
    config = cli.config_from_args(parse("--trusted", "10.0.0.1"))
    assert config.sip.auth_users["bob"].get_secret_value() == "pa55"
    assert "warning" not in capsys.readouterr().err


def test_config_show_masks_secrets() -> None:
    args = parse("--trusted", "10.0.0.1", "--auth-user", "alice:s3cret", "--register",
                 "sip:pbx.example:5060", "--user", "bob", "--password", "hunter2",
                 "--mqtt", "mqtt://svc:topsecret@127.0.0.1:1883", "--json")
    out = io.StringIO()
    assert cli.cmd_config_show(args, out) == 0
    text = out.getvalue()
    assert "s3cret" not in text and "hunter2" not in text and "topsecret" not in text
    shown = json.loads(text)
    assert shown["sip"]["auth_users"] == {"alice": "**********"}
    assert shown["routing"]["mqtt"] == "mqtt://svc:**********@127.0.0.1:1883"
    assert mask_url("postgresql+psycopg://u:pw@db/x") == "postgresql+psycopg://u:**********@db/x"


def test_the_registration_password_from_a_file_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("DIALTONE_")]:
        monkeypatch.delenv(key)
    secret = tmp_path / "pw"
    secret.write_text("from-file\nignored\n")
    reg = ("--register", "sip:pbx.example:5060", "--user", "bob")
    config = cli.config_from_args(parse(*reg, "--password-file", str(secret)))
    assert config.sip.password_value() == "from-file" and config.sip.password is None
    assert "warning" not in capsys.readouterr().err
    config = load_config(env={"DIALTONE_SIP__PASSWORD": "from-env"},
                         flags={"sip.registrar": "sip:pbx.example:5060"})
    assert config.sip.password_value() == "from-env"
    # --password still works, and says why it should not be used
    config = cli.config_from_args(parse(*reg, "--password", "hunter2"))
    assert config.sip.password_value() == "hunter2"
    err = capsys.readouterr().err
    assert "--password on the command line" in err and "--password-file" in err
    assert "hunter2" not in err
    with pytest.raises(ConfigError, match="give one"):
        cli.config_from_args(parse(*reg, "--password", "x", "--password-file", str(secret)))
    with pytest.raises(ConfigError, match="applies only with --register"):
        cli.config_from_args(parse("--password-file", str(secret)))
    config = cli.config_from_args(parse(*reg, "--password-file", str(tmp_path / "none")))
    with pytest.raises(ConfigError, match="cannot read"):
        config.sip.password_value()
    assert load_config(env={}, flags={"sip.registrar": "sip:pbx"}).sip.password_value() == ""


@pytest.mark.parametrize(("argv", "named"), [
    (["--mqtt", "mqtt://127.0.0.1:1", "--router-config", "r.yaml"], "--router-config"),
    (["--recognizer", "pocketsphinx"], "--recognizer"),
    (["--vosk-model", "/m"], "--vosk-model"),
    (["--flow", "f.yaml", "--vosk-model", "/m"], "--vosk-model"),
    (["--flow", "f.yaml", "--recognizer", "vosk"], "--recognizer"),
    (["--user", "bob"], "--user"),
    (["--auth-user", "a:b"], "--auth-user"),
    (["--auth-realm", "x"], "--auth-realm"),
])
def test_options_that_cannot_apply_are_refused(argv: list[str], named: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "show", *argv]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def test_bad_values_name_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "node.yaml"
    bad.write_text("sip: {listen: 127.0.0.1:5080, lisen: typo}\n")
    with pytest.raises(ConfigError, match="unknown setting 'sip.lisen'"):
        load_config(yaml_path=bad, env={})
    with pytest.raises(ConfigError, match="DIALTONE_SIP__NOPE: no such setting"):
        load_config(env={"DIALTONE_SIP__NOPE": "1"})
    with pytest.raises(ConfigError, match="--rtp-ports"):
        load_config(env={}, flags={"media.rtp_ports": "30000-20000"})
    with pytest.raises(ConfigError, match="--trunk"):
        load_config(env={}, flags={"dialer.trunk": "http://127.0.0.1:5060"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(yaml_path=tmp_path / "missing.yaml", env={})
    assert load_config(env={"DIALTONE_SIP__TRUSTED": "1.1.1.1,2.2.2.2",
                            "DIALTONE_SIP__AUTH_USERS": '{"a": "b"}'}).sip.trusted == [
        "1.1.1.1", "2.2.2.2"]


def test_config_is_frozen() -> None:
    config = NodeConfig()
    with pytest.raises(Exception, match="frozen"):
        config.db = "x"  # type: ignore[misc]


# --- the event log's schema --------------------------------------------------------------


def test_schema_documents_the_fields_emitted_today() -> None:
    schema = event_log_schema()
    ended = schema["$defs"]["CallEnded"]["properties"]
    assert {"by_remote", "rtp", "cause", "status", "duration_s"} <= set(ended)
    assert {"call_started", "call_ended", "dtmf", "cdr", "node_entered",
            "flow_ended"} <= event_types()
    out = io.StringIO()
    assert cli.cmd_events_schema(argparse.Namespace(out=None), out) == 0
    assert json.loads(out.getvalue())["title"].startswith("Dialtone call event")


def test_validation_catches_undocumented_fields_and_types() -> None:
    good: dict[str, Any] = {"type": "dtmf", "call_id": "c1", "digit": "5", "duration_ms": 100,
                            "source": "inband"}
    assert validate_event(good) is None
    assert "renamed" in str(validate_event({**good, "renamed": 1}))
    assert "unknown event type" in str(validate_event({"type": "nope"}))
    assert validate_event({**good, "source": "carrier pigeon"}) is not None


def test_events_check_reports_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text('{"ts":"2026-12-05T10:00:00.000Z","type":"call_answered","call_id":"c"}\n'
                   "not json\n"
                   '{"type":"call_answered"}\n')
    problems = check_event_log(log)
    assert [p.split(":")[1] for p in problems] == ["2", "3"]
    assert cli.main(["events", "check", str(log)]) == 1


def test_defence_options_reach_the_library() -> None:
    from dialtone.node import user_agent_config

    config = cli.config_from_args(parse(
        "--transfer-allow", "sip:agent@127.0.0.1:5090", "--accept-refer", "--latch", "sdp-only",
        "--max-calls", "7", "--max-cps", "3", "--max-cps-per-source", "1"))
    ua = user_agent_config(config)
    assert ua.transfer_policy.inbound_refer
    assert ua.transfer_policy.permits("sip:agent@127.0.0.1:5090").allowed
    assert not ua.transfer_policy.permits("sip:+900123456@127.0.0.1:5999").allowed
    assert ua.media_defaults.latch == "sdp-only"
    assert (ua.sip.admission.max_calls, ua.sip.admission.calls_per_second,
            ua.sip.admission.source_calls_per_second) == (7, 3.0, 1.0)
    # the defaults: inbound REFER refused, strict latching
    default = user_agent_config(load_config(env={}))
    assert not default.transfer_policy.inbound_refer and default.media_defaults.latch == "strict"
    with pytest.raises(ConfigError, match="must name a host"):
        load_config(env={}, flags={"sip.transfer_allow": ["sip:*@*"]})
