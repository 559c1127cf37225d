"""Who answers the simulator's calls: a modelled population, or a file of outcomes.

A population file (``--population FILE.csv``) has one row per dial attempt, consumed in dial
order, so that yesterday's outcomes can be replayed through another pacing setting.  Its
columns are a contract read by tools outside the project:

``result``
    ``human``, ``machine``, ``busy``, ``no_answer`` or ``failed``;
``ring_s``
    seconds from dial to answer (human, machine) or to the final response (busy, failed);
``amd_s``
    seconds after the answer at which answering-machine detection decides;
``amd_says``
    ``human`` or ``machine`` (what AMD decides, errors included);
``talk_s``
    agent seconds if the call is connected (a human's conversation; for a machine passed
    as human, the seconds an agent needs to hang up).

Empty cells read as 0 (``amd_s``, ``talk_s``) and, for ``amd_says``, as the truth.
:func:`read_population` and :func:`write_population` are a parse/serialize pair.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from dialtone_errors import ConfigError

COLUMNS = ("result", "ring_s", "amd_s", "amd_says", "talk_s")


class Result(str, Enum):
    """What is at the other end of a dial attempt."""

    HUMAN = "human"
    MACHINE = "machine"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


class PopulationFileError(ConfigError):
    """A population file that cannot be read: which row, and why."""

    def __init__(self, message: str, *, row: int | None = None) -> None:
        self.row = row
        super().__init__(f"row {row}: {message}" if row is not None else message)


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """One dial attempt's fate."""

    result: Result
    ring_s: float
    amd_s: float = 0.0
    amd_says_human: bool = True
    talk_s: float = 0.0

    def to_row(self) -> dict[str, str]:
        """The CSV row (see the module docstring)."""
        return {"result": self.result.value, "ring_s": f"{self.ring_s:g}",
                "amd_s": f"{self.amd_s:g}",
                "amd_says": "human" if self.amd_says_human else "machine",
                "talk_s": f"{self.talk_s:g}"}


class Population(Protocol):
    """A source of dial outcomes; ``None`` when the list is used up."""

    def next(self, *, now: float) -> DialOutcome | None:
        """The outcome of a dial placed at ``now`` (seconds since the start of the run)."""


def _number(value: str | None, column: str, row: int) -> float:
    if value is None or value.strip() == "":
        return 0.0
    try:
        x = float(value)
    except ValueError:
        raise PopulationFileError(f"{column} {value!r} is not a number", row=row) from None
    if not math.isfinite(x) or x < 0.0:
        raise PopulationFileError(f"{column} {value!r} must be a finite number >= 0", row=row)
    return x


def parse_row(row: dict[str, str | None], number: int) -> DialOutcome:
    """One CSV row (``number``: its line in the file, header = 1) as a :class:`DialOutcome`."""
    raw = (row.get("result") or "").strip().lower()
    try:
        result = Result(raw)
    except ValueError:
        raise PopulationFileError(
            f"result {raw!r} is not one of human, machine, busy, no_answer, failed",
            row=number) from None
    says = (row.get("amd_says") or "").strip().lower()
    if says not in ("", "human", "machine"):
        raise PopulationFileError(f"amd_says {says!r} is not human or machine", row=number)
    human = result is not Result.MACHINE if says == "" else says == "human"
    return DialOutcome(result, _number(row.get("ring_s"), "ring_s", number),
                       _number(row.get("amd_s"), "amd_s", number), human,
                       _number(row.get("talk_s"), "talk_s", number))


def read_population(source: IO[str]) -> Iterator[DialOutcome]:
    """Parse a population CSV stream row by row (streaming: memory does not grow)."""
    reader = csv.DictReader(source)
    missing = [c for c in ("result", "ring_s") if c not in (reader.fieldnames or [])]
    if missing:
        raise PopulationFileError(f"missing column(s): {', '.join(missing)}; "
                                  f"columns are {', '.join(COLUMNS)}")
    for i, row in enumerate(reader, start=2):
        yield parse_row(row, i)


