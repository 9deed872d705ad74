"""Aging (SPEC §12, issue 24): a waiting item gains one point of priority per
DURATION waited, kept by storing each score offset by the points gained since
a per-stream epoch (lua/includes/aging.lua), so that a pull does no per-item
work. Every score that comes out or goes in is effective. The clock is the
server's: with a short DURATION (50 ms) each score read is checked against
the points it must have gained between two readings of the server's TIME.
Standalone and the 3-master cluster, sync and async."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from psctl import InvalidArgument

from .helpers import Cli, server_ms

pytestmark = pytest.mark.both_backends

AGING = 50  # ms per point
SLACK = 1  # ms: a script reads the server's clock in whole ms


def around(r: Any, call: Callable[[], Any]) -> tuple[Any, tuple[float, float]]:
    """``call()``'s result, and the window of server time (ms) it ran in."""
    start = server_ms(r)
    result = call()
    return result, (start - SLACK, server_ms(r) + SLACK)


def gained(since: tuple[float, float], until: tuple[float, float], aging: float = AGING) -> tuple[float, float]:
    """The least and the most points an item gains from a moment in ``since``
    to one in ``until``."""
    return (until[0] - since[1]) / aging, (until[1] - since[0]) / aging


def assert_effective(got: float, score: float, since: tuple[float, float], until: tuple[float, float]) -> None:
    """``got`` is ``score`` plus the points gained from ``since`` to ``until``."""
    low, high = gained(since, until)
    assert score + low - 1e-9 <= got <= score + high + 1e-9, (got, score, low, high)


@pytest.fixture
def aged(ps: Any, r: Any) -> Callable[..., tuple[float, float]]:
    """Sets aging on a stream and returns the window (server ms) its epoch was set in."""

    def turn_on(name: str = "q", ms: int = AGING) -> tuple[float, float]:
        limits, window = around(r, lambda: ps.pslimit(name, aging=timedelta(milliseconds=ms)))
        assert limits["aging"] == timedelta(milliseconds=ms)
        return window

    return turn_on


# -- scores that come out -------------------------------------------------------------


def test_every_score_that_comes_out_is_effective(ps, r, aged):
    aged()
    _, written = around(r, lambda: ps.psaddmany("q", [("a", "A", 10), ("b", "B", 5), ("c", "C", 1)]))
    time.sleep(0.3)  # about 6 points each

    found, read = around(r, lambda: ps.psscores("q", ["a", "b", "x"]))
    assert found[2] is None
    assert_effective(found[0], 10, written, read)
    assert_effective(found[1], 5, written, read)
    assert found[0] - found[1] == pytest.approx(5)  # the same points for all

    listed, read = around(r, lambda: ps.pskeys("q", withscores=True))
    assert [key for key, _ in listed] == ["a", "b", "c"]
    for (_, got), score in zip(listed, (10, 5, 1)):
        assert_effective(got, score, written, read)

    listed, read = around(r, lambda: ps.pskeys("q", withscores=True, limit=1, start=1))
    assert [key for key, _ in listed] == ["b"]
    assert_effective(listed[0][1], 5, written, read)

    values, read = around(r, lambda: ps.psvalues("q", withscores=True))
    assert list(values) == ["a", "b", "c"]
    assert values["b"][0] == b"B"
    assert_effective(values["b"][1], 5, written, read)

    page, read = around(r, lambda: ps.psvaluespage("q", count=2, withscores=True))
    assert_effective(page[0]["a"][1], 10, written, read)

    item, read = around(r, lambda: ps.psitem("q", "c"))
    assert item["state"] == "waiting"
    assert_effective(item["score"], 1, written, read)

    rows, read = around(r, lambda: ps.pskeys("q", state="waiting"))
    assert [row["key"] for row in rows] == ["a", "b", "c"]
    assert_effective(rows[2]["score"], 1, written, read)

    stats, read = around(r, lambda: ps.psstats("q"))
    assert_effective(stats["top_score"], 10, written, read)
    assert_effective(stats["bottom_score"], 1, written, read)

    lease, read = around(r, lambda: ps.pslease("q", count=2))
    assert list(lease.items) == ["a", "b"]
    assert_effective(lease.scores["a"], 10, written, read)
    assert_effective(lease.scores["b"], 5, written, read)
    one, read = around(r, lambda: ps.pslease("q"))
    assert_effective(one.scores["c"], 1, written, read)


