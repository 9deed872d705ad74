"""The engine of ``psctl work`` (SPEC §7): a command run once per item of a
stream, on leases, the way ``xargs -P`` runs one per line.

Threads, each with one job:

- the *feeder* leases items several at a time, whenever fewer than ``jobs``
  wait in the queue (up to ``PREFETCH`` per job), waiting for work with the
  blocking lease's wake-up;
- ``jobs`` *runners* each take the next queued item, run the command with the
  value on stdin, wait for it and for what it left in its process group;
- the *acknowledger* does all the talking to the server about what is held:
  it reports what the commands did, a few at a time (one ``psack`` per lease
  for all its items that succeeded; a failed one given back with a delay that
  doubles per delivery, or to the dead items by the lease's
  ``max_deliveries``), extends the leases of what is queued or running every
  third of their length, and gives back what a stop left unstarted;
- the caller's thread (``run``) is the *supervisor*: every ``TICK`` it stops
  commands that ran past ``--timeout``, carries out a stop that was asked
  for, sends the SIGKILLs that are due, and reports. It never waits for the
  server, so that it can tell when the server has been lost.

The threads share one lock, with a condition per kind of waiter. Spawning is
the bound (``true`` costs psctl about what it costs ``xargs -P``): the rest is
kept off the runners and batched.

A command runs in a session of its own: a process group of its own, so that
the terminal's Ctrl-C reaches psctl only, which decides what the commands get
(SPEC §7: a grace, then SIGTERM, then SIGKILL; at once on a second Ctrl-C),
and a stop reaches the command's children too; and no controlling terminal,
so that a command that asks a question on the terminal fails at once instead
of being stopped for ever by SIGTTIN. Its stdin holds the whole value before
it starts, and the ``psctl.lifeline`` watcher kills its session should psctl
die: a command never outlives its worker, nor reads a cut value as a whole
one. A command is over when nothing is left of its session, whatever process
group of it a process moved to (GNU ``timeout`` makes one): signals go to
every group of the session, and what a stop's SIGTERM (or the command's own
exit) leaves running gets SIGKILL ``KILL_AFTER`` seconds later, whether or
not the command itself is gone. Only a process that left the session
(``setsid``: a daemon) is no longer the command's. The session's other
groups are found through /proc, which costs too much to do for every
command (spawning is the bound): a command that exits by itself is looked
at that way only when something still holds its stderr (``stderr_tail``);
otherwise one ``kill`` tells whether its own group is empty.

The work stops itself (``halted``) when a command cannot be started, and
when a command fails once the reader of psctl's stdout, which the commands
share, went away (``| head``): at once, from the runner that found it, so
that nothing more is leased or started meanwhile; that command's item goes
back uncounted, not as a failure.

Nothing here touches signal handlers: ``request_stop`` only sets flags, so
that a signal handler may call it at any moment.

A lost server does not stop the work at once: running commands go on, and
acknowledgements, releases and leases are tried again with backoff until the
server has owed an answer for ``patience`` seconds, wall-clock, counted from
the first request it did not answer (a server that refuses writes for now,
its disk full, say, counts as not answering); then the worker stops its
commands and ends ("lost"), and the leases give back what it held.
"""

from __future__ import annotations

import base64
import itertools
import os
import select
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as NoReply

from psctl import defaults
from psctl.errors import refused_for_now
from psctl.leases import MAX_LEASE
from psctl.lifeline import VARIABLE as WORKER_VARIABLE
from psctl.lifeline import Lifeline
from psctl.operations import StopWaiting
from psctl import stderr_tail
from psctl.stderr_tail import Tail

TICK = 0.1  # seconds between the supervisor's rounds
KILL_AFTER = 5.0  # seconds from SIGTERM to SIGKILL for a command being stopped
LINGER = 1.0  # seconds a process group SIGKILL did not empty may take before its item is reported
MAX_RETRY_DELAY = defaults.MAX_RETRY_DELAY.total_seconds()  # a failed item's delay before its next delivery grows up to this
BUSY_WAIT = 0.25  # seconds a lease waits for work while commands run (with --idle-exit)
PREFETCH = 3  # items queued per job at most (leased, waiting for a runner)
_WAITID = hasattr(os, "waitid")  # Linux; not every Unix
GATHER = 0.005  # seconds the acknowledger waits for more commands to end, to acknowledge them together
# the longest key given in PSCTL_KEY (or PSCTL_KEY_BASE64): the kernel refuses an
# environment string over 128 KiB, and all of them together over a quarter of the
# stack limit; a longer key comes in a file named by PSCTL_KEY_FILE
KEY_IN_ENVIRONMENT = 32 * 1024
_FAILED_TO_START = "not started"  # a Job's reason when its command could not be started
_UNREAD = "unread"  # a Job's reason when its command failed once the reader of its stdout had gone


@dataclass(frozen=True)
class WorkOptions:
    """What ``psctl work`` was told (durations in seconds)."""

    name: str
    command: tuple[str, ...]
    jobs: int = 1
    lease: float = defaults.LEASE.total_seconds()
    timeout: float | None = None  # per command
    max_deliveries: int = defaults.MAX_DELIVERIES
    retry_delay: float = defaults.RETRY_DELAY.total_seconds()
    gate: bool = False
    expire_at: Any = defaults.COOL_DOWN  # the cool-down of an acknowledged item
    limit: int | None = None  # items to take, in all
    idle_exit: float | None = None  # stop after this long with nothing to do
    grace: float = defaults.GRACE.total_seconds()  # after a stop is asked for, before running commands are stopped
    patience: float = defaults.PATIENCE.total_seconds()  # how long an unreachable server is tried again

    def retry_delay_for(self, delivery: int) -> float:
        """The delay before a failed item's next delivery: ``retry_delay``
        doubled per delivery it has had, at most ``MAX_RETRY_DELAY``."""
        return min(self.retry_delay * 2.0 ** min(delivery - 1, 64), MAX_RETRY_DELAY)


