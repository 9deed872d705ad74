"""The cluster's cases: ``psaddmany`` and ``pspull`` on a 3-master Redis
Cluster (``psctl._cluster_launch``, loopback TCP), against the same plain
redis-py commands sent by redis-py's cluster client to the hash-tagged keys.

The issue sets no target here: the ratios are shown next to the standalone
ones. A cluster client cannot hold a connection between two calls, so
``psaddmany`` has no call in flight while it prepares the next chunk there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from benchmarks.bench import Bench
from benchmarks.cases.library import NAME, add_by_hand, pull_all, pull_by_hand
from benchmarks.harness import Case, Measure, Unit
from psctl.layout import stream_keys
from psctl.operations import ADD_CHUNK


def cases(b: Bench) -> list[Case]:
    return [add(b), pull(b)]


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
