"""Time and failure, told truly (SPEC §10), from the library: cool-downs end
at their time whoever runs cron, delayed items are a state of their own (and
a delayed release is one), an item keeps why it last failed, and every state
can be listed. Standalone and the 3-master cluster, sync and async.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from psctl import operations as op
from psctl.layout import stream_keys

from .test_plans import drive

pytestmark = pytest.mark.both_backends

SHORT = timedelta(milliseconds=300)
LONG_AGO = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATER = timedelta(hours=1)


def until(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)
    return found


def counters(ps: Any, name: str = "q") -> dict[str, int]:
    return ps.psstats(name)["counters"]


def now() -> datetime:
    return datetime.now(timezone.utc)


# -- cool-downs end at their time ----------------------------------------------------


def test_a_pull_ends_due_cool_downs_first_and_a_kept_item_leaves_with_its_own(ps, r, k):
    ps.psaddmany("q", [("kept", "v", 5), ("done", "v", 4), ("next", "v", 1)])
    assert ps.pspull("q", purge=False) == {"kept": b"v"}
    assert ps.pspull("q") == {"done": b"v"}
    r.zadd(k("q").cooling, {"kept": 1, "done": 1})  # both long past, no psexpire run
    assert ps.pspull("q") == {"next": b"v"}  # the kept item (now lowest) left with its cool-down
    assert ps.pskeys("q") == [] and ps.psget("q", "kept") is None
    assert r.zrange(k("q").cooling, 0, -1) == [b"next"]
    assert counters(ps)["expired"] == 2
    assert ps.psadd("q", "done", "v") == 1.0  # added again at once


def test_a_lease_ends_due_cool_downs_first(ps, r, k):
    ps.psaddmany("q", [("kept", "v", 5), ("other", "v", 1)])
    ps.pspull("q", purge=False)
    r.zadd(k("q").cooling, {"kept": 1})
    lease = ps.pslease("q", count=5)
    assert list(lease.items) == ["other"]
    assert r.exists(k("q").cooling) == 0 and counters(ps)["expired"] == 1


def test_a_due_cool_down_ends_in_an_add_of_many_too(ps, r, k):
    r.zadd(k("q").cooling, {"a": 1, "b": 9999999999})
    assert ps.psaddmany("q", [("a", "v", 1), ("b", "v", 1), ("a", "w", 1)]) == [1.0, None, 2.0]
    assert ps.psaddmany("q", [("c", "v", 1)], summary=True)["refused"] == 0
    assert r.zrange(k("q").cooling, 0, -1) == [b"b"] and counters(ps)["expired"] == 1


def test_item_and_stats_never_show_a_cool_down_whose_time_has_come(ps, r, k):
    r.zadd(k("q").cooling, {"over": 1, "later": 9999999999})
    assert ps.psitem("q", "over") == {"state": "absent"}
    assert ps.psitem("q", "later")["state"] == "cooling"
    stats = ps.psstats("q")
    assert stats["cooling"] == 1
    assert stats["next_cool_down_end"] == datetime.fromtimestamp(9999999999, timezone.utc)
    assert ps.pskeys("q", state="cooling") == [{"key": "later", "until": datetime.fromtimestamp(9999999999, timezone.utc)}]


def test_a_cool_down_ends_by_itself_at_its_time(ps, r):
    """The newcomer's case: pull with a short cool-down, wait, add again: no psexpire anywhere."""
    ps.psadd("q", "k", "v")
    assert ps.pspull("q", expire_at=timedelta(seconds=1)) == {"k": b"v"}
    assert ps.psadd("q", "k", "v") is None
    until(lambda: ps.psadd("q", "k", "v") == 1.0)


# -- delayed items -------------------------------------------------------------------


