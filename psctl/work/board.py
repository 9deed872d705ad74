"""What the worker's threads share: the queue of items taken and not yet
started, the jobs running, what ended and is not yet reported, and the
worker's ``WorkState``, all under one lock, with a condition per kind of
waiter (a notify_all for everyone would wake every thread at every item, and
hand the GIL round for nothing). ``change`` is the one place a state changes
and its consequences follow."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from psctl.operations import StopWaiting
from psctl.work.clock import Clock
from psctl.work.executor import Job
from psctl.work.fair import Shares
from psctl.work.options import Item, WorkOptions
from psctl.work.patience import Patience
from psctl.work.states import Event, State, WorkState


class Board:
    def __init__(self, options: WorkOptions, clock: Clock, patience: Patience) -> None:
        self.options, self.clock, self.patience = options, clock, patience
        self.lock = threading.Lock()
        self.work_ready = threading.Condition(self.lock)  # runners: an item queued, or the end
        self.room = threading.Condition(self.lock)  # the feeder: room in the queue, or the end
        self.ended = threading.Condition(self.lock)  # the acknowledger: a job ended, items back, or the end
        self.state = WorkState()
        self.queue: deque[Item] = deque()
        self.jobs: set[Job] = set()
        self.finished: deque[Job] = deque()  # ended, not yet reported
        self.reporting = 0  # ended, taken by the acknowledger, not yet reported (acknowledged or given back)
        self.returning: list[Item] = []  # taken but never started: to give back
        self.runners = options.jobs  # runners still running
        self.feeding = True  # the feeder runs (and may hand items back to give back)
        self.taken = 0  # items leased
        self.started = 0  # items the runners took from the queue
        self.low_water = 1  # fewer items queued, and the feeder leases more (the feeder sets it)
        self.target = 1  # items the feeder would have queued (it sets it)
        self.leasing: str | None = None  # who has a lease under way: "feeder", "acknowledger" (one at a time)
        self.stop_at = float("inf")  # when the grace ends
        self.wait = StopWaiting()  # ends the feeder's wait for work
        self.on_work: Callable[[], None] | None = None  # runners elsewhere than on work_ready (an event loop's)
        # several streams: which the next items are leased from (None: one stream)
        self.shares = Shares(options.weights) if len(options.weights) > 1 else None

    def change(self, event: Event) -> None:
        """``event`` happened (the lock is held): the state table says where
        the work is now, and what follows from it follows here."""
        before = self.state.state
        after = self.state.handle(event)
        if after is before:
            return
        if before in (State.WORKING, State.DRAINING) and self.state.stopped:
            # a stop: what is queued goes back, unstarted; the grace starts
            self.stop_at = self.clock.now() + self.options.grace
            self.returning.extend(self.queue)
            self.queue.clear()
        if self.state.given_up:
            self.patience.lose()
        self.wake_all()

    def announce_work(self) -> None:
        """Items were queued (or the work ends): the runners look (the lock is held)."""
        self.work_ready.notify_all()
        if self.on_work is not None:
            self.on_work()

    def wake_all(self) -> None:
        """Every waiting thread looks again (the work ends, or stops); the lock is held."""
        self.wait.set()
        for condition in (self.room, self.ended):
            condition.notify_all()
        self.announce_work()

    def held(self) -> int:
        """Items taken and not yet reported (the lock is held): queued,
        running, ended, and being acknowledged or given back (a failed item on
        its way back is not gone: the stream is not idle meanwhile)."""
        return len(self.queue) + len(self.jobs) + len(self.finished) + self.reporting
