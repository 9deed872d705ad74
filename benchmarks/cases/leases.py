"""The lease cases (issue 13): a lease and its acknowledgement against a pull,
single leases and acks against a bare EVALSHA, and leases that ran out coming
back, a bounded number per call (their longest call: ``longest.py``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from benchmarks.bench import Bench
from benchmarks.cases.library import NAME, expect
from benchmarks.harness import Case, Measure, Target, Unit
from psctl.layout import stream_keys
from psctl.scripts import script

LONG = timedelta(minutes=10)


def cases(b: Bench) -> list[Case]:
    return [lease_and_ack(b), lease_round_trip(b), expired_leases(b)]


def lease_and_ack(b: Bench) -> Case:
    """``pslease(1000)`` then ``psack`` of the lease, against ``pspull(1000)``
    with its default cool-down (a lease and its ack do about twice a pull's
    writes: hold, then finish; the ack writes the same cool-down)."""
    chunk, total = b.sizes.chunk, len(b.items)

    def setup() -> None:
        b.flush()
        b.fill(NAME, b.items)

    def pull(_: Any) -> int:
        pulled = 0
        while got := b.ps.pspull(NAME, count=chunk):
            pulled += len(got)
        return expect("pspull", pulled, total)

    def lease_ack(_: Any) -> int:
        acked = 0
        while lease := b.ps.pslease(NAME, count=chunk, lease=LONG):
            acked += b.ps.psack(NAME, lease.token)
        return expect("pslease + psack", acked, total)

    return Case(
        "lease + ack",
        Unit.RATE,
        Measure(f"pspull({chunk}) (1-day expire)", pull, setup),
        [(Measure(f"pslease({chunk}), then psack (1-day expire)", lease_ack, setup), Target(">=", 0.5))],
    )


def lease_round_trip(b: Bench) -> Case:
    calls = b.call_items

    def load_empty_script() -> str:
        return b.plain.script_load("return 1")

    def baseline(sha: str) -> int:
        evalsha = b.plain.evalsha
        for _ in calls:
            evalsha(sha, 0)
        return len(calls)

    def fill_calls() -> None:
        b.flush()
        b.fill(NAME, calls)

    def pslease_one(_: Any) -> int:
        pslease = b.ps.pslease
        leased = sum(len(pslease(NAME, lease=LONG)) for _ in calls)
        return expect("pslease(1)", leased, len(calls))

    def leased_one_by_one() -> list[str]:
        fill_calls()
        return [b.ps.pslease(NAME, lease=LONG).token for _ in calls]

    def psack_one(tokens: list[str]) -> int:
        psack = b.ps.psack
        acked = sum(psack(NAME, token) for token in tokens)
        return expect("psack", acked, len(calls))

    return Case(
        "lease round trip",
        Unit.LATENCY,
        Measure('EVALSHA of "return 1"', baseline, load_empty_script),
        [
            (Measure("pslease(count=1)", pslease_one, fill_calls), Target("<=", 1.2)),
            (Measure("psack of one item", psack_one, leased_one_by_one), Target("<=", 1.2)),
        ],
        repeats=max(b.sizes.calls // len(calls), 1),
    )


def expired_leases(b: Bench) -> Case:
    """Every item held by a lease of its own that has run out (100,000 leases
    in the full run): ``pslease(1000)`` until every item is held again, each
    call first bringing back at most a thousand, against ``pspull(1000)`` of as
    many waiting items. The longest call is ``longest.py``'s."""
    chunk, total = b.sizes.chunk, len(b.items)
    keys = stream_keys(NAME)
    lease_script = script("lease")

    def waiting() -> None:
        b.flush()
        b.fill(NAME, b.items)

    def run_out() -> None:
        waiting()
        b.plain.script_load(lease_script.source)
        lease_keys = (keys.values, keys.scores, *keys.leasing, keys.stats)
        for start in range(0, total, chunk):  # a lease of one item each, made in pipelines
            pipe = b.plain.pipeline(transaction=False)
            for i in range(start, min(start + chunk, total)):
                pipe.evalsha(lease_script.sha, lease_script.numkeys, *lease_keys, 1, f"t{i:08d}", 600_000, 0)
            pipe.execute()
        # every deadline moved to the past, in place (a ZUNIONSTORE would leave
        # the old set to be freed in the background during the run): each lease
        # has run out, none has come back yet
        for start in range(0, total, chunk):
            b.plain.zadd(keys.leases, {f"t{i:08d}": i for i in range(start, min(start + chunk, total))}, xx=True)
        if b.plain.hlen(keys.held) != total:
            raise RuntimeError("the expired-leases setup did not hold every item")

    def pull(_: Any) -> int:
        pulled = 0
        while got := b.ps.pspull(NAME, count=chunk, expire_at=None):
            pulled += len(got)
        return expect("pspull", pulled, total)

    def lease_again(_: Any) -> int:
        leased = 0
        while leased < total:
            leased += len(b.ps.pslease(NAME, count=chunk, lease=LONG))
        return expect("pslease", leased, total)

    return Case(
        "expired leases",
        Unit.RATE,
        Measure(f"pspull({chunk}) of waiting items", pull, waiting),
        [(Measure(f"pslease({chunk}) of items whose leases ran out", lease_again, run_out), None)],
    )
