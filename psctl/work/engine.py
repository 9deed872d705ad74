"""The engine that runs items of a stream on leases, whatever
runs them (an ``Executor``: a command per item for ``psctl work``, a Python
callable for the Python workers).

Threads, each with one job:

- the *feeder* (``feeder.Feeder``) leases items several at a time;
- ``jobs`` *runners* each take the next queued item (or up to the executor's
  ``batch``) and run it to its end through their ``Lane`` of the executor:
  threads (``ThreadRunners``), or tasks on an event loop (``inloop.LoopRunners``);
- the *acknowledger* (``acknowledger.Acknowledger``) does all the talking to
  the server about what is held (through the ``LeaseKeeper``);
- the caller's thread (``run``) is the *supervisor*: every ``TICK`` it hands
  in the stops that were asked for, ends the grace, declares the server lost
  once it owed an answer for the patience, and has the executor see to the
  running jobs (timeouts, signals). It never waits for the server, so that it
  can tell when the server has been lost.

Where the work is (working, draining, stopping, ...) is the ``WorkState`` on
the shared ``Board``; ``Board.change`` is the only way it moves. Nothing here
touches signal handlers: ``request_stop`` only sets flags, so that a signal
handler may call it at any moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from psctl.work.acknowledger import Acknowledger
from psctl.work.board import Board
from psctl.work.clock import Clock
from psctl.work.executor import Executor, Job, Order
from psctl.work.feeder import Feeder
from psctl.work.leasekeeper import LeaseKeeper
from psctl.work.options import Tally, WorkOptions
from psctl.work.patience import Patience, ServerLost
from psctl.work.unreplicated import Shortfall
from psctl.work.states import Event, State

TICK = 0.1  # seconds between the supervisor's rounds
JOIN_FOR = 5.0  # seconds the threads get to end once the work is over
ORDERS = {State.TERMINATING: Order.TERMINATE, State.KILLING: Order.KILL, State.LOST: Order.ABANDON,
          State.FAILED: Order.ABANDON}  # fmt: skip


class Runners(Protocol):
    """Where the engine's runners run (``Engine.run_jobs`` per lane, or its like)."""

    def start(self) -> None: ...

    def alive(self) -> bool:
        """Whether a runner still runs (one whose job was cut short and cannot be stopped does not count)."""

    def join(self, deadline: float) -> None:
        """Waits for the runners to end, until ``deadline`` by the engine's clock."""


