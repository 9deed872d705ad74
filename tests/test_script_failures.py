"""A script that fails changes nothing (issue 11, point 2).

Redis keeps the writes a script made before one of its commands failed, so
every psctl script reads each key it will touch before its first write. Here
each key of a stream in turn holds a value of the wrong type (a string), and
every operation that touches it must fail naming that key, with every key of
the stream exactly as it was. Standalone and the 3-master cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis

from psctl.layout import REGISTRY, SUFFIXES


pytestmark = pytest.mark.both_backends


def snapshot(r: Any, keys: Any) -> dict[str, Any]:
    """Every key of the stream (and the registry), as DUMP gives it."""
    names = [*keys.every, REGISTRY]
    return {str(name): r.dump(name) for name in names}


def stream_with_everything(ps: Any, r: Any, k: Any) -> None:
    """A stream whose four keys and wake list all exist: items waiting, one
    gated, one cooling down (and no limits: pulls only check that there are none)."""
    ps.psaddmany("q", [("a", "1", 5), ("b", "2", 4), ("c", "3", 3), ("d", "4", 2), ("e", "5", 1)])
    ps.pspull("q", gate=True, expire_at=None)  # a: gated
    ps.pspull("q")  # b: cooling down
    r.rpush(k("q").wake, "1")


# the keys of the add scripts, every one of which is read before a write (NAME:limits
# for aging's shift: one of the wrong type fails as any other)
ADDED = ("values", "scores", "gated", "cooling", "wake", "held", "deliveries", "dead", "stats", "delayed",
         "delayed_scores", "failures", "limits")  # fmt: skip
# (a single add reads the records of a kept item only when its cool-down is over)
ONE_ADDED = ("values", "scores", "gated", "cooling", "wake", "held", "dead", "stats", "delayed", "limits")
PRUNED = ("values", "scores", "gated", "deliveries", "stats", "failures", "limits")
REMOVED = ("values", "scores", "gated", "held", "deliveries", "dead", "stats", "delayed", "delayed_scores", "failures")

# operation, and the keys it must read (by StreamKeys field): with one of them
# of the wrong type it fails; with any other key of the wrong type it either
# works or fails, changing nothing either way
OPERATIONS: dict[str, tuple[Callable[[Any], Any], tuple[str, ...]]] = {
    "psadd": (lambda ps: ps.psadd("q", "new", "v", 3), ONE_ADDED),
    "psadd existing": (lambda ps: ps.psadd("q", "c", "v", 3), ONE_ADDED),
    "psadd refused": (  # (refused before :exp is read)
        lambda ps: ps.psadd("q", "a", "v", 3), ("gated", "held", "dead", "stats", "delayed")
    ),
    "psadd readd": (lambda ps: ps.psadd("q", "a", "v", 3, readd=True), ONE_ADDED),
    "psadd delayed": (lambda ps: ps.psadd("q", "c", "v", 3, delay=timedelta(hours=1)), ONE_ADDED),
    "psaddmany": (lambda ps: ps.psaddmany("q", [("x", "v", 1), ("c", "v", 2), ("a", "v", 1)]), ADDED),
    "psaddmany readd": (lambda ps: ps.psaddmany("q", [("x", "v", 1), ("a", "v", 1)], readd=True), ADDED),
    "pspull one": (
        lambda ps: ps.pspull("q", gate=True),
        ("values", "scores", "gated", "cooling", "leases", "deliveries", "stats", "delayed", "failures"),
    ),
    "pspull many": (
        lambda ps: ps.pspull("q", count=2, gate=True),
        ("values", "scores", "gated", "cooling", "leases", "deliveries", "stats", "delayed", "failures"),
    ),
    "pspull keep": (
        lambda ps: ps.pspull("q", count=2, purge=False, gate=True),
        ("values", "scores", "gated", "cooling", "leases", "stats", "delayed"),
    ),
    "psincrement": (lambda ps: ps.psincrement("q", "c", 2), ("scores", "limits")),
    "psdeletebelowthreshold": (lambda ps: ps.psdeletebelowthreshold("q", 4, gate=True), PRUNED),
    "psdecrement_all": (lambda ps: ps.psdecrement_all("q", 1), ("scores", "delayed_scores")),
    "psremove": (lambda ps: ps.psremove("q", ["c", "d"], gate=True), REMOVED),
    "psremove dry run": (lambda ps: ps.psremove("q", ["c", "d"], dry_run=True), ("scores", "held", "dead", "delayed")),
    "pslift": (lambda ps: ps.pslift("q", ["a", "b"]), ("gated", "cooling")),
    "pslift dry run": (lambda ps: ps.pslift("q", ["a", "b"], dry_run=True), ("gated", "cooling")),
    "psvalues": (lambda ps: ps.psvalues("q"), ("values", "scores")),
    "psvalues with scores": (lambda ps: ps.psvalues("q", withscores=True), ("values", "scores", "limits")),
    "pskeys with scores": (lambda ps: ps.pskeys("q", withscores=True), ("scores", "limits")),
    "pskeys below": (lambda ps: ps.pskeys("q", below=4), ("scores", "limits")),
    "psscores": (lambda ps: ps.psscores("q", ["c", "x"]), ("scores", "limits")),
}

CASES = [(op, field) for op, (_, fields) in OPERATIONS.items() for field in fields]


@pytest.mark.parametrize(("operation", "field"), CASES, ids=[f"{op}-{field}" for op, field in CASES])
def test_a_wrong_type_fails_naming_the_key_and_changes_nothing(ps, r, k, operation, field):
    stream_with_everything(ps, r, k)
    keys = k("q")
    bad = getattr(keys, field)
    r.delete(bad)
    r.set(bad, "not what psctl keeps here")
    before = snapshot(r, keys)
    run, _ = OPERATIONS[operation]
    with pytest.raises(redis.ResponseError) as raised:
        run(ps)
    assert "WRONGTYPE" in str(raised.value) and str(bad) in str(raised.value)
    assert snapshot(r, keys) == before


def test_expire_with_a_wrong_type_changes_nothing_in_that_stream(ps, r, k):
    ps.psaddmany("q", [("a", "1", 5), ("b", "2", 4)])
    ps.pspull("q", count=2, expire_at=None)
    r.zadd(k("q").cooling, {"a": 1, "b": 1})  # due long ago
    r.delete(k("q").values)
    r.set(k("q").values, "not a hash")
    before = snapshot(r, k("q"))
    with pytest.raises(Exception) as raised:
        ps.psexpire()
    assert str(k("q").values) in str(raised.value)
    assert snapshot(r, k("q")) == before


# -- with leases --------------------------------------------------------------------


class Tokens:
    held: str = ""  # a lease that holds d and e
    expired: str = ""  # a lease whose deadline has passed: f comes back in the next pull or lease


def stream_with_leases(ps: Any, r: Any, k: Any) -> Tokens:
    """Every key a stream may have: items waiting (g with deliveries from an
    earlier lease), gated, cooling down, held by a lease, held by a lease that
    ran out, and dead; the wake list."""
    keys = k("q")
    ps.psaddmany("q", [(key, key.upper(), 10 - i) for i, key in enumerate("abcdefgh")])
    ps.pspull("q", gate=True, expire_at=None)  # a: gated
    ps.pspull("q")  # b: cooling down
    ps.psrelease("q", ps.pslease("q").token)  # c: back, delivered once
    ps.psrelease("q", ps.pslease("q", max_deliveries=1).token)  # c: dead
    tokens = Tokens()
    tokens.held = ps.pslease("q", count=2).token  # d, e
    tokens.expired = ps.pslease("q").token  # f
    ps.psrelease("q", ps.pslease("q").token)  # g: back, delivered once
    r.zadd(keys.leases, {tokens.expired: 1})  # f's deadline long gone (after the last lease: none took it back)
    ps.psadd("q", "i", "I", 1, delay=timedelta(hours=1))  # i: delayed
    r.rpush(keys.wake, "1")
    ps.pslimit("q", rate=1000, max_held=100)  # limits that do not bind
    assert r.exists(*keys.every) == len(keys.every)
    return tokens


EVERY_LEASE_KEY = ("held", "leases", "lease", "deliveries", "dead")
DUE = ("delayed", "delayed_scores", "failures")  # read (with every key) when something is due
PULLED = ("values", "scores", "gated", "cooling", *EVERY_LEASE_KEY, "stats", *DUE, "limits")
LEASED = ("values", "scores", "cooling", *EVERY_LEASE_KEY, "stats", *DUE, "limits")
# (a max_held is set: what frees held items reads NAME:limits, and NAME:wake to wake leases blocked on it)
RELEASED = ("scores", "wake", *EVERY_LEASE_KEY, "stats", *DUE, "limits")
ACKED = ("values", "gated", "cooling", "held", "leases", "lease", "stats", "failures", "limits", "wake")
# (something is due, f's lease having run out: every key of acklease-15.lua is read)
ACK_LEASED = ("values", "scores", "gated", "cooling", *EVERY_LEASE_KEY, "stats", *DUE, "limits", "wake")

# operation (given the client and the setup's tokens), and the keys it touches
WITH_LEASES: dict[str, tuple[Callable[[Any, Tokens], Any], tuple[str, ...]]] = {
    "psadd": (lambda ps, t: ps.psadd("q", "new", "v", 3), ONE_ADDED),
    "psadd delayed": (  # i stays delayed, its score and time in the delayed keys
        lambda ps, t: ps.psadd("q", "i", "v", 3),
        ("values", "gated", "cooling", "wake", "held", "dead", "stats", "delayed", "delayed_scores", "limits"),
    ),
    "psadd held": (lambda ps, t: ps.psadd("q", "d", "v", 3), ("held", "stats")),  # refused: held
    "psadd dead": (lambda ps, t: ps.psadd("q", "c", "v", 3), ("held", "dead", "stats")),  # refused: dead
    "psaddmany": (lambda ps, t: ps.psaddmany("q", [("x", "v", 1), ("d", "v", 1), ("c", "v", 1)]), ADDED),
    "pspull one": (lambda ps, t: ps.pspull("q", gate=True), PULLED),
    "pspull many": (lambda ps, t: ps.pspull("q", count=3, gate=True), PULLED),
    "pspull keep": (lambda ps, t: ps.pspull("q", count=3, purge=False, gate=True), PULLED),
    "pslease one": (lambda ps, t: ps.pslease("q"), LEASED),
    "pslease many": (lambda ps, t: ps.pslease("q", count=3), LEASED),
    "psack": (lambda ps, t: ps.psack("q", t.held, gate=True), ACKED),
    "psack keys": (lambda ps, t: ps.psack("q", t.held, ["d"], gate=True), ACKED),
    "psacklease": (lambda ps, t: ps.psacklease("q", t.held, count=3, gate=True), ACK_LEASED),
    "psacklease keys": (lambda ps, t: ps.psacklease("q", t.held, ["d"], gate=True), ACK_LEASED),
    "psacklease late": (  # (acknowledges nothing: frees no held slot)
        lambda ps, t: ps.psacklease("q", t.expired, count=2), tuple(f for f in ACK_LEASED if f != "wake")
    ),
    "psacklease count 0": (lambda ps, t: ps.psacklease("q", t.held, gate=True, count=0), ACKED),
    "psrelease": (lambda ps, t: ps.psrelease("q", t.held), RELEASED),
    "psrelease dead": (lambda ps, t: ps.psrelease("q", t.held, ["e"], reason="x", dead=True), RELEASED),
    "psrelease delayed": (lambda ps, t: ps.psrelease("q", t.held, ["e"], delay=5, reason="x"), RELEASED),
    "psextend": (lambda ps, t: ps.psextend("q", t.held, 60), ("held", "leases", "lease")),
    "psdead": (lambda ps, t: ps.psdead("q"), ("dead", "values", "deliveries", "failures")),
    "psrequeue": (lambda ps, t: ps.psrequeue("q"), ("scores", "deliveries", "dead", "failures", "limits")),
    "psrequeue keys": (
        lambda ps, t: ps.psrequeue("q", ["c"], score=1), ("scores", "deliveries", "dead", "failures", "limits")
    ),
    "psremove": (  # dead, held (its lease is read, to forget it once it holds nothing), waiting, delayed
        lambda ps, t: ps.psremove("q", ["c", "d", "g", "i"], gate=True), (*REMOVED, "leases", "lease", "limits", "wake")
    ),
    "psdeletebelowthreshold": (lambda ps, t: ps.psdeletebelowthreshold("q", 5, gate=True), PRUNED),  # g, h
}

LEASE_CASES = [(op, field) for op, (_, fields) in WITH_LEASES.items() for field in fields]


@pytest.mark.parametrize(("operation", "field"), LEASE_CASES, ids=[f"{op}-{field}" for op, field in LEASE_CASES])
def test_a_wrong_type_beside_leases_fails_naming_the_key_and_changes_nothing(ps, r, k, operation, field):
    tokens = stream_with_leases(ps, r, k)
    keys = k("q")
    bad = getattr(keys, field)
    r.delete(bad)
    r.set(bad, "not what psctl keeps here")
    before = snapshot(r, keys)
    run, _ = WITH_LEASES[operation]
    with pytest.raises(redis.ResponseError) as raised:
        run(ps, tokens)
    assert "WRONGTYPE" in str(raised.value) and str(bad) in str(raised.value)
    assert snapshot(r, keys) == before


@pytest.mark.parametrize("field", ("values", "scores", "gated", "cooling", *EVERY_LEASE_KEY, "stats", *DUE, "limits"))
def test_expire_beside_leases_with_a_wrong_type_changes_nothing_in_that_stream(ps, r, k, field):
    stream_with_leases(ps, r, k)
    r.zadd(k("q").cooling, {"b": 1})  # due long ago
    bad = getattr(k("q"), field)
    r.delete(bad)
    r.set(bad, "not what psctl keeps here")
    before = snapshot(r, k("q"))
    with pytest.raises(Exception) as raised:
        ps.psexpire()
    assert str(bad) in str(raised.value)
    assert snapshot(r, k("q")) == before


def test_the_setup_with_leases_works_with_every_key_right(ps, r, k):
    """The cases above fail for the wrong key, not for a setup that is wrong."""
    tokens = stream_with_leases(ps, r, k)
    assert ps.psdead("q") == {"c": b"C"}
    lease = ps.pslease("q", count=3)
    assert lease.items == {"f": b"F", "g": b"G", "h": b"H"} and lease.deliveries == {"f": 2, "g": 2, "h": 1}
    assert ps.psack("q", tokens.held) == 2


def _fails_cleanly_or_works(ps: Any, r: Any, keys: Any, field: str, run: Callable[[], Any]) -> None:
    bad = getattr(keys, field)
    r.delete(bad)
    r.set(bad, "not what psctl keeps here")
    before = snapshot(r, keys)
    try:
        run()
    except redis.ResponseError as exc:
        assert "WRONGTYPE" in str(exc) and str(bad) in str(exc), (field, exc)
        assert snapshot(r, keys) == before, field


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_any_other_key_of_the_wrong_type_fails_cleanly_or_not_at_all(ps, r, k, operation):
    run, declared = OPERATIONS[operation]
    for field in SUFFIXES:
        if field not in declared:
            r.flushdb()
            stream_with_everything(ps, r, k)
            _fails_cleanly_or_works(ps, r, k("q"), field, lambda: run(ps))


@pytest.mark.parametrize("operation", list(WITH_LEASES))
def test_any_other_key_beside_leases_of_the_wrong_type_fails_cleanly_or_not_at_all(ps, r, k, operation):
    run, declared = WITH_LEASES[operation]
    for field in SUFFIXES:
        if field not in declared:
            r.flushdb()
            tokens = stream_with_leases(ps, r, k)
            _fails_cleanly_or_works(ps, r, k("q"), field, lambda: run(ps, tokens))
