"""``dialtone dialer simulate``: the pacer on a virtual clock, from the command line.

    dialtone dialer simulate --agents 20 --hours 8 --pacing predictive --seed 1
    dialtone dialer simulate --population yesterday.csv --pacing adaptive:AVERAGE --json
    dialtone dialer simulate --pacing progressive --plot day.png

The node's CLI calls :func:`add_parsers` with its subparsers; the parser sets ``func``
(``args -> int`` exit status).  :func:`main` is the same for tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from dialer.pacing import PacerConfig, PacingConfigError, default_registry
from dialer.population import (
    FilePopulation,
    ModelledPopulation,
    Population,
    PopulationModel,
)
from dialer.simulate import SimConfig, SimResult, simulate
from dialtone_errors import ConfigError


def add_parsers(subparsers: Any) -> None:
    """Register ``dialer`` (with ``simulate``) on an ``argparse`` subparsers object."""
    dialer = subparsers.add_parser("dialer", help="the outbound dialer's tools")
    sub = dialer.add_subparsers(dest="dialer_command", required=True)
    p = sub.add_parser("simulate", help="run a pacing strategy on a simulated day",
                       description="Simulate a campaign day on a virtual clock with the "
                       "real pacer. Calls come from a modelled population or, with "
                       "--population, from a file of outcomes (one row per dial attempt).")
    team = p.add_argument_group("team and rules")
    team.add_argument("--agents", type=int, default=20, help="agents logged in (20)")
    team.add_argument("--hours", type=float, default=8.0, help="length of the day (8)")
    team.add_argument("--wrap", type=float, default=10.0, help="wrap-up seconds (10)")
    team.add_argument("--ring-timeout", type=float, default=20.0,
                      help="seconds before an unanswered call is given up (20)")
    team.add_argument("--connect-within", type=float, default=2.0,
                      help="seconds a live call may wait for an agent (2)")
    team.add_argument("--no-amd", action="store_true",
                      help="no answering-machine detection: every answer is live")
    team.add_argument("--pacing", default="progressive",
                      help="preview|progressive|predictive|adaptive[:HARD_LIMIT|AVERAGE|"
                           "TAPERED]|ratio:X (progressive)")
    team.add_argument("--abandon-target", type=float, default=0.03,
                      help="abandonment cap over live answers (0.03)")
    pop = p.add_argument_group("population")
    pop.add_argument("--population", type=Path, default=None,
                     help="CSV of outcomes: result,ring_s,amd_s,amd_says,talk_s")
    d = PopulationModel()
    pop.add_argument("--answer-rate", type=float, default=d.answer_rate,
                     help=f"share of dials answered by a person ({d.answer_rate})")
    pop.add_argument("--answer-rate-end", type=float, default=None,
                     help="human share reached at the end of the day (a list worked out)")
    pop.add_argument("--machine-rate", type=float, default=d.machine_rate)
    pop.add_argument("--busy-rate", type=float, default=d.busy_rate)
    pop.add_argument("--failed-rate", type=float, default=d.failed_rate)
    pop.add_argument("--talk-mean", type=float, default=d.talk_mean,
                     help=f"mean human talk seconds, log-normal ({d.talk_mean:g})")
    pop.add_argument("--talk-sigma", type=float, default=d.talk_sigma,
                     help=f"log-normal sigma of talk ({d.talk_sigma:g})")
    pop.add_argument("--ring-mean", type=float, default=d.ring_mean,
                     help=f"mean seconds before a human answers ({d.ring_mean:g})")
    pop.add_argument("--machine-ring-mean", type=float, default=d.machine_ring_mean)
    pop.add_argument("--amd-human-s", type=float, default=d.amd_human_s,
                     help="AMD decision after a human's hello (2)")
    pop.add_argument("--amd-machine-s", type=float, default=d.amd_machine_s,
                     help="AMD decision into a greeting (3.5)")
    pop.add_argument("--amd-false-positive", type=float, default=d.amd_false_positive,
                     help="share of humans AMD calls machines (0.015)")
    pop.add_argument("--amd-false-negative", type=float, default=d.amd_false_negative,
                     help="share of machines AMD passes as humans (0.05)")
    pop.add_argument("--machine-talk", type=float, default=d.machine_talk_s,
                     help="agent seconds to hang up on a machine passed as human (5)")
    pop.add_argument("--seed", type=int, default=1)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument("--plot", type=Path, default=None,
                     help="write a PNG of dial level, agents by state and abandon rate "
                          "(needs the 'plot' extra: matplotlib)")
    p.set_defaults(func=run_simulate)


def build(args: argparse.Namespace) -> tuple[SimConfig, Population]:
    """The run's configuration and population from parsed arguments (errors: ConfigError)."""
    default_registry().create(args.pacing, _pacer_config(args))  # fail early on a bad name
    config = SimConfig(agents=args.agents, hours=args.hours, wrap=args.wrap,
                       ring_timeout=args.ring_timeout, connect_within=args.connect_within,
                       amd=not args.no_amd, pacing=args.pacing,
                       abandon_target=args.abandon_target)
    population: Population
    if args.population is not None:
        population = FilePopulation.open(args.population)
    else:
        model = PopulationModel(
            answer_rate=args.answer_rate, machine_rate=args.machine_rate,
            busy_rate=args.busy_rate, failed_rate=args.failed_rate,
            answer_rate_end=args.answer_rate_end, hours=args.hours,
            talk_mean=args.talk_mean, talk_sigma=args.talk_sigma, ring_mean=args.ring_mean,
            machine_ring_mean=args.machine_ring_mean, amd_human_s=args.amd_human_s,
            amd_machine_s=args.amd_machine_s, amd_false_positive=args.amd_false_positive,
            amd_false_negative=args.amd_false_negative, machine_talk_s=args.machine_talk)
        population = ModelledPopulation(model, seed=args.seed)
    return config, population