def test_a_delayed_item_waits_only_from_its_time(ps, r, k):
    assert ps.psadd("q", "later", "v", 9, delay=timedelta(seconds=2)) == 9.0  # (not SHORT: eight calls come first)
    assert ps.psadd("q", "now", "v", 1) == 1.0
    assert ps.pslen("q") == 1 and ps.pskeys("q") == ["now"] and list(ps.psvalues("q")) == ["now"]
    item = ps.psitem("q", "later")
    assert item["state"] == "delayed" and item["score"] == 9.0 and now() < item["until"] < now() + timedelta(seconds=5)
    stats = ps.psstats("q")
    assert (stats["waiting"], stats["delayed"], stats["held"], stats["overdue"]) == (1, 1, 0, 0)
    assert stats["next_delayed_due"] == item["until"]
    assert ps.pspull("q") == {"now": b"v"}
    until(lambda: ps.pspull("q") == {"later": b"v"})  # inside the pull, once due: no psexpire
    assert r.exists(k("q").delayed, k("q").delayed_scores) == 0


def test_a_delayed_item_at_a_time_and_one_already_due(ps, r):
    ps.psadd("q", "far", "v", delay=datetime(2099, 1, 1))  # naive: UTC
    assert ps.psitem("q", "far")["until"] == datetime(2099, 1, 1, tzinfo=timezone.utc)
    assert ps.psadd("q", "past", "v", delay=LONG_AGO) == 1.0
    assert ps.psitem("q", "past")["state"] == "waiting"  # a time that has come means now


def test_an_add_to_a_delayed_key_updates_it_and_keeps_its_time_unless_given_one(ps, r):
    ps.psadd("q", "k", "old", 2, delay=LATER)
    first = ps.psitem("q", "k")["until"]
    assert ps.psadd("q", "k", "new", 3) == 5.0
    item = ps.psitem("q", "k")
    assert (item["state"], item["score"], item["until"]) == ("delayed", 5.0, first)
    assert ps.psget("q", "k") == b"new"
    ps.psadd("q", "k", "newer", 1, delay=LONG_AGO)  # a time that has come: it waits now
    assert ps.psitem("q", "k")["state"] == "waiting" and ps.pskeys("q", withscores=True) == [("k", 6.0)]
    ps.psadd("q", "k", "v", 1, delay=LATER)  # a waiting item given a time is delayed
    assert ps.psitem("q", "k")["state"] == "delayed" and ps.pslen("q") == 0


def test_psaddmany_takes_a_delay_per_item_or_for_all(ps, r):
    ps.psaddmany("q", [("a", "v", 1, LATER), ("b", "v", 2), ("c", "v", 3, None)])
    assert ps.pskeys("q") == ["c", "b"]
    ps.psaddmany("q", [("d", "v", 1), ("e", "v", 1, LONG_AGO)], delay=LATER)
    assert sorted(row["key"] for row in ps.pskeys("q", state="delayed")) == ["a", "d"]
    assert ps.psitem("q", "e")["state"] == "waiting"
    with pytest.raises(ValueError, match="a delay must be"):
        ps.psaddmany("q", [("x", "v", 1, 5)])


def test_psexpire_starts_due_delayed_items_too(ps, r):
    ps.psadd("q", "a", "v", delay=SHORT)
    time.sleep(SHORT.total_seconds() + 0.05)
    assert ps.pslen("q") == 0  # nobody pulled yet
    ps.psexpire()
    assert ps.pslen("q") == 1 and ps.psitem("q", "a")["state"] == "waiting"


def test_a_blocked_pull_and_lease_receive_a_delayed_item_at_its_time(ps, r):
    started = time.monotonic()  # (before the add: its reply may come late to this side on a loaded machine)
    ps.psadd("q", "a", "v", delay=SHORT)
    assert ps.pspull("q", block=10) == {"a": b"v"}
    assert time.monotonic() - started >= SHORT.total_seconds() - 0.01  # not before its time
    ps.psadd("q", "b", "v", delay=SHORT)
    assert list(ps.pslease("q", block=10).items) == ["b"]


def test_the_wait_of_a_blocked_pull_ends_when_the_next_delayed_item_is_due():
    """(the plan, no server) A call that took nothing says when the next delayed
    item is due: the wait ends then, not after the usual second. The server
    ends a blocked wait only on its timer's tick (every 100 ms): the last 100 ms
    are waited out by the client, to the millisecond."""
    keys = stream_keys("q")
    plan = op.pull(keys, 1, True, False, None, block=30)
    requests, pulled = drive(plan, [[250], None, [40], None, [b"a", b"v"]])
    assert [type(r).__name__ for r in requests] == ["Call", "Command", "Call", "Pause", "Call"]
    assert requests[1].args == ("BLPOP", keys.wake, b"0.15") and requests[3] == 0.04
    assert pulled == {"a": b"v"}
    requests, _ = drive(op.pull(keys, 1, True, False, None, block=30), [[0], [b"a", b"v"]])
    assert [type(r).__name__ for r in requests] == ["Call", "Call"]  # due now: called again at once


