"""BullMQ, the strongest peer (issue 23): its Node library against psctl's, on
the same server in the same run.

BullMQ's side is ``benchmarks/bullmq/bench.mjs`` (BullMQ installed from npm
into the benchmark's cache: ``benchmarks/node.py``), which times itself, so
Node's start and its connections are not counted. Both sides get the same
number of items of 100-byte values with random priorities:

- **bullmq add**: ``Queue.addBulk`` of 1000 jobs per call against
  ``psaddmany`` (1000 per call);
- **bullmq worker c1**: a ``Worker`` with a no-op processor, concurrency 1,
  until every job is completed, against ``psctl.Worker(concurrency=1)``;
- **bullmq worker c50**: the same at concurrency 50, against
  ``psctl.AsyncWorker(concurrency=50)``.

What a finished item leaves differs by default: BullMQ's jobs are added with
``removeOnComplete: true`` (the completion deletes the job), while psctl's
acknowledgement keeps the key cooling down for a day (a cool-down entry, so
that the same key is refused meanwhile). The ``expire_at=None`` rows write
none: those are like for like; the default rows are what psctl does unless
told otherwise.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import psctl
from benchmarks.bench import Bench
from benchmarks.cases.library import expect
from benchmarks.harness import Case, Measure, Result, Target, Unit
from benchmarks.node import BullMQ

NAME = "peer"
CHUNK = 1000  # items per addBulk / psaddmany call


def cases(b: Bench) -> list[Case]:
    missing = cache(lambda: _missing(b))
    return [add(b, missing), worker(b, 1, missing), worker(b, 50, missing)]


def connection(b: Bench) -> dict[str, Any]:
    """ioredis's options for the benchmark's server (from the plain client's)."""
    kwargs = b.plain.connection_pool.connection_kwargs
    names = ("path", "host", "port", "db", "username", "password")
    return {name: kwargs[name] for name in names if kwargs.get(name) is not None}


def _missing(b: Bench) -> str | None:
    if not isinstance(b.bullmq, BullMQ):
        return f"no BullMQ: {b.bullmq}"
    if "ssl" in b.plain.connection_pool.connection_class.__name__.lower():
        return "bench.mjs does not connect with TLS"
    return None


def _bullmq(b: Bench, concurrency: int) -> Result:
    """One bench.mjs run: the add's figures when ``concurrency`` is 0, else the work's."""
    assert isinstance(b.bullmq, BullMQ)
    out = b.bullmq.run(connection(b), b.sizes.peer_items, concurrency)
    part = out["work"] if concurrency else out["add"]
    return Result(expect("BullMQ", part["items"], b.sizes.peer_items), seconds=part["seconds"])


def add(b: Bench, missing: Any) -> Case:
    def psaddmany(_: Any) -> int:
        return len(b.ps.psaddmany(NAME, b.peer_items))

    return Case(
        "bullmq add",
        Unit.RATE,
        Measure(f"BullMQ Queue.addBulk ({CHUNK}/call)", lambda _: _bullmq(b, 0), b.flush),
        [(Measure(f"psaddmany ({CHUNK}/call)", psaddmany, b.flush), None)],
        unavailable=missing,
    )


def worker(b: Bench, concurrency: int, missing: Any) -> Case:
    """BullMQ's Worker at ``concurrency`` against psctl's (the async one above 1),
    with psctl's default cool-down and without (like for like)."""
    total = b.sizes.peer_items
    sync = concurrency == 1
    kind = "Worker" if sync else "AsyncWorker"

    def fill() -> None:
        b.flush()
        b.ps.psaddmany(NAME, b.peer_items)

    def run_psctl(options: dict[str, Any]) -> Any:
        def run(_: Any) -> int:
            if sync:
                summary = psctl.Worker(b.ps, NAME, _nothing, concurrency=1, idle_exit=0, **options).run()
            else:
                worker = psctl.AsyncWorker(b.aps, NAME, _nothing_async, concurrency=concurrency, idle_exit=0, **options)
                summary = b.run_async(worker.run())
            if summary.failed or summary.dead:
                raise RuntimeError(f"psctl.{kind}: {summary.failed} failed, {summary.dead} dead")
            return expect(f"psctl.{kind}", summary.done, total)

        return run

    target = Target(">=", 1.5 if sync else 3.0)
    label = f"psctl.{kind}(concurrency={concurrency})"
    return Case(
        f"bullmq worker c{concurrency}",
        Unit.RATE,
        Measure(f"BullMQ Worker(concurrency={concurrency}), removeOnComplete", lambda _: _bullmq(b, concurrency), b.flush),
        [
            (Measure(f"{label} (1-day cool-down)", run_psctl({}), fill), target),
            (Measure(f"{label}, expire_at=None: like for like", run_psctl({"expire_at": None}), fill), target),
        ],
        unavailable=missing,
    )


def _nothing(item: Any) -> None:
    """The no-op handler."""


async def _nothing_async(item: Any) -> None:
    """The no-op handler, awaited."""
