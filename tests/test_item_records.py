"""Issue 20 (points 1, 2, 6, 10): an item's records live and leave with it.

A delayed release of any number of keys brings every item back; ``psremove``
removes an item whole in every state (waiting, held, dead); the deliveries an
item had leave with it however it leaves (prune, remove, a purged pull,
expire, ``psdelete``); and ``redelivered`` counts leases that ran out, never
delayed releases coming back. Standalone and the 3-master cluster, sync and
async.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from psctl import leases
from psctl import operations as op
from psctl.layout import stream_keys

from .test_plans import drive

pytestmark = pytest.mark.both_backends

SHORT = timedelta(milliseconds=300)  # a delay or a lease that ends during the test
LONG_AGO = datetime(2000, 1, 1, tzinfo=timezone.utc)  # a cool-down already over


def until(check: Callable[[], Any], timeout: float = 20) -> Any:
    """Polls ``check`` until it gives something true (a generous bound, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)
    return found


def back(ps: Any, name: str, waiting: int) -> None:
    """Waits until ``waiting`` items wait in the stream, ``psexpire`` bringing
    back what delays and leases held."""
    until(lambda: ps.psexpire() is not None and ps.pslen(name) == waiting)


def counters(ps: Any, name: str = "q") -> dict[str, int]:
    return ps.psstats(name)["counters"]


# -- 1: a delayed release of more than 1000 keys -----------------------------------


def test_a_delayed_release_naming_each_key_twice_brings_all_1000_back(ps, r, k):
    ps.psaddmany("q", [(f"k{i}", "v", i) for i in range(1000)])
    lease = ps.pslease("q", count=1000)
    twice = [key for key in lease.items for _ in range(2)]
    assert ps.psrelease("q", lease.token, twice, delay=timedelta(seconds=1)) == 1000  # (not SHORT: a loaded machine)
    assert ps.psstats("q")["delayed"] == 1000  # delayed until it has passed
    back(ps, "q", 1000)
    stats = ps.psstats("q")
    assert (stats["held"], stats["overdue"]) == (0, 0) and not r.exists(k("q").held)
    assert ps.pslease("q", count=1000).deliveries == dict.fromkeys(lease.items, 2)


def test_a_delayed_release_of_600_held_among_700_others_brings_the_600_back(ps, r, k):
    ps.psaddmany("q", [(f"k{i}", "v", i) for i in range(600)])
    lease = ps.pslease("q", count=600)
    others = [f"other{i}" for i in range(700)]
    assert ps.psrelease("q", lease.token, [*others, *lease.items], delay=SHORT) == 600  # 300 in each call
    back(ps, "q", 600)
    assert ps.psstats("q")["held"] == 0 and sorted(ps.pskeys("q")) == sorted(lease.items)


def test_a_delayed_release_sends_each_key_once_per_call():
    """(the plan alone, no server) 2,500 keys in three calls, the reason in each."""
    named = [f"k{i}" for i in range(2500)]
    plan = leases.release(stream_keys("q"), "t", named, None, SHORT, reason="boom")
    requests, released = drive(plan, [[1000, 0], [1000, 0], [500, 0]])
    assert released == 2500 and [len(call.args) - 7 for call in requests] == [1000, 1000, 500]
    assert all(call.args[4:7] == (b"1", b"boom", b"keys") for call in requests)


# -- 2: remove takes an item whole, whatever its state -----------------------------


def test_remove_and_its_dry_run_send_each_key_once_however_often_named():
    """(the plan alone, no server) A key named in two chunks would count twice in a dry run."""
    named = ["a", *(f"k{i}" for i in range(1500)), "a"]
    requests, _ = drive(op.remove(stream_keys("q"), named, False, dry_run=True), [1, 0])
    sent = [key for call in requests for key in call.args[3:]]
    assert sent == [b"a", *(f"k{i}".encode() for i in range(1500))]
    assert [call.args[:3] for call in requests] == [(b"0", b"1", b"0")] * 2 and all(call.safe for call in requests)


