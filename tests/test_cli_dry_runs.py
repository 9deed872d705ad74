"""Issue 20 on the command line: a dry run, and the question asked on a
terminal, say exactly what the real command does (point 11); ``remove`` takes
held and dead items whole and counts them (point 2); ``release --delay`` of
more than 1000 keys brings every item back (point 1)."""

from __future__ import annotations

import json
from datetime import timedelta
import os
import time
from typing import Any

import pytest

from .helpers import Cli
from .test_cli_operators import everything, run_with_a_terminal


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


@pytest.fixture
def env(redis_url: str, r: Any) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_", "_PSCTL"))}
    return clean | {"REDIS_URL": redis_url}


def test_lift_dry_run_counts_cool_downs_of_held_and_waiting_items(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 4), ("c", "3", 3), ("d", "4", 2)])
    r.pspull("jobs", gate=True)  # a: gated, cooling down
    r.pspull("jobs", count=2, purge=False)  # b, c: kept below the rest, cooling down
    r.pslease("jobs", count=2)  # d, b: held (b still cooling down); c waits, cooling down
    assert {key: r.psitem("jobs", key)["state"] for key in "abcd"} == {"a": "cooling", "b": "held", "c": "waiting",
                                                                       "d": "held"}  # fmt: skip
    before = everything(r)
    assert cli.ok("lift", "jobs", "a", "b", "c", "d", "a", "--dry-run") == {"lifted": 3, "dry_run": True}
    assert everything(r) == before
    assert cli.ok("lift", "jobs", "a", "b", "c", "d", "a") == {"lifted": 3}


def test_remove_dry_run_counts_a_key_named_twice_once(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 4)])
    before = everything(r)
    assert cli.ok("remove", "jobs", "a", "a", "--dry-run") == {"removed": 1, "dry_run": True}
    assert everything(r) == before
    assert cli.ok("remove", "jobs", "a", "a") == {"removed": 1}


def test_remove_takes_held_and_dead_items_whole_and_its_dry_run_says_so(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 4), ("c", "3", 3), ("d", "4", 2)])
    r.psrelease("jobs", r.pslease("jobs", max_deliveries=1).token)  # a: dead
    lease = r.pslease("jobs")  # b: held
    r.pspull("jobs")  # c: pulled, cooling down: no item
    before = everything(r)
    assert cli.ok("remove", "jobs", "a", "b", "c", "d", "nope", "--dry-run") == {"removed": 3, "dry_run": True}
    assert everything(r) == before
    assert cli.ok("remove", "jobs", "a", "b", "c", "d", "nope") == {"removed": 3}
    stats = r.psstats("jobs")
    assert (stats["waiting"], stats["held"], stats["dead"], stats["counters"]["removed"]) == (0, 0, 0, 3)
    assert cli.ok("dead", "jobs") == [] and r.psitem("jobs", "b") == {"state": "absent"}
    assert cli.ok("release", "jobs", lease.token) == {"released": 0}  # b is not the lease's any more
    assert cli.ok("pull", "jobs", "-n", "5") == []


def test_delete_dry_run_and_question_count_items_in_every_state(cli: Cli, r: Any, env: dict[str, str]) -> None:
    r.psaddmany("jobs", [(f"k{i}", "v", 10 - i) for i in range(10)])
    r.psrelease("jobs", r.pslease("jobs", count=2, max_deliveries=1).token)  # k0, k1: dead
    r.pslease("jobs", count=6)  # k2..k7 held; k8, k9 wait
    r.psaddmany("jobs", [("d1", "v", 1), ("d2", "v", 1)], delay=timedelta(hours=1))  # delayed
    before = everything(r)
    assert cli.ok("delete", "jobs", "--dry-run") == {"deleted": True, "items": 12, "dry_run": True}
    status, out, shown = run_with_a_terminal(["delete", "jobs"], env, b"n\n")
    assert status == 0 and b"Delete stream 'jobs' and its 12 items? [y/N]" in shown and out == b""
    assert everything(r) == before


def test_remove_asks_about_the_items_it_would_remove_in_every_state(r: Any, env: dict[str, str]) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 4), ("c", "3", 3)])
    r.psrelease("jobs", r.pslease("jobs", max_deliveries=1).token)  # a: dead
    r.pslease("jobs")  # b: held
    before = everything(r)
    status, out, shown = run_with_a_terminal(["remove", "jobs", "a", "b", "c", "c", "nope"], env, b"n\n")
    assert status == 0 and b"Remove 3 items from 'jobs'? [y/N]" in shown and out == b""
    assert everything(r) == before
    status, out, shown = run_with_a_terminal(["remove", "jobs", "a", "b", "c", "c", "nope"], env, b"y\n")
    assert status == 0 and json.loads(out) == {"removed": 3}


def test_release_with_a_delay_of_600_held_keys_among_700_others_brings_all_600_back(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [(f"k{i}", "v", i) for i in range(600)])
    lease = r.pslease("jobs", count=600)
    others = [f"other{i}" for i in range(700)]  # then the 600: 300 in each of the two script calls
    assert cli.ok("release", "jobs", lease.token, *others, *lease.items, "--delay", "0.3s") == {"released": 600}
    deadline = time.monotonic() + 20
    while r.pslen("jobs") < 600:  # each psexpire brings back what is due
        assert time.monotonic() < deadline, r.psstats("jobs")
        time.sleep(0.02)
        cli.ok("expire")
    stats = r.psstats("jobs")
    assert (stats["waiting"], stats["held"], stats["overdue"]) == (600, 0, 0)