def test_a_delayed_release_is_delayed_not_held_and_never_overdue_nor_redelivered(ps, r):
    ps.psaddmany("q", [(f"k{i}", "v", i) for i in range(10)])
    for _ in range(3):  # each fails three times, given back with a short delay
        lease = until(lambda: ps.pslease("q", count=10, max_deliveries=3))
        assert ps.psrelease("q", lease.token, delay=SHORT, reason="try later") == len(lease)
        stats = ps.psstats("q")
        assert stats["held"] == 0 and stats["overdue"] == 0 and stats["delayed"] == len(lease) or stats["dead"]
    until(lambda: ps.psstats("q")["dead"] == 10)
    seen = counters(ps)
    assert (seen["released"], seen["dead"], seen["redelivered"]) == (30, 10, 0)


# -- why it failed -------------------------------------------------------------------


def test_a_release_keeps_its_reason_the_time_and_the_delivery(ps, r):
    ps.psadd("q", "a", "v")
    lease = ps.pslease("q", max_deliveries=2)
    before = now()
    ps.psrelease("q", lease.token, reason="the mail server said 550")
    failure = ps.psitem("q", "a")["last_failure"]
    assert failure["reason"] == "the mail server said 550" and failure["delivery"] == 1
    assert before - timedelta(seconds=5) < failure["at"] < now() + timedelta(seconds=5)
    ps.psrelease("q", ps.pslease("q", max_deliveries=2).token, reason=ValueError("bad input"))
    dead = ps.psdead("q")
    assert dead.reasons == {"a": "ValueError: bad input"} and dead.deliveries == {"a": 2}
    assert dead.failed_at["a"] >= failure["at"]
    assert ps.psitem("q", "a")["last_failure"]["delivery"] == 2


def test_a_reason_is_kept_up_to_2_kib(ps, r):
    ps.psadd("q", "a", "v")
    ps.psrelease("q", ps.pslease("q").token, reason="é" * 5000)
    kept = ps.psitem("q", "a")["last_failure"]["reason"]
    assert kept == "é" * 1024 and len(kept.encode()) == 2048


def test_a_lease_that_ran_out_records_lease_expired(ps, r):
    ps.psadd("q", "a", "v")
    ps.pslease("q", lease=SHORT, max_deliveries=1)
    until(lambda: ps.psexpire() is not None and ps.psdead("q"))
    assert ps.psdead("q").reasons == {"a": "lease expired"}


def test_an_unworked_release_keeps_no_failure(ps, r):
    ps.psadd("q", "a", "v")
    ps.psrelease("q", ps.pslease("q").token, attempted=False)
    assert "last_failure" not in ps.psitem("q", "a")


def test_psleased_gives_back_with_the_exception_as_reason(r):
    r.psadd("q", "a", "v")
    with pytest.raises(KeyError):
        with r.psleased("q"):
            raise KeyError("missing")
    assert r.psitem("q", "a")["last_failure"]["reason"] == "KeyError: 'missing'"


async def test_psleased_of_the_async_client_gives_back_with_the_exception_as_reason(backend, r):
    client = backend.async_()
    try:
        await client.psadd("q", "a", "v")
        with pytest.raises(KeyError):
            async with client.psleased("q"):
                raise KeyError("missing")
        assert (await client.psitem("q", "a"))["last_failure"]["reason"] == "KeyError: 'missing'"
    finally:
        await client.aclose()


