"""A script that fails changes nothing (issue 11, point 2).

Redis keeps the writes a script made before one of its commands failed, so
every psctl script reads each key it will touch before its first write. Here
each key of a stream in turn holds a value of the wrong type (a string), and
every operation that touches it must fail naming that key, with every key of
the stream exactly as it was. Standalone and the 3-master cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from psctl.layout import REGISTRY


pytestmark = pytest.mark.both_backends


def snapshot(r: Any, keys: Any) -> dict[str, Any]:
    """Every key of the stream (and the registry), as DUMP gives it."""
    names = [*keys.every, REGISTRY]
    return {str(name): r.dump(name) for name in names}


def stream_with_everything(ps: Any, r: Any, k: Any) -> None:
    """A stream whose four keys and wake list all exist: items waiting, one
    gated, one cooling down."""
    ps.psaddmany("q", [("a", "1", 5), ("b", "2", 4), ("c", "3", 3), ("d", "4", 2), ("e", "5", 1)])
    ps.pspull("q", gate=True, expire_at=None)  # a: gated
    ps.pspull("q")  # b: cooling down
    r.rpush(k("q").wake, "1")


# operation, and the keys it touches (by StreamKeys field)
OPERATIONS: dict[str, tuple[Callable[[Any], Any], tuple[str, ...]]] = {
    "psadd": (lambda ps: ps.psadd("q", "new", "v", 3), ("values", "scores", "gated", "cooling", "wake", "stats")),
    "psadd existing": (
        lambda ps: ps.psadd("q", "c", "v", 3), ("values", "scores", "gated", "cooling", "wake", "stats")
    ),
    "psadd refused": (lambda ps: ps.psadd("q", "a", "v", 3), ("gated", "stats")),  # (refused before :exp is read)
    "psadd readd": (
        lambda ps: ps.psadd("q", "a", "v", 3, readd=True), ("values", "scores", "gated", "cooling", "wake", "stats")
    ),
    "psaddmany": (
        lambda ps: ps.psaddmany("q", [("x", "v", 1), ("c", "v", 2), ("a", "v", 1)]),
        ("values", "scores", "gated", "cooling", "wake", "stats"),
    ),
    "psaddmany readd": (
        lambda ps: ps.psaddmany("q", [("x", "v", 1), ("a", "v", 1)], readd=True),
        ("values", "scores", "gated", "cooling", "wake", "stats"),
    ),
    "pspull one": (lambda ps: ps.pspull("q", gate=True), ("values", "scores", "gated", "cooling", "stats")),
    "pspull many": (
        lambda ps: ps.pspull("q", count=2, gate=True), ("values", "scores", "gated", "cooling", "stats")
    ),
    "pspull keep": (
        lambda ps: ps.pspull("q", count=2, purge=False, gate=True),
        ("values", "scores", "gated", "cooling", "stats"),
    ),
    "psincrement": (lambda ps: ps.psincrement("q", "c", 2), ("scores",)),
    "psdeletebelowthreshold": (
        lambda ps: ps.psdeletebelowthreshold("q", 4, gate=True),
        ("values", "scores", "gated", "deliveries", "stats"),
    ),
    "psdecrement_all": (lambda ps: ps.psdecrement_all("q", 1), ("scores",)),
    "psremove": (
        lambda ps: ps.psremove("q", ["c", "d"], gate=True),
        ("values", "scores", "gated", "held", "deliveries", "dead", "stats"),
    ),
    "psremove dry run": (lambda ps: ps.psremove("q", ["c", "d"], dry_run=True), ("scores", "held", "dead")),
    "pslift": (lambda ps: ps.pslift("q", ["a", "b"]), ("gated", "cooling")),
    "pslift dry run": (lambda ps: ps.pslift("q", ["a", "b"], dry_run=True), ("gated", "cooling")),
    "psvalues": (lambda ps: ps.psvalues("q"), ("values", "scores")),
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
    r.rpush(keys.wake, "1")
    assert r.exists(*keys.every) == len(keys.every)
    return tokens


EVERY_LEASE_KEY = ("held", "leases", "lease", "deliveries", "dead")
PULLED = ("values", "scores", "gated", "cooling", *EVERY_LEASE_KEY, "stats")
LEASED = ("values", "scores", *EVERY_LEASE_KEY, "stats")
ADDED = ("values", "scores", "gated", "cooling", "wake", "held", "dead", "stats")

# operation (given the client and the setup's tokens), and the keys it touches
WITH_LEASES: dict[str, tuple[Callable[[Any, Tokens], Any], tuple[str, ...]]] = {
    "psadd": (lambda ps, t: ps.psadd("q", "new", "v", 3), ADDED),
    "psadd held": (lambda ps, t: ps.psadd("q", "d", "v", 3), ("held", "stats")),  # refused: held
    "psadd dead": (lambda ps, t: ps.psadd("q", "c", "v", 3), ("held", "dead", "stats")),  # refused: dead
    "psaddmany": (lambda ps, t: ps.psaddmany("q", [("x", "v", 1), ("d", "v", 1), ("c", "v", 1)]), ADDED),
    "pspull one": (lambda ps, t: ps.pspull("q", gate=True), PULLED),
    "pspull many": (lambda ps, t: ps.pspull("q", count=3, gate=True), PULLED),
    "pspull keep": (
        lambda ps, t: ps.pspull("q", count=3, purge=False, gate=True),
        ("values", "scores", "gated", "cooling", "held", "leases", "lease", "dead", "stats"),
    ),
    "pslease one": (lambda ps, t: ps.pslease("q"), LEASED),
    "pslease many": (lambda ps, t: ps.pslease("q", count=3), LEASED),
    "psack": (
        lambda ps, t: ps.psack("q", t.held, gate=True),
        ("values", "gated", "cooling", "held", "leases", "lease", "stats"),
    ),
    "psack keys": (
        lambda ps, t: ps.psack("q", t.held, ["d"], gate=True),
        ("values", "gated", "cooling", "held", "leases", "lease", "stats"),
    ),
    "psrelease": (lambda ps, t: ps.psrelease("q", t.held), ("scores", *EVERY_LEASE_KEY, "stats")),
    "psrelease delayed": (
        lambda ps, t: ps.psrelease("q", t.held, ["e"], delay=5), ("scores", *EVERY_LEASE_KEY, "stats")
    ),
    "psextend": (lambda ps, t: ps.psextend("q", t.held, 60), ("held", "leases", "lease")),
    "psdead": (lambda ps, t: ps.psdead("q"), ("dead", "values", "deliveries")),
    "psrequeue": (lambda ps, t: ps.psrequeue("q"), ("scores", "deliveries", "dead")),
    "psrequeue keys": (lambda ps, t: ps.psrequeue("q", ["c"], score=1), ("scores", "deliveries", "dead")),
    "psremove": (  # c dead, d held, g waiting with deliveries
        lambda ps, t: ps.psremove("q", ["c", "d", "g"], gate=True),
        ("values", "scores", "gated", "held", "deliveries", "dead", "stats"),
    ),
    "psdeletebelowthreshold": (  # g, with deliveries, and h
        lambda ps, t: ps.psdeletebelowthreshold("q", 5, gate=True), ("values", "scores", "gated", "deliveries", "stats")
    ),
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


@pytest.mark.parametrize("field", ("values", "scores", "cooling", *EVERY_LEASE_KEY, "stats"))
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