@dataclass
class Tally:
    """What the work did so far."""

    done: int = 0  # commands that exited 0, their items acknowledged
    failed: int = 0  # commands that failed, their items given back for another delivery
    dead: int = 0  # commands that failed on their item's last delivery: the item went to the dead items
    running: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


class Item:
    __slots__ = ("delivery", "key", "score", "token", "value")

    def __init__(self, token: str, key: str, value: bytes, score: float, delivery: int) -> None:
        self.token, self.key, self.value, self.score, self.delivery = token, key, value, score, delivery


class Job:
    """A command running for an item, and its session (whose number is the
    command's process's, as is its own process group's).

    ``lock`` orders the signals sent to the session against the runner's looks
    at it, so that a signal never reaches a group whose number the system gave
    to another: until the command's own process is reaped, its number is in
    use, and after, while any process of the session or of a group is (the
    kernel keeps such a number until its last user is gone); signals go only
    until the runner finds the session empty (``gone``). A number freed
    between two looks is not handed out again so soon: the kernel hands
    process numbers out in turn, all the others first."""

    __slots__ = (
        "deadline", "exited", "gone", "item", "key_file", "kill_at", "killed", "lingering", "lock", "pipe", "process",
        "reason", "returncode", "settle_by", "stderr", "unsettled",
    )  # fmt: skip

    def __init__(self, item: Item) -> None:
        self.item = item
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.exited = False  # the command's own process exited: its exit status is its outcome
        self.gone = False  # nothing is left of its process group
        self.killed = False  # SIGKILL was sent to its process group
        self.lingering = False  # SIGKILL did not empty its session in time
        self.deadline = float("inf")  # --timeout
        self.kill_at = float("inf")  # SIGKILL after a SIGTERM that was not enough
        self.reason: str | None = None  # why psctl ends it: "timeout", "stopped", "lost", _FAILED_TO_START, _UNREAD
        self.stderr: Tail | None = None  # the end of what it wrote to stderr: its last line says why it failed
        self.pipe: int | None = None  # the read end of its stderr, while open
        self.key_file: str | None = None  # the file that holds its key, when too long for the environment
        self.returncode: int | None = None  # its exit status (negative: a signal); None: not started
        # it exited, its process group is empty, but something still held its stderr: maybe a
        # process of its session in another group, maybe a command spawned meanwhile (from its
        # fork to its exec): the runner looks again after its next spawn (``_settle``)
        self.unsettled = False
        self.settle_by = 0.0  # when an unsettled job's session is looked at through /proc


class Holding:
    """A lease the worker still holds items of."""

    __slots__ = ("extended", "items")

    def __init__(self, items: int, now: float) -> None:
        self.items, self.extended = items, now


class ServerLost(Exception):
    """The server has owed an answer for ``patience`` seconds."""


