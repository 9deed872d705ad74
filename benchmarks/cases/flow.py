"""Flow control's cost (SPEC §12, issue 24). Pulls and leases of 1000 on a
stream with limits set that never bind (a rate and a burst of 10⁹, and
``max_held`` 10⁹), against the same calls with no limits, in the same run;
single round trips with those limits set, against their scripts called by
hand (like for like, as the other round trips); and what a stream with no
limits pays: ``pull-14.lua`` as shipped against the same script with its one
``EXISTS`` of ``NAME:limits`` taken out, and that ``EXISTS`` alone, timed in
a Lua loop, as a share of the server's time per ``pull(1000)``."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from benchmarks.bench import Bench
from benchmarks.cases.leases import lease_ack_all, pslease_round_trip
from benchmarks.cases.library import NAME, by_hand, expect, pspull_round_trip, pull_all
from benchmarks.harness import Case, Extra, Measure, Result, Target, Unit
from psctl import operations as op
from psctl.layout import stream_keys
from psctl.scripts import script

NOT_BINDING = {"rate": 1e9, "burst": 10**9, "max_held": 10**9}
LOOPS = 100_000  # EXISTS calls timed in one Lua loop


def cases(b: Bench) -> list[Case]:
    return [
        limited(b, "pull with limits", f"pspull({b.sizes.chunk}, expire_at=None)", pull_all(b.ps, b.sizes.chunk, len(b.items), expire_at=None)),
        limited(b, "lease + ack with limits", f"pslease({b.sizes.chunk}), then psack", lease_ack_all(b, len(b.items))),
        pspull_round_trip(b, NOT_BINDING),
        pslease_round_trip(b, NOT_BINDING),
        no_limits(b),
    ]  # fmt: skip


def filled(b: Bench, limits: dict[str, Any] | None) -> Any:
    """A setup: the stream of ``b.items``, with ``limits`` set (``pslimit``'s keywords)."""

    def setup() -> None:
        b.flush()
        b.fill(NAME, b.items)
        if limits:
            b.ps.pslimit(NAME, **limits)

    return setup


def limited(b: Bench, name: str, label: str, run: Any) -> Case:
    """``run`` on a stream with limits set that never bind, against ``run`` on one with none."""
    return Case(
        name,
        Unit.RATE,
        Measure(f"{label}, no limits", run, filled(b, None)),
        [(Measure(f"{label}, limits set, not binding", run, filled(b, NOT_BINDING)), Target(">=", 0.9))],
    )


def no_limits(b: Bench) -> Case:
    """On a stream with no limits, all flow control adds to a pull is one
    ``EXISTS`` of the absent ``NAME:limits`` (and its branch). ``pull-14.lua``
    as shipped against the same script with that call taken out, both by
    hand with the same KEYS and ARGV: the difference is below this machine's
    noise, so the row is for comparison. The figure judged is the ``EXISTS``
    itself, timed in a Lua loop of ``LOOPS`` against the same loop without
    it, as a share of the server's time per call (``INFO commandstats``)."""
    chunk, total = b.sizes.chunk, len(b.items)
    keys = stream_keys(NAME)
    shipped = script("pull")
    check = "local flow = flow_limits(limits)"
    if shipped.source.count(check) != 1:
        raise RuntimeError(f"lua/pull-{shipped.numkeys}.lua no longer reads its limits by {check!r}")
    bare = shipped.source.replace(check, "local flow = nil")
    bare_sha = hashlib.sha1(bare.encode()).hexdigest()
    args = by_hand(op.pull(keys, chunk, True, False, None))[1:]  # (numkeys, *keys, *argv)

    def setup() -> None:
        filled(b, None)()
        b.plain.script_load(shipped.source)
        b.plain.script_load(bare)

    def pull_by_hand(sha: str) -> int:
        pulled = 0
        while len(reply := b.plain.evalsha(sha, *args)) > 1:
            pulled += len(reply[0])
        return expect("evalsha of pull", pulled, total)

    def exists_share(_: Any) -> Result:
        before = _evalsha_stats(b)
        started = time.perf_counter()
        pulled = pull_by_hand(shipped.sha)
        seconds = time.perf_counter() - started
        calls, usec = (after - was for after, was in zip(_evalsha_stats(b), before))
        exists = _exists_cost(b, keys.limits)
        return Result(pulled, {"exists": exists, "share": exists / (usec / calls) * 100}, seconds)

    as_shipped = f"lua/pull-{shipped.numkeys}.lua by hand, as shipped"
    return Case(
        "no limits",
        Unit.RATE,
        Measure(f"lua/pull-{shipped.numkeys}.lua by hand, without its EXISTS of NAME:limits", lambda _: pull_by_hand(bare_sha), setup),
        [(Measure(as_shipped, exists_share, setup), None)],
        extras=[
            Extra(as_shipped, "exists", "one EXISTS of an absent NAME:limits, in Lua", Unit.LATENCY, None),
            Extra(as_shipped, "share", f"that EXISTS, share of the server's time per pull({chunk})", Unit.PERCENT, Target("<=", 2, absolute=True)),
        ],
    )  # fmt: skip


def _evalsha_stats(b: Bench) -> tuple[int, int]:
    """The server's EVALSHA calls so far, and their microseconds."""
    stats = b.plain.info("commandstats")["cmdstat_evalsha"]
    return int(stats["calls"]), int(stats["usec"])


def _exists_cost(b: Bench, key: str) -> float:
    """µs per ``EXISTS`` of the absent ``key`` and its branch, in a Lua loop
    of ``LOOPS``, less the same loop without it (each the faster of three)."""
    loop = "local n = 0 for i = 1, tonumber(ARGV[1]) do if {} == 0 then n = n + 1 end end return n"
    with_exists, without = loop.format('redis.call("EXISTS", KEYS[1])'), loop.format("i * 0")

    def fastest(source: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            b.plain.eval(source, 1, key, LOOPS)
            times.append(time.perf_counter() - started)
        return min(times)

    return (fastest(with_exists) - fastest(without)) / LOOPS * 1e6
