"""A lease blocked on ``max_held`` (SPEC §12) wakes when a held slot frees:
the scripts that free held items (an acknowledgement, ``psacklease`` leasing
fewer than it acknowledged, a release, a dead letter, a removal) push a
wake-up token when the stream has a ``max_held``, and only then.
Standalone and the 3-master cluster, sync and async."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from .helpers import blocked_clients, wait_until_blocked

pytestmark = pytest.mark.both_backends

LONG = timedelta(minutes=5)  # no lease runs out during a test: a wake-up is the slot's

# how each frees one held slot of a lease holding "i0" and "i1" (max_held=2)
FREES = {
    "psack": lambda ps, token: ps.psack("q", token, ["i0"]),
    "psacklease": lambda ps, token: ps.psacklease("q", token, count=1, lease=LONG),  # 2 acked, 1 leased
    "psrelease": lambda ps, token: ps.psrelease("q", token, ["i0"]),
    "psrelease dead": lambda ps, token: ps.psrelease("q", token, ["i0"], dead=True),
    "psremove": lambda ps, token: ps.psremove("q", ["i0"]),
}


def full(ps: Any, r: Any, k: Any) -> str:
    """A stream of 10 items with max_held=2, both slots held by one lease, and
    no wake-up token left by the add; the lease's token."""
    ps.psaddmany("q", [(f"i{i}", f"v{i}", 10 - i) for i in range(10)])
    ps.pslimit("q", max_held=2)
    token = ps.pslease("q", count=2, lease=LONG).token
    r.delete(k("q").wake)
    return token


def blocked_lease(backend: Any, client: str) -> tuple[threading.Thread, list[Any]]:
    """A thread blocked in ``pslease(block=5)`` on its own sync or async
    client; its list gets (the lease, the monotonic time it returned)."""
    got: list[Any] = []

    def sync() -> None:
        ps = backend.sync()
        got.append((ps.pslease("q", lease=LONG, block=5), time.monotonic()))
        ps.close()

    async def async_() -> None:
        ps = backend.async_()
        got.append((await ps.pslease("q", lease=LONG, block=5), time.monotonic()))
        await ps.aclose()

    thread = threading.Thread(target=sync if client == "sync" else lambda: asyncio.run(async_()))
    thread.start()
    return thread, got


def woken_after(backend: Any, r: Any, k: Any, frees: str, client: str) -> float:
    """One try on a fresh stream: seconds from the free's reply to the return
    of a lease blocked on max_held (which took one item; two held again)."""
    r.flushdb()
    ps = backend.sync()
    token = full(ps, r, k)
    blocked = blocked_clients(r)
    thread, got = blocked_lease(backend, client)
    wait_until_blocked(r, more_than=blocked)
    assert not got  # waiting for a held slot
    FREES[frees](ps, token)
    freed = time.monotonic()  # (after the reply: the wake-up can come no sooner than the free)
    thread.join(6)
    ps.close()
    assert got, "the blocked lease never returned"
    lease, returned = got[0]
    assert len(lease.items) == 1
    assert r.hlen(k("q").held) == 2
    return returned - freed


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("frees", list(FREES))
def test_a_lease_blocked_on_max_held_wakes_within_100_ms_of_a_slot_freed(backend, r, k, frees, client):
    # the median of three: a loaded machine delays one at times (one took 275 ms);
    # without the wake-up, each would wait for its poll (up to a second)
    waits = sorted(woken_after(backend, r, k, frees, client) for _ in range(3))
    assert waits[1] < 0.1, waits


@pytest.mark.parametrize("frees", list(FREES))
def test_freeing_a_held_item_wakes_nobody_without_max_held(ps, r, k, frees):
    """No wake-up token from a freed slot where no max_held is set: no limits
    at all, or a rate and a pause (a release back to the stream wakes pullers
    for the item that came back, as without limits)."""
    ps.psaddmany("q", [(f"i{i}", f"v{i}", 10 - i) for i in range(10)])
    for limits in ({}, {"rate": 1000}):
        ps.pslimit("q", **limits)
        ps.pspause("q")
        ps.psresume("q")  # (a resume wakes pullers itself)
        r.delete(k("q").wake)
        token = ps.pslease("q", count=2, lease=LONG).token
        FREES[frees](ps, token)
        came_back = 1 if frees == "psrelease" else 0
        assert r.llen(k("q").wake) == came_back, limits
        ps.psrelease("q", token)


@pytest.mark.parametrize("frees", list(FREES))
def test_with_max_held_every_slot_freed_is_one_token(ps, r, k, frees):
    token = full(ps, r, k)
    FREES[frees](ps, token)
    assert r.llen(k("q").wake) == 1
    assert r.ttl(k("q").wake) > 0  # (a wake list is gone within a minute)