@pytest.mark.parametrize("forget", ["ack", "requeue", "remove", "pull"])
def test_a_failure_is_forgotten_when_its_item_is_done_or_requeued(ps, r, k, forget):
    ps.psadd("q", "a", "v")
    ps.psrelease("q", ps.pslease("q", max_deliveries=1).token, reason="boom")
    assert r.hexists(k("q").failures, "a")
    if forget == "requeue":
        ps.psrequeue("q")
        assert "last_failure" not in ps.psitem("q", "a")
        return
    ps.psrequeue("q")
    ps.psrelease("q", ps.pslease("q").token, reason="boom again")
    if forget == "ack":
        ps.psack("q", ps.pslease("q").token)
    elif forget == "remove":
        ps.psremove("q", ["a"])
    else:
        ps.pspull("q")
    assert not r.exists(k("q").failures)
    ps.psadd("q", "a", "v", readd=True)
    assert "last_failure" not in ps.psitem("q", "a")


def test_no_per_item_record_is_left_after_items_go(ps, r, k):
    """Lease, release with a reason, ack; lease, remove: nothing per item remains."""
    n = 300
    ps.psaddmany("q", [(f"k{i}", "v", 1) for i in range(n)])
    lease = ps.pslease("q", count=n)
    ps.psrelease("q", lease.token, reason="later")
    ps.psack("q", ps.pslease("q", count=n).token, expire_at=None)
    ps.psaddmany("q", [(f"j{i}", "v", 1) for i in range(n)])
    ps.psrelease("q", ps.pslease("q", count=n).token, delay=LATER, reason="x")
    ps.psremove("q", [f"j{i}" for i in range(n)])
    keys = k("q")
    per_item = (keys.values, keys.scores, keys.held, keys.deliveries, keys.dead, keys.delayed,
                keys.delayed_scores, keys.failures, keys.leases, keys.lease)  # fmt: skip
    assert r.exists(*per_item) == 0  # (a lease whose items were all removed is forgotten too)


# -- every state, listed -------------------------------------------------------------


def test_keys_in_every_state_with_what_applies(ps, r):
    ps.psaddmany("q", [("held", "v", 9), ("dead", "v", 8), ("gated", "v", 7), ("cooling", "v", 6),
                       ("waiting", "v", 5)])  # fmt: skip
    lease = ps.pslease("q")  # held
    ps.psrelease("q", ps.pslease("q", max_deliveries=1).token, reason="no")  # dead
    ps.pspull("q", gate=True, expire_at=None)  # gated
    ps.pspull("q", expire_at=datetime(2031, 1, 1, tzinfo=timezone.utc))  # cooling
    ps.psadd("q", "delayed", "v", 4, delay=datetime(2030, 1, 1))
    assert ps.pskeys("q", state="waiting") == [{"key": "waiting", "score": 5.0, "deliveries": 0}]
    assert ps.pskeys("q", state="delayed") == [
        {"key": "delayed", "until": datetime(2030, 1, 1, tzinfo=timezone.utc), "score": 4.0, "deliveries": 0,
         "reason": None}
    ]
    assert ps.pskeys("q", state="held") == [
        {"key": "held", "token": lease.token, "deadline": lease.deadline, "score": 9.0, "deliveries": 1}
    ]
    assert ps.pskeys("q", state="cooling") == [{"key": "cooling", "until": datetime(2031, 1, 1, tzinfo=timezone.utc)}]
    assert ps.pskeys("q", state="gated") == [{"key": "gated"}]
    [dead] = ps.pskeys("q", state="dead")
    assert (dead["key"], dead["score"], dead["deliveries"], dead["reason"]) == ("dead", 8.0, 1, "no")
    assert abs(dead["failed_at"] - now()) < timedelta(seconds=30)
    with pytest.raises(ValueError, match="state must be one of"):
        ps.pskeys("q", state="lost")


@pytest.mark.parametrize("state", ["waiting", "delayed", "held", "cooling", "gated", "dead"])
def test_a_state_of_many_keys_is_read_a_page_at_a_time(ps, r, k, state):
    n = 250
    keys = k("q")
    names = [f"k{i:03d}" for i in range(n)]
    if state == "waiting":
        ps.psaddmany("q", [(key, "v", 1) for key in names])
    elif state == "delayed":
        ps.psaddmany("q", [(key, "v", 1) for key in names], delay=LATER)
    elif state in ("held", "dead"):
        ps.psaddmany("q", [(key, "v", 1) for key in names])
        for _ in range(5):  # five leases of 50: a page ends with the lease that reaches its size
            lease = ps.pslease("q", count=50, max_deliveries=1)
            if state == "dead":
                ps.psrelease("q", lease.token)
    elif state == "cooling":
        r.zadd(keys.cooling, {key: 9999999999 for key in names})
    else:
        r.sadd(keys.gated, *names)
    seen, start, pages = [], 0, 0
    while start is not None:
        rows, start = ps.pskeyspage("q", state, start, 60)
        seen += [row["key"] for row in rows]
        pages += 1
    # (SSCAN's COUNT is a hint; a page of held items ends with the lease that fills it: 100, 100, 50)
    assert sorted(seen) == names and pages >= {"gated": 2, "held": 3}.get(state, 4)

    assert len(ps.pskeys("q", state=state, limit=70)) == 70


