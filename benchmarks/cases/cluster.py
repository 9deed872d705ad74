"""The cluster's cases: ``psaddmany`` and ``pspull`` on a 3-master Redis
Cluster (``psctl._cluster_launch``, loopback TCP), against the same plain
redis-py commands sent by redis-py's cluster client to the hash-tagged keys.

The issue sets no target here: the ratios are shown next to the standalone
ones. A cluster client cannot hold a connection between two calls, so
``psaddmany`` has no call in flight while it prepares the next chunk there.

The registry's cases measure what its healing costs: ``psnames`` and
``psexpire`` against themselves as they were before (the registry read with
``SMEMBERS`` alone: a client whose runner says it is no cluster when a plan
asks), and one sweep against a read that needs none.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from benchmarks.bench import Bench
from benchmarks.cases.library import NAME, add_by_hand, pull_all, pull_by_hand
from benchmarks.harness import Case, Measure, Unit
from psctl.cluster import RedisCluster
from psctl.layout import REGISTRY, SWEPT, stream_keys
from psctl.operations import ADD_CHUNK
from psctl.protocol import Primaries


def cases(b: Bench) -> list[Case]:
    return [add(b), pull(b), names(b), expire(b), sweep(b)]


def add(b: Bench) -> Case:
    keys = stream_keys(NAME, cluster=True)

    def baseline(_: Any) -> int:
        return add_by_hand(b.cluster_plain.pipeline, keys, b.items, b.sizes.chunk)

    def psaddmany(_: Any) -> int:
        return len(b.cluster_ps.psaddmany(NAME, b.items))

    return Case(
        "cluster add",
        Unit.RATE,
        Measure(
            f"cluster pipeline: HSET + ZADD of {b.sizes.chunk} on {keys.values}, {keys.scores}", baseline, b.cluster_flush
        ),
        [(Measure(f"psaddmany ({ADD_CHUNK}/call)", psaddmany, b.cluster_flush), None)],
        unavailable=b.cluster_missing,
    )


def pull(b: Bench) -> Case:
    keys = stream_keys(NAME, cluster=True)
    chunk, total = b.sizes.chunk, len(b.items)

    def setup() -> None:
        b.cluster_flush()
        b.fill(NAME, b.items, cluster=True)

    def baseline(_: Any) -> int:
        return pull_by_hand(b.cluster_plain, b.cluster_plain.pipeline, keys, chunk, total)

    return Case(
        "cluster pull",
        Unit.RATE,
        Measure(f"ZPOPMAX {keys.scores} {chunk}, then a cluster pipeline of HMGET + HDEL", baseline, setup),
        [
            (Measure(f"pspull({chunk}, expire_at=None)", pull_all(b.cluster_ps, chunk, total, expire_at=None), setup), None),
            (Measure(f"pspull({chunk}) (1-day expire)", pull_all(b.cluster_ps, chunk, total, expire_at=timedelta(days=1)), setup), None),
        ],
        unavailable=b.cluster_missing,
    )


# -- the registry ------------------------------------------------------------------

STREAMS = 100  # registered streams the registry's cases read
OTHER_KEYS = 10_000  # keys of another tool a sweep goes through too


class Unswept(RedisCluster):
    """psctl's cluster client reading the registry as before it healed itself:
    ``SMEMBERS`` alone (its runner says it is no cluster when a plan asks)."""

    def _ps_step(self, step: Any, line: Any) -> Any:
        if type(step) is Primaries:
            return None
        return super()._ps_step(step, line)


def _streams(b: Bench) -> list[str]:
    """``STREAMS`` streams of one waiting item each, and ``OTHER_KEYS`` keys of
    another tool (made again only when a case before flushed them)."""
    names = [f"reg{i:03d}" for i in range(STREAMS)]
    if b.cluster_plain.scard(REGISTRY) != STREAMS or b.cluster_plain.dbsize() < OTHER_KEYS:
        b.cluster_flush()
        for name in names:
            b.cluster_ps.psadd(name, "k", b"v")
        for start in range(0, OTHER_KEYS, 1000):
            pipe = b.cluster_plain.pipeline()
            for i in range(start, start + 1000):
                pipe.set(f"other:{i}", b"x")
            pipe.execute()
    b.cluster_ps.psnames()  # (swept, if it was flushed: the registry known whole)
    return names


def _calls(b: Bench, call: Any) -> Any:
    def run(_: Any) -> int:
        calls = min(b.sizes.run_calls, b.sizes.calls)
        for _ in range(calls):
            call()
        return calls

    return run


@cache
def _unswept(url: str) -> Unswept:
    return Unswept.from_url(url)


def names(b: Bench) -> Case:
    return Case(
        "cluster names",
        Unit.LATENCY,
        Measure(f"psnames as before: SMEMBERS ({STREAMS} streams)", _calls(b, lambda: _unswept(b.cluster.url).psnames()), lambda: _streams(b)),
        [(Measure("psnames: SMEMBERS beside the marker's script, one round trip", _calls(b, b.cluster_ps.psnames), lambda: _streams(b)), None)],
        unavailable=b.cluster_missing,
    )


def expire(b: Bench) -> Case:
    return Case(
        "cluster expire",
        Unit.LATENCY,
        Measure(f"psexpire as before: SMEMBERS, then a pipeline ({STREAMS} streams)", _calls(b, lambda: _unswept(b.cluster.url).psexpire()), lambda: _streams(b)),
        [(Measure("psexpire: SMEMBERS beside the marker's script, then a pipeline", _calls(b, b.cluster_ps.psexpire), lambda: _streams(b)), None)],
        unavailable=b.cluster_missing,
    )


def sweep(b: Bench) -> Case:
    def unmarked() -> None:
        _streams(b)
        b.cluster_plain.delete(SWEPT)  # as after a failover of the registry's node

    def once(_: Any) -> int:
        if len(b.cluster_ps.psnames()) != STREAMS:
            raise RuntimeError("psnames read the wrong registry")
        return 1

    return Case(
        "cluster sweep",
        Unit.DURATION,
        Measure("psnames, the registry known whole", once, lambda: _streams(b)),
        [(Measure(f"psnames sweeping {STREAMS} streams among {OTHER_KEYS:,} other keys", once, unmarked), None)],
        unavailable=b.cluster_missing,
    )
