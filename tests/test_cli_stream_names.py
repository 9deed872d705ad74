"""``stats`` and ``metrics`` treat their NAME arguments as the other commands
treat theirs (issue 20): a mistyped name gets the 'did you mean' hint on
stderr (exit 0: the row of zeros is still printed, as ``len`` prints 0), and
TAB completes registered stream names, not file names."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from .helpers import Cli, SilentServer, complete


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


def streams(r: Any) -> None:
    r.psadd("jobs", "a", "1")
    r.psadd("journal", "a", "1")
    r.psadd("mail", "a", "1")


def test_stats_of_a_mistyped_name_says_which_was_meant(cli: Cli, r: Any) -> None:
    streams(r)
    done = cli("stats", "jbos", "mail")
    assert done.exit_code == 0, done.stderr
    assert [s["name"] for s in json.loads(done.stdout)] == ["jbos", "mail"]
    assert done.stderr == "psctl: no stream 'jbos'; did you mean 'jobs'?\n"
    table = cli("stats", "jbos", "--table")
    assert table.exit_code == 0 and "jbos" in table.stdout
    assert table.stderr == "psctl: no stream 'jbos'; did you mean 'jobs'?\n"


def test_stats_hints_nothing_for_real_streams_for_unlike_names_or_with_quiet(cli: Cli, r: Any) -> None:
    streams(r)
    assert cli("stats", "jobs", "mail").stderr == ""
    assert cli("stats").stderr == ""
    assert cli("stats", "zzzzzzzz").stderr == ""  # (like no stream: nothing to suggest)
    assert cli("stats", "jbos", "-q").stderr == ""
    r.pspull("jobs", count=5)  # an empty stream that exists is no mistake
    assert cli("stats", "jobs").stderr == ""


def test_metrics_of_a_mistyped_name_says_which_was_meant(cli: Cli, r: Any, tmp_path: Any) -> None:
    streams(r)
    done = cli("metrics", "jbos")
    assert done.exit_code == 0 and "psctl_up 1" in done.stdout
    assert done.stderr == "psctl: no stream 'jbos'; did you mean 'jobs'?\n"
    written = cli("metrics", "mial", "--textfile", str(tmp_path / "psctl.prom"))
    assert written.exit_code == 0 and written.stderr == "psctl: no stream 'mial'; did you mean 'mail'?\n"
    assert cli("metrics", "jobs").stderr == ""



@pytest.mark.parametrize("command", ["stats", "metrics"])
def test_tab_completes_stream_names_for_stats_and_metrics(redis_url: str, r: Any, command: str) -> None:
    streams(r)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))} | {"REDIS_URL": redis_url}
    assert complete(f"psctl {command} jo", env) == ["jobs", "journal"]
    assert complete(f"psctl {command} ", env) == ["jobs", "journal", "mail"]
    assert complete(f"psctl {command} jobs ", env) == ["journal", "mail"]  # (each stream once)
    assert complete(f"psctl {command} jobs ma", env) == ["mail"]


def test_a_given_timeout_lets_tab_wait_for_a_slow_server(redis_url: str, r: Any) -> None:
    """TAB gives a server that does not answer half a second, and waits as long
    as --timeout/PSCTL_TIMEOUT says for one that answers late: the server holds
    every command for 2.5 s (CLIENT PAUSE: held, not refused). Not a script
    spinning on TIME: a script sees the time it started at, so it spun until the
    server began answering others BUSY (5 s), and TAB read that (CI, at the
    lowest versions)."""
    streams(r)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))} | {"REDIS_URL": redis_url}
    silent = SilentServer()
    try:
        started = time.monotonic()
        assert complete("psctl stats ", env | {"REDIS_URL": f"redis://127.0.0.1:{silent.port}"}, patience=None) == []
        assert time.monotonic() - started < 5  # its half second (and the start), not the 10 s of --timeout
    finally:
        silent.close()
    r.execute_command("CLIENT", "PAUSE", 2500, "ALL")
    try:
        assert complete("psctl stats ", env | {"PSCTL_TIMEOUT": "20"}, patience=None) == ["jobs", "journal", "mail"]
    finally:
        r.execute_command("CLIENT", "UNPAUSE")


def test_tab_completes_psctl_work_s_streams_until_the_dashes(redis_url: str, r: Any) -> None:
    streams(r)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))} | {"REDIS_URL": redis_url}
    assert complete("psctl work jo", env) == ["jobs", "journal"]
    assert complete("psctl work jobs ", env) == ["journal", "mail"]  # (several streams: each once)
    assert complete("psctl work jobs -j 2 ma", env) == ["mail"]
    assert complete("psctl work jobs -- ", env) == []  # (the command: the shell's own completion)
