"""Every operation of SPEC §2 against real servers, through the sync and the
async client alike, on a standalone server and on a 3-master Redis Cluster
(fixture ``ps``); ``r`` is a plain sync client of the same server for checking
the raw keys, ``k(name)`` a stream's key names there."""

from __future__ import annotations

import math
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest

from psctl.layout import REGISTRY

ODD_KEYS = [
    "a:b:c",
    "{tag}",
    "}{",
    "with space",
    "line\nbreak",
    "ünïcødé ✓",
    "[bold red]markup[/]",
    "'); redis.call('FLUSHALL') --",
    "",
]


pytestmark = pytest.mark.both_backends


def server_time(r) -> float:
    seconds, micros = r.time()
    return seconds + micros / 1e6


# -- psadd ---------------------------------------------------------------------------


def test_psadd_new_key_starts_at_zero_and_accumulates(ps, r, k):
    assert ps.psadd("q", "a", "v1", score=5) == 5.0
    assert ps.psadd("q", "a", "v2", score=2.5) == 7.5
    assert ps.psadd("q", "b", "x") == 1.0  # default score 1
    assert r.hget(k("q").values, "a") == b"v2"  # the value is replaced
    assert r.zscore(k("q").scores, "a") == 7.5
    assert r.smembers(REGISTRY) == {b"q"}


def test_psadd_negative_and_fractional_scores_are_exact(ps, r, k):
    assert ps.psadd("q", "a", "v", score=0.1) == 0.1
    assert ps.psadd("q", "a", "v", score=0.2) == 0.1 + 0.2
    assert ps.psadd("q", "b", "v", score=-3) == -3.0
    assert r.zscore(k("q").scores, "a") == 0.1 + 0.2


def test_psadd_refused_while_gated_changes_nothing(ps, r, k):
    ps.psadd("q", "a", "old", score=3)
    r.sadd(k("q").gated, "a")
    assert ps.psadd("q", "a", "new", score=10) is None
    assert r.hget(k("q").values, "a") == b"old"
    assert r.zscore(k("q").scores, "a") == 3.0


def test_psadd_ends_a_cool_down_whose_time_has_come(ps, r, k):
    """A cool-down ends at its time, whether or not psexpire ran (SPEC §10)."""
    r.zadd(k("q").cooling, {"a": 1, "b": 9999999999})  # a: long past
    assert ps.psadd("q", "a", "v") == 1.0
    assert ps.psadd("q", "b", "v") is None
    assert r.zrange(k("q").cooling, 0, -1) == [b"b"]
    assert ps.psstats("q")["counters"]["expired"] == 1


def test_psadd_of_a_kept_item_whose_cool_down_is_over_adds_it_anew(ps, r, k):
    """As psexpire would have: the kept item leaves with its cool-down, and the add makes a new one."""
    ps.psadd("q", "a", "old", 5)
    assert ps.pspull("q", purge=False) == {"a": b"old"}
    r.zadd(k("q").cooling, {"a": 1})
    assert ps.psadd("q", "a", "new", 2) == 2.0
    assert ps.psvalues("q") == {"a": b"new"}
    assert ps.psaddmany("q", [("a", "x", 1)]) == [3.0]  # (no cool-down any more: an update)


def test_psadd_readd_clears_gate_and_cool_down(ps, r, k):
    r.sadd(k("q").gated, "a")
    r.zadd(k("q").cooling, {"a": 9999999999})
    assert ps.psadd("q", "a", "v", score=4, readd=True) == 4.0
    assert not r.sismember(k("q").gated, "a")
    assert r.zscore(k("q").cooling, "a") is None
    assert ps.psadd("q", "a", "v", score=1) == 5.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "5", None, b"1", True, [1], 10**400])
def test_bad_scores_raise_before_anything_is_sent(ps, r, bad):
    with pytest.raises(ValueError):
        ps.psadd("q", "a", "v", score=bad)
    with pytest.raises(ValueError):
        ps.psaddmany("q", [("ok", "v", 1), ("a", "v", bad)])
    with pytest.raises(ValueError):
        ps.psincrement("q", "a", bad)
    with pytest.raises(ValueError):
        ps.psdecrement_all("q", bad)
    with pytest.raises(ValueError):
        ps.psdeletebelowthreshold("q", bad)
    assert r.keys("*") == []


