"""The library's cases: psctl's operations against what a user would write
by hand with plain redis-py (no checks, no atomicity); single round trips
also against psctl's own script called by hand with redis-py's ``evalsha``
(the same server work: what is left is psctl's client-side cost)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from benchmarks.bench import Bench
from benchmarks.harness import Case, Measure, Target, Unit
from psctl import defaults
from psctl import operations as op
from psctl.layout import REGISTRY, StreamKeys, stream_keys
from psctl.operations import ADD_CHUNK, EXPIRE_CHUNK
from psctl.protocol import Call, Plan
from psctl.scripts import script

NAME = "bench"


def cases(b: Bench) -> list[Case]:
    return [
        add(b),
        pull(b),
        pull_cooling(b),
        expire(b),
        round_trip(b),
        psadd_round_trip(b),
        pspull_round_trip(b),
        async_add(b),
        async_pull(b),
    ]


def expect(what: str, got: int, wanted: int) -> int:
    if got != wanted:
        raise RuntimeError(f"{what} handled {got} items, expected {wanted}")
    return got


# -- add ---------------------------------------------------------------------------


def add_by_hand(pipeline: Callable[[], Any], keys: StreamKeys, items: list[Any], chunk: int) -> int:
    """The add baseline: per round, one HSET and one ZADD of ``chunk`` items."""
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        pipe = pipeline()
        pipe.hset(keys.values, mapping={k: v for k, v, _ in part})
        pipe.zadd(keys.scores, {k: s for k, _, s in part})
        pipe.execute()
    return len(items)


def add(b: Bench) -> Case:
    keys = stream_keys(NAME)

    def baseline(_: Any) -> int:
        return add_by_hand(lambda: b.plain.pipeline(transaction=False), keys, b.items, b.sizes.chunk)

    def psaddmany(_: Any) -> int:
        return len(b.ps.psaddmany(NAME, b.items))

    return Case(
        "add",
        Unit.RATE,
        Measure(f"pipeline: HSET + ZADD of {b.sizes.chunk}", baseline, b.flush),
        [(Measure(f"psaddmany ({ADD_CHUNK}/call)", psaddmany, b.flush), Target(">=", 0.7))],
    )


# -- pull --------------------------------------------------------------------------


def pull_by_hand(plain: Any, pipeline: Callable[[], Any], keys: StreamKeys, chunk: int, total: int) -> int:
    """The pull baseline: ZPOPMAX ``chunk``, then HMGET + HDEL in one pipeline, until empty."""
    pulled = 0
    while popped := plain.zpopmax(keys.scores, chunk):
        members = [member for member, _ in popped]
        pipe = pipeline()
        pipe.hmget(keys.values, members)
        pipe.hdel(keys.values, *members)
        values, _ = pipe.execute()
        pulled += len(values)
    return expect("baseline pull", pulled, total)


def pull_all(client: Any, chunk: int, total: int, **options: Any) -> Callable[[Any], int]:
    """A measure that pulls ``chunk`` at a time with ``client`` until the stream is empty."""

    def run(_: Any) -> int:
        pulled = 0
        while got := client.pspull(NAME, count=chunk, **options):
            pulled += len(got)
        return expect("pspull", pulled, total)

    return run


def pull(b: Bench) -> Case:
    keys = stream_keys(NAME)
    chunk, total = b.sizes.chunk, len(b.items)

    def setup() -> None:
        b.flush()
        b.fill(NAME, b.items)

    def baseline(_: Any) -> int:
        return pull_by_hand(b.plain, lambda: b.plain.pipeline(transaction=False), keys, chunk, total)

    return Case(
        "pull",
        Unit.RATE,
        Measure(f"ZPOPMAX {chunk}, then HMGET + HDEL", baseline, setup),
        [
            (Measure(f"pspull({chunk}, expire_at=None)", pull_all(b.ps, chunk, total, expire_at=None), setup), Target(">=", 1.0)),
            (Measure(f"pspull({chunk}) (1-day expire)", pull_all(b.ps, chunk, total), setup), Target(">=", 1.0)),
        ],
    )


def pull_cooling(b: Bench) -> Case:
    """``pspull``'s default, a 1-day cool-down, against a baseline that writes
    it too: where the gap to the issue's pull baseline (which writes none) comes from."""
    keys = stream_keys(NAME)
    chunk = b.sizes.chunk
    day = timedelta(days=1)

    def setup() -> None:
        b.flush()
        b.fill(NAME, b.items)

    def baseline(_: Any) -> int:
        pulled = 0
        while popped := b.plain.zpopmax(keys.scores, chunk):
            members = [member for member, _ in popped]
            until = time.time() + day.total_seconds()
            pipe = b.plain.pipeline(transaction=False)
            pipe.hmget(keys.values, members)
            pipe.hdel(keys.values, *members)
            pipe.zadd(keys.cooling, dict.fromkeys(members, until))
            values, _, _ = pipe.execute()
            pulled += len(values)
        return expect("baseline pull with cool-down", pulled, len(b.items))

    def pspull(_: Any) -> int:
        pulled = 0
        while got := b.ps.pspull(NAME, count=chunk, expire_at=day):
            pulled += len(got)
        return expect("pspull", pulled, len(b.items))

    return Case(
        "pull + cool-down",
        Unit.RATE,
        Measure(f"ZPOPMAX {chunk}, then HMGET + HDEL + ZADD :exp", baseline, setup),
        [(Measure(f"pspull({chunk}) (1-day expire)", pspull, setup), None)],
    )


