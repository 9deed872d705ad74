"""``psacklease`` (an acknowledgement and the next lease in one script call)
and ``psrelease(dead=True)``: what the Python workers of SPEC §11 call, rule
by rule, through the sync and the async client, on a standalone server and on
the 3-master cluster."""

from __future__ import annotations

import inspect
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis

from psctl import AckLease, AsyncRedis, Lease, Redis
from psctl.errors import InvalidArgument
from psctl.layout import SUFFIXES

from .test_leases import SHORT, run_out, server_now, stream
from .test_script_failures import _fails_cleanly_or_works, snapshot

pytestmark = pytest.mark.both_backends


def done(ps, reply):
    """What a ``Lease`` method gave, awaited on the async client's loop."""
    return ps._loop.run_until_complete(reply) if inspect.isawaitable(reply) else reply


# -- psacklease: the acknowledgement, then the lease ------------------------------------


def test_it_acknowledges_the_old_lease_and_leases_the_next_items(ps, r, k):
    stream(ps, 5)
    old = ps.pslease("q", count=2)
    before = server_now(r)
    result = ps.psacklease("q", old.token, count=2, lease=timedelta(minutes=5))
    assert isinstance(result, AckLease) and isinstance(result.lease, Lease)
    acked, lease = result
    assert acked == 2 and result.acked == 2
    assert lease.items == {"k2": b"v2", "k3": b"v3"} and list(lease.items) == ["k2", "k3"]
    assert lease.scores == {"k2": 3.0, "k3": 2.0} and lease.deliveries == {"k2": 1, "k3": 1}
    assert lease.token != old.token and isinstance(lease.token, str) and len(lease.token) >= 16
    assert before + timedelta(minutes=5, milliseconds=-2) <= lease.deadline <= before + timedelta(minutes=5, seconds=2)
    # the old lease's items are gone, as after psack; its records too
    for key in ("k0", "k1"):
        assert r.hget(k("q").values, key) is None and r.hget(k("q").held, key) is None
    assert r.zscore(k("q").leases, old.token) is None and r.hget(k("q").lease, old.token) is None
    assert ps.pskeys("q") == ["k4"]
    assert ps.psstats("q")["counters"]["acked"] == 2 and ps.psstats("q")["counters"]["leased"] == 4
    # the new lease acts through the client that made it
    assert done(ps, lease.ack(["k2"])) == 1 and ps.psack("q", lease.token) == 1


def test_the_new_lease_gives_back_and_kills_through_its_client(ps):
    stream(ps, 3)
    lease = ps.psacklease("q", ps.pslease("q").token, count=2).lease
    assert done(ps, lease.release(["k1"], reason="no such user", dead=True)) == 1
    assert done(ps, lease.release(["k2"])) == 1
    assert ps.psdead("q").reasons == {"k1": "no such user"} and ps.pskeys("q") == ["k2"]


def test_the_acknowledgement_gates_and_cools_down_as_psacks_does(ps, r, k):
    stream(ps, 4)
    old = ps.pslease("q", count=3)
    assert ps.psacklease("q", old.token, ["k0"], gate=True, expire_at=None, count=0).acked == 1
    assert r.sismember(k("q").gated, "k0") and r.zscore(k("q").cooling, "k0") is None
    acked, lease = ps.psacklease("q", old.token, ["k1"])  # the default cool-down: a day
    assert acked == 1 and lease.items == {"k3": b"v3"}
    assert r.zscore(k("q").cooling, "k1") > time.time() + 86000 and not r.sismember(k("q").gated, "k1")
    at = datetime.now(timezone.utc) + timedelta(hours=2)
    assert ps.psacklease("q", old.token, expire_at=at).acked == 1  # k2, the last it held
    assert abs(r.zscore(k("q").cooling, "k2") - at.timestamp()) < 2
    for key in ("k0", "k1", "k2"):
        assert ps.psadd("q", key, "again") is None  # gated or cooling, as after a pull


def test_a_cool_down_already_over_ends_in_the_same_call_as_it_would_in_the_next_lease(ps, r, k):
    ps.psaddmany("q", [("a", "1", 2), ("b", "2", 1)])
    old = ps.pslease("q")
    acked, lease = ps.psacklease("q", old.token, expire_at=datetime.now(timezone.utc) - timedelta(hours=1))
    assert acked == 1 and lease.items == {"b": b"2"}
    assert r.zscore(k("q").cooling, "a") is None  # ended by the lease, as psack then pslease would
    assert ps.psstats("q")["counters"]["expired"] == 1
    assert ps.psadd("q", "a", "new") == 1.0