def test_bad_values_and_names_raise(ps, r):
    with pytest.raises(TypeError):
        ps.psadd("q", "a", None)
    with pytest.raises(TypeError):
        ps.psadd("q", None, "v")
    with pytest.raises(ValueError):
        ps.psadd("", "a", "v")
    with pytest.raises(ValueError):
        ps.pspull("q", count=-1)
    with pytest.raises(TypeError):
        ps.pspull("q", expire_at=60)
    assert r.keys("*") == []


# -- psaddmany -----------------------------------------------------------------------


def test_psaddmany_applies_duplicates_in_order(ps, r, k):
    scores = ps.psaddmany("q", [("a", "1", 1), ("b", "x", 2), ("a", "2", 3), ("a", "3", 0.5)])
    assert scores == [1.0, 2.0, 4.0, 4.5]
    assert r.hget(k("q").values, "a") == b"3"
    assert r.zscore(k("q").scores, "a") == 4.5


def test_psaddmany_refuses_per_item(ps, r, k):
    r.sadd(k("q").gated, "gated")
    r.zadd(k("q").cooling, {"cooling": 9999999999})
    scores = ps.psaddmany("q", [("gated", "v", 1), ("fine", "v", 1), ("cooling", "v", 1), ("gated", "v", 1)])
    assert scores == [None, 1.0, None, None]
    assert r.hkeys(k("q").values) == [b"fine"]


def test_psaddmany_readd(ps, r, k):
    r.sadd(k("q").gated, "a")
    assert ps.psaddmany("q", [("a", "v", 2), ("a", "v", 2)], readd=True) == [2.0, 4.0]
    assert r.scard(k("q").gated) == 0


def test_psaddmany_accepts_pairs_and_empty_input(ps, r):
    assert ps.psaddmany("q", []) == []
    assert ps.psaddmany("q", [("a", "v")]) == [1.0]
    with pytest.raises(ValueError):
        ps.psaddmany("q", [("a",)])


def test_psaddmany_consumes_a_generator_in_chunks(ps, r, k):
    consumed = []

    def items():
        for i in range(12_345):
            consumed.append(i)
            yield (f"k{i}", f"v{i}", i % 7)

    scores = ps.psaddmany("q", items())
    assert len(scores) == 12_345
    assert scores[:8] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]
    assert ps.pslen("q") == 12_345
    assert r.hget(k("q").values, "k12344") == b"v12344"


def test_psaddmany_generator_is_not_materialised(ps, r, k):
    """An iterator is read a chunk at a time: the first chunk is written before
    the generator has produced the last items."""
    seen_len_at = []

    def items():
        for i in range(3000):
            if i == 2500:
                seen_len_at.append(r.zcard(k("q").scores))
            yield (f"k{i}", "v", 1)

    ps.psaddmany("q", items())
    assert seen_len_at and seen_len_at[0] >= 1000


# -- pspull --------------------------------------------------------------------------


def test_pull_order_and_purge(ps, r, k):
    ps.psaddmany("q", [("low", "l", 1), ("high", "h", 10), ("mid", "m", 5)])
    pulled = ps.pspull("q", count=2)
    assert list(pulled.items()) == [("high", b"h"), ("mid", b"m")]
    assert r.hkeys(k("q").values) == [b"low"]
    assert r.zrange(k("q").scores, 0, -1) == [b"low"]
    assert r.scard(k("q").gated) == 0


def test_pull_ties_follow_zpopmax_order(ps, r):
    ps.psaddmany("q", [(k, k, 1) for k in ["b", "a", "d", "c"]])
    r.zadd("ref", {k: 1 for k in "abcd"})
    expected = [m.decode() for m, _ in r.zpopmax("ref", 4)]
    assert list(ps.pspull("q", count=4)) == expected


def test_pull_more_than_there_is_and_empty(ps):
    assert ps.pspull("nothing", count=5) == {}
    ps.psadd("q", "a", "v")
    assert ps.pspull("q", count=5) == {"a": b"v"}
    assert ps.pspull("q", count=5) == {}
    assert ps.pspull("q", count=0) == {}