# -- expire ------------------------------------------------------------------------


def expire_setup(b: Bench) -> None:
    """``sizes.items`` items over ``sizes.streams`` streams, every one cooling
    down until a minute ago (so due now)."""
    b.flush()
    due = b.server_time() - 60
    per_stream = len(b.items) // b.sizes.streams
    for i in range(b.sizes.streams):
        b.fill(f"{NAME}-{i}", b.items[i * per_stream : (i + 1) * per_stream], cooling_until=due)


def expire(b: Bench) -> Case:
    chunk = b.sizes.chunk
    total = len(b.items) // b.sizes.streams * b.sizes.streams

    def baseline(_: Any) -> int:
        removed = 0
        now = int(time.time())
        for name in b.plain.smembers(REGISTRY):
            keys = stream_keys(name.decode())
            due = b.plain.zrangebyscore(keys.cooling, "-inf", now)
            for start in range(0, len(due), chunk):
                part = due[start : start + chunk]
                pipe = b.plain.pipeline(transaction=False)
                pipe.zrem(keys.cooling, *part)
                pipe.hdel(keys.values, *part)
                pipe.zrem(keys.scores, *part)
                pipe.execute()
            removed += len(due)
        return expect("baseline expire", removed, total)

    def psexpire(_: Any) -> int:
        return expect("psexpire", sum(b.ps.psexpire().values()), total)

    return Case(
        "expire",
        Unit.RATE,
        Measure(f"per stream ZRANGEBYSCORE, then ZREM/HDEL/ZREM per {chunk}", baseline, lambda: expire_setup(b)),
        [
            (
                Measure(f"psexpire ({b.sizes.streams} streams, {EXPIRE_CHUNK}/call)", psexpire, lambda: expire_setup(b)),
                Target(">=", 0.5),
            )
        ],
    )


# -- single round trip -------------------------------------------------------------