def test_remove_of_a_held_item_takes_it_whole_and_ends_its_hold(ps, r, k):
    ps.psaddmany("q", [("a", "1", 3), ("b", "2", 2)])
    lease = ps.pslease("q", count=2)  # (the default lease: it must hold to the end)
    assert ps.psremove("q", ["a"]) == 1
    assert ps.psitem("q", "a") == {"state": "absent"} and ps.psget("q", "a") is None
    assert ps.psstats("q")["held"] == 1 and counters(ps)["removed"] == 1
    assert ps.psrelease("q", lease.token, ["a"]) == 0 and ps.psack("q", lease.token, ["a"]) == 0  # not held
    assert ps.psrelease("q", lease.token) == 1  # b only
    assert ps.pskeys("q") == ["b"]
    # a new item of the same key starts afresh
    assert ps.psadd("q", "a", "new", 5) == 5.0
    assert ps.pslease("q").deliveries == {"a": 1}


def test_a_removed_held_item_never_comes_back_when_its_lease_runs_out(ps, r, k):
    ps.psaddmany("q", [("a", "1", 3), ("b", "2", 2)])
    lease = ps.pslease("q", count=2, lease=SHORT)
    assert ps.psremove("q", ["a", "b"]) == 2
    assert ps.psextend("q", lease.token, 60) is None  # it holds nothing any more
    time.sleep(SHORT.total_seconds() + 0.05)
    ps.psexpire()
    stats = ps.psstats("q")
    assert (stats["waiting"], stats["held"], stats["overdue"], stats["dead"]) == (0, 0, 0, 0)
    assert stats["counters"]["redelivered"] == 0 and ps.psnames() == []


def test_remove_of_an_item_a_delayed_release_holds_takes_it_whole(ps, r, k):
    ps.psadd("q", "a", "1")
    ps.psrelease("q", ps.pslease("q").token, delay=SHORT)
    assert ps.psremove("q", ["a"]) == 1
    time.sleep(SHORT.total_seconds() + 0.05)
    ps.psexpire()
    assert ps.psitem("q", "a") == {"state": "absent"} and ps.pslen("q") == 0


def test_remove_of_a_dead_item_takes_it_whole(ps, r, k):
    ps.psaddmany("q", [("a", "1", 3), ("b", "2", 2)])
    ps.psrelease("q", ps.pslease("q", count=2, max_deliveries=1).token)
    assert ps.psdead("q").keys() == {"a", "b"}
    assert ps.psremove("q", ["a"], gate=True) == 1
    assert ps.psdead("q") == {"b": b"2"} and ps.psitem("q", "a") == {"state": "gated"}
    assert ps.psrequeue("q", ["a"]) == 0 and ps.psget("q", "a") is None
    assert not r.hexists(k("q").deliveries, "a")
    assert ps.psadd("q", "a", "new", readd=True) == 1.0 and ps.pslease("q").deliveries == {"a": 1}


def test_remove_counts_each_item_once_in_any_state_and_nothing_else(ps, r, k):
    ps.psaddmany("q", [(key, key, 9 - i) for i, key in enumerate("abcdefg")])
    ps.pspull("q", gate=True, expire_at=None)  # a: gated, not an item
    ps.pspull("q")  # b: cooling down, not an item
    ps.psrelease("q", ps.pslease("q", max_deliveries=1).token)  # c: dead
    ps.pslease("q")  # d: held
    # e, f, g wait
    assert ps.psremove("q", ["a", "b", "c", "c", "d", "e", "e", "f", "nope"]) == 4  # c, d, e, f
    assert counters(ps)["removed"] == 4
    stats = ps.psstats("q")
    assert (stats["waiting"], stats["held"], stats["dead"], stats["gated"], stats["cooling"]) == (1, 0, 0, 1, 1)
    assert ps.psremove("q", ["c", "d", "e"]) == 0 and counters(ps)["removed"] == 4