# -- found by trying it: what is due shows as it is, and times beyond reading are refused ---


def test_a_delayed_item_whose_time_has_come_is_shown_waiting_before_any_pull(ps, r):
    ps.psadd("q", "a", "v", 3, delay=SHORT)
    ps.psadd("q", "b", "v", 1, delay=LATER)
    time.sleep(SHORT.total_seconds() + 0.05)
    assert ps.psitem("q", "a") == {"state": "waiting", "score": 3.0, "deliveries": 0}
    stats = ps.psstats("q")
    assert (stats["waiting"], stats["delayed"]) == (1, 1)
    assert stats["next_delayed_due"] == ps.psitem("q", "b")["until"] > stats["server_time"]
    assert [row["key"] for row in ps.pskeys("q", state="delayed")] == ["b"]


@pytest.mark.parametrize(
    "call",
    [
        lambda ps: ps.psadd("q", "k", "v", delay=timedelta(days=10**8)),
        lambda ps: ps.psadd("q", "k", "v", delay=datetime(9999, 12, 31)),
        lambda ps: ps.psaddmany("q", [("k", "v", 1, timedelta(weeks=10**6))]),
        lambda ps: ps.pspull("q", expire_at=timedelta(weeks=10**6)),
        lambda ps: ps.pslease("q", lease=timedelta(weeks=10**6)),
    ],
    ids=["add delay", "add time", "addmany delay", "pull cool-down", "lease"],
)
def test_a_time_too_far_to_read_back_is_refused_before_anything_is_written(ps, r, call):
    ps.psadd("q", "x", "v")
    before = r.dbsize()
    with pytest.raises(ValueError, match="at most 1,000,000,000 seconds|must be before 9000"):
        call(ps)
    assert r.dbsize() == before and ps.pskeys("q") == ["x"]


def test_times_written_by_another_tool_beyond_a_datetime_still_read(ps, r, k):
    ps.psadd("q", "a", "v")
    r.zadd(k("q").cooling, {"far": 1e13})  # year 318857
    r.zadd(k("q").delayed, {"later": 1e17})
    r.zadd(k("q").delayed_scores, {"later": 1})
    r.hset(k("q").values, "later", "v")
    stats = ps.psstats("q")
    assert stats["next_cool_down_end"].year == 9999 and stats["next_delayed_due"].year == 9999
    assert ps.psitem("q", "far")["until"].year == 9999
    assert ps.pskeys("q", state="delayed")[0]["until"].year == 9999


def test_incr_and_decr_all_reach_delayed_items_too(ps, r):
    ps.psadd("q", "now", "v", 5)
    ps.psadd("q", "later", "v", 3, delay=LATER)
    assert ps.psincrement("q", "later", 2) == 5.0
    assert ps.psdecrement_all("q", 10) == 2
    assert ps.psitem("q", "later")["score"] == -5.0 and ps.pskeys("q", withscores=True) == [("now", -5.0)]
    assert ps.psincrement("q", "nope", 1) is None


def test_psexpire_says_what_else_came_due(ps, r, k):
    ps.psaddmany("q", [("a", "v", 1), ("b", "v", 1)])
    ps.pslease("q", lease=SHORT)  # a: its lease runs out
    ps.psadd("q", "c", "v", delay=SHORT)
    r.zadd(k("q").cooling, {"x": 1})
    time.sleep(SHORT.total_seconds() + 0.05)
    done = ps.psexpire()
    assert done == {"q": 1} and done.returned == {"q": 1} and done.started == {"q": 1}