def write_population(outcomes: Iterable[DialOutcome], sink: IO[str]) -> None:
    """Write outcomes as a population CSV (the inverse of :func:`read_population`)."""
    writer = csv.DictWriter(sink, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for o in outcomes:
        writer.writerow(o.to_row())


class FilePopulation:
    """Rows of a population file, one per dial attempt, in dial order."""

    def __init__(self, rows: Iterable[DialOutcome]) -> None:
        self._rows = iter(rows)
        self.used = 0

    @classmethod
    def open(cls, path: Path) -> FilePopulation:
        """Read ``path`` eagerly (errors surface before the run starts)."""
        try:
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(read_population(f))
        except OSError as exc:
            raise PopulationFileError(f"{path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise PopulationFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
        return cls(rows)

    def next(self, *, now: float) -> DialOutcome | None:
        row = next(self._rows, None)
        if row is not None:
            self.used += 1
        return row


@dataclass(frozen=True, slots=True)
class PopulationModel:
    """A modelled list: shares of outcomes per dial and their timings.

    Defaults are the reference population of issue 13: 25% human, 20% machine, 6% busy, 4%
    failed, the rest no answer; human talk log-normal, mean 120 s, sigma 0.8; humans answer
    after about 10 s, machines 15 s; AMD decides 2 s after a human's hello and 3.5 s into a
    greeting; 1.5% of humans called machines, 5% of machines passed as humans.
    """

    answer_rate: float = 0.25
    """Share of dials answered by a person."""
    machine_rate: float = 0.20
    busy_rate: float = 0.06
    failed_rate: float = 0.04
    answer_rate_end: float | None = None
    """If set, the human share moves linearly to this by ``hours`` (a list worked out)."""
    hours: float = 8.0
    talk_mean: float = 120.0
    talk_sigma: float = 0.8
    ring_mean: float = 10.0
    machine_ring_mean: float = 15.0
    ring_shape: float = 6.0
    """Gamma shape of ring times (6: coefficient of variation 0.41)."""
    busy_ring_mean: float = 3.0
    failed_ring_mean: float = 1.0
    amd_human_s: float = 2.0
    amd_machine_s: float = 3.5
    amd_false_positive: float = 0.015
    """Share of humans that AMD calls machines."""
    amd_false_negative: float = 0.05
    """Share of machines that AMD passes as humans."""
    machine_talk_s: float = 5.0
    """Agent seconds to hang up on a machine passed as human."""

    def __post_init__(self) -> None:
        shares = (self.answer_rate, self.machine_rate, self.busy_rate, self.failed_rate)
        if any(not 0.0 <= x <= 1.0 for x in shares) or sum(shares) > 1.0 + 1e-9:
            raise ConfigError("outcome shares must be within 0..1 and sum to at most 1")
        if self.answer_rate_end is not None and not (
                0.0 <= self.answer_rate_end <= 1.0 - sum(shares[1:]) + 1e-9):
            raise ConfigError("answer_rate_end out of range")
        if self.talk_mean <= 0 or self.talk_sigma < 0 or self.ring_mean <= 0:
            raise ConfigError("talk mean, ring mean must be > 0 and sigma >= 0")


class ModelledPopulation:
    """Draws outcomes from a :class:`PopulationModel` with a seeded generator (vectorised)."""

    _CHUNK = 4096

    def __init__(self, model: PopulationModel, *, seed: int = 1) -> None:
        self.model = model
        self._rng = np.random.default_rng(seed)
        self._i = self._CHUNK
        self.used = 0
        m = model
        self._mu = math.log(m.talk_mean) - m.talk_sigma ** 2 / 2.0

    def _refill(self) -> None:
        n, rng = self._CHUNK, self._rng
        self._u = rng.random(n).tolist()
        self._g = (rng.standard_gamma(self.model.ring_shape, n) / self.model.ring_shape).tolist()
        self._a = (rng.standard_gamma(16.0, n) / 16.0).tolist()
        self._e = rng.random(n).tolist()
        self._z = rng.standard_normal(n).tolist()
        self._i = 0

    def next(self, *, now: float) -> DialOutcome:
        if self._i >= self._CHUNK:
            self._refill()
        i = self._i
        self._i += 1
        self.used += 1
        m = self.model
        human = m.answer_rate
        if m.answer_rate_end is not None and m.hours > 0:
            f = min(1.0, max(0.0, now / (m.hours * 3600.0)))
            human = m.answer_rate + (m.answer_rate_end - m.answer_rate) * f
        u, g, a, e = self._u[i], self._g[i], self._a[i], self._e[i]
        if u < human:
            talk = math.exp(self._mu + m.talk_sigma * self._z[i])
            return DialOutcome(Result.HUMAN, m.ring_mean * g, m.amd_human_s * a,
                               e >= m.amd_false_positive, talk)
        u -= human
        if u < m.machine_rate:
            return DialOutcome(Result.MACHINE, m.machine_ring_mean * g, m.amd_machine_s * a,
                               e < m.amd_false_negative, m.machine_talk_s * a)
        u -= m.machine_rate
        if u < m.busy_rate:
            return DialOutcome(Result.BUSY, m.busy_ring_mean * g)
        u -= m.busy_rate
        if u < m.failed_rate:
            return DialOutcome(Result.FAILED, m.failed_ring_mean * g)
        return DialOutcome(Result.NO_ANSWER, 0.0)
