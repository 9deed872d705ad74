"""The event loop's executor: a coroutine function awaited for each item (or
batch), by runner tasks on the caller's event loop: what
``psctl.AsyncWorker`` runs on.

The engine is the same as for threads (the supervisor, the feeder and the
acknowledger are its threads); only its runners differ: ``LoopRunners`` runs
one task per runner on ``loop``, woken when items are queued. A handler that
the grace's end (or a second stop) cuts short is cancelled: its items go
back at once, uncounted, as a command's would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

from psctl.work.clock import Clock
from psctl.work.executor import ABANDONED, DONE, Job, Order, Verdict
from psctl.work.handlers import GATHER, batch_verdicts, failed, verdicts
from psctl.work.inprocess import CUTS, HandlerJob
from psctl.work.options import Item
from psctl.work.patience import ServerLost


class LoopJob(HandlerJob):
    __slots__ = ("task",)

    def __init__(self, item: Item, items: list[Item] | None = None) -> None:
        super().__init__(item, items)
        self.task: asyncio.Task[Any] | None = None  # the runner's task awaiting its handler


class InLoop:
    """Awaits ``handler(item)`` for each item (what ``wrap`` makes of it), or
    ``handler(items)`` for up to ``batch`` items at once, on ``loop``."""

    def __init__(
        self, handler: Callable[..., Any], loop: asyncio.AbstractEventLoop, batch: int | None = None,
        wrap: Callable[[Item], Any] | None = None,
    ) -> None:  # fmt: skip
        self.handler, self.loop, self.wrap = handler, loop, wrap
        self.batch = batch or 1
        self.batched = batch is not None
        self.gather = GATHER

    def open(self, name: str, clock: Clock, warn: Callable[[str], None]) -> None:
        pass

    def job(self, items: list[Item]) -> LoopJob:
        return LoopJob(items[0], items)

    def lane(self, report: Callable[[Job], None], halt: Callable[[Job], None]) -> LoopLane:
        return LoopLane(self, report)

    def supervise(self, jobs: list[Job], now: float, order: Order) -> bool:
        cut = CUTS.get(order)
        if cut is None:
            return False
        running = [job for job in jobs if isinstance(job, LoopJob) and not job.ended and job.cut is None]
        if running:
            try:
                self.loop.call_soon_threadsafe(self._cut, running, cut)
            except RuntimeError:  # (the loop is closed: nothing runs on it any more)
                return False
        return bool(running) and cut == "stopped"

    def _cut(self, jobs: list[LoopJob], cut: str) -> None:
        """In the loop: the handlers of ``jobs`` still running are cancelled."""
        for job in jobs:
            if not job.ended and job.cut is None and job.task is not None:
                job.cut = cut
                job.task.cancel()

    def stop_all(self, jobs: list[Job], given_up: bool) -> None:
        self.supervise(jobs, 0.0, Order.ABANDON if given_up else Order.KILL)

    def verdicts(self, job: Job) -> list[tuple[Item, Verdict]]:
        assert isinstance(job, LoopJob)
        return verdicts(job.items, job.cut, job.outcome)

    def close(self) -> None:
        pass

    async def call(self, job: LoopJob) -> list[tuple[Item, Verdict]] | Verdict:
        try:
            if self.batched:
                wrap = self.wrap
                batch = job.items if wrap is None else [wrap(item) for item in job.items]
                return batch_verdicts(job.items, await self.handler(batch), job.item.stream)
            await self.handler(job.item if self.wrap is None else self.wrap(job.item))
        except Exception as exc:  # noqa: BLE001 - the item's failure, kept as its reason
            return failed(exc, job.items, job.item.stream)
        return DONE


class LoopLane:
    holding = False
    abandoned = False

    def __init__(self, executor: InLoop, report: Callable[[Job], None]) -> None:
        self._executor, self._report = executor, report
        self.task: asyncio.Task[Any] | None = None  # the runner's, which awaits the handlers

    async def run(self, job: LoopJob) -> None:
        job.task = task = self.task
        try:
            outcome = await self._executor.call(job)
        except asyncio.CancelledError:
            if job.cut is None:  # (not ours: the runner itself is cancelled)
                raise
            if task is not None:
                task.uncancel()
            outcome = None
        job.task = None
        job.ended, job.outcome = True, outcome
        self._report(job)

    def close(self, job: Job | None) -> None:
        if isinstance(job, LoopJob) and not job.ended:
            job.ended, job.outcome = True, [(item, ABANDONED) for item in job.items]
            self._report(job)


class LoopRunners:
    """The engine's runners as tasks on ``loop`` (a runner per ``jobs``),
    woken by the feeder through ``Board.on_work``."""

    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._engine, self._loop = engine, loop
        self._work = asyncio.Event()
        self._future: concurrent.futures.Future[Any] | None = None

    def start(self) -> None:
        engine = self._engine
        engine.board.on_work = self._wake
        lanes = [engine.new_lane() for _ in range(engine.options.jobs)]
        self._future = asyncio.run_coroutine_threadsafe(self._all(lanes), self._loop)

    def _wake(self) -> None:
        """Items were queued, or the work ends (from any thread, the board's lock held)."""
        try:
            self._loop.call_soon_threadsafe(self._work.set)
        except RuntimeError:  # (the loop is closed)
            pass

    async def _all(self, lanes: list[LoopLane]) -> None:
        await asyncio.gather(*(self._run(lane) for lane in lanes))

    async def _run(self, lane: LoopLane) -> None:
        engine, work = self._engine, self._work
        board = engine.board
        job: LoopJob | None = None
        lane.task = asyncio.current_task()
        try:
            while True:
                with board.lock:
                    job = engine.take_job(lane)
                    if job is None:
                        if not board.state.leases:
                            return
                        work.clear()  # (under the lock: a queueing after this sets it again)
                if job is None:
                    await work.wait()
                    continue
                await lane.run(job)
                job = None
        except BaseException as exc:  # noqa: BLE001 - kept for run()'s caller, as a runner thread's is
            lane.close(job)
            engine.failed(exc)
        finally:
            engine.runner_ended(lane)
            engine.wake_supervisor()

    def alive(self) -> bool:
        return self._future is not None and not self._future.done()

    def join(self, deadline: float) -> None:
        if self._future is not None:
            concurrent.futures.wait([self._future], timeout=max(0.0, deadline - self._engine.clock.now()))


class LoopClient:
    """What the engine's threads call as a client (``pslease``, ``psack``,
    ...): each request an ``asyncio`` client's coroutine, run on ``loop`` and
    waited for."""

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._client, self._loop = client, loop
        self._pending: set[concurrent.futures.Future[Any]] = set()

    @property
    def _ps_cluster(self) -> bool:
        """Whether the client is a cluster's (as a psctl client says it)."""
        return getattr(self._client, "_ps_cluster", False) is True

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        loop, pending = self._loop, self._pending

        def call(*args: Any, **kwargs: Any) -> Any:
            future = asyncio.run_coroutine_threadsafe(method(*args, **kwargs), loop)
            pending.add(future)
            try:
                return future.result()
            except concurrent.futures.CancelledError:  # (cancel_all: the work gave up on the server)
                raise ServerLost() from None
            finally:
                pending.discard(future)

        return call

    def cancel_all(self) -> None:
        """Requests still waiting for a server that was given up on end now
        (their threads were not waited for)."""
        for future in list(self._pending):
            future.cancel()
