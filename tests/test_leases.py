"""Leases (SPEC §6), rule by rule, through the sync and the async client, on a
standalone server and on the 3-master cluster."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from psctl.errors import InvalidArgument
from psctl import Lease

pytestmark = pytest.mark.both_backends

SHORT = timedelta(milliseconds=300)  # a lease that runs out during the test


def server_now(r) -> datetime:
    seconds, micros = r.time()
    return datetime.fromtimestamp(seconds + micros / 1e6, timezone.utc)


def stream(ps, n: int = 3) -> None:
    ps.psaddmany("q", [(f"k{i}", f"v{i}", n - i) for i in range(n)])  # k0 highest


def run_out(ps, r) -> None:
    """Lets SHORT leases run out: a sleep past their length (and 50 ms)."""
    time.sleep(SHORT.total_seconds() + 0.05)


# -- pslease -----------------------------------------------------------------------


def test_a_lease_takes_the_highest_and_holds_them_until_its_deadline(ps, r, k):
    stream(ps)
    before = server_now(r)
    lease = ps.pslease("q", count=2, lease=timedelta(minutes=5))
    assert isinstance(lease, Lease) and lease
    assert lease.items == {"k0": b"v0", "k1": b"v1"} and list(lease.items) == ["k0", "k1"]
    assert lease.scores == {"k0": 3.0, "k1": 2.0} and lease.deliveries == {"k0": 1, "k1": 1}
    assert isinstance(lease.token, str) and len(lease.token) >= 16
    assert before + timedelta(minutes=5, milliseconds=-2) <= lease.deadline <= before + timedelta(minutes=5, seconds=2)
    assert lease.deadline.tzinfo is timezone.utc
    # held: in no one's pull, not in pslen/pskeys/psvalues, its value kept
    assert ps.pslen("q") == 1 and ps.pskeys("q") == ["k2"] and ps.psvalues("q") == {"k2": b"v2"}
    assert ps.pspull("q", count=5) == {"k2": b"v2"}
    assert ps.pslease("q", count=5).items == {}
    assert r.hget(k("q").values, "k0") == b"v0"


def test_an_empty_stream_gives_an_empty_lease(ps):
    lease = ps.pslease("q", count=3)
    assert not lease and lease.items == lease.scores == lease.deliveries == {} and lease.deadline is None
    assert ps.psack("q", lease.token) == 0


def test_a_lease_waits_like_a_pull(ps, backend, long_poll):
    adder = backend.sync()
    started = time.monotonic()
    import threading

    timer = threading.Timer(0.3, lambda: adder.psadd("q", "late", "v"))
    timer.start()
    lease = ps.pslease("q", block=5)
    timer.join()
    # woken by the add, not by a poll (a minute here) nor the 5 s block
    assert lease.items == {"late": b"v"} and 0.25 <= time.monotonic() - started < 4
    adder.close()


def test_bad_lease_arguments_are_refused_before_sending(ps, r):
    for bad in ({"count": 1001}, {"count": -1}, {"lease": 0}, {"lease": timedelta(seconds=-1)}, {"lease": "5m"},
                {"max_deliveries": 0}, {"max_deliveries": True}):  # fmt: skip
        with pytest.raises((InvalidArgument, ValueError)):
            ps.pslease("q", **bad)
    assert r.dbsize() == 0


# -- psack ----------------------------------------------------------------------------


def test_ack_finishes_the_items_with_a_pulls_gate_and_cool_down(ps, r, k):
    stream(ps)
    lease = ps.pslease("q", count=3)
    assert ps.psack("q", lease.token, ["k0"], gate=True, expire_at=None) == 1
    assert r.sismember(k("q").gated, "k0") and r.zscore(k("q").cooling, "k0") is None
    assert ps.psack("q", lease.token) == 2  # the rest it holds
    assert r.zscore(k("q").cooling, "k1") > time.time() + 86000  # a day by default
    for key in ("k0", "k1", "k2"):
        assert r.hget(k("q").values, key) is None
        assert ps.psadd("q", key, "again") is None  # gated or cooling, as after a pull
    for key in k("q").leasing[:4]:  # nothing left of the lease
        assert not r.exists(key), key


def test_acknowledging_twice_is_harmless(ps):
    stream(ps)
    lease = ps.pslease("q", count=2)
    assert ps.psack("q", lease.token, ["k0"]) == 1
    assert ps.psack("q", lease.token, ["k0"]) == 0
    assert ps.psack("q", lease.token) == 1 and ps.psack("q", lease.token) == 0
    assert ps.psack("q", "no-such-token") == 0


def test_an_ack_after_the_lease_ran_out_does_not_touch_the_new_holders_item(ps, r, k):
    ps.psadd("q", "a", "v", 5)
    first = ps.pslease("q", lease=SHORT)
    run_out(ps, r)
    second = ps.pslease("q", lease=timedelta(minutes=1))  # the item came back and was leased again
    assert second.items == {"a": b"v"} and second.deliveries == {"a": 2}
    assert ps.psack("q", first.token) == 0
    assert ps.psack("q", first.token, ["a"]) == 0
    assert ps.psrelease("q", first.token) == 0 and ps.psextend("q", first.token, 60) is None
    assert r.hget(k("q").held, "a") == second.token.encode()  # still the new holder's
    assert ps.psack("q", second.token) == 1


def test_a_lease_that_ran_out_skips_even_before_its_items_come_back(ps, r, k):
    ps.psadd("q", "a", "v")
    lease = ps.pslease("q", lease=SHORT)
    run_out(ps, r)
    assert ps.psack("q", lease.token) == 0  # overdue: no longer its own
    assert r.hget(k("q").held, "a") == lease.token.encode()  # not yet returned, but untouched
    assert ps.pslease("q").items == {"a": b"v"}  # and it comes back with the next lease


# -- running out, deliveries, dead ------------------------------------------------------


def test_items_of_a_lease_that_ran_out_come_back_with_their_score(ps, r):
    stream(ps)
    ps.pslease("q", count=2, lease=SHORT)
    run_out(ps, r)
    assert ps.pskeys("q", withscores=True) == [("k2", 1.0)]  # nothing comes back by itself...
    ps.psexpire()  # ...until psexpire, a pull or a lease on the stream
    assert ps.pskeys("q", withscores=True) == [("k0", 3.0), ("k1", 2.0), ("k2", 1.0)]


def test_a_pull_gets_what_a_lease_that_ran_out_held(ps, r):
    stream(ps, 1)
    ps.pslease("q", lease=SHORT)
    run_out(ps, r)
    assert ps.pspull("q") == {"k0": b"v0"}


def test_psexpire_brings_back_every_streams_expired_leases(ps, r):
    for name in ("a", "b"):
        ps.psaddmany(name, [("x", "v", 1), ("y", "v", 2)])
        ps.pslease(name, count=2, lease=SHORT)
    run_out(ps, r)
    ps.psexpire()
    assert sorted(ps.pskeys("a")) == sorted(ps.pskeys("b")) == ["x", "y"]


@pytest.mark.parametrize("count", [1, 2])  # one item's script, and the many items' one
def test_deliveries_count_the_leases_and_max_deliveries_sends_to_dead(ps, r, k, count):
    ps.psadd("q", "a", "v", 7)
    for n in (1, 2, 3):
        lease = ps.pslease("q", count=count, lease=SHORT, max_deliveries=3)
        assert lease.deliveries == {"a": n} and lease.scores == {"a": 7.0}
        run_out(ps, r)
        ps.psexpire()
    assert ps.pslen("q") == 0
    dead = ps.psdead("q")
    assert dead == {"a": b"v"} and dead.deliveries == {"a": 3}
    assert ps.psadd("q", "a", "v") is None and ps.psadd("q", "a", "v", readd=True) is None  # dead: refused


@pytest.mark.parametrize("count", [1, 3])
def test_a_pull_that_takes_an_item_for_good_forgets_its_deliveries(ps, r, k, count):
    stream(ps)
    for _ in range(2):
        ps.psrelease("q", ps.pslease("q", count=3).token)  # delivered twice, back
    assert ps.pspull("q", count=count, expire_at=None)
    ps.psaddmany("q", [("k0", "v", 3), ("k1", "v", 2), ("k2", "v", 1)])
    delivered = ps.pslease("q", count=3).deliveries
    assert delivered == ({"k0": 1, "k1": 3, "k2": 3} if count == 1 else {"k0": 1, "k1": 1, "k2": 1})


def test_a_pull_that_keeps_its_items_keeps_their_deliveries(ps, r):
    ps.psadd("q", "a", "v", 1)
    ps.psrelease("q", ps.pslease("q").token)
    assert ps.pspull("q", purge=False, expire_at=None) == {"a": b"v"}
    assert ps.pslease("q").deliveries == {"a": 2}


def test_release_gives_items_back_at_once_with_their_score_or_a_new_one(ps, r):
    stream(ps)
    lease = ps.pslease("q", count=3)
    assert ps.psrelease("q", lease.token, ["k0"]) == 1
    assert ps.psrelease("q", lease.token, ["k1"], score=10) == 1
    assert ps.pskeys("q", withscores=True) == [("k1", 10.0), ("k0", 3.0)]
    assert ps.psrelease("q", lease.token, ["k0"]) == 0  # not its own any more
    assert ps.psrelease("q", lease.token) == 1  # k2, the last it held
    assert ps.psextend("q", lease.token, 60) is None


def test_release_with_a_delay_keeps_them_delayed_until_it_has_passed(ps, r):
    ps.psadd("q", "a", "v", 2)
    lease = ps.pslease("q")
    # (a second: the two looks below must come before it ends, on a loaded machine too)
    assert ps.psrelease("q", lease.token, delay=timedelta(seconds=1)) == 1
    assert ps.pspull("q") == {}  # not back yet
    assert ps.psitem("q", "a")["state"] == "delayed"
    time.sleep(1.05)
    again = ps.pslease("q")
    assert again.items == {"a": b"v"} and again.deliveries == {"a": 2}  # back, its deliveries kept
    assert ps.psrelease("q", lease.token) == 0


def test_a_release_at_max_deliveries_sends_to_dead(ps, r):
    ps.psadd("q", "a", "v")
    lease = ps.pslease("q", max_deliveries=1)
    assert ps.psrelease("q", lease.token) == 1
    assert ps.pslen("q") == 0 and ps.psdead("q") == {"a": b"v"}


def test_a_release_marked_dead_sends_the_items_to_the_dead_set_now(ps, r, k):
    stream(ps, 3)
    lease = ps.pslease("q", count=2)  # no max_deliveries
    assert ps.psrelease("q", lease.token, ["k0"], reason="bad input", dead=True) == 1
    dead = ps.psdead("q")
    assert dead == {"k0": b"v0"} and dead.deliveries == {"k0": 1} and dead.reasons == {"k0": "bad input"}
    assert dead.failed_at["k0"] is not None
    assert ps.psitem("q", "k0")["state"] == "dead" and ps.psitem("q", "k1")["state"] == "held"
    assert ps.psstats("q")["counters"]["dead"] == 1
    assert ps.psadd("q", "k0", "again") is None  # dead: refused, as any dead key
    assert ps.psrequeue("q", ["k0"]) == 1 and ps.pskeys("q", withscores=True) == [("k0", 3.0), ("k2", 1.0)]


def test_dead_whatever_the_deliveries_and_max_deliveries(ps, r):
    ps.psadd("q", "a", "v", 4)
    ps.psrelease("q", ps.pslease("q").token)  # delivered once, back
    lease = ps.pslease("q", max_deliveries=10)
    assert lease.deliveries == {"a": 2}
    assert ps.psrelease("q", lease.token, reason=ValueError("no such user"), dead=True) == 1
    dead = ps.psdead("q")
    assert dead.deliveries == {"a": 2} and dead.reasons == {"a": "ValueError: no such user"}
    assert ps.pskeys("q", state="dead")[0]["score"] == 4.0  # its remembered score


def test_dead_skips_keys_the_token_does_not_hold(ps, r, k):
    ps.psaddmany("q", [("a", "1", 2), ("b", "2", 1)])
    lease = ps.pslease("q", lease=SHORT)
    assert ps.psrelease("q", lease.token, ["nope"], reason="x", dead=True) == 0
    run_out(ps, r)
    assert ps.psrelease("q", lease.token, reason="x", dead=True) == 0  # its lease ran out
    assert ps.psdead("q") == {}
    again = ps.pslease("q", count=2)
    assert again.items == {"a": b"1", "b": b"2"}
    assert ps.psrelease("q", lease.token, ["a"], dead=True) == 0  # someone else's now
    assert ps.psrelease("q", again.token, dead=True) == 2 and ps.psdead("q").reasons == {"a": None, "b": None}


def test_dead_ignores_a_score_and_a_delay_and_refuses_unattempted(ps, r):
    """As for an item at its max_deliveries: a worker passes its back-off whatever the verdict."""
    ps.psaddmany("q", [("a", "1", 2), ("b", "2", 1)])
    lease = ps.pslease("q", count=2)
    with pytest.raises(InvalidArgument, match="dead=True"):
        ps.psrelease("q", lease.token, attempted=False, dead=True)
    assert ps.psitem("q", "a")["state"] == "held"
    assert ps.psrelease("q", lease.token, ["a"], score=9, delay=timedelta(minutes=1), reason="x", dead=True) == 1
    assert ps.psitem("q", "a")["state"] == "dead" and ps.pskeys("q", state="dead")[0]["score"] == 2.0
    assert ps.pskeys("q", state="delayed") == [] and ps.psitem("q", "b")["state"] == "held"


@pytest.mark.parametrize("delay", [None, 0.3])
def test_a_release_of_items_not_worked_on_does_not_count_their_delivery(ps, r, delay):
    """What a stopping worker gives back unstarted: never dead, its delivery uncounted."""
    ps.psaddmany("q", [("a", "1", 5), ("b", "2", 3)])
    ps.psrelease("q", ps.pslease("q", count=2).token)  # delivered once, back
    lease = ps.pslease("q", count=2, max_deliveries=2)
    assert lease.deliveries == {"a": 2, "b": 2}  # a release now would kill them
    assert ps.psrelease("q", lease.token, delay=delay, attempted=False) == 2
    if delay:
        time.sleep(delay + 0.05)
    assert ps.psdead("q") == {}
    again = ps.pslease("q", count=2, max_deliveries=2)
    assert again.items.keys() == {"a", "b"} and again.deliveries == {"a": 2, "b": 2}


def test_requeue_puts_dead_items_back_with_deliveries_reset(ps, r):
    ps.psaddmany("q", [("a", "1", 5), ("b", "2", 3)])
    lease = ps.pslease("q", count=2, max_deliveries=1)
    ps.psrelease("q", lease.token)
    assert list(ps.psdead("q")) == ["a", "b"]
    assert ps.psdead("q", limit=1) == {"a": b"1"}
    assert ps.psrequeue("q", ["a", "nope"]) == 1
    assert ps.pskeys("q", withscores=True) == [("a", 5.0)]
    assert ps.psrequeue("q", score=9) == 1 and ps.pskeys("q", withscores=True) == [("b", 9.0), ("a", 5.0)]
    assert ps.psdead("q") == {} and ps.psrequeue("q") == 0
    assert ps.pslease("q").deliveries == {"b": 1}  # reset


# -- extend -----------------------------------------------------------------------------


def test_extend_moves_the_deadline_of_what_is_still_held(ps, r):
    stream(ps, 2)
    lease = ps.pslease("q", count=2, lease=timedelta(seconds=1))  # (not SHORT: extended before it runs out)
    before = server_now(r)
    deadline = ps.psextend("q", lease.token, timedelta(minutes=2))
    assert before + timedelta(minutes=2, milliseconds=-2) <= deadline <= before + timedelta(minutes=2, seconds=2)
    time.sleep(1.05)  # past the first deadline
    assert ps.pspull("q") == {}  # still held
    ps.psack("q", lease.token)
    assert ps.psextend("q", lease.token, 60) is None


# -- psleased -------------------------------------------------------------------------


def test_psleased_acks_on_a_normal_exit_and_releases_on_an_exception(backend, r):
    client = backend.sync()
    stream(client)
    with client.psleased("q", count=2) as lease:
        assert lease.items == {"k0": b"v0", "k1": b"v1"}
        lease.release(["k1"])
    assert client.pskeys("q") == ["k1", "k2"]  # k0 acknowledged, k1 given back early
    with pytest.raises(RuntimeError):
        with client.psleased("q", count=1) as lease:
            raise RuntimeError("the work failed")
    assert client.pskeys("q") == ["k1", "k2"]  # given back
    client.close()


async def test_psleased_async(backend, r):
    client = backend.async_()
    await client.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    async with client.psleased("q") as lease:
        assert lease.items == {"a": b"v"}
        assert await lease.extend(60) is not None
    with pytest.raises(KeyError):
        async with client.psleased("q") as lease:
            raise KeyError("b")
    assert await client.pskeys("q") == ["b"]
    await client.aclose()


# -- psadd while held -----------------------------------------------------------------


def test_add_refuses_a_held_key_and_readd_does_not_lift_a_lease(ps, r, k):
    ps.psadd("q", "a", "v", 1)
    lease = ps.pslease("q")
    assert ps.psadd("q", "a", "w") is None and ps.psadd("q", "a", "w", readd=True) is None
    assert ps.psaddmany("q", [("a", "w", 1), ("b", "w", 1)]) == [None, 1.0]
    assert ps.psaddmany("q", [("a", "w", 1)], readd=True) == [None]
    assert lease.items == {"a": b"v"} and r.hget(k("q").values, "a") == b"v"


def test_psdelete_removes_the_leases_too(ps, r, k):
    stream(ps)
    ps.pslease("q", count=1)
    lease = ps.pslease("q", count=1, max_deliveries=1)
    ps.psrelease("q", lease.token)  # k1 dead
    assert ps.psdelete("q") is True
    assert not any(r.exists(key) for key in k("q").every)
    assert ps.psnames() == []
