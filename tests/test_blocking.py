"""Waiting consumers: ``pspull(block=...)`` sleeps on the stream's wake-up list
and pulls as soon as an add lands, or within a second of items written with
plain commands."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from .helpers import blocked_clients, wait_until_blocked

pytestmark = pytest.mark.both_backends


def add_later(client, delay: float, *args) -> threading.Thread:
    def run():
        time.sleep(delay)
        client.psadd(*args)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_blocked_pull_wakes_on_an_add(backend, r, long_poll):
    waiter, adder = backend.sync(), backend.sync()
    started = time.monotonic()  # (before the thread: it adds 0.3 s after its own start)
    thread = add_later(adder, 0.3, "q", "job", "payload", 5)
    assert waiter.pspull("q", block=10) == {"job": b"payload"}
    waited = time.monotonic() - started
    thread.join()
    assert 0.25 <= waited < 5  # woken by the add, not by a poll nor the 10 s block


def test_blocked_pull_returns_empty_after_the_timeout(backend, r):
    started = time.monotonic()
    assert backend.sync().pspull("q", block=1.5) == {}
    assert 1.4 <= time.monotonic() - started < 5


def test_blocked_pull_sees_items_written_with_plain_commands(backend, r, k):
    keys = k("q")

    def write():
        time.sleep(0.2)
        r.hset(keys.values, "plain", "v")
        r.zadd(keys.scores, {"plain": 1})

    thread = threading.Thread(target=write)
    thread.start()
    started = time.monotonic()
    assert backend.sync().pspull("q", block=5) == {"plain": b"v"}
    assert time.monotonic() - started < 3  # at the 1 s poll, well before the 5 s block
    thread.join()


def test_block_zero_waits_until_an_item_comes(backend, r):
    thread = add_later(backend.sync(), 1.2, "q", "late", "v")
    assert backend.sync().pspull("q", block=0) == {"late": b"v"}
    thread.join()


def test_items_already_there_are_pulled_without_waiting(backend, r, long_poll):
    client = backend.sync()
    client.psadd("q", "a", "v")
    started = time.monotonic()
    assert client.pspull("q", block=30) == {"a": b"v"}
    assert time.monotonic() - started < 5  # not after a wait (a poll's is a minute here)


def start_waiters(backend, count: int) -> tuple[list[threading.Thread], list[dict]]:
    """``count`` threads, each in a ``pspull(block=5)`` of its own client;
    what they pulled lands in the list."""
    results: list[dict] = []

    def wait():
        results.append(backend.sync().pspull("q", block=5))

    threads = [threading.Thread(target=wait) for _ in range(count)]
    for t in threads:
        t.start()
    return threads, results


def test_several_waiters_each_get_one_item(backend, r, long_poll):
    blocked = blocked_clients(r)
    threads, results = start_waiters(backend, 4)
    wait_until_blocked(r, more_than=blocked + 3)  # all four
    started = time.monotonic()
    backend.sync().psaddmany("q", [(f"k{i}", "v", 1) for i in range(4)])
    for t in threads:
        t.join()
    assert sorted(key for got in results for key in got) == ["k0", "k1", "k2", "k3"]
    assert time.monotonic() - started < 4  # woken by the adds, not by a poll nor the 5 s block


def test_waiters_wake_for_single_adds_while_a_stale_token_waits(backend, r, k, long_poll):
    """A token left by an earlier add (nobody was waiting) must not stop later
    adds from queueing theirs: each of two waiters gets an item at once."""
    client = backend.sync()
    client.psadd("q", "old", "v")
    assert client.pspull("q") == {"old": b"v"}
    assert r.llen(k("q").wake) == 1  # the stale token
    blocked = blocked_clients(r)
    threads, results = start_waiters(backend, 2)
    wait_until_blocked(r, more_than=blocked + 1)  # both (one took the stale token, looked, and waits again)
    started = time.monotonic()
    client.psadd("q", "a", "v")
    client.psadd("q", "b", "v")
    for t in threads:
        t.join()
    assert sorted(key for got in results for key in got) == ["a", "b"]
    assert time.monotonic() - started < 4  # neither waited for a poll nor the 5 s block


async def test_async_blocked_pull(standalone_backend, r, long_poll):
    client = standalone_backend.async_()

    async def add():
        await asyncio.sleep(0.3)
        await standalone_backend.async_().psadd("q", "a", "v")

    task = asyncio.create_task(add())
    started = time.monotonic()
    assert await client.pspull("q", block=5) == {"a": b"v"}
    assert time.monotonic() - started < 4  # woken by the add, not by a poll nor the 5 s block
    await task
    await client.aclose()


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", True])
def test_bad_block_values(standalone_backend, r, bad):
    with pytest.raises(ValueError):
        standalone_backend.sync().pspull("q", block=bad)