def test_pull_gate_refuses_later_adds(ps, r, k):
    ps.psadd("q", "a", "v")
    ps.pspull("q", gate=True, expire_at=None)
    assert r.sismember(k("q").gated, "a")
    assert ps.psadd("q", "a", "v") is None
    assert ps.psadd("q", "a", "v", readd=True) == 1.0


def test_pull_keep_rescores_below_the_lowest_score(ps, r, k):
    """SPEC §2: min(lowest score in the stream, 0) - 1, and for the n-th item of
    one pull - n, so that the kept items keep their order below the rest."""
    ps.psaddmany("q", [("pos", "p", 7), ("zero", "z", 0), ("neg", "n", -4), ("rest", "r", -100)])
    pulled = ps.pspull("q", count=3, purge=False, expire_at=None)
    assert list(pulled) == ["pos", "zero", "neg"]
    assert dict(ps.pskeys("q", withscores=True)) == {"pos": -101.0, "zero": -102.0, "neg": -103.0, "rest": -100.0}
    assert r.hlen(k("q").values) == 4
    ps.psaddmany("p", [("a", "", 3)])
    ps.pspull("p", purge=False, expire_at=None)
    assert ps.pskeys("p", withscores=True) == [("a", -1.0)]  # alone: min(3, 0) - 1


def test_pull_keep_never_returns_an_item_twice(ps):
    # after re-scoring, a kept item may outrank the rest; one pull still lists it once
    ps.psaddmany("q", [("a", "a", 5), ("b", "b", -10)])
    assert list(ps.pspull("q", count=5, purge=False)) == ["a", "b"]


def test_pull_keep_with_gate_gates(ps, r, k):
    ps.psadd("q", "a", "v", 3)
    ps.pspull("q", purge=False, gate=True, expire_at=None)
    assert r.sismember(k("q").gated, "a") and ps.pslen("q") == 1


def test_pull_drops_orphans_without_counting_them(ps, r, k):
    ps.psaddmany("q", [("a", "a", 1), ("b", "b", 2)])
    r.zadd(k("q").scores, {"orphan1": 50, "orphan2": 40})
    assert ps.pspull("q", count=2) == {"b": b"b", "a": b"a"}
    assert r.zcard(k("q").scores) == 0


def test_single_pulls_drop_orphans_and_follow_zpopmax_order(ps, r, k):
    """pspull(count=1), purged, runs a script of its own: the same rules."""
    ps.psaddmany("q", [(key, key, 1) for key in "badc"])
    r.zadd(k("q").scores, {"orphan1": 50, "orphan2": 40})
    r.zadd("ref", {key: 1 for key in "abcd"})
    expected = [m.decode() for m, _ in r.zpopmax("ref", 4)]
    assert [list(ps.pspull("q").items()) for _ in range(4)] == [[(key, key.encode())] for key in expected]
    assert ps.pspull("q") == {}
    assert r.zcard(k("q").scores) == 0 and r.hlen(k("q").values) == 0
    assert sorted(r.zrange(k("q").cooling, 0, -1)) == [b"a", b"b", b"c", b"d"]  # no cool-down for orphans
    r.zadd(k("q").scores, {"orphan": 1})
    assert ps.pspull("q", gate=True) == {}
    assert r.zcard(k("q").scores) == 0 and r.scard(k("q").gated) == 0


def test_pull_keep_drops_orphans_too(ps, r, k):
    ps.psadd("q", "a", "a", 1)
    r.zadd(k("q").scores, {"orphan": 50})
    assert ps.pspull("q", count=5, purge=False) == {"a": b"a"}
    assert r.zscore(k("q").scores, "orphan") is None


def test_pull_default_cool_down_is_one_day_by_server_clock(ps, r, k):
    ps.psadd("q", "a", "v")
    before = server_time(r)
    ps.pspull("q")
    at = r.zscore(k("q").cooling, "a")
    assert at == int(at)
    assert before + 86400 <= at <= server_time(r) + 86400 + 1


def test_pull_expire_at_timedelta(ps, r, k):
    ps.psadd("q", "a", "v")
    now = server_time(r)
    ps.pspull("q", expire_at=timedelta(minutes=15))
    assert now + 900 <= r.zscore(k("q").cooling, "a") <= now + 902