def test_a_held_item_shows_the_score_it_was_leased_with(ps, r, aged):
    aged()
    _, written = around(r, lambda: ps.psadd("q", "a", "A", 10))
    time.sleep(0.1)
    lease, read = around(r, lambda: ps.pslease("q"))
    time.sleep(0.15)  # held: it does not wait, and gains nothing
    assert ps.psitem("q", "a")["score"] == lease.scores["a"]
    assert ps.pskeys("q", state="held")[0]["score"] == lease.scores["a"]
    assert_effective(lease.scores["a"], 10, written, read)


# -- scores that go in ------------------------------------------------------------------


def test_adds_and_increments_take_effective_scores(ps, r, aged):
    aged()
    _, written = around(r, lambda: ps.psadd("q", "a", "A", 10))
    assert ps.psadd("q", "new", "v", 3) == 3  # a new item: the score given, exactly
    time.sleep(0.3)

    got, read = around(r, lambda: ps.psadd("q", "a", "A", 2))  # adds to its effective score
    assert_effective(got, 12, written, read)
    got, read = around(r, lambda: ps.psincrement("q", "a", 1))
    assert_effective(got, 13, written, read)
    got, read = around(r, lambda: ps.psaddmany("q", [("a", "A", 1)]))
    assert_effective(got[0], 14, written, read)

    _, replaced = around(r, lambda: ps.psadd("q", "a", "A", 7, replace=True))  # set: 7 from now on
    found, read = around(r, lambda: ps.psscores("q", ["a"]))
    assert_effective(found[0], 7, replaced, read)
    _, replaced = around(r, lambda: ps.psaddmany("q", [("a", "A", 4), ("b", "B", 4)], replace=True))
    found, read = around(r, lambda: ps.psscores("q", ["a", "b"]))
    assert_effective(found[0], 4, replaced, read)
    assert found[0] == found[1]  # written at the same moment: the same score, the same points

    assert ps.psdecrement_all("q", 1) == 3
    found, read = around(r, lambda: ps.psscores("q", ["a"]))
    assert_effective(found[0], 3, replaced, read)


def test_thresholds_are_effective_scores(ps, r, k, aged):
    aged()
    ps.psaddmany("q", [("one", "v", 1), ("two", "v", 2), ("three", "v", 3)])
    time.sleep(0.3)  # about 6 points each: every raw score is now far below its effective one
    ps.pslimit("q")  # aging off: the points gained stay (base), and no more come
    assert r.hget(k("q").limits, "base") is not None
    low = ps.psscores("q", ["one"])[0]
    assert low > 6
    assert ps.pskeys("q", below=low + 1.5) == ["two", "one"]  # (by raw scores, all three)
    assert ps.pskeys("q", below=low + 1.5, withscores=True, limit=1, start=1) == [("one", low)]
    assert ps.pskeys("q", below=low - 0.5) == []  # (a threshold of a score shown may round either side)
    assert ps.psdeletebelowthreshold("q", low + 1.5) == ["one", "two"]
    assert ps.pskeys("q") == ["three"]


def test_a_kept_pull_drops_below_every_effective_score(ps, r, aged):
    aged()
    ps.psaddmany("q", [("a", "A", 10), ("b", "B", 5)])
    time.sleep(0.3)
    _, read = around(r, lambda: ps.pspull("q", purge=False))
    found, after = around(r, lambda: ps.psscores("q", ["a", "b"]))
    # below min(lowest, 0): 0 - 1, then gaining points like every waiting item
    assert_effective(found[0], -1, read, after)
    assert ps.pskeys("q") == ["b", "a"]


def test_items_put_back_come_back_with_their_effective_scores(ps, r, aged):
    aged()
    ps.psaddmany("q", [(key, key.upper(), score) for key, score in (("a", 40), ("b", 30), ("c", 20), ("d", 10))])
    time.sleep(0.2)
    lease = ps.pslease("q", count=3)
    remembered = lease.scores
    time.sleep(0.2)  # points keep coming while they are held: they gain none

    _, back = around(r, lambda: ps.psrelease("q", lease.token, ["a"]))
    found, read = around(r, lambda: ps.psscores("q", ["a"]))
    assert_effective(found[0], remembered["a"], back, read)

    _, back = around(r, lambda: ps.psrelease("q", lease.token, ["b"], score=3))
    found, read = around(r, lambda: ps.psscores("q", ["b"]))
    assert_effective(found[0], 3, back, read)

    # delayed: it waits from its time on, with the score given
    # delayed: waiting from its time on, with the score it had
    ps.psrelease("q", lease.token, ["c"], delay=0.1)
    assert ps.psitem("q", "c")["score"] == remembered["c"]  # delayed: not waiting, gains nothing
    time.sleep(0.15)
    _, moved = around(r, lambda: ps.psexpire())
    found, read = around(r, lambda: ps.psscores("q", ["c"]))
    assert_effective(found[0], remembered["c"], moved, read)


