"""Time and failure, told truly (SPEC §10), from the command line: the issue's
own examples give true answers, and the options that say when and why."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from psctl.cli.status import ExitStatus

from .helpers import Cli


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


def until(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)
    return found


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_cool_down_ends_at_its_time_without_expire(cli: Cli, r: Any) -> None:
    """psctl pull q --expire-in 1s; (wait); psctl add q k v: added, not "cooling" with a time gone by."""
    cli.ok("add", "q", "k", "v")
    assert cli.ok("pull", "q", "--expire-in", "1s") == [{"key": "k", "value": "v"}]
    refused = cli.ok("add", "q", "k", "v")
    assert refused["added"] is False and refused["reason"] == "cooling"
    assert when(refused["until"]) > datetime.now(timezone.utc) - timedelta(seconds=1)
    until(lambda: cli.ok("add", "q", "k", "v")["added"])
    assert cli.ok("item", "q", "k")["state"] == "waiting"


def test_a_delayed_release_is_delayed_not_overdue(cli: Cli, r: Any) -> None:
    """psctl release q TOKEN --delay 1s; stats: delayed 1, overdue 0, then waiting again."""
    cli.ok("add", "q", "k", "v")
    token = cli.ok("lease", "q")["token"]
    assert cli.ok("release", "q", token, "--delay", "1s", "--reason", "the disk is full") == {"released": 1}
    stats = cli.ok("stats", "q")[0]
    assert (stats["delayed"], stats["held"], stats["overdue"]) == (1, 0, 0)
    assert when(stats["next_delayed_due"]) > datetime.now(timezone.utc) - timedelta(seconds=1)
    item = cli.ok("item", "q", "k")
    assert item["state"] == "delayed" and item["last_failure"]["reason"] == "the disk is full"
    until(lambda: cli.ok("pull", "q") == [{"key": "k", "value": "v"}])
    assert cli.ok("stats", "q")[0]["counters"]["redelivered"] == 0


def test_dead_says_why_when_and_on_which_try(cli: Cli, r: Any) -> None:
    cli.ok("add", "q", "k", "v")
    token = cli.ok("lease", "q", "--max-deliveries", "1")["token"]
    cli.ok("release", "q", token, "--reason", "exit status 3: could not reach \x1b[31mhost\x1b[0m")
    [dead] = cli.ok("dead", "q")
    assert dead["key"] == "k" and dead["deliveries"] == 1
    assert dead["reason"] == "exit status 3: could not reach \x1b[31mhost\x1b[0m"
    assert abs(when(dead["failed_at"]) - datetime.now(timezone.utc)) < timedelta(seconds=30)
    table = cli("dead", "q", "--table", env={"COLUMNS": "200"}).stdout
    assert "could not reach" in table and "\x1b[31m" not in table  # the reason, escaped on a terminal
    [listed] = cli.ok("keys", "q", "--state", "dead")
    assert listed["reason"] == dead["reason"] and listed["failed_at"] == dead["failed_at"]


def test_add_in_and_at_delay_an_item(cli: Cli, r: Any) -> None:
    added = cli.ok("add", "q", "later", "v", "--in", "1h")
    assert added["added"] is True and when(added["until"]) > datetime.now(timezone.utc) + timedelta(minutes=59)
    at = cli.ok("add", "q", "new-year", "v", "--at", "2031-01-01T00:00")  # naive: UTC
    assert at["until"] == "2031-01-01T00:00:00Z"
    assert cli.ok("add", "q", "zoned", "v", "--at", "2031-01-01T01:00+01:00")["until"] == "2031-01-01T00:00:00Z"
    assert cli.ok("len", "q")["length"] == 0 and cli.ok("pull", "q") == []
    assert [row["key"] for row in cli.ok("keys", "q", "--state", "delayed")] == ["later", "new-year", "zoned"]
    assert "until" not in cli.ok("add", "q", "now", "v")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--in", "1h", "--at", "2031-01-01"], "--in and --at cannot be used together"),
        (["--at", "next tuesday"], "is not a time"),
        (["--in", "soon"], "is not a duration"),
        (["--in", "1000000w"], "is too long a duration: at most 1,000,000,000 seconds"),
        (["--at", "9999-12-31"], "is too late a time"),
    ],
)
def test_a_bad_time_is_one_line_and_exit_2(cli: Cli, r: Any, args: list[str], message: str) -> None:
    assert message in cli.fails(ExitStatus.USAGE, "add", "q", "k", "v", *args)
    assert r.dbsize() == 0


def test_add_many_takes_not_before(cli: Cli, r: Any, tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("key,value,score,not_before\na,x,1,\nb,y,2,2031-01-01T00:00Z\nc,z,3,1924992000\n")
    assert cli.ok("add-many", "q", str(tmp_path / "items.csv"))["added"] == 3
    delayed = cli.ok("keys", "q", "--state", "delayed")
    assert [(row["key"], row["until"]) for row in delayed] == [("b", "2031-01-01T00:00:00Z"), ("c", "2031-01-01T00:00:00Z")]
    lines = '{"key": "d", "value": "v", "not_before": "2031-01-01T00:00:00Z"}\n{"key": "e", "value": "v", "not_before": null}\n'
    assert cli.ok("add-many", "q", "-", "--format", "ndjson", input=lines)["added"] == 2
    assert cli.ok("keys", "q") == [{"key": "e", "score": 1.0}, {"key": "a", "score": 1.0}]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("key,value,not_before\na,x,2031-01-01\nb,y,tomorrow\n", "line 3: not_before 'tomorrow' is not a time"),
        ('{"key": "a", "value": "x", "not_before": [1]}\n', "line 1: not_before must be a time"),
    ],
)
def test_a_bad_not_before_names_its_line_and_writes_nothing(cli: Cli, r: Any, text: str, line: str) -> None:
    form = "csv" if text.startswith("key") else "ndjson"
    assert line in cli.fails(ExitStatus.USAGE, "add-many", "q", "-", "--format", form, input=text)
    assert r.dbsize() == 0


def test_keys_state_in_every_format(cli: Cli, r: Any) -> None:
    r.psaddmany("q", [("a", "1", 3), ("b", "2", 2), ("c", "3", 1)])
    lease = r.pslease("q", count=2)
    held = cli.ok("keys", "q", "--state", "held")
    assert [(row["key"], row["token"], row["deliveries"]) for row in held] == [("a", lease.token, 1), ("b", lease.token, 1)]
    assert when(held[0]["deadline"]) == lease.deadline
    lines = cli("keys", "q", "--state", "held", "-o", "ndjson").stdout.splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "b"]
    assert cli("keys", "q", "--state", "held", "-o", "raw").stdout == "a\nb\n"
    table = cli("keys", "q", "--state", "held", "--table").stdout
    assert lease.token in table and "deadline" in table
    assert cli.ok("keys", "q", "--state", "waiting") == [{"key": "c", "score": 1.0, "deliveries": 0}]
    assert cli.ok("keys", "q", "--state", "gated") == []
    assert "--scores goes without --state" in cli.fails(ExitStatus.USAGE, "keys", "q", "--state", "held", "--scores")
    assert "is not one of" in cli.fails(ExitStatus.USAGE, "keys", "q", "--state", "lost")


def test_stats_and_metrics_show_delayed_items(cli: Cli, r: Any) -> None:
    r.psadd("q", "a", "v", delay=timedelta(hours=1))
    r.psadd("q", "b", "v")
    table = cli("stats", "q", "--table", env={"COLUMNS": "200"}).stdout
    assert "delayed" in table
    metrics = cli("metrics", "q").stdout
    assert 'psctl_stream_items{state="delayed",stream="q"} 1.0' in metrics
    assert "psctl_next_delayed_due_timestamp_seconds{stream=\"q\"}" in metrics


def test_expire_says_what_else_came_due(cli: Cli, r: Any) -> None:
    r.psadd("q", "a", "v")
    r.pslease("q", lease=timedelta(milliseconds=200))
    r.psadd("q", "c", "v", delay=timedelta(milliseconds=200))
    time.sleep(0.3)
    assert cli.ok("expire") == {"expired": {}, "total": 0, "returned": {"q": 1}, "started": {"q": 1}}
    assert cli.ok("expire") == {"expired": {}, "total": 0}
