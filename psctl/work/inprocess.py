"""The thread executor: a Python callable run for each item (or batch), in
the runner's thread (rq's ``SimpleWorker``): what ``psctl.Worker`` runs on,
and what makes the engine's tests fast and free of processes.

A handler that returns has its item acknowledged; one that raises gives it
back with the back-off, the exception's type and message as its reason
(``handlers.failed``: ``Retry`` and ``Dead`` choose otherwise). A function
running in a thread cannot be stopped from outside: when the grace is over
(or a second stop comes) its job is cut short (its items given back at once,
uncounted) and the thread is left to end by itself, what it then returns
ignored: the work does not wait for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from psctl.work.clock import Clock
from psctl.work.executor import ABANDONED, DONE, Job, Order, Verdict
from psctl.work.handlers import GATHER, batch_verdicts, failed, verdicts
from psctl.work.options import Item

CUTS = {Order.TERMINATE: "stopped", Order.KILL: "stopped", Order.ABANDON: "abandoned"}


class HandlerJob(Job):
    __slots__ = ("cut", "ended", "lane", "outcome")

    def __init__(self, item: Item, items: list[Item] | None = None) -> None:
        super().__init__(item, items)
        self.ended = False  # the handler returned or raised, or the job was cut short
        self.cut: str | None = None  # cut short: "stopped" (given back) or "abandoned" (left to the lease)
        self.outcome: list[tuple[Item, Verdict]] | Verdict | None = None
        self.lane: HandlerLane | None = None


class InProcess:
    """Runs ``handler(item)`` for each item (``Item``, or what ``wrap`` makes
    of it), or ``handler(items)`` for up to ``batch`` items at once."""

    def __init__(self, handler: Callable[..., Any], batch: int | None = None,
                 wrap: Callable[[Item], Any] | None = None) -> None:  # fmt: skip
        self.handler, self.wrap = handler, wrap
        self.batch = batch or 1
        self.batched = batch is not None  # (batch=1: a list of one)
        self.gather = GATHER
        self._lock = threading.Lock()  # orders a job's end against its cut
        self._report: Callable[[Job], None] = lambda job: None

    def open(self, name: str, clock: Clock, warn: Callable[[str], None]) -> None:
        pass

    def job(self, items: list[Item]) -> HandlerJob:
        return HandlerJob(items[0], items)

    def lane(self, report: Callable[[Job], None], halt: Callable[[Job], None]) -> HandlerLane:
        self._report = report  # (the same for every lane: the engine's)
        return HandlerLane(self, report)

    def supervise(self, jobs: list[Job], now: float, order: Order) -> bool:
        cut = CUTS.get(order)
        if cut is None:
            return False
        ended = []
        with self._lock:
            for job in jobs:
                assert isinstance(job, HandlerJob)
                if not job.ended:
                    job.ended, job.cut = True, cut
                    ended.append(job)
        for job in ended:
            if job.lane is not None:
                job.lane.abandoned = True  # (its thread runs on: the work does not wait for it)
            self._report(job)
        return bool(ended) and cut == "stopped"

    def stop_all(self, jobs: list[Job], given_up: bool) -> None:
        self.supervise(jobs, 0.0, Order.ABANDON if given_up else Order.KILL)

    def verdicts(self, job: Job) -> list[tuple[Item, Verdict]]:
        assert isinstance(job, HandlerJob)
        return verdicts(job.items, job.cut, job.outcome)

    def close(self) -> None:
        pass

    def call(self, job: HandlerJob) -> list[tuple[Item, Verdict]] | Verdict:
        """Runs the handler for ``job``; what became of its items."""
        try:
            if self.batched:
                wrap = self.wrap
                batch = job.items if wrap is None else [wrap(item) for item in job.items]
                return batch_verdicts(job.items, self.handler(batch), job.item.stream)
            self.handler(job.item if self.wrap is None else self.wrap(job.item))
        except Exception as exc:  # noqa: BLE001 - the item's failure, kept as its reason
            return failed(exc, job.items, job.item.stream)
        return DONE

    def begin(self, job: HandlerJob, lane: HandlerLane) -> bool:
        """``lane`` is to run ``job``: whether it still is (not cut short already)."""
        with self._lock:
            job.lane = lane
            return not job.ended

    def end(self, job: HandlerJob, outcome: list[tuple[Item, Verdict]] | Verdict) -> bool:
        """The handler of ``job`` ended with ``outcome``: whether it is to be
        reported (not when the job was cut short meanwhile: it was already)."""
        with self._lock:
            if job.ended:
                return False
            job.ended, job.outcome = True, outcome
            return True


class HandlerLane:
    holding = False

    def __init__(self, executor: InProcess, report: Callable[[Job], None]) -> None:
        self._executor, self._report = executor, report
        self.abandoned = False  # its job was cut short while its handler runs on

    def run(self, job: Job | None) -> None:
        if job is None:
            return
        assert isinstance(job, HandlerJob)
        executor = self._executor
        if executor.begin(job, self) and executor.end(job, executor.call(job)):
            self._report(job)

    def close(self, job: Job | None) -> None:
        if isinstance(job, HandlerJob) and self._executor.end(job, [(item, ABANDONED) for item in job.items]):
            self._report(job)