def test_a_delayed_item_waits_from_its_time_with_the_score_it_was_given(ps, r, aged):
    """It gains points from when it is moved into NAME:s, which every pull
    and lease does first (and psexpire): there, it has the score given."""
    aged()
    assert ps.psadd("q", "a", "A", 5, delay=timedelta(milliseconds=100)) == 5
    _, added = around(r, lambda: ps.psadd("q", "b", "B", -20))  # waiting all along
    assert ps.psitem("q", "a")["score"] == 5  # delayed: not waiting, gains nothing
    time.sleep(0.2)
    lease = ps.pslease("q")  # moves it (its time has come), then takes it
    assert lease.scores == {"a": 5}
    found, read = around(r, lambda: ps.psscores("q", ["b"]))
    assert_effective(found[0], -20, added, read)


def test_expired_leases_and_requeued_items_come_back_effective(ps, r, aged):
    aged()
    ps.psaddmany("q", [("a", "A", 100), ("b", "B", 1)])
    time.sleep(0.2)
    first = ps.pslease("q", lease=timedelta(milliseconds=50))
    remembered = first.scores["a"]
    time.sleep(0.1)
    _, back = around(r, lambda: ps.psexpire())  # the lease ran out: a comes back
    found, read = around(r, lambda: ps.psscores("q", ["a"]))
    assert_effective(found[0], remembered, back, read)

    dying = ps.pslease("q", max_deliveries=1)
    last = dying.scores["a"]
    ps.psrelease("q", dying.token)  # to the dead set, with its score
    time.sleep(0.1)
    _, back = around(r, lambda: ps.psrequeue("q", ["a"]))
    found, read = around(r, lambda: ps.psscores("q", ["a"]))
    assert_effective(found[0], last, back, read)

    dying = ps.pslease("q", max_deliveries=1)
    ps.psrelease("q", dying.token)
    _, back = around(r, lambda: ps.psrequeue("q", score=2))
    found, read = around(r, lambda: ps.psscores("q", ["a"]))
    assert_effective(found[0], 2, back, read)


# -- turning it on, changing it, turning it off ----------------------------------------------


def test_turning_aging_on_changing_it_and_off_keeps_the_order_and_the_scores(ps, r, k):
    ps.psaddmany("q", [("a", "A", 10), ("b", "B", 5), ("c", "C", 1)])
    assert ps.psscores("q", ["a", "b", "c"]) == [10, 5, 1]

    _, on = around(r, lambda: ps.pslimit("q", aging=timedelta(milliseconds=AGING)))
    # the items already waiting count as added when it was turned on: nothing rewritten
    assert r.zscore(k("q").scores, "a") == 10
    time.sleep(0.2)
    found, read = around(r, lambda: ps.psscores("q", ["a", "b", "c"]))
    for got, score in zip(found, (10, 5, 1)):
        assert_effective(got, score, on, read)

    # changed: the points gained so far stay, and the new pace applies from now
    before, read_before = around(r, lambda: ps.psscores("q", ["a"])[0])
    _, changed = around(r, lambda: ps.pslimit("q", aging=timedelta(milliseconds=10)))
    after, read_after = around(r, lambda: ps.psscores("q", ["a"])[0])
    # continuous: at most the points of the ms in between, at 50 ms a point then at 10 (by the
    # server's clock: a loaded machine may take more than the 10 ms of one point between calls)
    most = gained(read_before, changed)[1] + gained(changed, read_after, aging=10)[1]
    assert before <= after <= before + most, (before, after, most)
    assert r.zscore(k("q").scores, "a") == 10  # still nothing rewritten
    time.sleep(0.1)
    found, read = around(r, lambda: ps.psscores("q", ["a"]))
    # counted from after's read, not from the change (after holds what came between: a CI run once took 30 ms)
    low, high = gained(read_after, read, aging=10)
    assert after + low - 1 <= found[0] <= after + high + 1  # about 10 points in 100 ms

    # off: the points gained are kept (in base), and no more come
    _, off = around(r, lambda: ps.pslimit("q"))
    frozen = ps.psscores("q", ["a", "b", "c"])
    time.sleep(0.1)
    assert ps.psscores("q", ["a", "b", "c"]) == frozen
    assert frozen[0] - frozen[1] == pytest.approx(5) and frozen[1] - frozen[2] == pytest.approx(4)
    assert frozen[0] > 10 + 4 + 10 - 1  # what it gained at either pace
    assert set(r.hgetall(k("q").limits)) == {b"base"}  # only the offset of the items still waiting
    assert ps.pskeys("q") == ["a", "b", "c"]
    assert ps.pslimit("q")["aging"] is None

    # on again: from where it was
    _, again = around(r, lambda: ps.pslimit("q", aging=timedelta(milliseconds=AGING)))
    time.sleep(0.1)
    found, read = around(r, lambda: ps.psscores("q", ["a"]))
    assert_effective(found[0], frozen[0], again, read)


