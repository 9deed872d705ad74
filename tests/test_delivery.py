"""Delivery semantics across processes: a purged pull is at-most-once (every
item handed out once), keep + remove is at-least-once, and concurrent adders
and pullers conserve every item."""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta
from collections import Counter

from psctl import Redis

SPAWN = multiprocessing.get_context("spawn")


def pull_all(url: str, name: str, batch: int, out) -> None:
    client = Redis.from_url(url)
    mine = []
    while pulled := client.pspull(name, count=batch, expire_at=None):
        mine.extend(pulled)
    out.put(mine)


def add_range(url: str, name: str, start: int, stop: int) -> None:
    client = Redis.from_url(url)
    for first in range(start, stop, 50):
        client.psaddmany(name, [(f"k{i}", "v", i % 13) for i in range(first, min(first + 50, stop))])


def pull_until(url: str, name: str, stop_event, out) -> None:
    client = Redis.from_url(url)
    mine = []
    while True:
        pulled = client.pspull(name, count=20, expire_at=None)
        mine.extend(pulled)
        if not pulled and stop_event.is_set():
            break
    out.put(mine)


def collect(out, processes) -> list[list[str]]:
    results = [out.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(30)
        assert p.exitcode == 0
    return results


def test_six_processes_pull_30000_items_exactly_once(redis_url, r):
    total = 30_000
    r.psaddmany("q", ((f"k{i}", "v", i % 100) for i in range(total)))
    out = SPAWN.Queue()
    pullers = [SPAWN.Process(target=pull_all, args=(redis_url, "q", 25, out)) for _ in range(6)]
    for p in pullers:
        p.start()
    results = collect(out, pullers)
    counts = Counter(key for mine in results for key in mine)
    assert len(counts) == total and set(counts.values()) == {1}
    assert sum(1 for mine in results if mine) >= 2
    assert r.pslen("q") == 0


def test_adders_and_pullers_at_once_conserve_every_item(redis_url, r):
    total = 8_000
    out, done = SPAWN.Queue(), SPAWN.Event()
    adders = [SPAWN.Process(target=add_range, args=(redis_url, "q", i * 2000, (i + 1) * 2000)) for i in range(4)]
    pullers = [SPAWN.Process(target=pull_until, args=(redis_url, "q", done, out)) for _ in range(3)]
    for p in adders + pullers:
        p.start()
    for p in adders:
        p.join(120)
        assert p.exitcode == 0
    done.set()
    results = collect(out, pullers)
    pulled = Counter(key for mine in results for key in mine)
    left = r.pskeys("q")
    assert set(pulled.values()) <= {1}
    assert sorted([*pulled, *left]) == sorted(f"k{i}" for i in range(total))


def test_keep_then_remove_is_at_least_once(r):
    """A worker that dies between a kept pull and its remove leaves the item
    in the stream: another worker gets it again."""
    r.psaddmany("q", [("job", "v", 5), ("other", "v", 1)])
    first = r.pspull("q", purge=False, expire_at=None)  # this worker crashes: no psremove
    assert first == {"job": b"v"}
    again = r.pspull("q", count=2, purge=False, expire_at=None)
    assert set(again) == {"job", "other"}
    assert r.psremove("q", list(again)) == 2
    assert r.pslen("q") == 0


def test_an_unacknowledged_kept_item_is_deleted_when_its_cool_down_ends(r):
    """What keep-mode guarantees, exactly (issue 11, point 14): a kept item stays
    in the stream, below every waiting item, until it is acknowledged or until its
    cool-down ends; then psexpire deletes it like any cooled-down key. Leases are
    the at-least-once answer for a worker that may die."""
    r.psadd("q", "a", "v", 5)
    r.pspull("q", purge=False, expire_at=timedelta(seconds=1))
    assert r.pskeys("q") == ["a"]  # still there, for the next puller
    time.sleep(2.1)
    assert r.psexpire() == {"q": 1}
    assert r.pskeys("q") == [] and r.psget("q", "a") is None
