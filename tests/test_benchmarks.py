"""The benchmark harness runs end to end in ``--quick`` mode (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import Row, Unit
from benchmarks.report import fold_skipped

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_prints_the_table(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--url", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # (the first run installs BullMQ from npm: its cases wait at most 100 s for it)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| case " in out and "| verdict " in out
    cases = (
        "add", "pull", "pull + cool-down", "expire", "round trip", "async add", "async pull",
        "psadd round trip", "pspull round trip", "pslease round trip", "psack round trip",
        "replicated add", "replicated ack", "cluster add", "cluster pull", "cluster names", "cluster expire", "cluster sweep",
        "add-many", "cold start", "longest call",
        "records left", "due backlog", "delayed wake-up", "pull with limits", "lease + ack with limits",
        "pspull round trip with limits", "pslease round trip with limits", "no limits",
    )  # fmt: skip
    bullmq = ("bullmq add", "bullmq worker c1", "bullmq worker c50")
    skipped = [line for line in out.splitlines() if line.startswith("| ") and "skipped" in line]
    if skipped:  # no node and npm (or no npm registry to install BullMQ from): its cases, on one line
        assert len(skipped) == 1 and skipped[0].startswith(f"| {', '.join(bullmq)} "), skipped
        assert "skipped: no BullMQ" in skipped[0]
    else:
        cases += bullmq
    for case in cases:
        assert f"| {case} " in out, case
    assert "ERROR" not in out
    assert "targets met" in out


def test_cases_skipped_for_one_reason_are_one_row() -> None:
    rows = [
        Row("add", "psaddmany", Unit.RATE, verdict="met"),
        Row("a", "—", Unit.RATE, verdict="skipped: no node"),
        Row("b", "—", Unit.RATE, verdict="skipped: no node"),
        Row("c", "—", Unit.RATE, verdict="skipped: no cluster"),
    ]
    folded = fold_skipped(rows)
    assert [(row.case, row.verdict) for row in folded] == [
        ("add", "met"),
        ("a, b", "skipped: no node"),
        ("c", "skipped: no cluster"),
    ]
