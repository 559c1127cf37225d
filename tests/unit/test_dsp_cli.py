"""WAV reading (every common format) and the ``dtmf`` / ``amd`` command functions."""

from __future__ import annotations

import argparse
import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from telephony.dsp.dtmf import COL_FREQS, KEYS, ROW_FREQS
from telephony.dsp.wavio import read_wav_8k
from telephony.dsp_cli import add_parsers, run_amd, run_dtmf
from telephony.errors import AudioFileError


def dtmf_signal(keys: str, rate: int, amp: float = 0.2) -> np.ndarray:
    """Float signal in [-1, 1]: each key 80 ms, 80 ms apart, after 100 ms."""
    parts = [np.zeros(int(0.1 * rate))]
    t = np.arange(int(0.08 * rate)) / rate
    for k in keys:
        i = KEYS.index(k)
        parts += [amp * (np.sin(2 * np.pi * ROW_FREQS[i // 4] * t)
                         + np.sin(2 * np.pi * COL_FREQS[i % 4] * t)), np.zeros(len(t))]
    return np.concatenate(parts + [np.zeros(int(0.2 * rate))])


def write_24bit(path: Path, x: np.ndarray, rate: int, channels: int = 1) -> None:
    v = np.clip(np.round(x * 8388607), -8388608, 8388607).astype(np.int32)
    v = np.repeat(v, channels)
    raw = np.stack([(v >> s) & 0xFF for s in (0, 8, 16)], axis=-1).astype(np.uint8).tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(3)
        w.setframerate(rate)
        w.writeframes(raw)


@pytest.mark.parametrize(("fmt", "rate", "channels"), [
    ("int16", 8000, 1), ("int16", 16000, 2), ("uint8", 11025, 1), ("int24", 48000, 1),
    ("int32", 44100, 2), ("float32", 22050, 1), ("float64", 8000, 2),
])
def test_read_any_wav(tmp_path: Path, fmt: str, rate: int, channels: int) -> None:
    x = dtmf_signal("159#", rate)
    path = tmp_path / f"{fmt}.wav"
    if fmt == "int24":
        write_24bit(path, x, rate)
    else:
        scaled = {"int16": lambda v: np.round(v * 32767).astype(np.int16),
                  "uint8": lambda v: np.round(v * 127 + 128).astype(np.uint8),
                  "int32": lambda v: np.round(v * 2147483647).astype(np.int32),
                  "float32": lambda v: v.astype(np.float32),
                  "float64": lambda v: v.astype(np.float64)}[fmt](x)
        data = np.stack([scaled, np.zeros_like(scaled)], axis=1) if channels == 2 else scaled
        wavfile.write(path, rate, data)
    pcm = read_wav_8k(path)
    assert pcm.dtype == np.int16
    assert abs(len(pcm) - len(x) * 8000 / rate) <= 2
    peak = np.abs(pcm.astype(np.float64)).max()
    assert 0.35 * 32768 <= peak <= 0.45 * 32768  # two tones of 0.2 full scale
    out = io.StringIO()
    assert run_dtmf([str(path)], json_out=True, stdout=out) == 0
    row = json.loads(out.getvalue())
    assert row["file"] == str(path)
    assert [d["digit"] for d in row["digits"]] == list("159#")
    assert all(abs(d["start_ms"] - (100 + 160 * i)) <= 3 for i, d in enumerate(row["digits"]))
    assert all(abs(d["duration_ms"] - 80) <= 4 for d in row["digits"])


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    wavfile.write(empty, 8000, np.zeros(0, dtype=np.int16))
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    for path in (empty, text, tmp_path / "missing.wav"):
        with pytest.raises(AudioFileError, match=path.name):
            read_wav_8k(path)


def test_errors_do_not_stop_the_others(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    wavfile.write(good, 8000, np.round(dtmf_signal("7", 8000) * 32767).astype(np.int16))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    out = io.StringIO()
    assert run_dtmf([str(bad), str(good)], json_out=True, stdout=out) == 1
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["file"] for r in rows] == [str(bad), str(good)]
    assert "error" in rows[0] and "bad.wav" in rows[0]["error"]
    assert [d["digit"] for d in rows[1]["digits"]] == ["7"]
    out = io.StringIO()
    assert run_amd([str(good), str(tmp_path / "nope.wav")], json_out=True, stdout=out) == 1
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    # The original keys exactly, plus issue 17's additions (late machine).
    assert set(rows[0]) == {"file", "result", "decision_ms", "reason", "beep_ms",
                            "late_machine_ms", "first_result", "first_decision_ms"}
    assert rows[0]["result"] in ("human", "machine", "unknown")
    if rows[0]["late_machine_ms"] is None:
        assert rows[0]["first_result"] == rows[0]["result"]
        assert rows[0]["first_decision_ms"] == rows[0]["decision_ms"]
    assert set(rows[1]) == {"file", "error"}


def test_amd_json_on_a_machine_with_beep(tmp_path: Path) -> None:
    sounds = Path("/usr/share/asterisk/sounds/en")
    if not sounds.is_dir():
        pytest.skip("Debian prompts missing")
    speech = np.concatenate([read_wav_8k(sounds / f"{n}.wav")
                             for n in ("vm-theperson", "vm-isunavail", "vm-intro")])
    t = np.arange(3200) / 8000
    beep = (6000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    x = np.concatenate([np.zeros(2400, np.int16), speech, np.zeros(2000, np.int16), beep,
                        np.zeros(4000, np.int16)])
    path = tmp_path / "machine.wav"
    wavfile.write(path, 8000, x)
    out = io.StringIO()
    assert run_amd([str(path)], json_out=True, stdout=out) == 0
    row = json.loads(out.getvalue())
    assert row["result"] == "machine" and row["reason"] == "LONGGREETING"
    assert abs(row["beep_ms"] - (4400 + len(speech)) / 8) <= 30
    assert 2000 <= row["decision_ms"] < row["beep_ms"]


def test_table_output_and_parsers(tmp_path: Path) -> None:
    good = tmp_path / "keys.wav"
    wavfile.write(good, 8000, np.round(dtmf_signal("42", 8000) * 32767).astype(np.int16))
    parser = argparse.ArgumentParser(prog="dialtone")
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dtmf", str(good)])
    out = io.StringIO()
    assert args.func(args, out) == 0
    lines = [line.split("│") for line in out.getvalue().splitlines() if "│" in line]
    cells = [[c.strip() for c in line[2:-1]] for line in lines]
    assert [c[0] for c in cells] == ["4", "2"]
    assert [abs(int(c[1]) - t) <= 2 and abs(int(c[2]) - 80) <= 2
            for c, t in zip(cells, (100, 260))] == [True, True]
    args = parser.parse_args(["amd", "--json", str(good)])
    out = io.StringIO()
    assert args.func(args, out) == 0 and json.loads(out.getvalue())["file"] == str(good)
    with pytest.raises(SystemExit):
        parser.parse_args(["dtmf"])  # FILE... is required


def test_func_defaults_to_process_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The ``dialtone`` dispatcher calls ``args.func(args)`` with no stream."""
    good = tmp_path / "k.wav"
    wavfile.write(good, 8000, np.round(dtmf_signal("*", 8000) * 32767).astype(np.int16))
    parser = argparse.ArgumentParser(prog="dialtone")
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dtmf", "--json", str(good)])
    assert args.func(args) == 0
    assert [d["digit"] for d in json.loads(capsys.readouterr().out)["digits"]] == ["*"]