def test_some_keys_only_and_the_rest_stays_held(ps, r, k):
    stream(ps, 4)
    old = ps.pslease("q", count=3)
    acked, lease = ps.psacklease("q", old.token, ["k1", "k1", "nope"])  # each once; not held: skipped
    assert acked == 1 and lease.items == {"k3": b"v3"}
    assert r.hget(k("q").held, "k0") == old.token.encode()  # still the old lease's
    assert ps.psacklease("q", old.token, [], count=0).acked == 0  # no keys: nothing acknowledged
    acked, lease = ps.psacklease("q", old.token, [])
    assert acked == 0 and not lease
    assert ps.psack("q", old.token) == 2


def test_a_late_acknowledgement_acks_nothing_but_still_leases(ps, r, k):
    ps.psaddmany("q", [("a", "1", 5), ("b", "2", 1)])
    first = ps.pslease("q", lease=SHORT)
    run_out(ps, r)
    acked, lease = ps.psacklease("q", first.token, count=2)
    assert acked == 0  # the lease ran out: its item came back, in this very call, and was leased again
    assert lease.items == {"a": b"1", "b": b"2"} and lease.deliveries == {"a": 2, "b": 1}
    assert r.hget(k("q").held, "a") == lease.token.encode()
    assert ps.psacklease("q", first.token, ["a"], count=0).acked == 0  # never the new holder's item
    assert r.hget(k("q").held, "a") == lease.token.encode()


def test_acknowledging_twice_is_harmless_but_each_call_leases(ps):
    stream(ps, 3)
    old = ps.pslease("q")
    assert ps.psacklease("q", old.token).acked == 1
    acked, lease = ps.psacklease("q", old.token)
    assert acked == 0 and lease.items == {"k2": b"v2"}  # (k1 went to the first call's lease)
    assert ps.psacklease("q", "no-such-token", count=0).acked == 0


def test_delivery_counts_follow_the_items_across_ack_and_lease_cycles(ps, r):
    ps.psaddmany("q", [("a", "1", 3), ("b", "2", 2), ("c", "3", 1)])
    lease = ps.pslease("q")
    seen = []
    while lease:
        (key,) = lease.items
        seen.append((key, lease.deliveries[key]))
        if key == "b" and lease.deliveries[key] == 1:
            ps.psrelease("q", lease.token, score=0.5)  # fails once: back, below c
            lease = ps.pslease("q")
            continue
        lease = ps.psacklease("q", lease.token).lease
    assert seen == [("a", 1), ("b", 1), ("c", 1), ("b", 2)]
    assert ps.psexists("q") and ps.pslen("q") == 0 and ps.psdead("q") == {}


def test_max_deliveries_applies_to_the_new_lease(ps, r):
    ps.psaddmany("q", [("a", "1", 2), ("b", "2", 1)])
    old = ps.pslease("q")
    lease = ps.psacklease("q", old.token, lease=SHORT, max_deliveries=1).lease
    assert lease.items == {"b": b"2"}
    run_out(ps, r)
    ps.psexpire()
    dead = ps.psdead("q")
    assert dead == {"b": b"2"} and dead.deliveries == {"b": 1} and dead.reasons == {"b": "lease expired"}


def test_an_empty_stream_gives_an_empty_lease_and_still_acknowledges(ps):
    ps.psadd("q", "a", "v")
    old = ps.pslease("q")
    acked, lease = ps.psacklease("q", old.token, count=5)
    assert acked == 1 and not lease and len(lease) == 0
    assert lease.items == lease.scores == lease.deliveries == {} and lease.deadline is None
    assert lease.token and done(ps, lease.ack()) == 0
    acked, lease = ps.psacklease("nothing-here", "x")
    assert acked == 0 and not lease


def test_count_zero_only_acknowledges(ps, r, k):
    stream(ps, 3)
    old = ps.pslease("q")
    acked, lease = ps.psacklease("q", old.token, count=0)
    assert acked == 1 and not lease and lease.deadline is None
    assert ps.pskeys("q") == ["k1", "k2"] and not r.exists(k("q").held)


