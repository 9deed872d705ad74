"""Observing streams (SPEC §8, issue 15): the counters the scripts keep,
``psstats``, ``psstatsmany``, ``psitem`` and ``pslift``, standalone and on the
3-master cluster, sync and async."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from psctl.errors import StreamsFailed
from psctl.observing import COUNTERS

from .helpers import server_ms

pytestmark = pytest.mark.both_backends

SHORT = timedelta(milliseconds=200)


class Expected:
    """The counters a sequence of calls must leave, kept step by step."""

    def __init__(self, ps: Any, name: str) -> None:
        self.ps, self.name = ps, name
        self.counts = dict.fromkeys(COUNTERS, 0)

    def after(self, **changes: int) -> None:
        for counter, n in changes.items():
            self.counts[counter] += n
        assert self.ps.psstats(self.name)["counters"] == self.counts


def test_every_counter_counts_what_the_scripts_did(ps, r):
    expected = Expected(ps, "q")
    ps.psaddmany("q", [("a", "1", 5), ("b", "2", 4), ("c", "3", 3), ("d", "4", 2), ("e", "5", 1)])
    expected.after(added=5)
    ps.psadd("q", "a", "1", 1)
    expected.after(updated=1)
    ps.pspull("q", gate=True)  # a: gated, cooling down
    expected.after(pulled=1)
    assert ps.psadd("q", "a", "1") is None
    expected.after(refused=1)
    ps.psaddmany("q", [("a", "1", 1), ("f", "6", 1), ("f", "6", 0.5)])  # refused, new, then updated
    expected.after(refused=1, added=1, updated=1)
    ps.pspull("q", count=2, purge=False, expire_at=None)  # b, c kept below the rest
    expected.after(pulled=2)
    lease = ps.pslease("q", count=2)  # d, f
    expected.after(leased=2)
    ps.psack("q", lease.token, ["d"])
    expected.after(acked=1)
    ps.psrelease("q", lease.token, ["f"])
    expected.after(released=1)
    ps.psrelease("q", ps.pslease("q", max_deliveries=2).token)  # f's second delivery: dead
    expected.after(leased=1, released=1, dead=1)
    ps.pslease("q", lease=SHORT)  # e
    expected.after(leased=1)
    time.sleep(SHORT.total_seconds() + 0.05)
    ps.psexpire()  # e comes back
    expected.after(redelivered=1)
    ps.psremove("q", ["b", "nope"])
    expected.after(removed=1)
    ps.psdeletebelowthreshold("q", 100)  # e, c
    expected.after(removed=2)
    ps.psadd("q", "g", "7")
    ps.pspull("q", expire_at=timedelta(seconds=-1))  # a cool-down already over
    ps.psexpire()
    expected.after(added=1, pulled=1, expired=1)
    ps.psack("q", lease.token)  # nothing held any more: counts nothing
    ps.psincrement("q", "nope", 1)
    ps.psdecrement_all("q", 1)
    expected.after()


def test_counters_of_bulk_calls_and_of_leases_that_ran_out_inside_a_pull(ps, r):
    expected = Expected(ps, "q")
    ps.psaddmany("q", [(f"k{i}", "v", i) for i in range(2500)])
    expected.after(added=2500)
    for _ in range(4):  # (a second each, not 200 ms: none may run out before the last is taken)
        ps.pslease("q", count=250, lease=timedelta(seconds=1), max_deliveries=1)
    expected.after(leased=1000)
    time.sleep(1.05)
    assert len(ps.pspull("q", count=10)) == 10  # first the leases that ran out: dead, at their max
    expected.after(dead=500, pulled=10)  # (500 per call at most)
    assert len(ps.pslease("q", count=5)) == 5
    expected.after(dead=500, leased=5)


def test_psstats_reads_a_streams_state(ps, r):
    empty = ps.psstats("none")
    assert empty["waiting"] == empty["held"] == empty["dead"] == 0
    assert empty["top_score"] is None and empty["next_cool_down_end"] is None
    ps.psaddmany("q", [("a", "1", 9), ("b", "2", 7), ("c", "3", 5), ("d", "4", -2.5), ("e", "5", 1)])
    ps.pspull("q", gate=True, expire_at=datetime(2031, 1, 1, tzinfo=timezone.utc))  # a
    ps.pslease("q", lease=SHORT)  # b: will be overdue
    ps.pslease("q", lease=timedelta(minutes=5))  # c
    ps.psrelease("q", ps.pslease("q", max_deliveries=1).token)  # e: dead
    time.sleep(SHORT.total_seconds() + 0.05)
    found = ps.psstats("q")
    now = datetime.now(timezone.utc)
    assert abs((found.pop("server_time") - now).total_seconds()) < 5
    assert found.pop("counters")["leased"] == 3
    assert found == {
        "name": "q", "waiting": 1, "held": 2, "overdue": 1, "overdue_capped": False, "gated": 1, "cooling": 1,
        "next_cool_down_end": datetime(2031, 1, 1, tzinfo=timezone.utc), "dead": 1, "top_score": -2.5,
        "bottom_score": -2.5, "delayed": 0, "next_delayed_due": None, "paused": False, "rate": None, "per": None,
        "burst": None, "max_held": None, "aging": None, "tokens": None,
    }  # fmt: skip


NO_LIMITS = {
    "paused": False, "rate": None, "per": None, "burst": None, "max_held": None, "aging": None, "tokens": None,
}  # fmt: skip


def limits_shown(stats: dict[str, Any]) -> dict[str, Any]:
    return {field: stats[field] for field in NO_LIMITS}


def test_psstats_shows_the_flow_control_and_the_tokens_left(ps, r, k):
    ps.psaddmany("q", [(f"k{i}", "v", i) for i in range(10)])
    assert limits_shown(ps.psstats("q")) == NO_LIMITS
    ps.pslimit("q", rate=10, per=timedelta(seconds=2), burst=4, max_held=7)
    full = limits_shown(ps.psstats("q"))
    assert full == {"paused": False, "rate": 10.0, "per": timedelta(seconds=2), "burst": 4, "max_held": 7,
                    "aging": None, "tokens": 4.0}  # fmt: skip (a bucket never used is full)
    pulled = server_ms(r)
    assert len(ps.pspull("q", count=3)) == 3
    after = ps.psstats("q")["tokens"]
    # 4 - 3, and 5 a second since (by the server's clock: a loaded machine can be slow between calls)
    assert 1 <= after <= 1 + 5 * (server_ms(r) - pulled + 1) / 1000
    time.sleep(0.3)
    refilled = ps.psstats("q")["tokens"]  # refilled by the server's clock, read without writing
    assert 2 <= refilled <= min(4, 1 + 5 * (server_ms(r) - pulled + 1) / 1000)
    assert r.hget(k("q").limits, "tokens") == b"1"  # (as the pull left it: stats write nothing)
    ps.pspause("q")
    paused = limits_shown(ps.psstats("q"))
    assert paused["paused"] is True and 2 <= paused["tokens"] <= 4  # a pause keeps the bucket filling
    ps.pslimit("q")  # cleared: the pause stays
    assert limits_shown(ps.psstats("q")) == NO_LIMITS | {"paused": True}
    ps.psresume("q")
    assert [limits_shown(s) for s in ps.psstatsmany(["q", "other"])] == [NO_LIMITS, NO_LIMITS]


def test_psstatsmany_shows_each_streams_own_limits(ps, r):
    ps.pspause("a")
    ps.pslimit("b", rate=0.5, per=timedelta(minutes=1))
    found = {s["name"]: limits_shown(s) for s in ps.psstatsmany(["a", "b", "c"])}
    assert found == {
        "a": NO_LIMITS | {"paused": True},
        "b": NO_LIMITS | {"rate": 0.5, "per": timedelta(minutes=1), "burst": 1, "tokens": 1.0},
        "c": NO_LIMITS,
    }


def test_a_limits_key_of_the_wrong_type_fails_psstats_naming_it(ps, r, k):
    ps.psadd("good", "k", "v")
    ps.psadd("bad", "k", "v")
    r.set(k("bad").limits, "not a hash")
    with pytest.raises(StreamsFailed) as raised:
        ps.psstatsmany()
    assert list(raised.value.failed) == ["bad"] and "limits" in str(raised.value.failed["bad"])
    assert limits_shown(raised.value.done["good"]) == NO_LIMITS


def test_overdue_is_a_lower_bound_beyond_its_budget(ps, r, monkeypatch):
    from psctl import observing

    monkeypatch.setattr(observing, "OVERDUE_BUDGET", 3)
    ps.psaddmany("q", [(f"k{i}", "v", i) for i in range(5)])
    for _ in range(5):  # five leases, each within a second of the first (not 200 ms: a loaded machine)
        ps.pslease("q", lease=timedelta(seconds=1))
    time.sleep(1.05)
    found = ps.psstats("q")
    assert (found["held"], found["overdue"], found["overdue_capped"]) == (5, 3, True)


def test_psstatsmany_reads_every_registered_stream_or_those_named(ps, r):
    assert ps.psstatsmany() == []
    for name in ("b", "a", "c"):
        ps.psadd(name, "k", "v")
    assert [s["name"] for s in ps.psstatsmany()] == ["a", "b", "c"]
    found = ps.psstatsmany(["c", "nope"])
    assert [(s["name"], s["waiting"]) for s in found] == [("c", 1), ("nope", 0)]


def test_psstatsmany_names_a_broken_stream_and_reads_the_others(ps, r, k):
    ps.psadd("good", "k", "v")
    ps.psadd("bad", "k", "v")
    r.delete(k("bad").gated)
    r.set(k("bad").gated, "not a set")
    with pytest.raises(StreamsFailed) as raised:
        ps.psstatsmany()
    assert list(raised.value.failed) == ["bad"] and "WRONGTYPE" in str(raised.value.failed["bad"])
    assert raised.value.done["good"]["waiting"] == 1


STATE_CASES = ["waiting", "delayed", "held", "dead", "cooling", "gated", "absent"]


def test_psitem_tells_every_state(ps, r):
    ps.psaddmany("q", [("held", "v", 9), ("dead", "v", 8), ("gated", "v", 7), ("cooling", "v", 6),
                       ("waiting", "v", 5)])  # fmt: skip
    lease = ps.pslease("q", lease=timedelta(minutes=5))  # held
    ps.psrelease("q", ps.pslease("q", max_deliveries=1).token)  # dead
    ps.pspull("q", gate=True, expire_at=None)  # gated
    ps.pspull("q", expire_at=datetime(2031, 1, 1, tzinfo=timezone.utc))  # cooling
    ps.psrelease("q", ps.pslease("q").token)  # waiting, delivered once
    failed = {"reason": None, "delivery": 1}  # released with no reason given: the time and the delivery are kept
    waiting = ps.psitem("q", "waiting")
    assert abs(waiting["last_failure"].pop("at") - datetime.now(timezone.utc)) < timedelta(seconds=30)
    assert waiting == {"state": "waiting", "score": 5.0, "deliveries": 1, "last_failure": failed}
    assert ps.psitem("q", "held") == {"state": "held", "score": 9.0, "until": lease.deadline, "deliveries": 1}
    dead = ps.psitem("q", "dead")
    dead["last_failure"].pop("at")
    assert dead == {"state": "dead", "score": 8.0, "deliveries": 1, "last_failure": failed}
    assert ps.psitem("q", "cooling") == {"state": "cooling", "until": datetime(2031, 1, 1, tzinfo=timezone.utc)}
    assert ps.psitem("q", "gated") == {"state": "gated"}
    assert ps.psitem("q", "nope") == {"state": "absent"}
    ps.psadd("q", "kept", "v", 100)
    ps.pspull("q", purge=False, gate=True, expire_at=datetime(2031, 1, 1, tzinfo=timezone.utc))  # waiting too
    assert ps.psitem("q", "kept") == {"state": "waiting", "score": -1.0, "deliveries": 0, "gated": True,
                                      "until": datetime(2031, 1, 1, tzinfo=timezone.utc)}  # fmt: skip


def test_pslift_ends_gates_and_cool_downs_without_adding(ps, r):
    ps.psaddmany("q", [("a", "v", 3), ("b", "v", 2), ("c", "v", 1)])
    ps.pspull("q", gate=True, expire_at=None)  # a: gated
    ps.pspull("q")  # b: cooling
    assert ps.pslift("q", ["a", "b", "c", "nope", "a"]) == 2
    assert ps.psitem("q", "a") == ps.psitem("q", "b") == {"state": "absent"}
    assert ps.pslen("q") == 1 and ps.psadd("q", "a", "v") == 1.0  # added again at once
    assert ps.pslift("q", []) == 0


def test_a_counters_key_of_the_wrong_type_fails_an_add_with_nothing_written(ps, r, k):
    ps.psadd("q", "a", "v")
    r.delete(k("q").stats)
    r.set(k("q").stats, "not a hash")
    with pytest.raises(Exception, match="WRONGTYPE") as raised:
        ps.psadd("q", "b", "v")
    assert str(k("q").stats) in str(raised.value) and ps.pskeys("q") == ["a"]


def test_stats_of_a_thousand_streams_take_one_round_trip_per_node(backend, monkeypatch):
    """Counted on the wire: the registry's SMEMBERS, then one pipeline per node."""
    from redis.connection import AbstractConnection

    client = backend.sync()
    client.flushdb() if not backend.cluster else client.flushdb(target_nodes=client.PRIMARIES)
    for start in range(0, 1000, 100):
        for i in range(start, start + 100):
            client.psadd(f"s{i}", "k", "v")
    client.psstatsmany()  # the scripts are loaded on every node
    sends = []
    send_packed = AbstractConnection.send_packed_command

    def counting_send(self, command, *args, **kwargs):
        sends.append(self)
        return send_packed(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    found = client.psstatsmany()
    monkeypatch.undo()
    nodes = 3 if backend.cluster else 1
    assert len(found) == 1000 and all(s["waiting"] == 1 for s in found)
    assert 2 <= len(sends) <= 1 + nodes, len(sends)  # (the wire is really watched: at least two sends)
    client.close()