def test_pull_expire_at_aware_and_naive_datetime(ps, r, k):
    ps.psaddmany("q", [("aware", "v", 2), ("naive", "v", 1)])
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    ps.pspull("q", expire_at=when)
    ps.pspull("q", expire_at=datetime(2031, 5, 6, 7, 8, 9))  # naive means UTC
    assert r.zscore(k("q").cooling, "aware") == when.timestamp()
    assert r.zscore(k("q").cooling, "naive") == datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc).timestamp()


def test_pull_expire_none_writes_no_entry(ps, r, k):
    ps.psadd("q", "a", "v")
    ps.pspull("q", expire_at=None)
    assert not r.exists(k("q").cooling)
    assert ps.psadd("q", "a", "v") == 1.0


# -- reading -------------------------------------------------------------------------


def test_pskeys_values_get_len(ps):
    ps.psaddmany("q", [("a", "1", 1), ("b", "2", 3), ("c", "3", 2)])
    assert ps.pskeys("q") == ["b", "c", "a"]
    assert ps.pskeys("q", withscores=True) == [("b", 3.0), ("c", 2.0), ("a", 1.0)]
    assert ps.pskeys("q", limit=2) == ["b", "c"]
    assert ps.pskeys("q", limit=0) == []
    assert ps.psvalues("q") == {"b": b"2", "c": b"3", "a": b"1"}
    assert list(ps.psvalues("q", limit=1)) == ["b"]
    assert ps.psget("q", "c") == b"3"
    assert ps.psget("q", "missing") is None
    assert ps.pslen("q") == 3
    assert ps.pskeys("none") == [] and ps.psvalues("none") == {} and ps.pslen("none") == 0


def test_decode_responses_on_and_off(ps_decoded):
    client = ps_decoded
    decoded = client.get_encoder().decode_responses
    client.psadd("q", "k", "välue", 2)
    value = "välue" if decoded else "välue".encode()
    assert client.psget("q", "k") == value
    assert client.psvalues("q") == {"k": value}
    assert client.pskeys("q", withscores=True) == [("k", 2.0)]
    assert client.psnames() == ["q"]
    assert client.pspull("q") == {"k": value}


def test_binary_values_round_trip(ps):
    blob = bytes(range(256)) * 3
    ps.psadd("q", "bin", blob)
    assert ps.psget("q", "bin") == blob
    assert ps.pspull("q") == {"bin": blob}


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_item_keys_round_trip(ps, r, key, k):
    assert ps.psadd("q", key, "v", 2) == 2.0
    assert ps.pskeys("q") == [key]
    assert ps.psget("q", key) == b"v"
    assert ps.psincrement("q", key, 1) == 3.0
    assert ps.pspull("q", purge=False) == {key: b"v"}
    assert ps.psremove("q", [key]) == 1
    assert r.zscore(k("q").cooling, key) is not None


def test_binary_item_keys_come_back_as_str(ps):
    ps.psadd("q", b"\xff\xfe", "v")
    (key,) = ps.pskeys("q")
    assert isinstance(key, str)
    assert ps.psget("q", key) == b"v"  # and the str works as a key again
    assert ps.psremove("q", [key]) == 1


# -- changing scores -----------------------------------------------------------------


def test_psincrement_only_existing_keys(ps, r, k):
    assert ps.psincrement("q", "a", 5) is None
    assert not r.exists(k("q").scores)
    ps.psadd("q", "a", "v", 1)
    assert ps.psincrement("q", "a", 2.5) == 3.5
    assert ps.psincrement("q", "a", -10) == -6.5


def test_psdeletebelowthreshold_is_strict(ps, r, k):
    ps.psaddmany("q", [("a", "v", 1), ("b", "v", 2), ("c", "v", 3), ("d", "v", -5)])
    assert ps.psdeletebelowthreshold("q", 2) == ["d", "a"]
    assert ps.pskeys("q") == ["c", "b"]
    assert set(r.hkeys(k("q").values)) == {b"b", b"c"}
    assert r.scard(k("q").gated) == 0
    assert ps.psdeletebelowthreshold("q", 2) == []


