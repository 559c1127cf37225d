"""Flow format, loader and validator: every problem with file, line and node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr_flows.actions import PromptItem
from ivr_flows.cli import main as flow_cli
from ivr_flows.errors import FlowValidationError
from ivr_flows.loader import flow_schema, load_flow, used_prompt_keys
from ivr_flows.prompts import PromptRenderer, read_wav_8k
from ivr_flows.yaml_lines import line_at, load_text
from telephony.errors import AudioFileError

FIX = Path(__file__).parents[1] / "fixtures" / "flows"
EXAMPLE = Path(__file__).parents[2] / "ivr_flows" / "examples" / "contact_centre" / "flow.yaml"


def _problems(path: Path) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(FlowValidationError) as exc:
        load_flow(path)
    return [(p.line, p.node, p.message) for p in exc.value.problems]


def test_example_flow_loads_with_every_node_located() -> None:
    lf = load_flow(EXAMPLE)
    assert lf.flow.languages == ["en", "es", "fr"]
    assert len(lf.flow.nodes) >= 20
    text = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for nid, line in lf.lines.items():
        assert text[line - 1].strip() == f"{nid}:", (nid, line)


def test_broken_flow_lists_every_problem_with_line_and_node() -> None:
    problems = _problems(FIX / "broken.yaml")
    by_node: dict[str | None, list[tuple[int | None, str]]] = {}
    for line, node, msg in problems:
        by_node.setdefault(node, []).append((line, msg))
    text = (FIX / "broken.yaml").read_text().splitlines()

    def one(node: str, needle: str) -> int:
        hits = [line for line, msg in by_node[node] if needle in msg]
        assert len(hits) == 1, (node, needle, by_node.get(node))
        assert hits[0] is not None
        return hits[0]

    assert "nowhere" in text[one("menu", "unknown node 'nowhere'") - 1]
    assert '"1"' in text[one("menu", "choice key '1' is used twice") - 1]
    assert "only.english" in text[one("hello", "language 'es'") - 1]
    assert "no_such_package" in text[one("lookup", "does not import") - 1]
    assert "premium" in text[one("xfer", "transfer_allow_list") - 1]
    assert text[one("orphan", "unreachable") - 1].strip() == "orphan:"
    assert "teleport" in text[one("badkind", "does not match any of the expected tags") - 1]
    assert "many" in text[one("badfield", "min_length") - 1]
    # a schema-broken node is still a known target (no knock-on 'unknown node' noise)
    assert all("unknown node 'badfield'" not in m for _, _, m in problems)
    assert len(problems) == 10


def test_json_flow_is_accepted_and_bad_json_or_yaml_is_located() -> None:
    assert load_flow(FIX / "ok.json").flow.flow == "tiny"
    assert _problems(FIX / "bad_json.json")[0][0] == 2
    line, _, msg = _problems(FIX / "bad_yaml.yaml")[0]
    assert line == 3 and "bad YAML" in msg


def test_prompt_file_that_is_not_audio_is_rejected_at_load(tmp_path: Path) -> None:
    problems = _problems(FIX / "bad_audio" / "flow.yaml")
    assert len(problems) == 1 and "not a readable WAV" in problems[0][2]
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(AudioFileError, match="x.wav"):
        read_wav_8k(bad)


def test_line_loader_records_mapping_and_key_lines() -> None:
    data = load_text("a: 1\nb:\n  c:\n    - {d: 2}\n    - e: 3\n")
    assert data.line == 1
    assert line_at(data, ("b",)) == 2
    assert line_at(data, ("b", "c", 1, "e")) == 5
    assert line_at(data, ("b", "menu-tag", "c", 0)) == 4  # unknown loc parts are skipped


def test_schema_export_covers_every_node_kind(tmp_path: Path) -> None:
    schema = flow_schema()
    kinds = {d["properties"]["type"]["const"] for d in schema["$defs"].values()
             if "type" in d.get("properties", {}) and "const" in d["properties"]["type"]}
    assert {"prompt", "menu", "collect", "language", "branch", "hook", "verify_voice",
            "enroll_voice", "handoff", "transfer", "voicemail", "callback", "survey",
            "hangup"} <= kinds
    out = tmp_path / "flow.schema.json"
    assert flow_cli(["flow", "schema", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["title"] == "Dialtone IVR flow"


def test_cli_validate_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert flow_cli(["flow", "validate", str(EXAMPLE)]) == 0
    assert flow_cli(["flow", "validate", str(EXAMPLE), str(FIX / "broken.yaml")]) == 1
    out = capsys.readouterr().out
    assert "broken.yaml:30 [node orphan]: node is unreachable from start" in out


def test_cli_prompts_reports_missing_recordings(capsys: pytest.CaptureFixture[str]) -> None:
    assert flow_cli(["flow", "prompts", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "missing fr/main.menu.wav" in out
    assert "missing en/goodbye.wav" not in out  # a Debian recording ships with the example


def test_renderer_uses_recordings_then_tts() -> None:
    lf = load_flow(EXAMPLE)
    assert "main.menu" in used_prompt_keys(lf.flow)
    r = PromptRenderer(lf.catalogue)
    rec = r.render_item(PromptItem("fr", key="goodbye"))
    assert np_equal(rec, read_wav_8k(EXAMPLE.parent / "prompts" / "fr" / "goodbye.wav"))
    tts = r.render_item(PromptItem("es", key="callback.done"))
    assert tts.dtype.name == "int16" and len(tts) > 8000 * 0.5
    with pytest.raises(AudioFileError):
        r.render_item(PromptItem("de", key="callback.done"))


def np_equal(a: object, b: object) -> bool:
    import numpy as np

    return bool(np.array_equal(a, b))  # type: ignore[arg-type]
