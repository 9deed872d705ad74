"""Leases across processes: a worker that dies loses nothing, six workers that
drop leases on purpose still finish every item exactly once, and a server
killed and restarted from its append-only file in the middle loses nothing."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from psctl import Redis
from psctl.layout import stream_keys
from testservers import start_server


SPAWN = multiprocessing.get_context("spawn")


def hold_and_hang(url: str, ready: Any) -> None:
    """A worker that leases three items (for 3 s: a loaded machine may take a
    second to kill it) and then hangs until it is killed."""
    client = Redis.from_url(url)
    lease = client.pslease("jobs", count=3, lease=timedelta(seconds=3))
    ready.put(sorted(lease.items))
    time.sleep(600)


def test_a_killed_workers_items_come_back_to_another_after_the_lease(redis_url, r):
    r.psaddmany("jobs", [(f"j{i}", "v", 10 - i) for i in range(5)])
    ready = SPAWN.Queue()
    worker = SPAWN.Process(target=hold_and_hang, args=(redis_url, ready))
    worker.start()
    held = ready.get(timeout=60)
    assert held == ["j0", "j1", "j2"]
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)
    assert r.pslease("jobs", count=5).items.keys() == {"j3", "j4"}  # the held ones are not handed out...
    time.sleep(3.1)
    again = r.pslease("jobs", count=5)  # ...until their lease has run out
    assert sorted(again.items) == held and set(again.deliveries.values()) == {2}
    assert again.scores == {"j0": 10.0, "j1": 9.0, "j2": 8.0}


# -- many workers, dropping leases on purpose ------------------------------------------


def lease_and_ack(url: str, name: str, seed: int, out: Any, stop: Any = None) -> None:
    """Leases a few items at a time and acknowledges each; one lease in five it
    drops on purpose (a worker that gives up, or dies), leaving it to run out.
    Reports the keys its acks finished (psack said 1) and how many deliveries
    it saw. Rides out a server restart: safe calls are retried, a lease call
    that fails is simply made again (what it held comes back)."""
    chance = random.Random(seed)
    client = Redis.from_url(url, socket_timeout=5)
    acked: list[str] = []
    seen: set[str] = set()
    redelivered = 0
    idle_since = None
    while True:
        try:
            lease = client.pslease(name, count=chance.randint(1, 8), lease=timedelta(milliseconds=400))
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.05)
            continue
        if not lease:
            if stop is None and client.pslen(name) == 0 and _nothing_held(client, name):
                break
            if stop is not None and stop.is_set() and _nothing_held(client, name):
                break
            idle_since = idle_since or time.monotonic()
            time.sleep(0.05)
            continue
        idle_since = None
        seen.update(lease.items)
        redelivered += sum(1 for n in lease.deliveries.values() if n > 1)
        if chance.random() < 0.2:
            continue  # dropped: the lease runs out and another worker gets the items
        for key in lease.items:
            while True:
                try:
                    if client.psack(name, lease.token, [key], expire_at=None) == 1:
                        acked.append(key)
                    break
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.05)
    out.put((acked, sorted(seen), redelivered))


def _nothing_held(client: Redis, name: str) -> bool:
    try:
        client.psexpire()  # brings back what ran out
        return client.hlen(stream_keys(name).held) == 0 and client.pslen(name) == 0
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def run_workers(url: str, name: str, count: int) -> tuple[Counter[str], int, list[Any]]:
    out = SPAWN.Queue()
    workers = [SPAWN.Process(target=lease_and_ack, args=(url, name, seed, out)) for seed in range(count)]
    for worker in workers:
        worker.start()
    return _collect(out, workers)


def _collect(out: Any, workers: list[Any]) -> tuple[Counter[str], int, list[Any]]:
    results = [out.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    acked = Counter(key for keys, _, _ in results for key in keys)
    return acked, sum(n for _, _, n in results), results


@pytest.mark.slow
def test_six_workers_finish_30000_items_exactly_once_while_dropping_leases(redis_url, r):
    total = 30_000
    r.psaddmany("jobs", ((f"k{i}", "v", i % 100) for i in range(total)))
    acked, redelivered, results = run_workers(redis_url, "jobs", 6)
    assert len(acked) == total and set(acked.values()) == {1}  # every item acknowledged exactly once
    assert sum(1 for keys, _, _ in results if keys) >= 2
    assert redelivered > 0  # the dropped leases came back and were delivered again
    for key in stream_keys("jobs").holding_data:
        assert not r.exists(key), key  # nothing left waiting, held or dead


# -- the server killed in the middle ------------------------------------------------------


@pytest.fixture
def durable(tmp_path: Path) -> Any:
    """A server of our own, writing every change to its append-only file before
    it answers (appendfsync always), so that what it acknowledged survives a
    SIGKILL."""
    folder = tmp_path / "durable"
    sock = folder / "redis.sock"
    servers = [start_server(folder, unixsocket=sock, appendonly=True, extra={"appendfsync": "always"})]

    def restart() -> None:
        os.kill(servers[-1].pid, signal.SIGKILL)
        servers[-1].process.wait(10)
        time.sleep(0.3)
        servers.append(start_server(folder, unixsocket=sock, appendonly=True, extra={"appendfsync": "always"}))

    yield f"unix://{sock}", restart
    servers[-1].stop()


@pytest.mark.slow
def test_a_server_killed_and_restarted_in_the_middle_loses_nothing(durable, record_property):
    url, restart = durable
    total = 6_000
    client = Redis.from_url(url)
    client.psaddmany("jobs", ((f"k{i}", "v", i % 50) for i in range(total)))
    out, stop = SPAWN.Queue(), SPAWN.Event()
    workers = [SPAWN.Process(target=lease_and_ack, args=(url, "jobs", seed, out, stop)) for seed in range(6)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    restart()  # SIGKILL, then the same data folder again
    time.sleep(0.5)
    stop.set()
    acked, redelivered, results = _collect(out, workers)
    seen = {key for _, keys, _ in results for key in keys}
    client = Redis.from_url(url)
    unknown = total - len(acked)  # acks the server ran but whose reply the kill cut: they did not count
    print(f"\nserver killed mid-run: {total} items, {redelivered} delivered again, "
          f"{unknown} acknowledged with the reply lost, {sum(n > 1 for n in acked.values())} acknowledged twice")
    record_property("delivered again", redelivered)
    assert seen == {f"k{i}" for i in range(total)}  # every item was handed to a worker...
    for key in stream_keys("jobs").holding_data:
        assert not client.exists(key), key  # ...and acknowledged: none left waiting, held or dead
    assert set(acked.values()) <= {1}  # no ack ever applied twice