def _pacer_config(args: argparse.Namespace) -> PacerConfig:
    return PacerConfig(abandon_target=args.abandon_target,
                       connect_within=args.connect_within, ring_timeout=args.ring_timeout)


def run_simulate(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Run the simulation and print the figures (JSON or a rich summary)."""
    out = out or sys.stdout
    try:
        config, population = build(args)
        result = simulate(config, population)
        if args.plot is not None:
            from dialer.sim_plot import write_plot
            write_plot(result, args.plot)
    except (ConfigError, PacingConfigError) as exc:
        print(f"dialtone dialer simulate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.summary(), sort_keys=True), file=out)
    else:
        print_summary(result, out)
    return 0


def print_summary(result: SimResult, out: IO[str]) -> None:
    """A rich table of the day's figures."""
    from rich.console import Console
    from rich.table import Table

    s = result.summary()
    c = result.config
    table = Table(title=f"{c.pacing}: {c.agents} agents, {c.hours:g} h, wrap {c.wrap:g} s")
    table.add_column("figure")
    table.add_column("value", justify="right")
    limit = 60.0 * _talk_share(result)
    rows = [
        ("talk min per agent-hour", f"{s['talk_min_per_agent_hour']:.1f}"
         + (f"  ({100 * s['talk_min_per_agent_hour'] / limit:.0f}% of talk/(talk+wrap))"
            if limit else "")),
        ("occupancy (talk + wrap)", f"{100 * s['occupancy']:.1f}%"),
        (f"abandon rate (cap {100 * c.abandon_target:.1f}%)",
         f"{100 * s['abandon_rate']:.2f}%"),
        ("  worst rolling 24 h (hourly)", f"{100 * s['abandon_rate_max_24h']:.2f}%"),
        ("calls placed", f"{s['calls_placed']:,}"),
        ("live answers (humans)", f"{s['live_answers']:,}"),
        ("abandoned (of which AMD false positives)",
         f"{s['abandoned']:,} ({s['abandoned_amd']:,})"),
        ("connected humans / machines",
         f"{s['connected_humans']:,} / {s['connected_machines']:,}"),
        ("contacts per hour", f"{s['contacts_per_hour']:.1f}"),
        ("agent wait between calls (mean)", f"{s['agent_wait_s_mean']:.1f} s"),
        ("rows used", f"{s['rows_used']:,}" + ("  (list exhausted)"
                                               if s["list_exhausted"] else "")),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console(file=out, width=100).print(table)


def _talk_share(result: SimResult) -> float:
    """talk / (talk + wrap) from the connected humans' mean talk, the occupancy ceiling."""
    r = result
    if not r.connected_humans:
        return 0.0
    mean_talk = r.human_talk_s / r.connected_humans
    return mean_talk / (mean_talk + r.config.wrap)


def main(argv: list[str] | None = None) -> int:
    """``dialtone dialer simulate ...`` as a function (for tests)."""
    parser = argparse.ArgumentParser(prog="dialtone")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