def round_trip(b: Bench) -> Case:
    calls = b.call_items

    def load_empty_script() -> str:
        return b.plain.script_load("return 1")

    def baseline(sha: str) -> int:
        evalsha = b.plain.evalsha
        for _ in calls:
            evalsha(sha, 0)
        return len(calls)

    def psadd(_: Any) -> int:
        psadd = b.ps.psadd
        for key, value, score in calls:
            psadd(NAME, key, value, score)
        return len(calls)

    def fill_calls() -> None:
        b.flush()
        b.fill(NAME, calls)

    def pspull_one(_: Any) -> int:
        pspull = b.ps.pspull
        pulled = sum(len(pspull(NAME)) for _ in calls)
        return expect("pspull(1)", pulled, len(calls))

    return Case(
        "round trip",
        Unit.LATENCY,
        Measure('EVALSHA of "return 1"', baseline, load_empty_script),
        [(Measure("psadd", psadd, b.flush), None), (Measure("pspull(count=1)", pspull_one, fill_calls), None)],
        repeats=max(b.sizes.calls // len(calls), 1),
    )


# -- single round trip, like for like: the same script by hand -----------------------


def by_hand(plan: Plan) -> tuple[Any, ...]:
    """The arguments of ``redis.Redis.evalsha`` for a plan's first request (a
    script call), made by psctl's own plan without I/O: what a user calling
    the same script with the same KEYS and ARGV sends."""
    call = plan.send(None)
    plan.close()
    if type(call) is not Call:
        raise TypeError(f"the plan's first request is not a script call: {call!r}")
    return (call.script.sha, call.script.numkeys, *call.keys, *call.args)


def script_by_hand(b: Bench, name: str, setup: Callable[[], list[tuple[Any, ...]]], took: Callable[[Any], int]) -> Measure:
    """A baseline: ``redis.Redis.evalsha`` of the script ``name`` with each
    argument list ``setup`` returns (the script loaded first); ``took``
    counts what a reply did, checked against the calls made."""
    lua = script(name)

    def load() -> list[tuple[Any, ...]]:
        calls = setup()
        b.plain.script_load(lua.source)
        return calls

    def run(calls: list[tuple[Any, ...]]) -> int:
        evalsha = b.plain.evalsha
        done = sum(took(evalsha(*args)) for args in calls)
        return expect(f"evalsha of {name}", done, len(calls))

    return Measure(f"redis-py evalsha of lua/{name}-{lua.numkeys}.lua, same KEYS/ARGV", run, load)


def psadd_round_trip(b: Bench) -> Case:
    """``psadd`` against its script called by hand. Both sides start on a
    stream that exists (an add to a new stream registers its name first:
    three round trips, once)."""
    calls = b.call_items
    keys = stream_keys(NAME)

    def started() -> None:
        b.flush()
        b.ps.psadd(NAME, "first", b"v", 0)

    def args() -> list[tuple[Any, ...]]:
        started()
        return [by_hand(op.add_one(keys, key, value, score, False)) for key, value, score in calls]

    def psadd(_: Any) -> int:
        psadd = b.ps.psadd
        return expect("psadd", sum(psadd(NAME, key, value, score) is not None for key, value, score in calls), len(calls))

    return Case(
        "psadd round trip",
        Unit.LATENCY,
        script_by_hand(b, "addone", args, lambda reply: reply[1] is not None),
        [(Measure("psadd", psadd, started), Target("<=", 1.2))],
        repeats=max(b.sizes.calls // len(calls), 1),
    )


def pspull_round_trip(b: Bench, limits: dict[str, Any] | None = None) -> Case:
    """``pspull(count=1)`` against its script called by hand; with ``limits``
    (``pslimit``'s keywords) set on the stream first, on both sides."""
    calls = b.call_items
    keys = stream_keys(NAME)

    def fill_calls() -> None:
        b.flush()
        b.fill(NAME, calls)
        if limits:
            b.ps.pslimit(NAME, **limits)

    def args() -> list[tuple[Any, ...]]:
        fill_calls()
        return [by_hand(op.pull(keys, 1, True, False, defaults.COOL_DOWN))] * len(calls)

    def pspull_one(_: Any) -> int:
        pspull = b.ps.pspull
        return expect("pspull(1)", sum(len(pspull(NAME)) for _ in calls), len(calls))

    return Case(
        "pspull round trip" + (" with limits" if limits else ""),
        Unit.LATENCY,
        script_by_hand(b, "pullone", args, lambda reply: len(reply) > 1),
        [(Measure("pspull(count=1)", pspull_one, fill_calls), Target("<=", 1.2))],
        repeats=max(b.sizes.calls // len(calls), 1),
    )


# -- async -------------------------------------------------------------------------


def async_add(b: Bench) -> Case:
    def sync(_: Any) -> int:
        return len(b.ps.psaddmany(NAME, b.items))

    def async_(_: Any) -> int:
        return len(b.run_async(b.aps.psaddmany(NAME, b.items)))

    return Case(
        "async add",
        Unit.RATE,
        Measure(f"sync psaddmany ({ADD_CHUNK}/call)", sync, b.flush),
        [(Measure("AsyncRedis psaddmany", async_, b.flush), Target(">=", 0.8))],
    )


def async_pull(b: Bench) -> Case:
    chunk = b.sizes.chunk
    day = timedelta(days=1)

    def setup() -> None:
        b.flush()
        b.fill(NAME, b.items)

    def sync(_: Any) -> int:
        pulled = 0
        while got := b.ps.pspull(NAME, count=chunk, expire_at=day):
            pulled += len(got)
        return expect("pspull", pulled, len(b.items))

    async def drain() -> int:
        pulled = 0
        while got := await b.aps.pspull(NAME, count=chunk, expire_at=day):
            pulled += len(got)
        return pulled

    def async_(_: Any) -> int:
        return expect("async pspull", b.run_async(drain()), len(b.items))

    return Case(
        "async pull",
        Unit.RATE,
        Measure(f"sync pspull({chunk})", sync, setup),
        [(Measure(f"AsyncRedis pspull({chunk})", async_, setup), Target(">=", 0.8))],
    )
