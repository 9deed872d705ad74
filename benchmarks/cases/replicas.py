"""What ``replicas=1`` costs: ``psaddmany`` and ``psack`` on a master with one
replica (loopback TCP, started here), each without and with it, in the same
run. With it, each call ends with a ``WAIT`` on its connection, answered once
the replica has acknowledged the write: one more round trip to the master and
one from the master to the replica and back.

No target: the figures are what the guarantees page quotes.
"""

from __future__ import annotations

from typing import Any

from benchmarks.bench import Bench
from benchmarks.cases.library import NAME
from benchmarks.harness import Case, Measure, Unit
from psctl.layout import stream_keys
from psctl.operations import ADD_CHUNK


def cases(b: Bench) -> list[Case]:
    return [add(b), ack(b)]


def _flush(b: Bench) -> None:
    b.replicated_ps.delete(*stream_keys(NAME).every)


def add(b: Bench) -> Case:
    def psaddmany(replicas: int) -> Any:
        return lambda _: len(b.replicated_ps.psaddmany(NAME, b.items, replicas=replicas))

    return Case(
        "replicated add",
        Unit.RATE,
        Measure(f"psaddmany ({ADD_CHUNK}/call), a replica", psaddmany(0), lambda: _flush(b)),
        [(Measure("psaddmany(replicas=1)", psaddmany(1), lambda: _flush(b)), None)],
    )


def ack(b: Bench) -> Case:
    calls = b.call_items

    def leased_one_by_one() -> list[str]:
        _flush(b)
        b.replicated_ps.psaddmany(NAME, calls)
        return [b.replicated_ps.pslease(NAME, lease=600).token for _ in calls]

    def psack(replicas: int) -> Any:
        def run(tokens: list[str]) -> int:
            acked = sum(b.replicated_ps.psack(NAME, token, replicas=replicas) for token in tokens)
            if acked != len(calls):
                raise RuntimeError(f"psack acknowledged {acked} of {len(calls)}")
            return acked

        return run

    return Case(
        "replicated ack",
        Unit.LATENCY,
        Measure("psack of one item, a replica", psack(0), leased_one_by_one),
        [(Measure("psack(replicas=1)", psack(1), leased_one_by_one), None)],
        repeats=max(b.sizes.calls // len(calls), 1),
    )