class ThreadRunners:
    """A thread per runner."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._threads: list[tuple[threading.Thread, Any]] = []

    def start(self) -> None:
        engine = self._engine
        for i in range(engine.options.jobs):
            lane = engine.new_lane()
            thread = threading.Thread(
                target=engine.guarded, args=(lambda lane=lane: engine.run_jobs(lane),), name=f"psctl-runner-{i}",
                daemon=True,
            )  # fmt: skip
            self._threads.append((thread, lane))
            thread.start()

    def alive(self) -> bool:
        return any(thread.is_alive() and not getattr(lane, "abandoned", False) for thread, lane in self._threads)

    def join(self, deadline: float) -> None:
        clock = self._engine.clock
        for thread, lane in self._threads:
            if not getattr(lane, "abandoned", False):
                thread.join(timeout=max(0.0, deadline - clock.now()))


class Engine:
    """Runs ``executor`` for items of ``options.weights`` (one stream, or several: ``fair``): ``run()`` until a
    limit, idleness, a stop, a halt or a lost server ends it.

    ``client`` acknowledges, releases and extends (from the acknowledger);
    ``feeder`` takes the leases, which may wait for work (give it longer reply
    timeouts, ``feeder_timeout``). ``warn`` gets one-line messages for the user."""

    def __init__(
        self, client: Any, feeder: Any, options: WorkOptions, executor: Executor, *,
        warn: Callable[[str], None] | None = None, feeder_timeout: float | None = None, clock: Clock | None = None,
        runners: Callable[[Engine], Runners] = ThreadRunners,
    ) -> None:  # fmt: skip
        self.options, self.executor = options, executor
        self.clock = clock or Clock()
        self._warn = warn or (lambda message: None)
        self.tally = Tally(started=self.clock.now(), now=self.clock.now,
                           streams=dict.fromkeys((name for name, _ in options.weights), 0))  # fmt: skip
        self.signal: int | None = None  # the signal that asked it to stop, if one did
        self.error: BaseException | None = None  # an unexpected failure that ended it
        self.unstartable: BaseException | None = None  # why a job could not be started, if one could not
        # (a write its replicas did not get in time was done all the same: the work goes on)
        shortfall = Shortfall(self._warn, self.clock.now)
        client, feeder = shortfall.wrap(client), shortfall.wrap(feeder)
        self.patience = Patience(options.patience, self.clock, self._warn)
        self.board = board = Board(options, self.clock, self.patience)
        self.keeper = LeaseKeeper(client, options, self.patience, self.clock, self._warn)
        self._feeder = Feeder(board, feeder, self.keeper, feeder_timeout or 0.0)
        self._acknowledger = Acknowledger(
            board, client, self.keeper, executor, self.tally, self._warn, take=self._feeder.take
        )
        self._stop_asked = False  # set by request_stop (a signal handler: flags only)
        self._force_asked = False
        self._threads: list[threading.Thread] = []  # the feeder's and the acknowledger's
        self._runners = runners(self)
        self._lanes: list[Any] = []
        self._let_go: set[int] = set()  # lanes no longer counted as running (ended, or abandoned)
        self._thread_ended = threading.Event()  # wakes the supervisor when the work may be over
        # why it ended (``WorkState.outcome``): limit, idle, stopped, forced, unstartable, unread, lost, error
        self.outcome: str | None = None

    @property
    def state(self) -> State:
        return self.board.state.state

    @property
    def refusal(self) -> str | None:
        """The server's last refusal, while it refuses commands for now."""
        return self.patience.refusal

    # -- asked from outside ------------------------------------------------------

    def request_stop(self, signum: int | None = None, *, force: bool = False) -> None:
        """Lease nothing more and stop once the running jobs are done (at most
        ``grace`` seconds); a second request (or ``force``) stops them at
        once. Only sets flags: safe in a signal handler (the supervisor hands
        the request to the state table on its next round)."""
        if self._stop_asked or force or self.board.state.stopped:
            self._force_asked = True
        if not (self._stop_asked or self.board.state.stopped):
            self.signal = signum
        self._stop_asked = True
        self.board.wait.set()

    def snapshot(self) -> Tally:
        board = self.board
        with board.lock:
            tally = self.tally
            return Tally(tally.done, tally.failed, tally.dead, len(board.jobs), tally.started, self.clock.now,
                         dict(tally.streams))  # fmt: skip

    # -- the supervisor ----------------------------------------------------------

    def run(self, on_tick: Callable[[Tally], None] | None = None) -> str:
        """Works until the end; returns the outcome (also in ``outcome``)."""
        self.executor.open(self.options.name, self.clock, self._warn)
        feeder = threading.Thread(target=self.guarded, args=(self._feeder.feed,), name="psctl-feeder", daemon=True)
        acknowledger = threading.Thread(
            target=self.guarded, args=(self._acknowledger.acknowledge,), name="psctl-acknowledger", daemon=True
        )
        self._threads = [feeder, acknowledger]
        self._supervise(self.clock.now())  # (a stop asked before the start: nothing is leased, nothing starts)
        runners = self._runners
        runners.start()
        for thread in self._threads:
            thread.start()
        try:
            while True:
                self._supervise(self.clock.now())
                if on_tick is not None:
                    on_tick(self.snapshot())
                if not runners.alive() and (
                    self.board.state.given_up or not (feeder.is_alive() or acknowledger.is_alive())
                ):  # (a lost server may never answer the feeder or the acknowledger: no waiting for them)
                    break
                self.clock.wait_event(self._thread_ended, TICK)  # (a signal handler only sets flags: safe here)
                self._thread_ended.clear()
        finally:
            self._stop_everything()
        self.outcome = self.board.state.outcome
        return self.outcome

    def _supervise(self, now: float) -> None:
        board = self.board
        with board.lock:
            state = board.state
            if self._stop_asked and state.state in (State.WORKING, State.DRAINING) and not self._force_asked:
                board.change(Event.STOP)
            if self._force_asked and not state.given_up:
                board.change(Event.FORCE)
            if state.state is State.STOPPING and now >= board.stop_at:
                board.change(Event.GRACE_OVER)
            if not state.given_up and self.patience.overdue(now):
                board.change(Event.LOST)
            jobs = list(board.jobs)
            order = ORDERS.get(state.state, Order.RUN)
        if jobs and self.executor.supervise(jobs, now, order):
            with board.lock:
                board.change(Event.CUT_SHORT)
        self._let_go_of_abandoned()

    def _let_go_of_abandoned(self) -> None:
        """Runners whose job was cut short and cannot be stopped (a Python
        function in a thread) no longer count as running: nothing waits for them."""
        board = self.board
        with board.lock:
            for lane in self._lanes:
                if getattr(lane, "abandoned", False) and id(lane) not in self._let_go:
                    self._let_go.add(id(lane))
                    board.runners -= 1
                    board.ended.notify()
                    self._thread_ended.set()

    def _halt(self, job: Job) -> None:
        """The work stops itself because of ``job`` (see ``Job.halt``), at
        once, from the thread that found why: nothing more is leased or
        started from now on, what is queued goes back, running jobs may finish
        within the grace (a stop begun already keeps its grace). Not left to
        the supervisor's next round: meanwhile the runners would start, the
        feeder lease and the acknowledger give back item after item for
        nothing. Said once."""
        board = self.board
        with board.lock:
            first = board.state.halted is None
            if job.halt == "unstartable" and self.unstartable is None:
                self.unstartable = job.error
            if not board.state.given_up:
                board.change(Event.UNSTARTABLE if job.halt == "unstartable" else Event.UNREAD)
        if first and job.note:
            self._warn(job.note)

    def _stop_everything(self) -> None:
        """After the work: nothing left running, even if the supervisor failed."""
        board = self.board
        with board.lock:
            state = board.state.state
            if state is State.WORKING or state is State.DRAINING and self._stop_asked:
                board.change(Event.STOP)  # (a stop asked for last, or the supervisor failed: nothing more starts)
            board.wake_all()
            jobs = list(board.jobs)
            given_up = board.state.given_up
        self.executor.stop_all(jobs, given_up)
        self._let_go_of_abandoned()
        if self.error is not None:
            self._give_back_unstarted()
        deadline = self.clock.now() + JOIN_FOR
        self._runners.join(deadline)
        if not given_up:
            for thread in self._threads:
                thread.join(timeout=max(0.0, deadline - self.clock.now()))
        self.executor.close()

    # -- the runners -------------------------------------------------------------

    def new_lane(self) -> Any:
        """A runner's lane of the executor."""
        lane = self.executor.lane(self._report, self._halt)
        self._lanes.append(lane)
        return lane

    def take_job(self, lane: Any) -> Job | None:
        """The next job to run, the lock held: None when there is none now
        (``board.state.leases``: one may come)."""
        board = self.board
        if board.queue and board.state.starts:
            queue = board.queue
            batch = self.executor.batch
            items = [queue.popleft()]
            while len(items) < batch and queue and queue[0].stream == items[0].stream:  # (a batch: of one stream)
                items.append(queue.popleft())
            job = self.executor.job(items)
            board.jobs.add(job)
            board.started += len(items)
            if len(queue) < board.low_water:
                board.room.notify()  # the feeder leases more
            return job
        return None

    def runner_ended(self, lane: Any) -> None:
        """A runner is over (the lock not held)."""
        board = self.board
        with board.lock:
            if id(lane) not in self._let_go:
                self._let_go.add(id(lane))
                board.runners -= 1
                board.ended.notify()

    def run_jobs(self, lane: Any) -> None:
        """A runner thread's body."""
        board = self.board
        job: Job | None = None
        try:
            while True:
                with board.lock:
                    while not board.queue and board.state.leases and not lane.holding:
                        board.work_ready.wait()
                    job = self.take_job(lane)
                    if job is None and not lane.holding:  # (nothing more to lease, or to start)
                        return
                lane.run(job)
                job = None
        except BaseException:
            lane.close(job)
            raise
        finally:
            self.runner_ended(lane)

    def _report(self, job: Job) -> None:
        """``job`` is over: to the acknowledger."""
        board = self.board
        with board.lock:
            board.jobs.discard(job)
            board.finished.append(job)
            board.ended.notify()

    def guarded(self, body: Callable[[], None]) -> None:
        """A thread's body: an unexpected error ends the work, and is kept for the caller."""
        try:
            body()
        except ServerLost:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by run()'s caller
            self.failed(exc)
        finally:
            self._thread_ended.set()

    def _give_back_unstarted(self) -> None:
        """An unexpected error ended the work (a handler raised KeyboardInterrupt,
        say): what was leased and never started goes back now, not at the end
        of its lease: one try, the server may be the trouble."""
        board = self.board
        with board.lock:
            items = [*board.queue, *board.returning]
            board.queue.clear()
            board.returning = []
        if items:
            try:
                self.keeper.give_back(items, once=True)
            except Exception:  # noqa: BLE001 - the leases give them back anyway
                pass

    def wake_supervisor(self) -> None:
        """The work may be over: the supervisor looks now, not at its next round."""
        self._thread_ended.set()

    def failed(self, error: BaseException) -> None:
        """An unexpected error ends the work (kept for ``run()``'s caller)."""
        with self.board.lock:
            if self.error is None:
                self.error = error
            self.board.change(Event.ERROR)
