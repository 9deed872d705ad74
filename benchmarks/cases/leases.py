"""The lease cases (issue 13): a lease and its acknowledgement against a pull,
single leases and acks against a bare EVALSHA and against their own scripts
called by hand (issue 23: like for like), leases that ran out coming
back, a bounded number per call (their longest call: ``longest.py``), and the
records that failed and removed deliveries leave behind (SPEC §10: none)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Any

from benchmarks.bench import Bench, make_items
from benchmarks.cases.library import NAME, by_hand, expect, script_by_hand
from benchmarks.harness import Case, Extra, Measure, Result, Target, Unit
from psctl import defaults, leases
from psctl.layout import stream_keys
from psctl.scripts import script

LONG = timedelta(minutes=10)


def cases(b: Bench) -> list[Case]:
    return [
        lease_and_ack(b),
        lease_round_trip(b),
        pslease_round_trip(b),
        psack_round_trip(b),
        expired_leases(b),
        records_left(b),
    ]


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

    return Case(
        "lease + ack",
        Unit.RATE,
        Measure(f"pspull({chunk}) (1-day expire)", pull, setup),
        [(Measure(f"pslease({chunk}), then psack (1-day expire)", lease_ack_all(b, total), setup), Target(">=", 0.5))],
    )


def lease_ack_all(b: Bench, total: int) -> Callable[[Any], int]:
    """A measure that leases ``chunk`` at a time and acknowledges each lease until the stream is empty."""

    def run(_: Any) -> int:
        acked = 0
        while lease := b.ps.pslease(NAME, count=b.sizes.chunk, lease=LONG):
            acked += b.ps.psack(NAME, lease.token)
        return expect("pslease + psack", acked, total)

    return run


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
            (Measure("pslease(count=1)", pslease_one, fill_calls), None),
            (Measure("psack of one item", psack_one, leased_one_by_one), None),
        ],
        repeats=max(b.sizes.calls // len(calls), 1),
    )


def pslease_round_trip(b: Bench, limits: dict[str, Any] | None = None) -> Case:
    """``pslease(count=1)`` against its script called by hand (a new token per
    call on both sides); with ``limits`` (``pslimit``'s keywords) set on the
    stream first, on both sides."""
    calls = b.call_items
    keys = stream_keys(NAME)

    def fill_calls() -> None:
        b.flush()
        b.fill(NAME, calls)
        if limits:
            b.ps.pslimit(NAME, **limits)

    def args() -> list[tuple[Any, ...]]:
        fill_calls()
        return [by_hand(leases.lease(keys, leases.new_token(), 1, LONG, None)) for _ in calls]

    def pslease_one(_: Any) -> int:
        pslease = b.ps.pslease
        return expect("pslease(1)", sum(len(pslease(NAME, lease=LONG)) for _ in calls), len(calls))

    return Case(
        "pslease round trip" + (" with limits" if limits else ""),
        Unit.LATENCY,
        script_by_hand(b, "leaseone", args, lambda reply: len(reply) > 1),
        [(Measure("pslease(count=1)", pslease_one, fill_calls), Target("<=", 1.2))],
        repeats=max(b.sizes.calls // len(calls), 1),
    )


def psack_round_trip(b: Bench) -> Case:
    """``psack`` of a lease of one item against its script called by hand."""
    calls = b.call_items
    keys = stream_keys(NAME)

    def leased_one_by_one() -> list[str]:
        b.flush()
        b.fill(NAME, calls)
        return [b.ps.pslease(NAME, lease=LONG).token for _ in calls]

    def args() -> list[tuple[Any, ...]]:
        return [by_hand(leases.ack(keys, token, None, False, defaults.COOL_DOWN)) for token in leased_one_by_one()]

    def psack_one(tokens: list[str]) -> int:
        psack = b.ps.psack
        return expect("psack", sum(psack(NAME, token) for token in tokens), len(calls))

    return Case(
        "psack round trip",
        Unit.LATENCY,
        script_by_hand(b, "ack", args, int),
        [(Measure("psack of one item", psack_one, leased_one_by_one), Target("<=", 1.2))],
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
        lease_keys = lease_script.keys_of(keys)
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


def records_left(b: Bench) -> Case:
    """Twice the items (200,000 in the full run): the first half leased,
    released with a reason, leased again and acknowledged, the second half
    leased and removed (``psremove``), against all of them leased and
    acknowledged; then the fields left in the keys that hold items, leases
    and per-item records (:t, :held, :lease, :dlv, :fail, :s, :leases,
    :delayed, :dscores), which must all be empty (SPEC §10: nothing grows
    with items that are gone)."""
    chunk, total = b.sizes.chunk, len(b.items)
    keys = stream_keys(NAME)
    hashes = (keys.values, keys.held, keys.lease, keys.deliveries, keys.failures)
    sorted_sets = (keys.scores, keys.leases, keys.delayed, keys.delayed_scores)

    @cache
    def removed() -> list[Any]:
        """Items scored below every one of ``b.items``: leased only once those are done."""
        return [(k, v, s - 3_000_000) for k, v, s in make_items(total, b.sizes.value_size, b.seed + 3, "gone")]

    def setup() -> None:
        b.flush()
        b.fill(NAME, b.items)
        b.fill(NAME, removed())

    def records() -> int:
        pipe = b.plain.pipeline(transaction=False)
        for key in hashes:
            pipe.hlen(key)
        for key in sorted_sets:
            pipe.zcard(key)
        return sum(pipe.execute())

    def lease_ack(_: Any) -> Result:
        acked = 0
        while lease := b.ps.pslease(NAME, count=chunk, lease=LONG):
            acked += b.ps.psack(NAME, lease.token)
        return Result(expect("pslease + psack", acked, 2 * total), {"records": records()})

    def fail_or_remove(_: Any) -> Result:
        done = 0
        while done < total and (lease := b.ps.pslease(NAME, count=chunk, lease=LONG)):
            b.ps.psrelease(NAME, lease.token, reason="failed on purpose")
            done += b.ps.psack(NAME, b.ps.pslease(NAME, count=chunk, lease=LONG).token)
        while lease := b.ps.pslease(NAME, count=chunk, lease=LONG):
            done += b.ps.psremove(NAME, list(lease.items))
        return Result(expect("pslease + psrelease / psremove", done, 2 * total), {"records": records()})

    acked = f"pslease({chunk}), then psack ({2 * total:,} items)"
    failed = f"half: pslease({chunk}), psrelease(reason=…), pslease, psack; half: pslease, psremove"
    none_left = Target("<=", 0, absolute=True)
    return Case(
        "records left",
        Unit.RATE,
        Measure(acked, lease_ack, setup),
        [(Measure(failed, fail_or_remove, setup), None)],
        extras=[
            Extra(acked, "records", "fields left", Unit.FIELDS, none_left),
            Extra(failed, "records", "fields left", Unit.FIELDS, none_left),
        ],
    )
