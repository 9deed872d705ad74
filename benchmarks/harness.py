"""What a benchmark case is, how its rounds run, and how a result is judged.

A ``Case`` pits one ``baseline`` against one or more contenders, each with
the target of issue 5. ``run_case`` runs them interleaved for several
rounds, rotating who goes first, so that machine noise hits every side; each
run is set up untimed, then timed as a whole. The figures are compared by
their medians.
"""

from __future__ import annotations

import enum
import gc
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Unit(enum.Enum):
    """How a timed run becomes a figure, and which way is better."""

    RATE = "items/s"  # items / seconds, higher is better
    LATENCY = "µs/call"  # seconds / calls, lower is better
    DURATION = "ms/run"  # seconds per run, lower is better
    MEGABYTES = "MB"  # a figure a run reports itself (``Result.extra``)
    MILLISECONDS = "ms"  # likewise
    FIELDS = "fields"  # likewise: entries left in hashes and sorted sets
    PERCENT = "%"  # likewise: a share

    def figure(self, items: int, seconds: float) -> float:
        if self is Unit.RATE:
            return items / seconds
        if self is Unit.LATENCY:
            return seconds / max(items, 1) * 1e6
        return seconds * 1e3


@dataclass(frozen=True)
class Target:
    """``op`` is ">=" or "<="; compared with the ratio psctl/baseline, or
    with the figure itself when ``absolute``."""

    op: str
    value: float
    absolute: bool = False

    def met(self, x: float) -> bool:
        return x >= self.value if self.op == ">=" else x <= self.value

    def miss(self, x: float) -> str:
        """How far ``x`` is from the target, as a percentage of the target
        (of a target of 0: the difference itself)."""
        if self.value == 0:
            return f"{abs(x):g}"
        return f"{abs(x - self.value) / self.value:.0%}"

    def __str__(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.value:g}" + ("" if self.absolute else "×")


@dataclass
class Result:
    """What a run returns when it has more to report than its item count.
    ``seconds``: the time the run measured itself, used instead of the time
    around it (a run in another process, whose start is not what is measured)."""

    items: int
    extra: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None


@dataclass
class Measure:
    """One side of a case. ``setup`` runs untimed before every run and its
    return value is handed to ``run``; ``run`` returns the items it handled."""

    label: str
    run: Callable[[Any], int | Result]
    setup: Callable[[], Any] = lambda: None


@dataclass
class Extra:
    """A figure a contender's runs report in ``Result.extra`` (its worst is judged)."""

    contender: str
    key: str
    label: str
    unit: Unit
    target: Target | None


@dataclass
class Case:
    """``contenders`` pairs each measure with its target, or None for a figure
    shown for comparison only (no verdict)."""

    name: str
    unit: Unit
    baseline: Measure
    contenders: list[tuple[Measure, Target | None]]
    repeats: int = 1  # interleaved runs of every side per round
    extras: list[Extra] = field(default_factory=list)
    unavailable: Callable[[], str | None] = lambda: None  # a reason to skip the case
    note: str = ""
    rounds: int | None = None  # instead of the run's rounds (a case too long to repeat)
    warm_up: bool = True  # one untimed run of every side first


@dataclass
class Stats:
    values: list[float]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)


@dataclass
class Row:
    """One line of the report."""

    case: str
    measure: str
    unit: Unit
    baseline: Stats | None = None
    psctl: Stats | None = None
    ratio: float | None = None
    target: Target | None = None
    verdict: str = ""
    failed: bool = False  # something broke (not a missed target)
    against: str = ""  # the baseline's label, when the ratio is against one

    @classmethod
    def judge(
        cls, case: str, measure: str, unit: Unit, baseline: Stats | None, psctl: Stats, target: Target | None
    ) -> Row:
        if target is None:
            ratio = None if baseline is None else psctl.median / baseline.median
            return cls(case, measure, unit, baseline, psctl, ratio, None, "(for comparison)")
        if target.absolute:
            ratio, figure = None, psctl.max if target.op == "<=" else psctl.min
        else:
            ratio = figure = psctl.median / baseline.median  # type: ignore[union-attr]
        verdict = "met" if target.met(figure) else f"MISSED by {target.miss(figure)}"
        return cls(case, measure, unit, baseline, psctl, ratio, target, verdict)


@dataclass
class Sample:
    items: int
    seconds: float
    extra: dict[str, float]


def timed(measure: Measure) -> Sample:
    state = measure.setup()
    gc.collect()
    start = time.perf_counter()
    out = measure.run(state)
    seconds = time.perf_counter() - start
    if isinstance(out, Result):
        return Sample(out.items, seconds if out.seconds is None else out.seconds, out.extra)
    return Sample(out, seconds, {})


def run_case(case: Case, rounds: int, progress: Callable[[str], None]) -> list[Row]:
    reason = case.unavailable()
    if reason:  # one row for the case (``report.fold_skipped`` folds cases skipped for one reason)
        return [Row(case.name, "—", case.unit, verdict=f"skipped: {reason}")]
    sides = [case.baseline, *(measure for measure, _ in case.contenders)]
    samples: dict[str, list[Sample]] = {side.label: [] for side in sides}
    rounds = case.rounds or rounds
    try:
        for side in sides if case.warm_up else ():  # warm-up: connections, script loading, imports
            timed(side)
        for round_ in range(rounds):
            shift = round_ % len(sides)
            order = sides[shift:] + sides[:shift]
            for _ in range(case.repeats):
                for side in order:
                    samples[side.label].append(timed(side))
            progress(f"{case.name}: round {round_ + 1}/{rounds}")
    except Exception as exc:  # reported in the table; the other cases still run
        progress(traceback.format_exc())
        return [Row(case.name, m.label, case.unit, verdict=f"ERROR: {exc}", failed=True) for m, _ in case.contenders]

    def stats(label: str) -> Stats:
        return Stats([case.unit.figure(s.items, s.seconds) for s in samples[label]])

    base = stats(case.baseline.label)
    rows = [Row.judge(case.name, m.label, case.unit, base, stats(m.label), target) for m, target in case.contenders]
    for extra in case.extras:
        figures = Stats([s.extra[extra.key] for s in samples[extra.contender]])
        rows.append(Row.judge(case.name, f"{extra.contender}: {extra.label}", extra.unit, None, figures, extra.target))
    for row in rows:
        row.against = case.baseline.label if row.ratio is not None else ""
    return rows