def test_an_emptied_stream_drops_the_offset_when_aging_changes(ps, r, k, aged):
    aged()
    ps.psadd("q", "a", "A", 1)
    time.sleep(0.1)
    ps.pspull("q")
    assert ps.pslimit("q") == {
        "paused": False, "rate": None, "per": None, "burst": None, "max_held": None, "aging": None,
    }  # fmt: skip
    assert not r.exists(k("q").limits)  # nothing waits with an offset: nothing left
    ps.psadd("q", "b", "B", 2)
    assert r.zscore(k("q").scores, "b") == 2  # as SPEC §1 has it


def test_setting_the_same_aging_again_keeps_its_epoch(ps, r, k, aged):
    aged()
    ps.psadd("q", "a", "A", 0)
    epoch = r.hget(k("q").limits, "epoch")
    time.sleep(0.05)
    ps.pslimit("q", aging=AGING / 1000)  # seconds, as for per
    assert r.hget(k("q").limits, "epoch") == epoch
    assert ps.pslimit("q", rate=5, aging=0.05)["aging"] == timedelta(milliseconds=AGING)
    assert r.hget(k("q").limits, "epoch") == epoch


def test_aging_beside_other_limits_and_a_pause(ps):
    ps.pspause("q")
    limits = ps.pslimit("q", rate=2, max_held=3, aging=timedelta(seconds=2))
    assert limits == {
        "paused": True, "rate": 2.0, "per": timedelta(seconds=1), "burst": 2, "max_held": 3,
        "aging": timedelta(seconds=2),
    }  # fmt: skip
    ps.psadd("q", "a", "A", 1)
    assert ps.pspull("q") == {}  # paused
    ps.psresume("q")
    assert ps.pspull("q") == {"a": b"A"}


@pytest.mark.parametrize("aging", [0, -1, timedelta(0), "1s", True, float("nan"), 10**12])
def test_a_bad_aging_is_refused_before_anything_changes(ps, r, k, aging):
    ps.pslimit("q", aging=timedelta(seconds=1))
    before = r.hgetall(k("q").limits)
    with pytest.raises(InvalidArgument, match="aging"):
        ps.pslimit("q", aging=aging)
    assert r.hgetall(k("q").limits) == before


def test_a_duration_under_a_millisecond_is_one_millisecond(ps):
    assert ps.pslimit("q", aging=0.0001)["aging"] == timedelta(milliseconds=1)


# -- a stream without aging, and tools that know only SPEC §1 ---------------------------------


def test_without_limits_nothing_creates_them_and_raw_scores_are_the_scores(ps, r, k):
    ps.psaddmany("q", [("a", "A", 10), ("b", "B", 5), ("c", "C", 1), ("d", "D", 0)])
    ps.psadd("q", "a", "A", 1)
    ps.psadd("q", "e", "E", 2, delay=timedelta(milliseconds=1))
    ps.psincrement("q", "b", 1)
    lease = ps.pslease("q", lease=timedelta(milliseconds=1))
    time.sleep(0.01)
    ps.psexpire()
    lease = ps.pslease("q", max_deliveries=1)
    ps.psrelease("q", lease.token)
    ps.psrequeue("q")
    ps.psdeletebelowthreshold("q", 0.5)
    ps.pspull("q", purge=False)
    ps.pskeys("q", withscores=True, below=100)
    ps.psvalues("q", withscores=True)
    ps.psstats("q")
    ps.psitem("q", "b")
    assert not r.exists(k("q").limits)
    raw = dict((key.decode(), score) for key, score in r.zrevrange(k("q").scores, 0, -1, withscores=True))
    assert dict(ps.pskeys("q", withscores=True)) == raw
    assert ps.psscores("q", list(raw)) == list(raw.values())


