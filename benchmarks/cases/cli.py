"""The command line's cases: ``psctl add-many`` against the library, and a
cold ``psctl len`` against a bare ``import redis``. Each runs the ``psctl``
executable beside this Python (else the one on PATH) as a child process, and
is skipped with a note when that command is not available.

psctl's modules are byte-compiled first, as an installed package's are (pip
compiles them when it installs): a checkout run with PYTHONDONTWRITEBYTECODE
set would otherwise compile every module at every start, which no user of
the package pays, while redis-py's are compiled in site-packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

from benchmarks.bench import Bench
from benchmarks.harness import Case, Extra, Measure, Result, Target, Unit

NAME = "bench"


def cases(b: Bench) -> list[Case]:
    return [add_many(b), cold_start(b)]


@cache
def profiles(url: str) -> str:
    """A config folder whose ``config.toml`` names ``url`` in the profile ``bench``, beside a default."""
    folder = Path(tempfile.mkdtemp(prefix="psctl-bench-config-"))
    (folder / "psctl").mkdir()
    (folder / "psctl" / "config.toml").write_text(
        f'[default]\nurl = "redis://localhost:6379/0"\ntimeout = "5s"\n\n[profiles.{NAME}]\nurl = "{url}"\n'
    )
    return str(folder)


@cache
def byte_compiled() -> None:
    """psctl's modules compiled to ``__pycache__`` (once per run)."""
    import compileall

    import psctl

    compileall.compile_dir(Path(psctl.__file__).parent, quiet=1)


def run_child(
    argv: list[str], watch_memory: bool = False, env: dict[str, str] | None = None
) -> tuple[int, str, str, float | None]:
    """Runs ``argv`` to its end: (exit status, stdout, stderr, peak RSS in MB or None).

    The peak RSS is read from ``/proc/PID/status`` (``VmHWM``, a high-water
    mark) every 10 ms while the child runs. Not ``wait4``'s or
    ``RUSAGE_CHILDREN``'s ``ru_maxrss``: on Linux those include the RSS of
    this (large) process, which the child shared between fork and exec.
    """
    with open(os.devnull, "rb") as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, env=env)
        peak = None
        if watch_memory:
            while not _exited(process):
                peak = max(peak or 0, _high_water_mark(process.pid) or 0) or None
                time.sleep(0.01)
        process.wait()
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"), peak


def _exited(process: subprocess.Popen[bytes]) -> bool:
    # waitid(WNOWAIT) leaves the child a zombie, so that Popen still reaps it
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _high_water_mark(pid: int) -> float | None:
    """The process's peak resident set so far, in MB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _fail(what: str, status: int, stderr: str) -> RuntimeError:
    lines = stderr.strip().splitlines()
    return RuntimeError(f"{what} exited with {status}: {lines[-1] if lines else 'no message'}")


def add_many(b: Bench) -> Case:
    missing = cache(lambda: b.cli_missing("add-many", "--help"))

    def library(_: Any) -> int:
        return len(b.ps.psaddmany(NAME, b.cli_items))

    def command(_: Any) -> Result:
        status, out, err, rss = run_child(b.cli("add-many", NAME, str(b.ndjson)), watch_memory=True)
        if status != 0:
            raise _fail("psctl add-many", status, err)
        added = json.loads(out).get("added")
        if added != len(b.cli_items):
            raise RuntimeError(f"psctl add-many reported {out.strip()}, expected {len(b.cli_items)} added")
        if rss is None:
            raise RuntimeError("could not read the child's peak memory from /proc")
        return Result(added, {"rss": rss})

    def setup() -> None:
        byte_compiled()
        b.flush()
        b.ndjson  # written once, untimed

    label = f"psctl add-many ({b.sizes.cli_rows:,}-row NDJSON)"
    return Case(
        "add-many",
        Unit.RATE,
        Measure("library psaddmany", library, b.flush),
        [(Measure(label, command, setup), Target(">=", 0.5))],
        extras=[Extra(label, "rss", "peak RSS", Unit.MEGABYTES, Target("<=", 150, absolute=True))],
        unavailable=missing,
    )


def cold_start(b: Bench) -> Case:
    missing = cache(lambda: b.cli_missing("len", "x"))

    def python_import_redis(_: Any) -> int:
        status, _, err, _ = run_child([sys.executable, "-c", "import redis"])
        if status != 0:
            raise _fail("python -c 'import redis'", status, err)
        return 1

    def psctl_len(_: Any) -> int:
        status, _, err, _ = run_child(b.cli("len", "x"))
        if status != 0:
            raise _fail("psctl len x", status, err)
        return 1

    def psctl_len_by_profile(_: Any) -> int:
        """The server named by a profile of the config file: the file read and checked at every start."""
        env = os.environ | {"XDG_CONFIG_HOME": profiles(b.url), "PSCTL_PROFILE": NAME}
        env = {name: value for name, value in env.items() if not name.startswith("REDIS_")}
        status, _, err, _ = run_child([b.psctl_exe or "psctl", "len", "x"], env=env)
        if status != 0:
            raise _fail("psctl len x (a profile's server)", status, err)
        return 1

    return Case(
        "cold start",
        Unit.DURATION,
        Measure('python -c "import redis"', python_import_redis),
        [(Measure("psctl len x", psctl_len, byte_compiled), Target("<=", 1.3)),
         (Measure("psctl len x, its server from a profile", psctl_len_by_profile, byte_compiled),
          Target("<=", 1.3))],
        repeats=b.sizes.cold_runs,
        unavailable=missing,
    )
