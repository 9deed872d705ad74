"""The benchmark harness runs end to end in ``--quick`` mode (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    for case in ("add", "pull", "expire", "round trip", "async add", "async pull", "add-many", "cold start", "longest call"):
        assert f"| {case} " in out, case
    assert "targets met" in out