def test_psdeletebelowthreshold_gate(ps, r, k):
    ps.psaddmany("q", [("a", "v", 1), ("b", "v", 2)])
    assert ps.psdeletebelowthreshold("q", 1.5, gate=True) == ["a"]
    assert r.smembers(k("q").gated) == {b"a"}
    assert ps.psadd("q", "a", "v") is None


def test_psdecrement_all(ps):
    ps.psaddmany("q", [("a", "v", 1), ("b", "v", 0.5)])
    assert ps.psdecrement_all("q", 2) == 2
    assert ps.pskeys("q", withscores=True) == [("a", -1.0), ("b", -1.5)]
    assert ps.psdecrement_all("q", -1.5) == 2
    assert dict(ps.pskeys("q", withscores=True)) == {"a": 0.5, "b": 0.0}
    assert ps.psdecrement_all("empty", 1) == 0


def test_psremove(ps, r, k):
    ps.psaddmany("q", [("a", "v", 1), ("b", "v", 2), ("c", "v", 3)])
    assert ps.psremove("q", ["a", "b", "missing"]) == 2
    assert ps.pskeys("q") == ["c"]
    assert set(r.hkeys(k("q").values)) == {b"c"}
    assert ps.psremove("q", "c", gate=True) == 1  # a single key is one key, not its letters
    assert r.smembers(k("q").gated) == {b"c"}
    assert ps.psremove("q", []) == 0


def test_psremove_acknowledges_a_kept_pull(ps):
    ps.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    pulled = ps.pspull("q", count=2, purge=False)
    assert ps.psremove("q", list(pulled)) == 2
    assert ps.pslen("q") == 0


# -- whole streams -------------------------------------------------------------------


def test_psdelete_removes_all_four_keys_and_the_registry_entry(ps, r, k):
    ps.psaddmany("q", [("a", "v", 1), ("b", "v", 2)])
    ps.pspull("q", gate=True)
    assert r.exists(k("q").values, k("q").scores, k("q").gated, k("q").cooling) == 4
    ps.psadd("other", "x", "v")
    assert ps.psdelete("q") is True
    assert r.exists(k("q").values, k("q").scores, k("q").gated, k("q").cooling) == 0
    assert ps.psnames() == ["other"]
    assert ps.psdelete("q") is False


def test_psnames_sorted(ps):
    for name in ["zeta", "alpha", "mid:dle", "{tag}x"]:
        ps.psadd(name, "k", "v")
    assert ps.psnames() == ["alpha", "mid:dle", "zeta", "{tag}x"]


def test_psexpire_only_due_items_across_streams(ps, r, k):
    now = int(server_time(r))
    for name in ["s1", "s2", "s3"]:
        ps.psaddmany(name, [("due", "v", 1), ("later", "v", 1)])
        r.zadd(k(name).cooling, {"due": now - 5, "later": now + 3600})
    assert ps.psexpire() == {"s1": 1, "s2": 1, "s3": 1}
    for name in ["s1", "s2", "s3"]:
        assert r.zrange(k(name).cooling, 0, -1) == [b"later"]
        assert ps.pskeys(name) == ["later"]
        assert ps.psget(name, "due") is None
    assert ps.psexpire() == {}


def test_psexpire_ends_only_cool_downs_whose_time_has_come(ps, r, k):
    ps.psadd("q", "a", "v")
    ps.pspull("q")  # a day
    assert ps.psadd("q", "a", "v") is None
    assert ps.psexpire() == {}
    assert ps.psadd("q", "a", "v") is None
    r.zadd(k("q").cooling, {"a": 1})
    assert ps.psexpire() == {"q": 1}
    assert r.exists(k("q").cooling) == 0
    assert ps.psadd("q", "a", "v") == 1.0


def test_psexpire_many_due_items_in_several_script_calls(ps, r, k):
    from psctl import operations

    n = operations.EXPIRE_CHUNK * 2 + 7
    ps.psaddmany("q", ((f"k{i}", "v", 1) for i in range(n)))
    ps.pspull("q", count=n, expire_at=timedelta(seconds=-1))
    assert ps.psexpire() == {"q": n}
    assert not r.exists(k("q").cooling)


