"""Observing (issue 15): the stats of 1,000 streams, in one round trip per
server, against the plain reads a user would pipeline for the same counts."""

from __future__ import annotations

from typing import Any

from benchmarks.bench import Bench
from benchmarks.harness import Case, Measure, Unit
from psctl.layout import stream_keys

STREAMS = 1000


def cases(b: Bench) -> list[Case]:
    return [stats(b)]


def stats(b: Bench) -> Case:
    names = [f"obs{i:04d}" for i in range(STREAMS)]

    def setup() -> None:
        b.flush()
        for name in names:
            b.ps.psaddmany(name, [(f"k{j}", b"v", j) for j in range(10)])

    def plain(_: Any) -> int:
        pipe = b.plain.pipeline(transaction=False)
        for name in names:
            keys = stream_keys(name)
            pipe.zcard(keys.scores)
            pipe.hlen(keys.held)
            pipe.scard(keys.gated)
            pipe.zcard(keys.cooling)
            pipe.zrange(keys.cooling, 0, 0, withscores=True)
            pipe.zcard(keys.dead)
            pipe.zrange(keys.scores, -1, -1, withscores=True)
            pipe.zrange(keys.scores, 0, 0, withscores=True)
            pipe.hgetall(keys.stats)
        pipe.execute()
        return STREAMS

    def psctl_stats(_: Any) -> int:
        found = b.ps.psstatsmany(names)
        if len(found) != STREAMS or found[0]["waiting"] != 10:
            raise RuntimeError("psstatsmany read the wrong streams")
        return STREAMS

    return Case(
        "stats",
        Unit.RATE,
        Measure(f"a pipeline of 9 plain reads per stream ({STREAMS:,} streams)", plain, setup),
        [(Measure(f"psstatsmany ({STREAMS:,} streams, one round trip)", psctl_stats, setup), None)],
    )
