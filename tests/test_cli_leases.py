"""``psctl lease``, ``ack``, ``release``, ``extend``, ``dead`` and ``requeue``
(SPEC §6), in-process and as the documentation's shell worker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from psctl.cli.status import ExitStatus

from .docs import blocks
from .helpers import DEAD, PSCTL, Cli, blocked_clients



@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


def test_lease_prints_the_token_the_deadline_and_the_items(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 3), ("c", "3", 1)])
    found = cli.ok("lease", "jobs", "--count", "2", "--for", "15m", "--max-deliveries", "3")
    assert set(found) == {"token", "deadline", "items"}
    assert found["items"] == [{"key": "a", "value": "1", "score": 5.0, "deliveries": 1},
                              {"key": "b", "value": "2", "score": 3.0, "deliveries": 1}]  # fmt: skip
    deadline = datetime.fromisoformat(found["deadline"].replace("Z", "+00:00"))
    assert 14 * 60 < (deadline - datetime.now(timezone.utc)).total_seconds() <= 15 * 60 + 2
    assert r.pskeys("jobs") == ["c"]
    assert cli.ok("ack", "jobs", found["token"], "a") == {"acked": 1}
    assert cli.ok("ack", "jobs", found["token"], "a") == {"acked": 0}  # twice: harmless
    assert cli.ok("release", "jobs", found["token"], "--score", "9") == {"released": 1}
    assert r.pskeys("jobs", withscores=True) == [("b", 9.0), ("c", 1.0)]


def test_an_empty_lease(cli: Cli) -> None:
    assert cli.ok("lease", "jobs") == {"token": None, "deadline": None, "items": []}


def test_extend_and_its_exit_status_when_nothing_is_held(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "a", "v")
    token = cli.ok("lease", "jobs", "--for", "1m")["token"]
    deadline = cli.ok("extend", "jobs", token, "--for", "90m")["deadline"]
    left = datetime.fromisoformat(deadline.replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert 89 * 60 < left.total_seconds() <= 90 * 60 + 2
    cli.ok("ack", "jobs", token)
    message = cli.fails(ExitStatus.NOT_FOUND, "extend", "jobs", token, "--for", "1m")
    assert "holds nothing" in message


def test_release_with_a_delay_then_dead_and_requeue(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "a", "v", 4)
    token = cli.ok("lease", "jobs", "--max-deliveries", "2")["token"]
    # (a second: the lease below must come before it ends, on a loaded machine too)
    assert cli.ok("release", "jobs", token, "--delay", "1") == {"released": 1}
    assert cli.ok("lease", "jobs")["items"] == []
    time.sleep(1.05)
    again = cli.ok("lease", "jobs", "--max-deliveries", "2")
    assert again["items"][0]["deliveries"] == 2
    assert cli.ok("release", "jobs", again["token"]) == {"released": 1}  # its second delivery: dead
    [dead] = cli.ok("dead", "jobs")
    assert dead.pop("failed_at").endswith("Z")  # (when, and why: none was given)
    assert dead == {"key": "a", "value": "v", "deliveries": 2, "reason": None}
    assert cli.ok("requeue", "jobs", "--score", "7") == {"requeued": 1}
    assert r.pskeys("jobs", withscores=True) == [("a", 7.0)] and cli.ok("dead", "jobs") == []


@pytest.mark.parametrize("command", ["lease", "pull"])
def test_a_bare_wait_waits_for_ever_and_an_add_wakes_it(
    cli: Cli, r: Any, redis_url: str, command: str, long_poll: None
) -> None:
    import threading

    from psctl import Redis

    timer = threading.Timer(0.3, lambda: Redis.from_url(redis_url).psadd("jobs", "late", "v"))
    started = time.monotonic()  # (before the timer: it adds 0.3 s after its own start)
    timer.start()
    found = cli.ok(command, "jobs", "--wait")
    timer.join()
    assert (found["items"] if command == "lease" else found)[0]["key"] == "late"
    assert 0.25 < time.monotonic() - started < 5  # woken by the add, not by a poll (a minute here)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["lease", "jobs", "--count", "1001"], "--count"),
        (["lease", "jobs", "--for", "0"], "lease"),
        (["lease", "jobs", "--max-deliveries", "0"], "--max-deliveries"),
        (["ack", "jobs"], "TOKEN"),
        (["ack", "jobs", "t", "--expire-in", "1h", "--no-expire"], "--expire-in and --no-expire"),
        (["extend", "jobs", "t"], "--for"),
        (["release", "jobs", "t", "--score", "nan"], "--score"),
        (["release", "jobs", "t", "--delay", "soon"], "is not a duration"),
    ],
)
def test_bad_usage_exits_2_before_any_io(cli: Cli, args: list[str], expected: str) -> None:
    assert expected in cli.fails(ExitStatus.USAGE, *args, env={"REDIS_URL": DEAD})


# -- the shell worker of "Leases by hand" -----------------------------------------------


def readme_lease_loop() -> str:
    loop, _ = blocks("docs/howto/leases.md", "Leases by hand", "sh")  # (then the lease commands)
    assert loop.startswith("while ")
    return loop


def test_the_readme_lease_worker_works_as_written(redis_url: str, r: Any, tmp_path: Path) -> None:
    """The loop leases one item at a time, runs ./process-one with its value on
    stdin, acknowledges it when that succeeds and gives it back when it fails;
    Ctrl-C ends it. A value with quotes and a newline arrives intact."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))} | {"REDIS_URL": redis_url}
    worker = tmp_path / "process-one"
    worker.write_text('#!/bin/sh\nvalue=$(cat)\n[ "$value" = fail ] && exit 1\n'
                      'printf "%s|" "$value" >> handled.txt\n')  # fmt: skip
    worker.chmod(0o755)
    r.psaddmany("jobs", [("j1", "it's \"quoted\"\nand two lines", 5), ("j2", "fail", 3), ("j3", "plain", 1)])
    shell = subprocess.Popen(["bash", "-c", readme_lease_loop()], cwd=tmp_path, start_new_session=True,
                             env=env | {"PATH": f"{PSCTL.parent}:{env['PATH']}"}, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    handled = tmp_path / "handled.txt"
    try:
        deadline = time.monotonic() + 30
        while not (handled.exists() and handled.read_text().count("|") == 2 and r.psdead("jobs")
                   and blocked_clients(r)):  # fmt: skip
            assert shell.poll() is None, shell.communicate()
            assert time.monotonic() < deadline, "the loop did not finish the items"
            time.sleep(0.05)
        os.killpg(shell.pid, signal.SIGINT)
        _, err = shell.communicate(timeout=10)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    assert handled.read_text() == "it's \"quoted\"\nand two lines|plain|"
    assert r.psdead("jobs") == {"j2": b"fail"}  # failed on each of its deliveries: dead
    assert "Traceback" not in err