def test_a_tool_that_knows_only_spec_1_reads_and_writes_offset_scores(ps, r, k, aged):
    """Documented (Flow control, pslimit): while aging is on, raw scores are offset
    by the points gained since the epoch; items written raw still take part."""
    window = aged()
    time.sleep(0.2)
    keys = k("q")
    r.hset(keys.values, "raw", "R")
    r.zadd(keys.scores, {"raw": 0})
    _, added = around(r, lambda: ps.psadd("q", "lib", "L", 0))
    found, read = around(r, lambda: ps.psscores("q", ["raw", "lib"]))
    assert_effective(found[0], 0, window, read)  # its raw 0 reads as the points gained since the epoch
    assert_effective(found[1], 0, added, read)
    assert float(r.zscore(keys.scores, "lib")) < -3  # what psctl wrote, raw: offset by those points
    assert ps.pspull("q") == {"raw": b"R"}  # counted as added when aging began: it waited longest


# -- the figure -----------------------------------------------------------------


@pytest.mark.parametrize("points", [10, 3])
def test_an_item_p_points_lower_waits_at_most_p_times_the_duration(ps, r, aged, points):
    """Under a steady stream of new items at the top priority, an item added P
    points lower is handed out after waiting no more than P x DURATION, plus
    one pull: a feeder adds a top item before each pull, so that every pull
    has a newer top item to choose. It is not handed out before either."""
    aging, top = 20, 100
    aged(ms=aging)
    start = server_ms(r)
    ps.psadd("q", "low", "v", top - points)
    added = (start, server_ms(r))
    starts: list[float] = []
    while True:
        starts.append(server_ms(r))
        ps.psadd("q", f"top{len(starts)}", "v", top)  # the feeder
        pulled = ps.pspull("q")  # the puller, one at a time
        if "low" in pulled:
            taken = server_ms(r)
            break
        assert len(pulled) == 1 and len(starts) < 100_000
    waited = taken - added[0]  # (from before the add was sent: at most its round trip more)
    last_round = taken - starts[-2]  # the feeder's add before, and the pull that took it
    # the scripts read the server's clock in whole ms: an item's time is up to 1 ms early
    most = points * aging + 1 + last_round + (added[1] - added[0]) + SLACK
    assert points * aging - SLACK <= waited <= most, (waited, last_round)  # (the add's time: up to 1 ms early too)
    assert len(starts) > 5  # (the feeder did keep it waiting)


# -- the command line ---------------------------------------------------------------------


def test_the_command_line_shows_and_takes_effective_scores(backend, r):
    """Every command goes through the library: what it shows and takes is effective."""
    cli = Cli(backend.url)
    cluster = ("--cluster",) if backend.cluster else ()

    def ok(*args: str) -> Any:
        return cli.ok(*cluster, *args)

    r.pslimit("jobs", aging=timedelta(milliseconds=AGING))
    _, written = around(r, lambda: r.psaddmany("jobs", [("a", "A", 20), ("b", "B", 10), ("c", "C", 0)]))
    time.sleep(0.3)

    listed, read = around(r, lambda: ok("keys", "jobs"))
    assert [row["key"] for row in listed] == ["a", "b", "c"]
    assert_effective(listed[0]["score"], 20, written, read)
    values, read = around(r, lambda: ok("values", "jobs", "--scores"))
    assert_effective(values[1]["score"], 10, written, read)
    item, read = around(r, lambda: ok("item", "jobs", "b"))
    assert_effective(item["score"], 10, written, read)
    added, read = around(r, lambda: ok("add", "jobs", "a", "A", "--score", "2"))
    assert_effective(added["score"], 22, written, read)

    r.pslimit("jobs")  # aging off: the points gained stay, and no more come
    top, low = r.psscores("jobs", ["a", "c"])
    assert low > 5
    assert ok("prune", "jobs", "--below", str(low + 5)) == {"removed": ["c"]}  # (by raw scores, b too)
    assert ok("lease", "jobs")["items"][0]["score"] == pytest.approx(top)
