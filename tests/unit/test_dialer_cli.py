"""The campaign and dnc commands, run through dialer.cli.main with a recording console."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from dialer.cli import main


def run(db: str, *argv: str) -> tuple[int, str]:
    con = Console(record=True, width=200, color_system=None)
    code = main([*argv[:2], *argv[2:], "--db", db], con)
    return code, con.export_text()


def test_campaign_and_dnc_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'd.db'}"
    lst = tmp_path / "list.csv"
    lst.write_bytes(b"name,mobile,home\nAnn,07400 123456,\nBob,nope,020 7946 0000\n"
                    b"Cy,12,\n")
    code, out = run(db, "campaign", "create", "spring", "--region", "GB",
                    "--window", "mon-fri 09:00-20:00", "--max-attempts", "2")
    assert code == 0 and "spring" in out
    code, out = run(db, "campaign", "import", "spring", str(lst), "--phone", "mobile,home",
                    "--json")
    rep = json.loads(out)
    assert code == 0 and (rep["imported"], rep["bad_rows"], rep["warnings"]) == (2, 1, 1)
    assert {(p["row"], p["column"]) for p in rep["problems"]} == {(3, "mobile"), (4, "mobile")}
    code, out = run(db, "campaign", "import", "spring", str(lst), "--phone", "mobile,home")
    assert code == 0 and "merged" in out and "row" in out
    code, out = run(db, "campaign", "set", "spring", "retries.busy=60", "ring_timeout=25")
    assert code == 0
    code, out = run(db, "campaign", "show", "spring", "--json")
    shown = json.loads(out)
    assert shown["settings"]["retries"]["busy"] == 60.0
    assert shown["settings"]["window"]["hours"]["mon"] == "09:00-20:00"
    assert "sat" not in shown["settings"]["window"]["hours"]
    code, out = run(db, "campaign", "set", "spring", "ring_timeout=5")
    assert code == 2 and "15" in out
    code, out = run(db, "campaign", "list")
    assert code == 0 and "spring" in out
    code, out = run(db, "campaign", "report", "spring", "--json")
    rep = json.loads(out)
    assert rep["summary"]["contacts"] == 2
    assert {c["phone"] for c in rep["contacts"]} == {"+447400123456", "+442079460000"}
    assert all(c["disposition"] == "pending" for c in rep["contacts"])
    out_csv = tmp_path / "out.csv"
    assert run(db, "campaign", "export", "spring", "-o", str(out_csv))[0] == 0
    assert out_csv.read_text().splitlines()[0].startswith("phone,")

    assert run(db, "dnc", "add", "07400 123456", "--region", "GB")[0] == 0
    code, out = run(db, "dnc", "check", "+447400123456", "--json")
    assert code == 1 and json.loads(out)["blocked"] is True
    dnc = tmp_path / "dnc.txt"
    dnc.write_text("+44 20 7946 0000\nrubbish\n\n+1 212 555 0100\n")
    code, out = run(db, "dnc", "import", str(dnc), "--campaign", "spring", "--json")
    res = json.loads(out)
    assert (res["added"], [p["row"] for p in res["problems"]]) == (2, [2])
    code, out = run(db, "dnc", "check", "020 7946 0000", "--campaign", "spring",
                    "--region", "GB")
    assert code == 1 and "spring" in out
    assert run(db, "dnc", "remove", "+447400123456")[0] == 0
    assert run(db, "dnc", "check", "+447400123456")[0] == 0
    code, out = run(db, "campaign", "show", "nosuch")
    assert code == 2 and "nosuch" in out
