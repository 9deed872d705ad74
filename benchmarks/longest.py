"""How long single commands run inside the server, from its SLOWLOG.

A script call blocks every other client while it runs, so a batch must stay
short. With ``slowlog-log-slower-than 0`` the server logs every command with
its execution time (network excluded); each side of the cases in ``CASES``
runs again (its setup unlogged) and its entries are read back: every command of the
baseline, every ``EVALSHA`` of psctl. Each side runs ``RUNS`` times and the
run whose longest command is the shortest is kept: on a busy machine a run's
longest command is often one during which the server was descheduled, which
no batch size can prevent. The previous settings are restored.
"""

from __future__ import annotations

from benchmarks.bench import Bench
from benchmarks.harness import Case, Measure, Row, Stats, Target, Unit

CASES = ("add", "pull", "expire", "expired leases", "due backlog")
TARGET = Target("<=", 10, absolute=True)  # ms; well under that is the aim
SETTINGS = ("slowlog-log-slower-than", "slowlog-max-len")


def longest_calls(b: Bench, cases: list[Case], runs: int = 3) -> list[Row]:
    chosen = [case for case in cases if case.name in CASES]
    if not chosen:
        return []
    try:
        before = {name: b.plain.config_get(name)[name] for name in SETTINGS}
        b.plain.config_set("slowlog-max-len", 1_000_000)
    except Exception as exc:
        return [Row("longest call", case.name, Unit.MILLISECONDS, verdict=f"skipped: {exc}") for case in chosen]
    try:
        rows = []
        for case in chosen:
            try:
                baseline = _best(b, case.baseline, False, runs)
                for measure, _ in case.contenders:
                    psctl = _best(b, measure, True, runs)
                    row = Row.judge("longest call", measure.label, Unit.MILLISECONDS, baseline, psctl, TARGET)
                    row.against = case.baseline.label
                    rows.append(row)
            except Exception as exc:  # reported in the table; the other cases still run
                rows.append(Row("longest call", case.name, Unit.MILLISECONDS, verdict=f"ERROR: {exc}", failed=True))
        return rows
    finally:
        for name, value in before.items():
            b.plain.config_set(name, value)
        b.plain.slowlog_reset()


def _best(b: Bench, measure: Measure, scripts_only: bool, runs: int) -> Stats:
    """The run (of ``runs``) whose longest command was the shortest."""
    return min((Stats(_durations(b, measure, scripts_only)) for _ in range(runs)), key=lambda stats: stats.max)


def _durations(b: Bench, measure: Measure, scripts_only: bool) -> list[float]:
    """Milliseconds each command of one run of ``measure`` took in the server."""
    # The last run's log is freed, and the setup is not logged, before the run:
    # a big log (a setup of 100,000 script calls logs each command inside them
    # too) freed just before the run slows its first commands, which then
    # measure the server's memory allocator rather than psctl.
    b.plain.config_set("slowlog-log-slower-than", -1)
    b.plain.slowlog_reset()
    state = measure.setup()
    b.plain.config_set("slowlog-log-slower-than", 0)
    measure.run(state)
    entries = b.plain.slowlog_get(-1)
    durations = []
    for entry in entries:
        command = entry["command"].split(b" ", 1)[0].upper()
        if command in (b"SLOWLOG", b"CONFIG") or (scripts_only and command != b"EVALSHA"):
            continue
        durations.append(entry["duration"] / 1000)
    if not durations:
        raise RuntimeError(f"the slowlog recorded no command of {measure.label}")
    return durations
