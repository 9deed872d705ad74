"""What a user's type checker sees of the ``ps*`` methods, sync and async.
Never run: checked by hand, since mypy is not a test dependency::

    pip install mypy && mypy --strict --follow-imports=silent tests/typing_sample.py

Every ``assert_type`` must hold and every ``type: ignore`` must be needed
(``--strict`` reports one that is not)."""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, assert_type

from psctl import (
    AckLease,
    AddSummary,
    Added,
    AsyncRedis,
    AsyncRedisCluster,
    DeadItems,
    Expired,
    Item,
    KeyRow,
    Lease,
    Limits,
    Redis,
    RedisCluster,
    State,
    Stats,
)


def sync(r: Redis, c: RedisCluster) -> None:
    assert_type(r.pslen("q"), int)
    assert_type(c.pslen("q"), int)
    assert_type(r.psadd("q", "k", "v"), float | None)
    assert_type(r.psadd("q", "k", "v", 2, explain=True), Added)
    assert_type(r.psaddmany("q", [("k", "v", 1)]), list[float | None])
    assert_type(r.psaddmany("q", [("k", "v", 1)], summary=True), AddSummary)
    assert_type(r.pskeys("q"), list[str])
    assert_type(r.pskeys("q", withscores=True), list[tuple[str, float]])
    assert_type(c.pskeys("q", True, 10), list[tuple[str, float]])
    assert_type(r.pskeys("q", state="held"), list[KeyRow])
    assert_type(r.pspull("q", count=2), dict[str, Any])
    assert_type(r.psvaluespage("q"), tuple[dict[str, Any], int | None])
    assert_type(r.pslease("q"), Lease)
    assert_type(r.psack("q", "token"), int)
    assert_type(r.psacklease("q", "token", count=2), AckLease)
    assert_type(c.psacklease("q", "token").lease, Lease)
    assert_type(r.psrelease("q", "token", reason="bad", dead=True), int)
    r.psacklease("q", "token", ["k"], 2)  # type: ignore[call-arg]
    assert_type(r.psextend("q", "token", 60), datetime | None)
    assert_type(r.psdead("q"), DeadItems)
    assert_type(r.psdead("q").reasons, dict[str, str | None])
    assert_type(r.psexpire(), Expired)
    assert_type(r.psstats("q"), Stats)
    assert_type(r.psstats("q")["counters"]["acked"], int)
    assert_type(r.psstatsmany(), list[Stats])
    assert_type(r.psitem("q", "k")["state"], State)
    assert_type(r.psitem("q", "k"), Item)
    assert_type(r.pspause("q"), bool)
    assert_type(c.psresume("q"), bool)
    assert_type(r.pslimit("q", rate=10, max_held=4), Limits)
    assert_type(r.pslimit("q")["max_held"], int | None)
    assert_type(r.pslimit("q", aging=timedelta(minutes=1))["aging"], timedelta | None)
    with r.psleased("q") as lease:
        assert_type(lease, Lease)
    r.pslen(3)  # type: ignore[arg-type]
    r.pspull("q", cont=2)  # type: ignore[call-arg]
    r.psstats("q")["waitng"]  # type: ignore[misc]


async def asynchronous(r: AsyncRedis, c: AsyncRedisCluster) -> None:
    assert_type(await r.pslen("q"), int)
    assert_type(await c.pslen("q"), int)
    pending: Coroutine[Any, Any, int] = r.pslen("q")
    assert_type(await pending, int)
    assert_type(await r.psadd("q", "k", "v"), float | None)
    assert_type(await r.psadd("q", "k", "v", explain=True), Added)
    assert_type(await c.psaddmany("q", [], summary=True), AddSummary)
    assert_type(await r.pskeys("q", withscores=True), list[tuple[str, float]])
    assert_type(await r.pskeys("q", state="dead"), list[KeyRow])
    assert_type(await r.pslease("q"), Lease)
    assert_type(await r.psacklease("q", "token"), AckLease)
    assert_type((await c.psacklease("q", "token", count=0)).acked, int)
    assert_type(await r.psstats("q"), Stats)
    assert_type(await r.psexpire(), Expired)
    assert_type(await c.pspause("q"), bool)
    assert_type(await r.pslimit("q", rate=1.5, burst=3), Limits)
    async with r.psleased("q") as lease:
        assert_type(lease, Lease)
    _ = (await r.pslen("q")) + 1
    _ = r.pslen("q") + 1  # type: ignore[operator]