def test_remove_gates_what_it_removes_in_every_state(ps, r, k):
    ps.psaddmany("q", [("a", "1", 3), ("b", "2", 2), ("c", "3", 1)])
    ps.psrelease("q", ps.pslease("q", max_deliveries=1).token)  # a: dead
    ps.pslease("q")  # b: held
    assert ps.psremove("q", ["a", "b", "c"], gate=True) == 3
    assert {ps.psitem("q", key)["state"] for key in "abc"} == {"gated"}
    assert [ps.psadd("q", key, "v") for key in "abc"] == [None, None, None]
    stats = ps.psstats("q")
    assert (stats["waiting"], stats["held"], stats["dead"], stats["gated"]) == (0, 0, 0, 3)


# -- 6: deliveries leave with their item --------------------------------------------


def _pull_one(ps: Any) -> Any:
    return ps.pspull("q", expire_at=None)


def _pull_many(ps: Any) -> Any:
    return ps.pspull("q", count=5, expire_at=None)


def _prune(ps: Any) -> Any:
    return ps.psdeletebelowthreshold("q", 100)


def _remove(ps: Any) -> Any:
    return ps.psremove("q", ["a"])


def _expire_kept(ps: Any) -> Any:
    ps.pspull("q", purge=False, expire_at=LONG_AGO)  # kept, its cool-down already over
    return ps.psexpire()


def _delete(ps: Any) -> Any:
    return ps.psdelete("q")


LEAVING = {
    "prune": _prune,
    "remove": _remove,
    "pull one": _pull_one,
    "pull many": _pull_many,
    "expire of a kept item": _expire_kept,
    "psdelete": _delete,
}


@pytest.mark.parametrize("leave", LEAVING.values(), ids=LEAVING.keys())
def test_deliveries_leave_with_their_item(ps, r, k, leave):
    ps.psadd("q", "a", "1")
    ps.psrelease("q", ps.pslease("q").token)  # delivered once, back
    assert r.hget(k("q").deliveries, "a") == b"1"
    leave(ps)
    assert ps.psitem("q", "a")["state"] != "waiting"
    assert not r.exists(k("q").deliveries)
    ps.psadd("q", "a", "again", readd=True)
    lease = ps.pslease("q", max_deliveries=2)
    assert lease.deliveries == {"a": 1}
    ps.psrelease("q", lease.token)
    assert ps.psdead("q") == {} and ps.pskeys("q") == ["a"]  # one failure of two allowed


def test_a_stream_whose_items_were_pruned_leaves_the_registry(ps, r, k):
    ps.psaddmany("q", [(f"k{i}", "v", i) for i in range(2000)])
    for _ in range(2):
        ps.psrelease("q", ps.pslease("q", count=1000).token)
    assert r.hlen(k("q").deliveries) == 1000
    assert len(ps.psdeletebelowthreshold("q", 10_000)) == 2000
    assert not r.exists(k("q").deliveries)
    ps.psexpire()
    assert ps.psnames() == []


def test_expire_drops_deliveries_no_item_can_have_and_unregisters_the_stream(ps, r, k):
    """Delivery counts older versions left behind, with no item beside them."""
    ps.psadd("q", "a", "1")
    ps.pspull("q", expire_at=None)
    r.hset(k("q").deliveries, mapping={"a": 2, "gone": 5})
    ps.psexpire()
    assert not r.exists(k("q").deliveries) and ps.psnames() == []


def test_expire_keeps_the_deliveries_of_items_still_there(ps, r, k):
    ps.psaddmany("q", [("a", "1", 2), ("b", "2", 1)])
    ps.psrelease("q", ps.pslease("q", count=2, max_deliveries=2).token, ["a"])  # a: back, delivered once
    ps.psexpire()
    assert r.hget(k("q").deliveries, "a") == b"1" and ps.psnames() == ["q"]


