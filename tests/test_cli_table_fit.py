"""Tables a person reads (issue 20): scores to a sensible precision (JSON,
NDJSON, CSV and raw stay exact), and the stream-name column of ``stats`` and
``stats --watch`` kept whole on a narrow terminal, the other columns left out
by priority (and said so) rather than the name crushed or dropped."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from typing import Any

import pytest

from .helpers import PSCTL, Cli

LONG = 46.8467352739465
SHOWN = "46.8467"


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


@pytest.mark.parametrize(("value", "shown"), [
    (LONG, SHOWN), (5.0, "5"), (-3.0, "-3"), (0.0, "0"), (-0.0, "0"), (2.5, "2.5"), (0.1 + 0.2, "0.3"),
    (1 / 3, "0.333333"), (-2 / 3, "-0.666667"), (123456.789, "123457"), (999999.7, "1000000"),
    (1733402565.123, "1733402565"), (1e20, "1e+20"), (-1.2345678e17, "-1.23457e+17"), (1.2345e-05, "1.2345e-05"),
    (0.000123456789, "0.000123457"), (2.0**53, "9.0072e+15"), (float("inf"), "inf"), (float("-inf"), "-inf"),
])  # fmt: skip
def test_a_score_as_a_table_shows_it(value: float, shown: str) -> None:
    from psctl.cli.tables import rounded

    assert rounded(value) == shown


def lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def test_every_table_that_shows_a_score_rounds_it(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "a", "v", LONG)
    r.psadd("jobs", "b", "w", LONG - 1)
    r.psadd("jobs", "c", "x", LONG - 2)
    shown = {
        "keys": cli("keys", "jobs", "--scores", "--table").stdout,
        "values": cli("values", "jobs", "--scores", "--table").stdout,
        "item": cli("item", "jobs", "a", "--table").stdout,
        "stats": cli("stats", "jobs", "--table").stdout,
        "incr": cli("incr", "jobs", "a", "0", "--table").stdout,
        "add": cli("add", "jobs", "d", "y", "--score", str(LONG), "--table").stdout,
        "lease": cli("lease", "jobs", "--count", "3", "--table").stdout,
    }
    for command, text in shown.items():
        assert SHOWN in text and "46.84673" not in text, (command, text)
    assert "45.8467" in shown["lease"]  # (d and a, then b)


def test_json_csv_and_raw_keep_every_digit(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "a", "v", LONG)
    assert cli.ok("keys", "jobs", "--scores", "--json") == [{"key": "a", "score": LONG}]
    assert json.loads(cli("values", "jobs", "--scores", "-o", "ndjson").stdout)["score"] == LONG
    assert cli("keys", "jobs", "--scores", "-o", "csv").stdout == f"key,score\na,{LONG!r}\n"
    assert cli("keys", "jobs", "--scores", "-o", "raw").stdout == f"a\t{LONG!r}\n"
    assert cli.ok("stats", "jobs")[0]["top_score"] == LONG
    assert cli.ok("item", "jobs", "a")["score"] == LONG


NAMES = ["notifications-eu", "mail-outbound-priority", "jobs"]


def narrow_streams(r: Any) -> None:
    for i, name in enumerate(NAMES):
        r.psaddmany(name, [(f"k{j}", "v", LONG * (i + 1)) for j in range(3)])
        r.pslease(name)


@pytest.mark.parametrize("columns", [80, 60, 40, 30])
def test_the_stats_table_keeps_every_name_whole_however_narrow(cli: Cli, r: Any, columns: int) -> None:
    narrow_streams(r)
    done = cli("stats", "--table", env={"COLUMNS": str(columns)})
    assert done.exit_code == 0, done.stderr
    width = max(len(line) for line in done.stdout.splitlines())
    assert width <= columns, done.stdout
    for name in NAMES:
        [row] = lines_with(done.stdout, name)  # on one line, whole
        assert row.startswith(name)
    header = done.stdout.splitlines()[0]
    assert header.startswith("stream") and ("waiting" in header or columns < 40)
    if columns < 80:
        assert "left out" in done.stdout  # (the caption says what is not shown)
    assert "46.84673" not in done.stdout


def test_a_wide_stats_table_shows_every_column(cli: Cli, r: Any) -> None:
    narrow_streams(r)
    done = cli("stats", "--table", env={"COLUMNS": "200"})
    header = done.stdout.splitlines()[0]
    for heading in ("stream", "waiting", "held", "overdue", "gated", "cooling", "dead", "top", "next end"):
        assert heading in header
    assert "left out" not in done.stdout


def watch_on_a_terminal(url: str, columns: int) -> str:
    main, terminal = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))}
    try:
        watcher = subprocess.Popen([str(PSCTL), "stats", "--watch", "0.3s"],
                                   env=env | {"REDIS_URL": url, "COLUMNS": str(columns), "TERM": "xterm"},
                                   stdout=terminal, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)  # fmt: skip
        os.close(terminal)
        shown, deadline = b"", time.monotonic() + 20
        while shown.count(b"Ctrl-C") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                shown += os.read(main, 65536)
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(10) == 0
    finally:
        os.close(main)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode("utf-8", "replace"))  # (Rich's styles and moves)
    end = text.rindex("Ctrl-C")
    return text[text.rindex("stream", 0, end) : end]  # the last screen drawn whole


@pytest.mark.parametrize("columns", [80, 60, 40])
def test_stats_watch_keeps_every_name_whole_however_narrow(redis_url: str, r: Any, columns: int) -> None:
    narrow_streams(r)
    screen = watch_on_a_terminal(redis_url, columns)
    for name in NAMES:
        assert lines_with(screen, name), screen
    assert "waiting" in screen and "46.84673" not in screen
    if columns >= 80:
        assert "top" in screen and "added/s" in screen and SHOWN in screen
    for line in screen.splitlines():
        assert len(line.rstrip()) <= columns, screen


PATH_KEY = "/srv/app/data/incoming/2026/12/06/photo-0001.jpg"


@pytest.mark.parametrize("args", [("item", "q", PATH_KEY), ("keys", "q")])
def test_a_path_too_long_for_its_column_breaks_after_a_slash(cli: Cli, r: Any, args: tuple[str, ...]) -> None:
    """A path (the server's binary in ``server status``, a key named like one)
    breaks where a person would break it, not mid-name; a field list and a table alike."""
    r.psadd("q", PATH_KEY, "v")
    done = cli(*args, "--table", env={"COLUMNS": "30"})
    assert done.exit_code == 0, done.stderr
    pieces = [word for word in done.stdout.split() if len(word) > 1 and word in PATH_KEY]
    assert len(pieces) > 1 and "".join(pieces) == PATH_KEY, done.stdout
    assert all(piece.endswith("/") for piece in pieces[:-1]), done.stdout
