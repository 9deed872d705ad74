"""The benchmark harness runs end to end in ``--quick`` mode (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_prints_the_table(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--url", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| case " in out and "| verdict " in out
    cases = (
        "add", "pull", "pull + cool-down", "expire", "round trip", "async add", "async pull",
        "psadd round trip", "pspull round trip", "pslease round trip", "psack round trip",
        "cluster add", "cluster pull", "add-many", "cold start", "longest call",
        "records left", "due backlog", "delayed wake-up",
    )  # fmt: skip
    for case in cases:
        assert f"| {case} " in out, case
    assert "skipped" not in out and "ERROR" not in out
    assert "targets met" in out