# -- 10: redelivered counts leases that ran out, nothing else ------------------------

def test_ten_items_failing_three_times_on_delayed_releases_are_never_redelivered(ps, r):
    ps.psaddmany("q", [(f"k{i}", "v", i) for i in range(10)])
    for failure in (1, 2, 3):
        lease = ps.pslease("q", count=10, max_deliveries=3)
        assert lease.deliveries == dict.fromkeys(lease.items, failure)
        assert ps.psrelease("q", lease.token, delay=SHORT) == 10
        if failure < 3:
            back(ps, "q", 10)
            assert ps.psdead("q") == {}  # back from the delay, not dead (a delivery of three left)
    assert len(ps.psdead("q")) == 10  # the third failure
    counted = counters(ps)
    assert (counted["released"], counted["dead"], counted["redelivered"]) == (30, 10, 0)


# each of the five scripts that bring expired leases and delays back, and the
# state the item is in after it: back, or back and taken again
RECLAIMING = {
    "psexpire": (lambda ps: ps.psexpire(), "waiting"),
    "pslease one": (lambda ps: ps.pslease("q"), "held"),
    "pslease many": (lambda ps: ps.pslease("q", count=2), "held"),
    "pspull one": (lambda ps: ps.pspull("q", expire_at=None), "absent"),
    "pspull many": (lambda ps: ps.pspull("q", count=2, expire_at=None), "absent"),
}


@pytest.mark.parametrize(("reclaim", "state"), RECLAIMING.values(), ids=RECLAIMING.keys())
def test_a_delayed_release_coming_back_is_not_redelivered(ps, r, reclaim, state):
    ps.psadd("q", "a", "1")
    assert ps.psrelease("q", ps.pslease("q", max_deliveries=2).token, delay=SHORT) == 1
    time.sleep(SHORT.total_seconds() + 0.05)
    reclaim(ps)
    assert ps.psitem("q", "a")["state"] == state
    counted = counters(ps)
    assert (counted["released"], counted["redelivered"], counted["dead"]) == (1, 0, 0)


@pytest.mark.parametrize(("reclaim", "state"), RECLAIMING.values(), ids=RECLAIMING.keys())
def test_a_lease_that_ran_out_is_counted_redelivered(ps, r, reclaim, state):
    ps.psadd("q", "a", "1")
    ps.pslease("q", lease=SHORT)
    time.sleep(SHORT.total_seconds() + 0.05)
    reclaim(ps)
    assert ps.psitem("q", "a")["state"] == state
    counted = counters(ps)
    assert (counted["redelivered"], counted["dead"]) == (1, 0)


# -- found beside point 2: expire must not destroy what a lease holds --------------


@pytest.mark.parametrize("state", ["held", "dead"])
def test_expire_ends_the_cool_down_of_a_held_or_dead_item_but_keeps_the_item(ps, r, state):
    """A kept pull's item, leased (or dead) before its cool-down ended: expire
    ends the cool-down only; the value stays, and the item comes back whole."""
    ps.psadd("q", "k", "v", score=5)
    assert ps.pspull("q", purge=False, expire_at=timedelta(seconds=1)) == {"k": b"v"}
    lease = ps.pslease("q", max_deliveries=1 if state == "dead" else None)
    assert list(lease.items) == ["k"]
    if state == "dead":
        assert ps.psrelease("q", lease.token) == 1
        assert list(ps.psdead("q")) == ["k"]
    until(lambda: ps.psexpire().get("q") == 1)  # the cool-down's second has passed
    assert ps.psitem("q", "k")["state"] == state
    assert ps.psget("q", "k") == b"v"
    if state == "held":
        assert ps.psrelease("q", lease.token) == 1
    else:
        assert ps.psrequeue("q") == 1
    again = ps.pslease("q")
    assert again.items == {"k": b"v"}
