"""``psctl work`` (issues 14, 23): running a command per item against ``xargs -P``
running it per line, and the worker's peak memory as the items grow.

Both sides run ``true``: what is measured is what each spends around a
command (spawning it, waiting for it; psctl also leases, acknowledges and
extends), not the command's own work.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from functools import cache
from typing import Any

from benchmarks.bench import Bench
from benchmarks.cases.cli import byte_compiled
from benchmarks.harness import Case, Extra, Measure, Result, Target, Unit

NAME = "work"
JOBS = 4


def cases(b: Bench) -> list[Case]:
    return [work(b), work_memory(b)]


def _fill(b: Bench, count: int) -> None:
    b.flush()
    pipe = b.ps
    for start in range(0, count, 1000):
        pipe.psaddmany(NAME, [(f"w{i:07d}", b"v", i) for i in range(start, min(start + 1000, count))])


def _psctl_work(b: Bench, count: int) -> Result:
    """``psctl work -j 4 --idle-exit 0 -- true`` over the stream: items, and its peak RSS."""
    argv = b.cli("work", NAME, "-j", str(JOBS), "--idle-exit", "0", "--json", "--", "true")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        peak = 0.0
        while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            peak = max(peak, _high_water_mark(process.pid))
            time.sleep(0.05)
        process.wait()
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"psctl work exited with {process.returncode}: {err.read().decode(errors='replace')}")
    done = json.loads(text.splitlines()[-1])["done"]
    if done != count:
        raise RuntimeError(f"psctl work did {done} items, not {count}")
    return Result(done, {"rss": peak})


def _high_water_mark(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def work(b: Bench) -> Case:
    count = b.sizes.work_items
    missing = cache(lambda: b.cli_missing("work", "--help"))
    lines = b.tmp / "work-lines.txt"

    def write_lines() -> None:
        if not lines.exists():
            lines.write_text("".join(f"w{i:07d}\n" for i in range(count)))

    def xargs(_: Any) -> int:
        with open(lines, "rb") as stdin:
            subprocess.run(["xargs", "-P", str(JOBS), "-n", "1", "true"], stdin=stdin, check=True)
        return count

    def setup() -> None:
        byte_compiled()
        _fill(b, count)

    label = f"psctl work -j {JOBS} -- true ({count:,} items)"
    return Case(
        "work",
        Unit.RATE,
        Measure(f"xargs -P {JOBS} -n 1 true ({count:,} lines)", xargs, write_lines),
        [(Measure(label, lambda _: _psctl_work(b, count), setup), Target(">=", 1.0))],
        extras=[Extra(label, "rss", "peak RSS", Unit.MEGABYTES, None)],
        unavailable=missing,
    )


def work_memory(b: Bench) -> Case:
    """One run of each size (the large one takes a minute): peak memory must not grow with the items."""
    small, large = b.sizes.work_items, b.sizes.work_memory_items
    missing = cache(lambda: b.cli_missing("work", "--help"))
    small_label = f"psctl work -j {JOBS} -- true ({small:,} items)"
    large_label = f"psctl work -j {JOBS} -- true ({large:,} items)"
    return Case(
        "work memory",
        Unit.RATE,
        Measure(small_label, lambda _: _psctl_work(b, small), lambda: _fill(b, small)),
        [(Measure(large_label, lambda _: _psctl_work(b, large), lambda: _fill(b, large)), None)],
        extras=[
            Extra(small_label, "rss", "peak RSS", Unit.MEGABYTES, None),
            Extra(large_label, "rss", "peak RSS", Unit.MEGABYTES, Target("<=", 100, absolute=True)),
        ],
        unavailable=missing,
        rounds=1,
        warm_up=False,
    )
