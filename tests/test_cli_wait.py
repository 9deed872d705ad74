"""``psctl pull NAME --wait SECONDS``: a consumer that waits for work, woken by
an add, bounded by its own timeout, and stopped by Ctrl-C without losing an
item. In-process (CliRunner) and as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import psctl.client
from psctl.cli import connection
from psctl.cli.errors import INTERRUPTED, ExitStatus
from psctl.operations import POLL

from .helpers import DEAD, Cli, blocked_clients, retries, wait_until_blocked

PSCTL = Path(sys.executable).with_name("psctl")


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


@pytest.fixture
def env(redis_url: str, r: Any) -> dict[str, str]:
    """The environment of a real psctl process on the session's server."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_", "_PSCTL"))}
    return clean | {"REDIS_URL": redis_url}


def later(delay: float, action: Callable[[], Any]) -> threading.Timer:
    timer = threading.Timer(delay, action)
    timer.start()
    return timer


# -- waking, timing out, plain writes --------------------------------------------


def test_wakes_within_a_second_of_an_add_from_another_process(env: dict[str, str], r: Any) -> None:
    waiter = subprocess.Popen([str(PSCTL), "pull", "jobs", "--wait", "30"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_until_blocked(r, waiter)
        r.psadd("jobs", "job-1", "payload", 5)  # this process: not the waiter's
        added = time.monotonic()  # (after the reply: the wake-up can come no sooner than the add)
        deadline = added + 30
        while r.zscore("jobs:exp", "job-1") is None:  # pulled: its cool-down begins
            assert time.monotonic() < deadline, "never pulled"
            time.sleep(0.001)
        woke = time.monotonic() - added  # (not the waiter's printing and exit: a loaded machine's)
        out, err = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
    assert (waiter.returncode, err) == (0, "")
    assert json.loads(out) == [{"key": "job-1", "value": "payload"}]
    assert r.pslen("jobs") == 0
    assert woke < 1.0, woke


def test_wakes_within_a_second_of_an_add_from_another_thread(cli: Cli, r: Any, long_poll: None) -> None:
    started = time.monotonic()  # (before the timer: it adds 0.3 s after its own start)
    timer = later(0.3, lambda: psctl.client.Redis.from_url(cli.url).psadd("jobs", "a", "v"))
    assert cli.ok("pull", "jobs", "--wait", "10", "--keep") == [{"key": "a", "value": "v"}]
    assert 0.25 <= time.monotonic() - started < 5  # woken by the add, not by a poll nor the 10 s wait
    timer.join()
    assert r.pskeys("jobs", withscores=True) == [("a", -1.0)]  # --keep still applies


def test_returns_an_empty_list_after_the_wait_even_beyond_timeout(cli: Cli) -> None:
    """--timeout bounds each reply, not the wait: a 1.5 s wait with 0.3 s replies works."""
    started = time.monotonic()
    done = cli("--timeout", "0.3", "pull", "jobs", "--wait", "1.5")
    assert (done.exit_code, done.stdout, done.stderr) == (0, "[]\n", "")
    assert 1.4 <= time.monotonic() - started < 5


def test_sees_items_written_with_plain_hset_and_zadd(cli: Cli, r: Any) -> None:
    def write() -> None:
        r.hset("jobs:t", "plain", "v")
        r.zadd("jobs:s", {"plain": 1})

    timer = later(0.2, write)
    started = time.monotonic()
    assert cli.ok("pull", "jobs", "--wait", "5") == [{"key": "plain", "value": "v"}]
    assert time.monotonic() - started < 0.2 + POLL + 2  # at a poll, well before the 5 s wait
    timer.join()


def test_wait_zero_waits_for_ever(cli: Cli, r: Any) -> None:
    timer = later(POLL + 0.3, lambda: psctl.client.Redis.from_url(cli.url).psadd("jobs", "late", "v"))
    assert cli.ok("--timeout", "0.5", "pull", "jobs", "--wait", "0") == [{"key": "late", "value": "v"}]
    timer.join()


def test_items_already_there_come_at_once_and_durations_work(cli: Cli, r: Any, long_poll: None) -> None:
    r.psaddmany("jobs", [("a", "1", 3), ("b", "2", 2), ("c", "3", 1)])
    started = time.monotonic()
    assert cli.ok("pull", "jobs", "--wait", "1d", "-n", "2") == [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
    assert cli.ok("pull", "jobs", "-w", "15m", "--no-expire") == [{"key": "c", "value": "3"}]
    assert time.monotonic() - started < 5  # not after a wait (a poll's is a minute here)
    assert r.zscore("jobs:exp", "c") is None


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--wait", "soon"], "'soon' is not a duration"),
        (["--wait", "-1"], "--wait"),
        (["--wait", "inf"], "is not a duration"),
        (["--wait", "nan"], "is not a duration"),
        (["--wait", ""], "is not a duration"),
        (["--wait", "5x"], "is not a duration"),
        (["--wait", "1h1h"], "each unit at most once"),
        (["--wait", "5", "--expire-in", "1h", "--no-expire"], "--expire-in and --no-expire"),
        (["--wait", "5", "--count", "0"], "--count"),
        (["--wait", "5", "--json", "--table"], "ask for different outputs"),
    ],
)
def test_bad_waits_and_conflicting_flags_exit_2_before_any_io(cli: Cli, args: list[str], expected: str) -> None:
    started = time.monotonic()
    message = cli.fails(ExitStatus.USAGE, "pull", "jobs", *args, env={"REDIS_URL": DEAD})
    assert expected in message
    assert time.monotonic() - started < 3  # refused, not waited on (5 s)


def test_the_reply_timeout_of_a_waiting_pull_stays_above_the_blocking_time(redis_url: str) -> None:
    target = connection.resolve(redis_url, None, env={})
    for timeout in (0.01, 0.3, 10.0):
        plain = connection.connect(target, timeout).connection_pool.connection_kwargs
        waiting = connection.connect(target, timeout, waiting=True).connection_pool.connection_kwargs
        assert plain["socket_timeout"] == timeout
        assert waiting["socket_timeout"] >= POLL + max(timeout, POLL)  # a BLPOP of POLL s, and a margin
        for kwargs in (plain, waiting):
            assert retries(kwargs["retry"]) == 0  # psctl.connections' policy: nothing is re-sent
            assert kwargs["socket_connect_timeout"] == min(connection.CONNECT_TIMEOUT, timeout)


# -- Ctrl-C --------------------------------------------------------------------------


def test_ctrl_c_while_waiting_exits_130_quietly_and_takes_nothing(env: dict[str, str], r: Any) -> None:
    r.psadd("other", "x", "y")
    waiter = subprocess.Popen([str(PSCTL), "pull", "jobs", "--wait", "0"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_until_blocked(r, waiter)
        waiter.send_signal(signal.SIGINT)
        out, err = waiter.communicate(timeout=10)
    finally:
        waiter.kill()
    assert (waiter.returncode, out, err) == (INTERRUPTED, "", "")
    deadline = time.monotonic() + 30
    while blocked_clients(r) and time.monotonic() < deadline:  # its connection is gone too
        time.sleep(0.02)
    assert blocked_clients(r) == 0
    r.psadd("jobs", "a", "v")
    assert r.pspull("jobs") == {"a": b"v"}  # nothing was lost, nothing is left blocked


def interrupt_during(monkeypatch: pytest.MonkeyPatch, command: str, times: int = 1) -> list[str]:
    """Sends this process SIGINT whenever a connection writes ``command``
    (EVALSHA: the pull script; BLPOP: the wait) on the wire, as a Ctrl-C
    landing then would."""
    from redis.connection import AbstractConnection

    sent: list[str] = []
    original = AbstractConnection.send_packed_command

    def send_packed_command(self: Any, packed: Any, *args: Any, **kwargs: Any) -> Any:
        data = packed if isinstance(packed, bytes) else b"".join(packed)
        name = data.split(b"\r\n")[2].decode().upper()
        sent.append(name)
        if name == command:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)
        return original(self, packed, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
    return sent


def test_ctrl_c_during_the_pull_itself_never_loses_the_item(
    cli: Cli, r: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    r.psadd("jobs", "a", "v")
    interrupt_during(monkeypatch, "EVALSHA")
    done = cli("pull", "jobs", "--wait", "3")  # (bounded: a test must not hang if this breaks)
    assert (done.exit_code, json.loads(done.stdout)) == (0, [{"key": "a", "value": "v"}])  # taken, so printed
    assert r.pslen("jobs") == 0


def test_ctrl_c_during_an_empty_pull_stops_before_waiting(cli: Cli, r: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = interrupt_during(monkeypatch, "EVALSHA")
    done = cli("pull", "jobs", "--wait", "3")
    assert (done.exit_code, done.stdout, done.stderr) == (INTERRUPTED, "", "")
    assert "BLPOP" not in sent


def test_a_second_ctrl_c_during_the_pull_still_loses_nothing(
    cli: Cli, r: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the pull is on its way, no number of interrupts cuts it from the output."""
    r.psadd("jobs", "a", "v")
    interrupt_during(monkeypatch, "EVALSHA", times=2)
    done = cli("pull", "jobs", "--wait", "3")
    assert (done.exit_code, json.loads(done.stdout)) == (0, [{"key": "a", "value": "v"}])
    assert r.pslen("jobs") == 0


def test_ctrl_c_during_the_wait_in_process(
    cli: Cli, r: Any, monkeypatch: pytest.MonkeyPatch, long_poll: None
) -> None:
    sent = interrupt_during(monkeypatch, "BLPOP")
    started = time.monotonic()
    done = cli("pull", "jobs", "--wait", "20")  # (a BLPOP of 20 s: the poll is a minute here)
    assert (done.exit_code, done.stdout, done.stderr) == (INTERRUPTED, "", "")
    assert sent.count("BLPOP") == 1 and time.monotonic() - started < 5  # not after the BLPOP's 20 s
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_the_cluster_client_has_the_same_policy(cluster: Any) -> None:
    from psctl.settings import Settings

    target = connection.Target(Settings.resolve({}, url=cluster.url, cluster=True), embedded=False)
    client = connection.connect(target, 0.3, waiting=True)
    try:
        pool = client.get_default_node().redis_connection.connection_pool.connection_kwargs
        assert retries(client.retry) == 0 and retries(pool["retry"]) == 0
        assert (pool["socket_timeout"], pool["socket_connect_timeout"]) == (POLL + POLL, 0.3)
    finally:
        client.close()


@pytest.mark.parametrize("wait", [["--wait", "0"], []], ids=["waiting", "not-waiting"])
def test_ctrl_c_while_the_item_is_being_printed_never_loses_it(
    env: dict[str, str], r: Any, wait: list[str]
) -> None:
    """A real process pulls a 20 MB value and blocks writing it into a pipe
    nobody reads yet; SIGINT lands then. The item was taken, so it must still be
    printed whole (issue 11, point 1)."""
    value = os.urandom(7_500_000).hex()[:20_000_000]
    r.psadd("jobs", "big", value)
    puller = subprocess.Popen([str(PSCTL), "pull", "jobs", *wait], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while r.pslen("jobs"):  # pulled: now it is writing into the full pipe
            assert puller.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.3)
        puller.send_signal(signal.SIGINT)
        out, err = puller.communicate(timeout=60)
    finally:
        puller.kill()
    assert json.loads(out) == [{"key": "big", "value": value}], err[-300:]
    assert puller.returncode == 0