def test_psexpire_drops_dead_names_only(ps, r):
    ps.psadd("dead", "a", "v")
    ps.pspull("dead", expire_at=timedelta(seconds=-1))  # only :exp is left
    ps.psadd("gated", "a", "v")
    ps.pspull("gated", gate=True, expire_at=None)  # only :exc is left: alive
    ps.psadd("live", "a", "v")
    r.sadd(REGISTRY, "ghost")  # registered, no keys at all
    assert ps.psexpire() == {"dead": 1}
    assert ps.psnames() == ["gated", "live"]


def test_registry_follows_first_add_after_a_drop(ps):
    ps.psadd("q", "a", "v")
    ps.pspull("q", expire_at=timedelta(seconds=-1))
    ps.psexpire()
    assert ps.psnames() == []
    ps.psadd("q", "b", "v")
    assert ps.psnames() == ["q"]


def test_scripts_reload_after_script_flush(ps, r):
    ps.psadd("q", "a", "v")
    r.script_flush()
    assert ps.psadd("q", "a", "v") == 2.0
    r.script_flush()
    assert ps.psexpire() == {}  # a batch (pipeline) of script calls reloads too
    ps.pspull("q", expire_at=timedelta(seconds=-1))
    r.script_flush()
    assert ps.psexpire() == {"q": 1}


def test_single_and_batch_pulls_reload_after_script_flush(ps, r):
    ps.psaddmany("q", [("a", "v", 3), ("b", "v", 2), ("c", "v", 1)])
    r.script_flush()
    assert ps.pspull("q") == {"a": b"v"}  # pullone
    r.script_flush()
    assert ps.pspull("q", count=5) == {"b": b"v", "c": b"v"}  # pull


def test_registry_entry_written_even_if_the_stream_was_emptied(ps, r):
    ps.psadd("q", "a", "v")
    r.srem(REGISTRY, "q")  # another tool lost it: the next first add re-registers
    ps.pspull("q", expire_at=None)
    ps.psadd("q", "b", "v")
    assert ps.psnames() == ["q"]


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")  # Debian's faketime package

BEHIND = """
import json, sys, time
from datetime import datetime, timedelta, timezone
from psctl import Redis
client = Redis.from_url(sys.argv[1])
client.pspull("q", expire_at=timedelta(seconds=30))  # a: 30 s from now
client.pspull("q", expire_at=datetime.now(timezone.utc) + timedelta(days=1))  # b: "tomorrow", by this clock
print(json.dumps({"expired": client.psexpire(), "clock": time.time()}))
"""