def test_more_than_a_thousand_keys_acknowledges_them_all(ps, r):
    stream(ps, 4)
    old = ps.pslease("q", count=3)
    keys = ["k0", *(f"none{i}" for i in range(1500)), "k1", "k2"]  # k0 in the first thousand, the rest in the last
    acked, lease = ps.psacklease("q", old.token, iter(keys))
    assert acked == 3 and lease.items == {"k3": b"v3"}


def test_bad_arguments_are_refused_before_anything_is_sent(ps, r, k):
    stream(ps)
    old = ps.pslease("q")
    before = snapshot(r, k("q"))
    for bad in ({"count": 1001}, {"count": -1}, {"lease": 0}, {"lease": "5m"}, {"max_deliveries": 0},
                {"expire_at": "tomorrow"}, {"token": ""}):  # fmt: skip
        options = {"token": old.token, **bad}
        with pytest.raises((InvalidArgument, TypeError, ValueError)):
            ps.psacklease("q", options.pop("token"), **options)
    assert snapshot(r, k("q")) == before


# -- one script call, sent once -----------------------------------------------------------


def evalsha_calls(r) -> int:
    return r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


@pytest.mark.parametrize("client", ["sync", "async"])
async def test_one_evalsha_for_an_acknowledgement_and_a_lease(redis_url, client):
    """On the standalone server (its commands counted by INFO commandstats)."""
    plain = Redis.from_url(redis_url)
    plain.flushdb()
    ps = Redis.from_url(redis_url) if client == "sync" else AsyncRedis.from_url(redis_url)

    async def call(method, *args, **kwargs):
        reply = getattr(ps, method)(*args, **kwargs)
        return (await reply) if client == "async" else reply

    try:
        plain.psaddmany("q", [(f"k{i}", "v", i) for i in range(10)])
        warm = await call("pslease", "q")
        await call("psacklease", "q", warm.token)  # (its script loaded)
        await call("psack", "q", "x")
        token = (await call("pslease", "q", count=3)).token
        plain.config_resetstat()
        acked, lease = await call("psacklease", "q", token, count=2)
        stats = plain.info("commandstats")
        assert acked == 3 and len(lease) == 2
        # (commandstats counts the commands a script runs too: only EVALSHA comes from a client)
        assert evalsha_calls(plain) == 1 and not {"cmdstat_eval", "cmdstat_script", "cmdstat_evalsha_ro"} & set(stats)
        plain.config_resetstat()
        assert (await call("psacklease", "q", lease.token, count=0)).acked == 2
        assert evalsha_calls(plain) == 1
        lease = (await call("psacklease", "q", "x", count=2)).lease
        plain.config_resetstat()
        await call("psacklease", "q", lease.token, [*(f"n{i}" for i in range(1000)), *lease.items])
        assert evalsha_calls(plain) == 2  # a psack of the first thousand, then the combined script
    finally:
        plain.flushdb()
        plain.close()
        await (ps.aclose() if client == "async" else call("close"))


# -- wrong types: the same clear errors, nothing changed ------------------------------------


ACK_LEASED = ("values", "scores", "gated", "cooling", "held", "leases", "lease", "deliveries", "stats", "delayed",
              "failures")  # fmt: skip


def test_with_nothing_due_a_wrong_type_fails_naming_the_key_or_not_at_all(ps, r, k):
    """(test_script_failures.py has the cases with something due.)"""
    for field in SUFFIXES:
        r.flushdb()
        stream(ps, 4)
        old = ps.pslease("q", count=2)
        ps.pslease("q")  # a lease held meanwhile, not run out
        bad = getattr(k("q"), field)
        r.delete(bad)
        r.set(bad, "not what psctl keeps here")
        before = snapshot(r, k("q"))
        if field in ACK_LEASED:
            with pytest.raises(redis.ResponseError) as raised:
                ps.psacklease("q", old.token, gate=True)
            assert "WRONGTYPE" in str(raised.value) and str(bad) in str(raised.value), field
            assert snapshot(r, k("q")) == before, field
        else:
            _fails_cleanly_or_works(ps, r, k("q"), field, lambda token=old.token: ps.psacklease("q", token, gate=True))