class Worker:
    """Runs ``options.command`` for items of ``options.name``: ``run()`` until
    a limit, idleness, a stop, a command that cannot be started or a lost
    server ends it.

    ``client`` acknowledges, releases and extends (from the acknowledger);
    ``feeder`` takes the leases, which may wait for work (give it longer reply
    timeouts). ``warn`` gets one-line messages for the user."""

    def __init__(
        self,
        client: Any,
        feeder: Any,
        options: WorkOptions,
        *,
        warn: Callable[[str], None] | None = None,
        feeder_timeout: float | None = None,
    ) -> None:
        self.options = options
        self.tally = Tally()
        self.outcome: str | None = None  # why it ended: limit, idle, stopped, forced, unstartable, lost
        self.signal: int | None = None  # the signal that asked it to stop, if one did
        self.error: BaseException | None = None  # an unexpected failure that ended it
        self.unstartable: OSError | None = None  # why a command could not be started, if one could not
        self.refusal: str | None = None  # the server's last refusal, while it refuses commands for now
        # why the work stopped itself, if it did: "unstartable" (a command could not be
        # started), "unread" (the reader of psctl's stdout, which the commands share, went away)
        self.halted: str | None = None
        self._client, self._feeder, self._warn = client, feeder, warn or (lambda message: None)
        # how long the feeder's client waits for a reply beyond a blocked wait: a lease
        # that timed out was owed that long (when unknown, from when it failed)
        self._feeder_timeout = feeder_timeout or 0.0
        self._lock = threading.Lock()
        # one lock, a condition per kind of waiter (a notify_all for everyone would
        # wake every thread at every item, and hand the GIL round for nothing)
        self._work_ready = threading.Condition(self._lock)  # runners: an item queued, or the end
        self._room = threading.Condition(self._lock)  # the feeder: room in the queue, or the end
        self._ended = threading.Condition(self._lock)  # the acknowledger: a command ended, items back, or the end
        self._queue: deque[Item] = deque()
        self._jobs: set[Job] = set()
        self._finished: deque[tuple[Job, int | None]] = deque()  # ended, not yet reported
        self._returning: list[Item] = []  # taken but never started: to give back
        self._runners = options.jobs  # runner threads still running
        self._feeding = True  # the feeder runs (and may hand items back to give back)
        self._leases: dict[str, Holding] = {}
        self._taken = 0
        self._wait = StopWaiting()  # ends the feeder's wait for work
        self._stop_asked = False  # set by request_stop (a signal handler: flags only)
        self._force_asked = False
        self._stopping = False  # no more leases (a stop, idleness, a limit, a lost server)
        self._stop_begun = False  # the supervisor carries out a stop request
        self._stop_at = float("inf")  # when the grace ends
        self._forced = False  # a running command was stopped because of a stop request
        # since when the server owes the feeder, the acknowledger, an answer (from the
        # first request it did not answer, or refused, to the first it answers)
        self._owed: dict[str, float] = {}
        self._asked_at: float | None = None  # when the acknowledger sent the request it awaits
        self._lost = threading.Event()  # set once the server is lost: retries stop
        self._ending: str | None = None  # set once the work ends: limit, idle, lost, error
        self._lifeline: Lifeline | None = None
        self._environment: dict[bytes, bytes] = {}
        self._key_folder: str | None = None  # for keys too long for the environment
        self._key_files = itertools.count()
        self._threads: list[threading.Thread] = []
        self._thread_ended = threading.Event()  # wakes the supervisor when the work may be over
        self._stdout_piped = False  # psctl's stdout (the commands') is a pipe or a socket: its reader may go

    # -- asked from outside ------------------------------------------------------

    def request_stop(self, signum: int | None = None, *, force: bool = False) -> None:
        """Lease nothing more and stop once the running commands are done (at
        most ``grace`` seconds); a second request (or ``force``) stops them at
        once. Only sets flags: safe in a signal handler."""
        if self._stop_asked or force:
            self._force_asked = True
        if not self._stop_asked:
            self.signal = signum
            self._stop_asked = True
        self._wait.set()

    def snapshot(self) -> Tally:
        with self._lock:
            return Tally(self.tally.done, self.tally.failed, self.tally.dead, len(self._jobs), self.tally.started)

    # -- the supervisor ----------------------------------------------------------

    def run(self, on_tick: Callable[[Tally], None] | None = None) -> str:
        """Works until the end; returns the outcome (also in ``outcome``)."""
        self._stdout_piped = _piped(1)
        self._lifeline = Lifeline.start(self._warn)
        mark = self._lifeline.mark if self._lifeline is not None else None
        self._environment = _base_environment(self.options.name, mark)
        feeder = threading.Thread(target=self._guarded, args=(self._feed_then_tell,), name="psctl-feeder", daemon=True)
        runners = [
            threading.Thread(target=self._guarded, args=(self._run_jobs,), name=f"psctl-runner-{i}", daemon=True)
            for i in range(self.options.jobs)
        ]
        acknowledger = threading.Thread(
            target=self._guarded, args=(self._acknowledge,), name="psctl-acknowledger", daemon=True
        )
        self._threads = [feeder, *runners, acknowledger]
        for thread in self._threads:
            thread.start()
        try:
            while True:
                self._supervise(time.monotonic())
                if on_tick is not None:
                    on_tick(self.snapshot())
                if not any(thread.is_alive() for thread in runners) and (
                    self._ending in ("lost", "error") or not (feeder.is_alive() or acknowledger.is_alive())
                ):  # (a lost server may never answer the feeder or the acknowledger: no waiting for them)
                    break
                self._thread_ended.wait(TICK)  # (a signal handler only sets flags: safe to wait here)
                self._thread_ended.clear()
        finally:
            self._stop_everything(runners)
        if self.error is not None:
            self.outcome = "error"
        elif self._ending == "lost":
            self.outcome = "lost"
        elif self.unstartable is not None:
            self.outcome = "unstartable"
        elif self.halted is not None:  # (its running commands stopped after the grace or not)
            self.outcome = self.halted
        elif self._forced:
            self.outcome = "forced"
        elif self._stop_asked:
            self.outcome = "stopped"
        else:
            self.outcome = self._ending or "stopped"
        return self.outcome

    def _supervise(self, now: float) -> None:
        if self._stop_asked and not self._stop_begun:
            self._begin_stop(now + self.options.grace)
        self._watch_the_server(now)
        ending = self._ending in ("lost", "error")
        with self._lock:
            jobs = list(self._jobs)
        census = Census()  # (one look through /proc for all the signals of this round, if any)
        for job in jobs:
            if job.gone or job.killed:
                continue
            if job.exited:  # what it left in its session was asked to end when it exited
                if ending or self._force_asked:
                    job.kill_at = min(job.kill_at, now)
            elif ending:
                if job.reason != "lost":
                    self._end(job, "lost", now, census)
            elif self._force_asked:  # a second Ctrl-C: at once
                if job.reason is None:
                    job.reason = "stopped"
                    self._forced = True
                job.kill_at = now
            elif now >= self._stop_at:  # the grace is over
                if job.reason is None:
                    self._forced = True
                    self._end(job, "stopped", now, census)
            elif now >= job.deadline and job.reason is None:
                self._end(job, "timeout", now, census)
            if now >= job.kill_at:
                self._send(job, signal.SIGKILL, census)

    def _watch_the_server(self, now: float) -> None:
        """Declares the server lost once it has owed an answer for ``patience``
        seconds, whatever a request in flight is still waiting for."""
        with self._lock:
            owed = [*self._owed.values(), *([] if self._asked_at is None else [self._asked_at])]
            if not owed or now - min(owed) < self.options.patience or self._ending == "lost":
                return
            self._ending = "lost"
            self._stopping = True
            self._wake_all()
        self._lost.set()
        self._wait.set()

    def _begin_stop(self, stop_at: float) -> None:
        """No more leases; what is queued goes back, unstarted."""
        with self._lock:
            self._stop_from(stop_at)
        self._wait.set()

    def _stop_from(self, stop_at: float) -> None:
        """``_begin_stop``, the lock held; once only (the grace ends once)."""
        if self._stop_begun:
            return
        self._stop_begun = True
        self._stopping = True
        self._stop_at = stop_at
        self._returning.extend(self._queue)
        self._queue.clear()
        self._wake_all()

    def _halt(self, why: str) -> bool:
        """The work stops itself (``why``: see ``halted``), at once, from the
        thread that found why: nothing more is leased or started from now on,
        what is queued goes back, running commands may finish within the grace
        (a stop begun already keeps its grace). Not left to the supervisor's
        next round: meanwhile the runners would start, the feeder lease and the
        acknowledger give back item after item for nothing. True for the first
        call."""
        with self._lock:
            first = self.halted is None
            if first:
                self.halted = why
            # (as a stop asked for: a Ctrl-C from now on stops the running commands at once)
            self._stop_asked = True
            self._stop_from(time.monotonic() + self.options.grace)
        self._wait.set()
        return first

    def _end(self, job: Job, reason: str, now: float, census: Census | None = None) -> None:
        """Asks ``job``'s command to end, and notes when to insist (SIGKILL)."""
        job.reason = reason
        job.kill_at = min(job.kill_at, now + KILL_AFTER)
        self._terminate(job, census)

    def _terminate(self, job: Job, census: Census | None = None) -> None:
        """SIGTERM to the command's session, and SIGCONT, so that a stopped
        process (state T) acts on it."""
        census = census or Census()
        self._send(job, signal.SIGTERM, census)
        self._send(job, signal.SIGCONT, census)

    @staticmethod
    def _send(job: Job, how: int, census: Census | None = None) -> None:
        """``how`` to every process group of the command's session (a timeout,
        a stop, a lost server, what the command left behind: rare, so the
        look through /proc that finds them is affordable here; one ``census``
        serves the signals sent at once)."""
        with job.lock:
            if job.gone or job.process is None:
                return
            session = job.process.pid
            for group in (census or Census()).groups(session):
                try:
                    os.killpg(group, how)
                except (ProcessLookupError, PermissionError):  # (empty since the look; not ours)
                    pass
            if how == signal.SIGKILL:
                job.killed = True

    def _stop_everything(self, runners: list[threading.Thread]) -> None:
        """After the work: nothing left running, even if the supervisor failed."""
        self._wait.set()
        with self._lock:
            self._stopping = True
            self._wake_all()
            jobs = list(self._jobs)
        census = Census()
        for job in jobs:
            if job.reason is None and not job.exited:
                job.reason = "lost" if self._ending in ("lost", "error") else "stopped"
            self._send(job, signal.SIGKILL, census)
        waited = runners if self._ending in ("lost", "error") else self._threads
        deadline = time.monotonic() + KILL_AFTER
        for thread in waited:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._lifeline is not None:
            self._lifeline.close()
        if self._key_folder is not None:
            import shutil

            shutil.rmtree(self._key_folder, ignore_errors=True)

    # -- the feeder --------------------------------------------------------------

    def _feed_then_tell(self) -> None:
        try:
            self._feed()
        finally:
            with self._lock:
                self._feeding = False
                self._owed.pop("feeder", None)  # (it asks nothing more)
                self._ended.notify()

    def _feed(self) -> None:
        options = self.options
        idle_since: float | None = None
        pause = 0.25
        while True:
            with self._lock:
                # leases of several items at once, before the runners run out: once
                # fewer than ``jobs`` wait, as many as fill the queue to twice that
                while not self._stopping and len(self._queue) >= options.jobs:
                    self._room.wait()
                if self._stopping or self._ending:
                    return
                left = MAX_LEASE if options.limit is None else options.limit - self._taken
                want = min(PREFETCH * options.jobs - len(self._queue), MAX_LEASE, left)
                busy = self._held() > 0
            if want <= 0:  # --limit reached: the runners finish what was taken
                with self._lock:
                    self._ending = self._ending or "limit"
                    self._stopping = True
                    self._wake_all()
                return
            now = time.monotonic()
            if busy:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            try:
                lease = self._feeder.pslease(
                    options.name, count=want, lease=options.lease, max_deliveries=options.max_deliveries,
                    block=self._block(busy, idle_since, now), stop=self._wait,
                )  # fmt: skip
            except (LostConnection, NoReply, ResponseError) as exc:  # a lease whose reply was lost comes back by itself
                failed_at = time.monotonic()
                owed_since = failed_at - self._feeder_timeout if isinstance(exc, NoReply) else failed_at
                self._trouble(exc, owed_since, "feeder")
                self._pause(pause)
                pause = min(pause * 2, 5.0)
                continue
            self._answered()
            pause = 0.25
            if lease:
                self._take(lease)
                idle_since = None
            elif (
                not busy and options.idle_exit is not None and idle_since is not None
                and time.monotonic() - idle_since >= options.idle_exit
            ):  # fmt: skip
                with self._lock:
                    if self._held() == 0:
                        self._ending = self._ending or "idle"
                        self._stopping = True
                        self._wake_all()
                        return

    def _block(self, busy: bool, idle_since: float | None, now: float) -> float | None:
        """How long a lease waits for work: for ever (0) by default; with
        --idle-exit, what is left of it while nothing runs (None: no wait), a
        short while otherwise, so that idleness is noticed soon after the last
        command ends."""
        idle_exit = self.options.idle_exit
        if idle_exit is None:
            return 0
        if busy:
            return BUSY_WAIT
        left = idle_exit - (now - (idle_since or now))
        return left if left > 0 else None

    def _take(self, lease: Any) -> None:
        items = [
            Item(lease.token, key, value, lease.scores[key], lease.deliveries[key]) for key, value in lease.items.items()
        ]
        with self._lock:
            if not self._stopping:
                self._queue.extend(items)
                self._leases[lease.token] = Holding(len(items), time.monotonic())
                self._taken += len(items)
                self._work_ready.notify_all()
                return
            self._returning.extend(items)  # a stop came while it leased: back at once, unstarted
            self._ended.notify()

    def _wake_all(self) -> None:
        """Every waiting thread looks again (the work ends, or stops); the lock is held."""
        for condition in (self._work_ready, self._room, self._ended):
            condition.notify_all()

    def _held(self) -> int:
        return len(self._queue) + len(self._jobs)

    # -- the runners -------------------------------------------------------------

    def _run_jobs(self) -> None:
        try:
            self._run_some_jobs()
        finally:
            with self._lock:
                self._runners -= 1
                self._ended.notify()

    def _run_some_jobs(self) -> None:
        # see Job.unsettled: looked at again once this runner's next command has started,
        # so that its wait, a command spawned meanwhile to exec, is no wait for the next
        unsettled: Job | None = None
        job: Job | None = None
        try:
            while True:
                job = None
                with self._lock:
                    while not self._queue and not self._stopping and unsettled is None:
                        self._work_ready.wait()
                    if self._queue and self._ending not in ("lost", "error"):
                        job = Job(self._queue.popleft())
                        self._jobs.add(job)
                        if len(self._queue) < self.options.jobs:
                            self._room.notify()  # the feeder leases more
                started = job is not None and self._start(job)
                if unsettled is not None:
                    self._settle(unsettled, unsettled.settle_by - time.monotonic())
                    unsettled = None
                if job is None:
                    if self._stopping and not self._queue or self._ending in ("lost", "error"):
                        return
                    continue
                if started:
                    self._await(job)
                if job.unsettled:
                    job.settle_by = time.monotonic() + stderr_tail.SETTLE
                    unsettled = job
                else:
                    self._finish(job)
                job = None
        finally:
            for left in (job, unsettled):  # (an unexpected error: reported as they are)
                if left is not None:
                    self._close(left)
                    self._report_job(left)

    def _start(self, job: Job) -> bool:
        """Starts the command for ``job``'s item; False when it could not be
        started."""
        item = job.item
        try:
            env, job.key_file = self._environment_for(item)
            stdin = _stdin_holding(item.value)
            item.value = b""  # (its stdin holds it now: no second copy while the command runs)
            pipe = writer = None
            try:
                if stderr_tail.CAPTURES:
                    pipe, writer = os.pipe()  # (read by this thread while the command runs)
                process = subprocess.Popen(
                    self.options.command, stdin=stdin, stderr=writer, env=env, start_new_session=True
                )
            except BaseException:
                if pipe is not None:
                    os.close(pipe)
                raise
            finally:
                os.close(stdin)
                if writer is not None:
                    os.close(writer)
        except OSError as exc:
            self._cannot_start(job, exc)
            return False
        job.pipe = pipe
        if self._lifeline is not None:
            self._lifeline.started(process.pid)  # (a session leader leads its process group)
        with job.lock:
            job.process = process
        if self.options.timeout is not None:
            job.deadline = time.monotonic() + self.options.timeout
        if job.reason is not None:  # ended before it started
            self._send(job, signal.SIGKILL)
        return True

    def _await(self, job: Job) -> None:
        """Waits for the command's own process to exit, passing its stderr
        through, then for what is left of its session; or, when its stderr is
        still held by something but its process group is empty, marks it
        ``unsettled``."""
        process = job.process
        assert process is not None
        held = False  # something still holds the command's stderr once it exited
        if job.pipe is not None:
            job.stderr = Tail()
            if stderr_tail.wait_reading(process.pid, job.pipe, job.stderr):
                os.close(job.pipe)  # (it ended: nothing is left to read)
                job.pipe = None
            else:
                held = True
        job.returncode = self._wait_for(job)
        if held and job.gone and job.reason is None and not job.killed:
            with job.lock:
                job.gone = False  # (its session is still to be looked at)
                job.unsettled = True
            return
        self._empty_session(job)

    def _settle(self, job: Job, wait: float) -> None:
        """Looks again at an ``unsettled`` job (its stderr held when it
        exited, its process group empty), waiting up to ``wait`` seconds: a
        stderr that ended since was held by a command spawned meanwhile
        (``gone``); one still held sends the look through /proc for the rest
        of its session, and what is left of it is stopped
        (``_empty_session``). Then it is reported."""
        assert job.pipe is not None and job.stderr is not None and job.process is not None
        if stderr_tail.ended(job.pipe, job.stderr, max(0.0, wait)):
            os.close(job.pipe)
            job.pipe = None
            with job.lock:
                job.gone = True
        else:
            with job.lock:
                job.gone = not _session_alive(job.process.pid, scan=True)
            self._empty_session(job)
        self._finish(job)

    def _finish(self, job: Job) -> None:
        """The command is over, nothing left of it: its resources go, and it
        is reported to the acknowledger."""
        if job.process is not None and self._lifeline is not None:
            self._lifeline.ended(job.process.pid)
        self._close(job)
        if job.returncode and job.reason is None and self._stdout_piped and _reader_gone(1):
            # it failed writing to a pipe whose reader went away (SIGPIPE, or an exit
            # on EPIPE): not the item's failure; and so would every next command
            job.reason = _UNREAD
            self._halt("unread")
        self._report_job(job)

    @staticmethod
    def _close(job: Job) -> None:
        """What is left of the command's stderr (read, passed through), and its key file."""
        if job.pipe is not None:
            if job.stderr is not None:
                stderr_tail.drain(job.pipe, job.stderr)
            os.close(job.pipe)
            job.pipe = None
        if job.key_file is not None:
            try:
                os.unlink(job.key_file)
            except FileNotFoundError:  # (the command removed it)
                pass
            job.key_file = None

    def _report_job(self, job: Job) -> None:
        with self._lock:
            self._jobs.discard(job)
            self._finished.append((job, job.returncode))
            self._ended.notify()

    @staticmethod
    def _wait_for(job: Job) -> int:
        """The exit status of the command's own process, reaped; then a first
        look at its session. The look is cheap (one ``kill``: is its process
        group empty?) when the command's end was its own; when psctl ended it
        (a timeout, a stop: its other groups were signalled too), the look
        goes through /proc for the session's other groups. (Spawning bounds
        ``psctl work``: no such look for every command; ``_await`` looks
        further when something still holds the command's stderr.)"""
        process = job.process
        assert process is not None
        if _WAITID:
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
            with job.lock:
                returncode = process.wait()
                job.exited = True
                job.gone = not _session_alive(process.pid, scan=job.reason is not None or job.killed)
            return returncode
        returncode = process.wait()  # (not under the lock: a timeout's signals must get through meanwhile)
        with job.lock:
            job.exited = True
            job.gone = not _session_alive(process.pid, scan=job.reason is not None or job.killed)
        return returncode

    def _empty_session(self, job: Job) -> None:
        """Waits until nothing is left of the command's session, whatever
        process group of it a process moved to. What the command left running
        when it exited is asked to end then (SIGTERM, SIGKILL ``KILL_AFTER``
        seconds later), as a stop's would be, so that it cannot go on working
        on an item that is given back, or outlive the worker."""
        if job.gone:
            return
        assert job.process is not None
        session = job.process.pid
        if job.reason is None and not job.killed:  # no stop reached it: it just left them behind
            job.kill_at = min(job.kill_at, time.monotonic() + KILL_AFTER)
            self._warn(f"{_shown(job.item.key)}: the command left processes running: stopping them")
            self._terminate(job)
        killed_at: float | None = None
        while True:
            with job.lock:
                _reap_group(session)
                if not _session_alive(session, scan=True, again=signal.SIGKILL if job.killed else None):
                    job.gone = True
                    return
                if job.killed and killed_at is None:
                    killed_at = time.monotonic()
            if killed_at is not None and time.monotonic() - killed_at >= LINGER:
                job.lingering = True  # (unkillable: not ours, or stuck in the kernel)
                return
            time.sleep(0.02)

    def _cannot_start(self, job: Job, error: OSError) -> None:
        """A command that cannot be started is not the item's failure: the item
        goes back uncounted, and the worker stops at once (running commands may
        finish within the grace), as ``xargs`` does; said once (another runner
        may fail to start its command before the stop reaches it: its item goes
        back the same way, unsaid)."""
        job.reason = _FAILED_TO_START
        job.gone = True
        with self._lock:
            if self.unstartable is None:
                self.unstartable = error
        if self._halt("unstartable"):
            self._warn(
                f"cannot start {self.options.command[0]} for item {_shown(job.item.key)}: {error.strerror or error}; "
                "stopping (the item goes back, not counted as a delivery)"
            )

    def _environment_for(self, item: Item) -> tuple[dict[bytes, bytes], str | None]:
        """The command's environment, and the file that holds its key when the
        key is too long for the environment (to remove once it ends)."""
        env = dict(self._environment)
        raw = item.key.encode("utf-8", "surrogateescape")
        key_file = None
        if len(raw) > KEY_IN_ENVIRONMENT:
            key_file = self._key_file(raw)
            env[b"PSCTL_KEY_FILE"] = os.fsencode(key_file)
        else:
            env.update(_text_variable(b"PSCTL_KEY", item.key))
        env[b"PSCTL_SCORE"] = repr(item.score).encode()
        env[b"PSCTL_DELIVERY"] = str(item.delivery).encode()
        return env, key_file

    def _key_file(self, raw: bytes) -> str:
        """A new private file holding ``raw``, in a folder of this worker's own."""
        with self._lock:
            if self._key_folder is None:
                self._key_folder = tempfile.mkdtemp(prefix="psctl-work-")  # (only its owner may enter)
                if self._lifeline is not None:
                    self._lifeline.remove_later(self._key_folder)
            path = os.path.join(self._key_folder, f"key-{next(self._key_files)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, raw)
        finally:
            os.close(fd)
        return path

    # -- the acknowledger ----------------------------------------------------------

    def _acknowledge(self) -> None:
        """Reports what the commands did, as they end: everything that ended
        since the last round at once, one acknowledgement per lease; gives back
        what a stop left unstarted, and extends the leases."""
        while True:
            with self._lock:
                while not self._finished and not self._returning and (self._runners or self._feeding):
                    due = self._next_extension() - time.monotonic()
                    if due <= 0:
                        break
                    self._ended.wait(due)
                if not self._finished and not self._returning and not (self._runners or self._feeding):
                    return
                few = 0 < len(self._finished) < self.options.jobs and self._runners
            if few:  # more are likely to end soon: one acknowledgement for them all
                time.sleep(GATHER)
            with self._lock:
                finished = list(self._finished)
                self._finished.clear()
                returning, self._returning = self._returning, []
            try:
                if returning:
                    self._give_back(returning)
                if finished:
                    self._report(finished)
                self._extend(time.monotonic())
            except ServerLost:
                return

    def _next_extension(self) -> float:
        """When the next lease is due to be extended (the lock is held)."""
        every = self.options.lease / 3
        return min((holding.extended + every for holding in self._leases.values()), default=time.monotonic() + every)

    def _extend(self, now: float) -> None:
        """Moves the deadline of each lease still held, every third of its length."""
        every = self.options.lease / 3
        with self._lock:
            due = [token for token, holding in self._leases.items() if now - holding.extended >= every]
        for token in due:
            deadline = self._call(self._client.psextend, self.options.name, token, self.options.lease)
            with self._lock:
                holding = self._leases.get(token)
                if holding is None:
                    continue
                holding.extended = now
                if deadline is None:  # it ran out before it could be extended: its items are not ours
                    del self._leases[token]
                    lost_lease = True
                else:
                    lost_lease = False
            if lost_lease:
                self._warn(f"a lease ran out before it could be extended: its items may run again ({token})")

    def _report(self, finished: list[tuple[Job, int | None]]) -> None:
        options = self.options
        succeeded: dict[str, list[str]] = {}
        unstarted: dict[str, list[str]] = {}
        failed: list[tuple[Job, int | None]] = []
        for job, returncode in finished:
            item = job.item
            if job.reason == "lost":
                self._done_with(item.token)  # nothing can reach the server: the lease gives the item back
            elif job.reason in ("stopped", _FAILED_TO_START, _UNREAD) and not job.lingering:
                unstarted.setdefault(item.token, []).append(item.key)  # a stop: back at once, not as a failure
            elif returncode == 0 and job.reason is None:
                succeeded.setdefault(item.token, []).append(item.key)
            else:
                failed.append((job, returncode))
        for token, keys in succeeded.items():
            acked = self._call(
                self._client.psack, options.name, token, keys, gate=options.gate, expire_at=options.expire_at
            )
            if acked < len(keys):
                self._warn(f"{len(keys) - acked} item(s) ran longer than their lease, which ran out: they may run again")
            with self._lock:
                self.tally.done += len(keys)
            self._done_with(token, len(keys))
        for token, keys in unstarted.items():
            self._call(self._client.psrelease, options.name, token, keys, attempted=False)
            self._done_with(token, len(keys))
        for job, returncode in failed:
            item = job.item
            if job.reason == "timeout":
                self._warn(f"{_shown(item.key)}: the command ran longer than {options.timeout:g} s and was stopped")
            elif job.lingering:
                self._warn(
                    f"{_shown(item.key)}: SIGKILL did not end every process of the command: "
                    "its item goes back as a failed delivery"
                )
            reason = self._failure(job, returncode)
            self._call(
                self._client.psrelease, options.name, item.token, [item.key],
                delay=options.retry_delay_for(item.delivery), reason=reason,
            )  # fmt: skip
            dead = item.delivery >= options.max_deliveries
            with self._lock:
                if dead:
                    self.tally.dead += 1
                else:
                    self.tally.failed += 1
            if dead:  # (said whatever -q says: an item is lost to the dead items)
                self._warn(f"{_shown(item.key)} is dead after {item.delivery} deliveries: {reason}")
            self._done_with(item.token)

    def _failure(self, job: Job, returncode: int | None) -> str:
        """Why the command failed, as its item keeps it: ``exit status 3``,
        ``killed by SIGKILL``, ``timed out after 5 s``, with the last line it
        wrote to stderr."""
        if job.reason == "timeout":
            why = f"timed out after {self.options.timeout:g} s"
        elif job.lingering:
            why = "its processes outlived SIGKILL"
        elif returncode is not None and returncode < 0:
            try:
                why = f"killed by {signal.Signals(-returncode).name}"
            except ValueError:
                why = f"killed by signal {-returncode}"
        else:
            why = f"exit status {returncode}"
        said = job.stderr.last_line() if job.stderr is not None else None
        return f"{why}: {said}" if said else why

    def _done_with(self, token: str, items: int = 1) -> None:
        with self._lock:
            holding = self._leases.get(token)
            if holding is not None:
                holding.items -= items
                if holding.items <= 0:
                    del self._leases[token]

    def _give_back(self, items: list[Item]) -> None:
        """Items taken but never started go back at once, their delivery uncounted."""
        by_token: dict[str, list[str]] = {}
        for item in items:
            by_token.setdefault(item.token, []).append(item.key)
        for token, keys in by_token.items():
            try:
                self._call(self._client.psrelease, self.options.name, token, keys, attempted=False)
            finally:
                self._done_with(token, len(keys))

    # -- the server's answers --------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A request safe to repeat (ack, release, extend), tried again with
        backoff while the server does not answer or refuses it for now, until
        the supervisor declares the server lost."""
        pause = 0.25
        while True:
            self._asked_at = asked_at = time.monotonic()
            try:
                result = method(*args, **kwargs)
            except (LostConnection, NoReply, ResponseError) as exc:
                self._trouble(exc, asked_at, "acknowledger")
                if self._lost.wait(pause):
                    raise ServerLost() from exc
                pause = min(pause * 2, 5.0)
                continue
            finally:
                self._asked_at = None
            self._answered()
            return result

    def _trouble(self, error: Exception, since: float, asker: str) -> None:
        """Notes that the server did not answer ``asker``'s request sent at
        ``since``, or refused it for now; any other error is raised again (it
        ends the work)."""
        refusal = refused_for_now(error)
        if refusal is None and isinstance(error, ResponseError):
            raise error
        with self._lock:
            first = not self._owed
            self._owed[asker] = min(self._owed.get(asker, since), since)
            self.refusal = refusal
        if first:
            why = f"refuses commands for now ({refusal})" if refusal is not None else f"does not answer ({error})"
            self._warn(f"the server {why}; trying again for {self.options.patience:g} s")

    def _answered(self) -> None:
        if self._owed:
            with self._lock:
                if self._owed and self._ending != "lost":
                    self._owed.clear()
                    self.refusal = None
                    back = True
                else:
                    back = False
            if back:
                self._warn("the server answers again")

    def _pause(self, seconds: float) -> None:
        """Sleeps, unless the work stops meanwhile (a stop, idleness, a lost server)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._wait.is_set():
            time.sleep(min(0.05, end - time.monotonic()))

    def _guarded(self, body: Callable[[], None]) -> None:
        """A thread's body: an unexpected error ends the work, and is kept for the caller."""
        try:
            body()
        except ServerLost:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by run()'s caller
            with self._lock:
                if self.error is None:
                    self.error = exc
                self._ending = "error"
                self._stopping = True
                self._wake_all()
            self._wait.set()
            self._lost.set()
        finally:
            self._thread_ended.set()


def _stdin_holding(value: bytes) -> int:
    """A file descriptor that holds the whole of ``value``, to read to its end:
    a pipe filled and closed before the command starts when the value fits
    its buffer, else an unlinked file. Whatever becomes of psctl, the command
    never reads the start of a value and then an end of file."""
    if len(value) <= select.PIPE_BUF:  # (any pipe holds that much: no wait for a reader)
        read, write = os.pipe()
        try:
            if value:
                os.write(write, value)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        return read
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("psctl-value")
    else:
        fd, path = tempfile.mkstemp(prefix="psctl-value-")
        os.unlink(path)
    try:
        _write_all(fd, value)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _session_alive(session: int, *, scan: bool, again: int | None = None) -> bool:
    """True while the command's session ``session`` holds a process that is
    not a zombie (zombies stay until their parent, maybe a careless init,
    reaps them): its process group, which one ``kill`` tells, and, with
    ``scan``, the other groups of the session, which only a look through
    /proc finds (what left the command's group: GNU ``timeout`` does).
    ``again``: a signal sent to the groups the look finds alive (SIGKILL,
    again, to what moved to a new group after the first)."""
    try:
        os.killpg(session, 0)
        in_group = True
    except ProcessLookupError:
        in_group = False
    except PermissionError:  # someone's, alive
        return True
    if not (in_group or scan):
        return False
    members = _members(session)
    if members is None:  # no /proc here: as kill() said
        return in_group
    alive = {group for group, state in members if state not in (b"Z", b"X")}
    if again is not None:
        for group in alive:
            try:
                os.killpg(group, again)
            except (ProcessLookupError, PermissionError):
                pass
    return bool(alive)


def _processes() -> Iterator[tuple[int, bytes, int, int, int]] | None:
    """``(pid, state, parent, process group, session)`` of every process
    (/proc/PID/stat: after the name, in parentheses, which may hold anything,
    spaces and ``)`` too, so read from the last ``)``). None where there is
    no /proc."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None

    def each() -> Iterator[tuple[int, bytes, int, int, int]]:
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", "rb") as file:
                    fields = file.read().rpartition(b")")[2].split(maxsplit=4)
                yield int(pid), fields[0], int(fields[1]), int(fields[2]), int(fields[3])
            except (OSError, ValueError, IndexError):  # gone meanwhile
                continue

    return each()


def _members(session: int) -> list[tuple[int, bytes]] | None:
    """``(process group, state)`` of each process of ``session``; zombies of
    it that psctl is the parent of are reaped (what the command left behind,
    when psctl is their reaper: PID 1 of a container, say), but the
    command's own process, which its runner reaps. None where there is no
    /proc."""
    processes = _processes()
    if processes is None:
        return None
    me = os.getpid()
    found = []
    for pid, state, parent, group, in_session in processes:
        if in_session != session:
            continue
        if state == b"Z" and parent == me and pid != session and _WAITID:  # (the command: its runner's)
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
                continue
            except ChildProcessError:
                pass
        found.append((group, state))
    return found


class Census:
    """The process groups of every session, from one look through /proc,
    taken when first asked for: the signals a supervisor's round sends share
    it (a stop of ``-j 100`` commands is one look, not 200)."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[int, set[int]] | None = None

    def groups(self, session: int) -> set[int]:
        """The groups of ``session`` that hold a live process, and its own."""
        if self._groups is None:
            self._groups = {}
            for _, state, _, group, in_session in _processes() or ():
                if state not in (b"Z", b"X"):
                    self._groups.setdefault(in_session, set()).add(group)
        return self._groups.get(session, set()) | {session}


def _reap_group(group: int) -> None:
    """Reaps the processes of ``group`` that psctl is the parent of once the
    command's own process was reaped: what it left behind, when psctl is
    their reaper (PID 1 of a container, say)."""
    if not _WAITID:
        return
    try:
        while os.waitid(os.P_PGID, group, os.WEXITED | os.WNOHANG):
            pass
    except ChildProcessError:
        pass


def _piped(fd: int) -> bool:
    """Whether ``fd`` is a pipe or a socket: a reader that may go away."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _reader_gone(fd: int) -> bool:
    """Whether the reading end of the pipe (or socket) ``fd`` is closed: poll()
    says POLLERR for a pipe, POLLHUP for a socket."""
    try:
        poller = select.poll()
        poller.register(fd, 0)  # (errors and hang-ups are told whatever is asked)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _shown(key: str) -> str:
    """A key for a message: quoted, and cut when long."""
    return repr(key) if len(key) <= 80 else repr(key[:80]) + f"… ({len(key)} characters)"


def _text_variable(name: bytes, text: str) -> dict[bytes, bytes]:
    """``name`` set to ``text``'s bytes; a text that an environment variable
    cannot hold (a NUL byte) goes in ``name_BASE64`` instead."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        return {name + b"_BASE64": base64.b64encode(raw)}
    return {name: raw}


def _base_environment(name: str, mark: bytes | None) -> dict[bytes, bytes]:
    env = dict(os.environb)
    for variable in (b"PSCTL_KEY", b"PSCTL_KEY_BASE64", b"PSCTL_KEY_FILE", b"PSCTL_STREAM", b"PSCTL_STREAM_BASE64",
                     WORKER_VARIABLE):  # fmt: skip
        env.pop(variable, None)  # (from a psctl work that runs this one)
    env.update(_text_variable(b"PSCTL_STREAM", name))
    if mark is not None:
        env[WORKER_VARIABLE] = mark
    return env
