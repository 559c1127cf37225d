"""The simulator's semantics on small population files, checked against hand calculation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dialer.population import (
    DialOutcome,
    FilePopulation,
    ModelledPopulation,
    PopulationFileError,
    PopulationModel,
    Result,
    read_population,
    write_population,
)
from dialer.sim_cli import main
from dialer.simulate import SimConfig, simulate

JSON_KEYS = {"talk_min_per_agent_hour", "occupancy", "abandon_rate", "abandon_rate_max_24h",
             "calls_placed", "live_answers", "abandoned", "abandoned_amd", "connected_humans",
             "connected_machines", "rows_used", "contacts_per_hour", "agent_wait_s_mean"}

HAND = """result,ring_s,amd_s,amd_says,talk_s
human,5,2,human,60
busy,3,,,
no_answer,,,,
machine,8,3,machine,
human,4,2,machine,30
human,6,2,human,100
"""


def population(text: str) -> FilePopulation:
    return FilePopulation(list(read_population(io.StringIO(text))))


def test_progressive_matches_the_hand_calculation() -> None:
    """2 agents, wrap 10 s, 180 s, progressive.  By hand:
    t=0 dial rows 1, 2 (two free agents); t=3 row 2 busy ends -> dial row 3 (no answer, ends
    at the 20 s ring timeout, t=23); t=5 row 1 answered, t=7 AMD human -> agent0, talks to
    67, wraps to 77; t=23 dial row 4 (machine, answered 31, AMD machine at 34) -> dial
    row 5 (human answered 38, AMD says machine at 40: a false positive, abandoned) -> dial
    row 6 (answered 46, AMD human 48 -> agent1, talks to 148, wraps to 158); t=77 agent0
    free: the list is used up.  Human talk 60 + 100 = 160 s: 160 / 60 / (2 x 0.05 h) =
    26.67 min per agent-hour; busy 70 + 110 of 360 agent-seconds; waits 7 and 48 s."""
    r = simulate(SimConfig(agents=2, hours=0.05, wrap=10.0, pacing="progressive"),
                 population(HAND))
    s = r.summary()
    assert s["calls_placed"] == 6 and s["rows_used"] == 6 and s["list_exhausted"]
    assert s["live_answers"] == 3
    assert s["connected_humans"] == 2 and s["connected_machines"] == 0
    assert s["abandoned"] == 1 and s["abandoned_amd"] == 1
    assert s["abandon_rate"] == pytest.approx(1 / 3)
    assert s["talk_min_per_agent_hour"] == pytest.approx(160 / 60 / (2 * 0.05))
    assert s["occupancy"] == pytest.approx(180 / 360)
    assert s["agent_wait_s_mean"] == pytest.approx((7 + 48) / 2)
    assert s["contacts_per_hour"] == pytest.approx(2 / 0.05)
    assert s["abandon_rate_max_24h"] == pytest.approx(1 / 3)


def two_calls(second_ring: float) -> str:
    # one agent, two lines: the first call connects at 1 s and talks 10 s (free at 11 s,
    # no wrap); the second becomes ready at second_ring + 2 s and may wait 2 s
    return ("result,ring_s,amd_s,amd_says,talk_s\n"
            "human,1,0,human,10\n"
            f"human,{second_ring},2,human,5\n")


def test_connect_within_is_inclusive_and_first_come_first_served() -> None:
    cfg = SimConfig(agents=1, hours=0.01, wrap=0.0, pacing="ratio:2")
    # ready at 9 s, the agent is freed at 11 s = the deadline: connected
    s = simulate(cfg, population(two_calls(7.0))).summary()
    assert s["connected_humans"] == 2 and s["abandoned"] == 0
    assert s["talk_min_per_agent_hour"] == pytest.approx(15 / 60 / 0.01)
    # ready at 8 s, deadline 10 s, agent freed at 11 s: abandoned (safe-harbour message)
    s = simulate(cfg, population(two_calls(6.0))).summary()
    assert s["connected_humans"] == 1 and s["abandoned"] == 1 and s["abandoned_amd"] == 0


def test_ring_timeout_no_amd_and_machines_passed_as_humans() -> None:
    text = ("result,ring_s,amd_s,amd_says,talk_s\n"
            "human,25,2,human,60\n"      # rings past the 20 s timeout: no answer
            "human,3,2,machine,30\n"     # with --no-amd: live at once, connected
            "machine,4,3,human,5\n")     # with --no-amd: connected, an agent hangs up
    s = simulate(SimConfig(agents=3, hours=0.02, amd=False, pacing="progressive"),
                 population(text)).summary()
    assert s["live_answers"] == 1
    assert s["connected_humans"] == 1 and s["connected_machines"] == 1
    assert s["abandoned"] == 0
    assert s["talk_min_per_agent_hour"] == pytest.approx(30 / 60 / (3 * 0.02))
    # with AMD the human is hung up on (a false positive) and the machine is passed on
    s = simulate(SimConfig(agents=3, hours=0.02, pacing="progressive"),
                 population(text)).summary()
    assert s["abandoned_amd"] == 1 and s["connected_machines"] == 1


class Recorder:
    """A modelled population that notes when each dial was placed."""

    def __init__(self) -> None:
        self.inner = ModelledPopulation(PopulationModel(), seed=5)
        self.times: list[float] = []

    def next(self, *, now: float) -> DialOutcome:
        self.times.append(now)
        return self.inner.next(now=now)


@pytest.mark.parametrize("pacing", ["progressive", "predictive", "adaptive:TAPERED",
                                    "ratio:1.5"])
def test_no_call_after_the_end_of_the_day(pacing: str) -> None:
    rec = Recorder()
    s = simulate(SimConfig(agents=5, hours=0.25, pacing=pacing), rec).summary()
    assert rec.times and max(rec.times) < 0.25 * 3600
    assert s["calls_placed"] == len(rec.times)
    assert 0.0 < s["occupancy"] <= 1.0


def test_talk_inside_the_day_only() -> None:
    text = "result,ring_s,amd_s,amd_says,talk_s\nhuman,10,2,human,1000\n"
    s = simulate(SimConfig(agents=1, hours=0.1, pacing="progressive"),
                 population(text)).summary()
    assert s["talk_min_per_agent_hour"] == pytest.approx((360 - 12) / 60 / 0.1)


def test_population_file_round_trip_and_errors() -> None:
    rows = list(read_population(io.StringIO(HAND)))
    assert rows[1] == DialOutcome(Result.BUSY, 3.0, 0.0, True, 0.0)
    assert rows[3].amd_says_human is False
    sink = io.StringIO()
    write_population(rows, sink)
    assert list(read_population(io.StringIO(sink.getvalue()))) == rows
    with pytest.raises(PopulationFileError, match="row 3: result 'humane'"):
        list(read_population(io.StringIO("result,ring_s\nhuman,1\nhumane,2\n")))
    with pytest.raises(PopulationFileError, match="row 2: ring_s '-1'"):
        list(read_population(io.StringIO("result,ring_s\nhuman,-1\n")))
    with pytest.raises(PopulationFileError, match="missing column"):
        list(read_population(io.StringIO("outcome,ring\nhuman,1\n")))


def test_modelled_population_shares() -> None:
    pop = ModelledPopulation(PopulationModel(), seed=9)
    draws = [pop.next(now=0.0) for _ in range(20000)]
    share = {r: sum(d.result is r for d in draws) / len(draws) for r in Result}
    assert share[Result.HUMAN] == pytest.approx(0.25, abs=0.01)
    assert share[Result.MACHINE] == pytest.approx(0.20, abs=0.01)
    assert share[Result.NO_ANSWER] == pytest.approx(0.45, abs=0.01)
    humans = [d for d in draws if d.result is Result.HUMAN]
    assert sum(d.talk_s for d in humans) / len(humans) == pytest.approx(120.0, rel=0.05)
    fp = sum(not d.amd_says_human for d in humans) / len(humans)
    assert fp == pytest.approx(0.015, abs=0.005)
    # a list worked out: the human share falls to answer_rate_end by the end of the day
    late = ModelledPopulation(PopulationModel(answer_rate=0.3, answer_rate_end=0.1), seed=9)
    ends = [late.next(now=8 * 3600.0) for _ in range(10000)]
    assert sum(d.result is Result.HUMAN for d in ends) / 10000 == pytest.approx(0.1, abs=0.01)


def test_cli_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dialer", "simulate", "--agents", "5", "--hours", "0.25", "--pacing",
                 "predictive", "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert JSON_KEYS <= set(out)
    assert out["calls_placed"] > 0 and 0.0 <= out["abandon_rate"] <= 1.0


def test_cli_population_file_and_errors(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "day.csv"
    f.write_text(HAND)
    assert main(["dialer", "simulate", "--population", str(f), "--agents", "2", "--hours",
                 "0.05", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows_used"] == 6 and out["abandoned_amd"] == 1
    assert main(["dialer", "simulate", "--population", str(f), "--agents", "2", "--hours",
                 "0.05"]) == 0
    assert "talk min per agent-hour" in capsys.readouterr().out
    f.write_text("result,ring_s\nhuman,1\nalien,2\n")
    assert main(["dialer", "simulate", "--population", str(f)]) == 2
    assert "row 3" in capsys.readouterr().err
    assert main(["dialer", "simulate", "--pacing", "turbo"]) == 2
    assert "unknown pacing" in capsys.readouterr().err


def test_cli_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "day.png"
    assert main(["dialer", "simulate", "--agents", "5", "--hours", "0.5", "--pacing",
                 "adaptive", "--plot", str(png), "--json"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert json.loads(capsys.readouterr().out)["pacing"] == "adaptive"
