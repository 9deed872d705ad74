"""Delayed items and due cool-downs (SPEC §10): a backlog of them ended by the
pulls and leases that meet it, a bounded number per call (their longest call:
``longest.py``), and how late a blocked pull or lease receives a delayed item."""

from __future__ import annotations

import queue
import random
import statistics
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from benchmarks.bench import Bench
from benchmarks.cases.leases import LONG
from benchmarks.cases.library import NAME, expect
from benchmarks.harness import Case, Extra, Measure, Result, Target, Unit
from psctl import Redis
from psctl.layout import stream_keys
from psctl.scripts import script

LATER = timedelta(hours=1)
GAPS_MS = (50, 300)  # a delayed item is due this long after the last one arrived


def cases(b: Bench) -> list[Case]:
    return [due_backlog(b), wake_up(b)]


def due_backlog(b: Bench) -> Case:
    """Every item delayed and due, beside as many due cool-downs of keys
    pulled for good (100,000 of each in the full run), none ended yet:
    ``pspull(1000)`` / ``pslease(1000)`` until every item is taken, each call
    first ending at most 500 of each, against ``pspull(1000)`` of as many
    waiting items. Items are counted, not the cool-downs ended beside them.
    The longest call is ``longest.py``'s."""
    chunk, total = b.sizes.chunk, len(b.items)
    keys = stream_keys(NAME)

    def waiting() -> None:
        b.flush()
        b.fill(NAME, b.items)

    def due() -> None:
        b.flush()
        b.ps.psaddmany(NAME, b.items, delay=LATER)
        # every time moved to the past in place (a ZUNIONSTORE would leave the
        # old set to be freed in the background during the run): each entry is
        # due, none has been ended yet
        for start in range(0, total, chunk):
            part = range(start, min(start + chunk, total))
            b.plain.zadd(keys.delayed, {b.items[i][0]: i for i in part}, xx=True)
            b.plain.zadd(keys.cooling, {f"cooled:{i:08d}": i for i in part})
        if b.plain.zcount(keys.delayed, "-inf", total) != total or b.plain.zcard(keys.cooling) != total:
            raise RuntimeError("the due-backlog setup did not make every entry due")

    def pull_all() -> int:
        pulled = 0
        while got := b.ps.pspull(NAME, count=chunk, expire_at=None):
            pulled += len(got)
        return pulled

    def ended(what: str, taken: int) -> int:
        """``taken``, once every due cool-down has ended too."""
        expect(f"{what}'s ended cool-downs", total - b.plain.zcard(keys.cooling), total)
        return expect(what, taken, total)

    def pull(_: Any) -> int:
        return expect("pspull", pull_all(), total)

    def pull_due(_: Any) -> int:
        return ended("pspull", pull_all())

    def lease_due(_: Any) -> int:
        leased = 0
        while lease := b.ps.pslease(NAME, count=chunk, lease=LONG):
            leased += len(lease)
        return ended("pslease", leased)

    backlog = f"{total:,} due delayed items + {total:,} due cool-downs"
    return Case(
        "due backlog",
        Unit.RATE,
        Measure(f"pspull({chunk}) of waiting items", pull, waiting),
        [
            (Measure(f"pspull({chunk}): {backlog}", pull_due, due), None),
            (Measure(f"pslease({chunk}): {backlog}", lease_due, due), None),
        ],
    )


def wake_up(b: Bench) -> Case:
    """A pull (a lease) blocked in a thread of its own; one item at a time is
    added with a delay of 50-300 ms, the next once the last has arrived. How
    late each arrives: the server's clock (``TIME``) read as soon as the pull
    returned it, less the due time its add reported
    (``psadd(..., explain=True).until``, the server's clock too): one clock at
    both ends, and the figure includes the pull's reply and TIME's round trip.
    No ratio means anything here: the pull stands as the lease's baseline only
    because a case has one, and the targets are absolute (SPEC §10: within
    100 ms). Each side runs once (200 items take about 40 s)."""
    count = b.sizes.wake_items
    rng = random.Random(b.seed)
    gaps = [timedelta(milliseconds=rng.randint(*GAPS_MS)) for _ in range(count)]

    def setup() -> None:
        b.flush()
        for name in ("addone", "pullone", "leaseone"):  # what a warm-up run would have loaded
            b.plain.script_load(script(name).source)

    def receive(take: Callable[[Redis, threading.Event], Any]) -> Callable[[Any], Result]:
        def run(_: Any) -> Result:
            arrivals: queue.Queue[float | BaseException] = queue.Queue()
            stop = threading.Event()

            def taker() -> None:
                try:
                    with Redis.from_url(b.url) as client:
                        while not stop.is_set():
                            if take(client, stop):
                                seconds, micros = client.time()
                                arrivals.put(seconds * 1e3 + micros / 1e3)
                except BaseException as exc:  # told to the adding thread, which raises it
                    arrivals.put(exc)

            thread = threading.Thread(target=taker, name="wake-up taker", daemon=True)
            thread.start()
            late = []
            try:
                for i, gap in enumerate(gaps):
                    until = b.ps.psadd(NAME, f"d{i:04d}", b"v", delay=gap, explain=True).until
                    try:
                        arrived = arrivals.get(timeout=gap.total_seconds() + 10)
                    except queue.Empty:
                        raise RuntimeError(f"a delayed item due in {gap} had not arrived 10 s later") from None
                    if isinstance(arrived, BaseException):
                        raise arrived
                    late.append(arrived - until.timestamp() * 1e3)
            finally:
                stop.set()
                thread.join()
            p99 = statistics.quantiles(late, n=100, method="inclusive")[98]
            return Result(count, {"median": statistics.median(late), "p99": p99})

        return run

    pull_label = f"pspull(block=0), {count} delayed items"
    lease_label = f"pslease(block=0), {count} delayed items"
    on_time = Target("<=", 100, absolute=True)  # ms
    return Case(
        "delayed wake-up",
        Unit.DURATION,
        Measure(pull_label, receive(lambda client, stop: client.pspull(NAME, block=0, stop=stop)), setup),
        [(Measure(lease_label, receive(lambda client, stop: client.pslease(NAME, block=0, stop=stop)), setup), None)],
        extras=[
            Extra(label, key, f"lateness, {key}", Unit.MILLISECONDS, on_time if key == "p99" else None)
            for label in (pull_label, lease_label)
            for key in ("median", "p99")
        ],
        rounds=1,
        warm_up=False,
    )
