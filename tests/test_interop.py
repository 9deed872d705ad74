"""Data in the SPEC §1 layout, written and read by plain Redis commands as
another application would, is psctl's data, and the reverse."""

from __future__ import annotations

from datetime import timedelta


def test_psctl_reads_a_stream_written_with_plain_commands(r):
    r.hset("jobs:t", mapping={"a": "A", "b": "B", "c": "C"})
    r.zadd("jobs:s", {"a": 3, "b": 9, "c": 1})
    r.sadd("jobs:exc", "gone")
    r.zadd("jobs:exp", {"later": 9999999999})
    r.sadd(":ps:keys", "jobs")

    assert r.psnames() == ["jobs"]
    assert r.pskeys("jobs", withscores=True) == [("b", 9.0), ("a", 3.0), ("c", 1.0)]
    assert r.psadd("jobs", "gone", "x") is None
    assert r.psadd("jobs", "later", "x") is None
    assert r.pspull("jobs", count=2) == {"b": b"B", "a": b"A"}
    assert r.pslen("jobs") == 1


def test_plain_commands_read_a_stream_written_by_psctl(r):
    r.psaddmany("jobs", [("a", "A", 3), ("b", "B", 9)])
    r.pspull("jobs", count=1, gate=True, expire_at=timedelta(hours=1))
    assert r.type("jobs:t") == b"hash" and r.hgetall("jobs:t") == {b"a": b"A"}
    assert r.type("jobs:s") == b"zset" and r.zrange("jobs:s", 0, -1, withscores=True) == [(b"a", 3.0)]
    assert r.type("jobs:exc") == b"set" and r.smembers("jobs:exc") == {b"b"}
    assert r.type("jobs:exp") == b"zset" and r.zrange("jobs:exp", 0, -1) == [b"b"]
    assert r.type(":ps:keys") == b"set" and r.smembers(":ps:keys") == {b"jobs"}
    # values and scores are stored as given: no envelope, no encoding
    r.psadd("raw", "k", b"\x00\x01 json? {}", 2.5)
    assert r.hget("raw:t", "k") == b"\x00\x01 json? {}"
    assert r.zscore("raw:s", "k") == 2.5
    # beside the layout, only the short-lived wake-up lists of blocked pulls and the counters
    assert sorted(k.decode() for k in r.keys("*")) == sorted(
        [":ps:keys", "jobs:t", "jobs:s", "jobs:exc", "jobs:exp", "jobs:wake", "jobs:stats", "raw:t", "raw:s",
         "raw:wake", "raw:stats"]
    )  # fmt: skip
    assert r.hgetall("jobs:stats") == {b"added": b"2", b"pulled": b"1"}
    assert 0 < r.ttl("raw:wake") <= 60


def test_a_full_wake_list_is_not_written_again(ps, r, k):
    """With nobody pulling, adds stop writing tokens at 16: the list keeps its
    first expiry and an add costs a read, not two writes."""
    client = ps
    client.psaddmany("q", [(f"k{i}", "v", 1) for i in range(40)])
    assert r.llen(k("q").wake) == 16
    ttl = r.pttl(k("q").wake)
    r.config_resetstat()
    for i in range(5):
        client.psadd("q", f"one{i}", "v")
    client.psaddmany("q", [("m", "v", 1)])
    assert r.llen(k("q").wake) == 16
    assert 0 < r.pttl(k("q").wake) <= ttl
    assert "cmdstat_lpush" not in r.info("commandstats")
