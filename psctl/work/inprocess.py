"""The in-process executor: a Python callable run for each item, in the
runner's thread (rq's ``SimpleWorker``): what the Python workers (SPEC §11)
build on, and what makes the engine's tests fast and free of processes.

A handler that returns has its item acknowledged; one that raises gives it
back with the back-off, the exception's type and message as its reason. A
running handler cannot be stopped from outside: a stop lets it finish (the
grace cannot cut it short), and its item is reported as it ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psctl.work.clock import Clock
from psctl.work.executor import Job, Kind, Order, Verdict
from psctl.work.options import Item

REASON = 2048  # characters of a failure's reason kept (the server keeps 2 KiB)


class HandlerJob(Job):
    __slots__ = ("failure", "finished")

    def __init__(self, item: Item) -> None:
        super().__init__(item)
        self.finished = False  # the handler returned or raised
        self.failure: str | None = None  # why it raised: "ValueError: bad input"


class InProcess:
    """Runs ``handler(item)`` for each item."""

    def __init__(self, handler: Callable[[Item], Any]) -> None:
        self.handler = handler

    def open(self, name: str, clock: Clock, warn: Callable[[str], None]) -> None:
        pass

    def job(self, item: Item) -> HandlerJob:
        return HandlerJob(item)

    def lane(self, report: Callable[[Job], None], halt: Callable[[Job], None]) -> HandlerLane:
        return HandlerLane(self.handler, report)

    def supervise(self, jobs: list[Job], now: float, order: Order) -> bool:
        return False  # (a handler cannot be stopped from outside)

    def stop_all(self, jobs: list[Job], given_up: bool) -> None:
        pass

    def verdict(self, job: Job) -> Verdict:
        assert isinstance(job, HandlerJob)
        if not job.finished:
            return Verdict(Kind.ABANDONED)
        if job.failure is None:
            return Verdict(Kind.DONE)
        return Verdict(Kind.FAILED, job.failure)

    def close(self) -> None:
        pass


class HandlerLane:
    holding = False

    def __init__(self, handler: Callable[[Item], Any], report: Callable[[Job], None]) -> None:
        self._handler, self._report = handler, report

    def run(self, job: Job | None) -> None:
        if job is None:
            return
        assert isinstance(job, HandlerJob)
        try:
            self._handler(job.item)
        except Exception as exc:  # noqa: BLE001 - the item's failure, kept as its reason
            job.failure = _reason(exc)
        job.finished = True
        self._report(job)

    def close(self, job: Job | None) -> None:
        if job is not None:
            self._report(job)


def _reason(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:REASON]