def test_cool_downs_count_from_the_servers_clock_not_the_clients(redis_url, standalone_backend):
    """The client runs two days behind the server (libfaketime): a cool-down
    counted from the client's clock would be two days off, and psexpire
    reading the client's clock would see nothing due."""
    import json
    import os
    import subprocess
    import sys

    library = next((p for p in (FAKETIME, Path("/usr/lib/faketime/libfaketime.so.1")) if p.exists()), None)
    if library is None:
        pytest.fail("the server-clock test runs its client under libfaketime: apt-get install faketime")
    r = standalone_backend.sync()
    r.flushdb()
    r.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    env = dict(os.environ, LD_PRELOAD=str(library), FAKETIME="-2d", FAKETIME_DONT_FAKE_MONOTONIC="1")
    done = subprocess.run([sys.executable, "-c", BEHIND, redis_url], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert server_time(r) - found["clock"] > 86400  # the client's clock really was behind
    assert abs(r.zscore("q:exp", "a") - (server_time(r) + 30)) <= 3  # counted from the server's clock
    # "tomorrow" by the client's clock was yesterday by the server's: due at once
    assert found["expired"] == {"q": 1} and r.zscore("q:exp", "b") is None
    r.flushdb()
    r.close()


# -- issue 11: one bad stream does not stop psexpire for the others (point 6)


def test_psexpire_processes_every_good_stream_fully_and_names_the_bad_ones(ps, r, k):
    many = 2500  # more than one script call's worth per stream
    for name in ("a", "bad", "c"):
        ps.psaddmany(name, [(f"k{i}", "v", 1) for i in range(many)])
        ps.pspull(name, count=many, expire_at=datetime(2000, 1, 1, tzinfo=timezone.utc))
    r.delete(k("bad").values)
    r.set(k("bad").values, "not a hash")
    with pytest.raises(Exception) as raised:
        ps.psexpire()
    assert str(k("bad").values) in str(raised.value) and "'bad'" in str(raised.value)
    assert r.zcard(k("a").cooling) == r.zcard(k("c").cooling) == 0  # both fully expired
    assert r.zcard(k("bad").cooling) == many  # nothing changed there
    assert getattr(raised.value, "done", None) == {"a": many, "c": many}


def test_psexpire_handles_a_registry_entry_that_is_not_utf8(ps, r, k):
    """Another tool registered a stream whose name is not UTF-8: psexpire still
    runs every stream, that one included."""
    name = b"bin\xff\xfe".decode("utf-8", "surrogateescape")  # how psctl hands such a name back

    def raw(key: str) -> bytes:
        return key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key

    r.hset(raw(k(name).values), "a", "v")
    r.zadd(raw(k(name).cooling), {"a": 1})
    r.sadd(REGISTRY, b"bin\xff\xfe")
    ps.psadd("good", "a", "v")
    ps.pspull("good", expire_at=datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert ps.psnames() == ["bin\udcff\udcfe", "good"]
    assert ps.psexpire() == {name: 1, "good": 1}
    assert r.exists(raw(k(name).values), raw(k(name).cooling)) == 0


# -- issue 11: a kept item goes below every waiting item (point 12)


def test_pull_keep_puts_items_below_every_waiting_item(ps, r, k):
    ps.psaddmany("q", [("low", "l", -5), ("a", "a", 10), ("b", "b", 9), ("c", "c", 8), ("d", "d", 7)])
    order = [next(iter(ps.pspull("q", purge=False, expire_at=None))) for _ in range(5)]
    assert order == ["a", "b", "c", "d", "low"]  # each kept item went below the -5 one
    scores = dict(ps.pskeys("q", withscores=True))
    assert scores["a"] < -5


def test_pull_keep_of_many_keeps_their_order_below_the_rest(ps, r, k):
    ps.psaddmany("q", [("w1", "", -3), ("w2", "", -8), ("a", "", 5), ("b", "", 4), ("c", "", 3)])
    assert list(ps.pspull("q", count=3, purge=False, expire_at=None)) == ["a", "b", "c"]
    assert ps.pskeys("q") == ["w1", "w2", "a", "b", "c"]
    assert max(score for key, score in ps.pskeys("q", withscores=True) if key in "abc") < -8


def test_pull_keep_below_huge_negative_scores_stays_strictly_below(ps, r, k):
    ps.psaddmany("q", [("w", "", -1e300), ("a", "", 2), ("b", "", 1)])
    assert list(ps.pspull("q", count=2, purge=False, expire_at=None)) == ["a", "b"]
    assert ps.pskeys("q") == ["w", "a", "b"]


# -- issue 11: no score becomes infinite (point 13)


@pytest.mark.parametrize(
    "overflow",
    [
        lambda ps: ps.psadd("q", "big", "v", 1.7e308),
        lambda ps: ps.psaddmany("q", [("x", "v", 1), ("big", "v", 1.7e308)]),
        lambda ps: ps.psincrement("q", "big", 1.7e308),
        lambda ps: ps.psdecrement_all("q", -1.7e308),
    ],
    ids=["psadd", "psaddmany", "psincrement", "psdecrement_all"],
)
def test_an_add_that_would_make_a_score_infinite_is_refused(ps, r, k, overflow):
    ps.psadd("q", "big", "v", 1.7e308)
    ps.psadd("q", "small", "v", 1)
    before = r.zrange(k("q").scores, 0, -1, withscores=True)
    with pytest.raises(ValueError, match="finite|overflow"):
        overflow(ps)
    assert r.zrange(k("q").scores, 0, -1, withscores=True) == before
    assert r.hget(k("q").values, "x") is None


def test_counts_beyond_what_the_server_takes_are_refused_before_sending(ps, r):
    with pytest.raises(ValueError, match="count"):
        ps.pspull("q", count=10**14)
    with pytest.raises(ValueError, match="limit"):
        ps.pskeys("q", limit=10**14)
