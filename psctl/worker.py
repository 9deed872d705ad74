"""The engine of ``psctl work`` (SPEC §7): a command run once per item of a
stream, on leases, the way ``xargs -P`` runs one per line.

Threads, each with one job:

- the *feeder* leases items several at a time, whenever fewer than ``jobs``
  wait in the queue (up to ``PREFETCH`` per job), waiting for work with the
  blocking lease's wake-up;
- ``jobs`` *runners* each take the next queued item, run the command with the
  value on stdin and wait for it;
- the *acknowledger* reports what the commands did, a few at a time (one
  ``psack`` per lease for all its items that succeeded; a failed one given
  back with a delay that doubles per delivery, or to the dead items by the
  lease's ``max_deliveries``);
- the caller's thread (``run``) is the *supervisor*: every ``TICK`` it
  extends the leases of what is queued or running, stops commands that ran
  past ``--timeout``, carries out a stop that was asked for, and reports.

The threads share one lock, with a condition per kind of waiter. Spawning is
the bound (``true`` costs psctl about what it costs ``xargs -P``): the rest is
kept off the runners and batched.

A command runs in a process group of its own: the terminal's Ctrl-C reaches
psctl only, which decides what the commands get (SPEC §7: a grace, then
SIGTERM, then SIGKILL; at once on a second Ctrl-C), and a stop reaches the
command's own children too. Nothing here touches signals: ``request_stop``
only sets flags, so that a signal handler may call it at any moment.

A lost server does not stop the work at once: running commands go on, and
acknowledgements, releases and leases are tried again with backoff until the
server has been unreachable for ``patience`` seconds; then the worker stops
its commands and ends ("lost"), and the leases give back what it held.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import TimeoutError as NoReply

from psctl.leases import MAX_LEASE
from psctl.operations import StopWaiting

TICK = 0.1  # seconds between the supervisor's rounds
KILL_AFTER = 5.0  # seconds from SIGTERM to SIGKILL for a command being stopped
MAX_RETRY_DELAY = 3600.0  # a failed item's delay before its next delivery grows up to this
BUSY_WAIT = 0.25  # seconds a lease waits for work while commands run (with --idle-exit)
PREFETCH = 3  # items queued per job at most (leased, waiting for a runner)
_WAITID = hasattr(os, "waitid")  # Linux; not every Unix
GATHER = 0.005  # seconds the acknowledger waits for more commands to end, to acknowledge them together


@dataclass(frozen=True)
class WorkOptions:
    """What ``psctl work`` was told (durations in seconds)."""

    name: str
    command: tuple[str, ...]
    jobs: int = 1
    lease: float = 300.0
    timeout: float | None = None  # per command
    max_deliveries: int = 5
    retry_delay: float = 10.0
    gate: bool = False
    expire_at: Any = timedelta(days=1)  # the cool-down of an acknowledged item
    limit: int | None = None  # items to take, in all
    idle_exit: float | None = None  # stop after this long with nothing to do
    grace: float = 30.0  # after a stop is asked for, before running commands are stopped
    patience: float = 60.0  # how long an unreachable server is tried again

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
    """A command running for an item. ``lock`` orders ending it against its
    exit: once ``exited`` is set (the process exited, still unreaped) no
    signal is sent, so that a signal never reaches a process group whose
    number the system gave to another."""

    __slots__ = ("deadline", "exited", "item", "kill_at", "lock", "process", "reason")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.exited = False
        self.deadline = float("inf")  # --timeout
        self.kill_at = float("inf")  # SIGKILL after a SIGTERM that was not enough
        self.reason: str | None = None  # why psctl ends it: "timeout", "stopped", "lost"


class Holding:
    """A lease the worker still holds items of."""

    __slots__ = ("extended", "items")

    def __init__(self, items: int, now: float) -> None:
        self.items, self.extended = items, now


class ServerLost(Exception):
    """The server has been unreachable for ``patience`` seconds."""


class Worker:
    """Runs ``options.command`` for items of ``options.name``: ``run()`` until
    a limit, idleness, a stop or a lost server ends it.

    ``client`` acknowledges, releases and extends (from any thread);
    ``feeder`` takes the leases, which may wait for work (give it longer reply
    timeouts). ``warn`` gets one-line messages for the user."""

    def __init__(
        self, client: Any, feeder: Any, options: WorkOptions, *, warn: Callable[[str], None] | None = None
    ) -> None:
        self.options = options
        self.tally = Tally()
        self.outcome: str | None = None  # why it ended: limit, idle, stopped, forced, lost
        self.signal: int | None = None  # the signal that asked it to stop, if one did
        self.error: BaseException | None = None  # an unexpected failure that ended it
        self._client, self._feeder, self._warn = client, feeder, warn or (lambda message: None)
        self._lock = threading.Lock()
        # one lock, a condition per kind of waiter (a notify_all for everyone would
        # wake every thread at every item, and hand the GIL round for nothing)
        self._work_ready = threading.Condition(self._lock)  # runners: an item queued, or the end
        self._room = threading.Condition(self._lock)  # the feeder: room in the queue, or the end
        self._ended = threading.Condition(self._lock)  # the acknowledger: a command ended, or the end
        self._queue: deque[Item] = deque()
        self._jobs: set[Job] = set()
        self._finished: deque[tuple[Job, int | None]] = deque()  # ended, not yet reported
        self._runners = options.jobs  # runner threads still running
        self._leases: dict[str, Holding] = {}
        self._taken = 0
        self._wait = StopWaiting()  # ends the feeder's wait for work
        self._stop_asked = False  # set by request_stop (a signal handler: flags only)
        self._force_asked = False
        self._stopping = False  # no more leases (a stop, idleness, a limit, a lost server)
        self._stop_begun = False  # the supervisor carries out a stop request
        self._stop_at = float("inf")  # when the grace ends
        self._forced = False  # a running command was stopped because of a stop request
        self._trouble_since: float | None = None  # when the server stopped answering
        self._ending: str | None = None  # set once the work ends: limit, idle, lost, error
        self._environment = _base_environment(options.name)
        self._threads: list[threading.Thread] = []
        self._thread_ended = threading.Event()  # wakes the supervisor when the work may be over

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
        self._threads = [threading.Thread(target=self._guarded, args=(self._feed,), name="psctl-feeder", daemon=True)]
        self._threads += [
            threading.Thread(target=self._guarded, args=(self._run_jobs,), name=f"psctl-runner-{i}", daemon=True)
            for i in range(self.options.jobs)
        ]
        self._threads.append(
            threading.Thread(target=self._guarded, args=(self._acknowledge,), name="psctl-acknowledger", daemon=True)
        )
        for thread in self._threads:
            thread.start()
        try:
            while True:
                self._supervise(time.monotonic())
                if on_tick is not None:
                    on_tick(self.snapshot())
                if not any(thread.is_alive() for thread in self._threads):
                    break
                self._thread_ended.wait(TICK)  # (a signal handler only sets flags: safe to wait here)
                self._thread_ended.clear()
        finally:
            self._stop_everything()
        if self.error is not None:
            self.outcome = "error"
        elif self._ending == "lost":
            self.outcome = "lost"
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
        ending = self._ending in ("lost", "error")
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            if job.exited:
                continue
            if ending:
                if job.reason != "lost":
                    self._end(job, "lost", now, now + KILL_AFTER)
            elif self._force_asked:  # a second Ctrl-C: at once
                if job.reason is None:
                    job.reason = "stopped"
                    self._forced = True
                job.kill_at = now
            elif now >= self._stop_at:  # the grace is over
                if job.reason is None:
                    self._forced = True
                    self._end(job, "stopped", now, now + KILL_AFTER)
            elif now >= job.deadline and job.reason is None:
                self._end(job, "timeout", now, now + KILL_AFTER)
            if now >= job.kill_at:
                self._send(job, signal.SIGKILL)
        if not ending:
            self._extend(now)

    def _begin_stop(self, stop_at: float) -> None:
        """No more leases; what is queued goes back, unstarted."""
        with self._lock:
            self._stop_begun = True
            self._stopping = True
            self._stop_at = stop_at
            unstarted = list(self._queue)
            self._queue.clear()
            self._wake_all()
        self._wait.set()
        self._give_back(unstarted)

    def _end(self, job: Job, reason: str, now: float, kill_at: float) -> None:
        """Asks ``job``'s command to end (SIGTERM), and notes when to insist (SIGKILL)."""
        job.reason = reason
        job.kill_at = min(job.kill_at, kill_at)
        self._send(job, signal.SIGTERM)

    @staticmethod
    def _send(job: Job, how: int) -> None:
        with job.lock:
            if job.exited or job.process is None:
                return
            try:
                os.killpg(job.process.pid, how)
            except ProcessLookupError:  # (an exited process group leader keeps it until reaped)
                pass

    def _extend(self, now: float) -> None:
        """Moves the deadline of each lease still held, every third of its length."""
        every = self.options.lease / 3
        with self._lock:
            due = [token for token, holding in self._leases.items() if now - holding.extended >= every]
        for token in due:
            try:
                deadline = self._client.psextend(self.options.name, token, self.options.lease)
            except (LostConnection, NoReply) as exc:
                if self._trouble(exc):
                    return
                continue  # tried again at the next tick
            self._answered()
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

    def _stop_everything(self) -> None:
        """After the work: nothing left running, even if the supervisor failed."""
        self._wait.set()
        with self._lock:
            self._stopping = True
            self._wake_all()
            jobs = list(self._jobs)
        for job in jobs:
            if job.reason is None:
                job.reason = "lost" if self._ending in ("lost", "error") else "stopped"
            self._send(job, signal.SIGKILL)
        for thread in self._threads:
            thread.join(timeout=KILL_AFTER)

    # -- the feeder --------------------------------------------------------------

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
            except (LostConnection, NoReply) as exc:  # a lease whose reply was lost comes back by itself
                if self._trouble(exc):
                    return
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
        self._leases_given_back(lease.token)  # a stop came while it leased: back at once, unstarted

    def _leases_given_back(self, token: str) -> None:
        self._call(self._client.psrelease, self.options.name, token, attempted=False)

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
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._work_ready.wait()
                if not self._queue or self._ending in ("lost", "error"):
                    return
                job = Job(self._queue.popleft())
                self._jobs.add(job)
                if len(self._queue) < self.options.jobs:
                    self._room.notify()  # the feeder leases more
            returncode = None
            try:
                returncode = self._execute(job)
            finally:
                with self._lock:
                    self._jobs.discard(job)
                    self._finished.append((job, returncode))
                    self._ended.notify()

    def _execute(self, job: Job) -> int | None:
        """Runs the command for ``job``'s item; its exit status (negative: a
        signal), or None when it could not be started."""
        item = job.item
        try:
            process = subprocess.Popen(
                self.options.command, stdin=subprocess.PIPE, env=self._environment_for(item), process_group=0
            )
        except (OSError, ValueError) as exc:  # gone since the start, say
            self._warn(f"cannot run {self.options.command[0]}: {exc}")
            return None
        with job.lock:
            job.process = process
        if self.options.timeout is not None:
            job.deadline = time.monotonic() + self.options.timeout
        if job.reason is not None:  # ended before it started
            self._send(job, signal.SIGKILL)
        stdin = process.stdin
        assert stdin is not None
        try:
            stdin.write(item.value)
        except BrokenPipeError:  # it exited, or closed its stdin, without reading it all
            pass
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass
        if _WAITID:
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
            with job.lock:
                job.exited = True
            return process.wait()
        returncode = process.wait()  # (no waitid here: a stop may signal a reaped process's number)
        with job.lock:
            job.exited = True
        return returncode

    # -- the acknowledger ----------------------------------------------------------

    def _acknowledge(self) -> None:
        """Reports what the commands did, as they end: everything that ended
        since the last round at once, one acknowledgement per lease."""
        while True:
            with self._lock:
                while not self._finished and self._runners:
                    self._ended.wait()
                if not self._finished:
                    return
                few = len(self._finished) < self.options.jobs and self._runners
            if few:  # more are likely to end soon: one acknowledgement for them all
                time.sleep(GATHER)
            with self._lock:
                finished = list(self._finished)
                self._finished.clear()
            try:
                self._report(finished)
            except ServerLost:
                return

    def _report(self, finished: list[tuple[Job, int | None]]) -> None:
        options = self.options
        succeeded: dict[str, list[str]] = {}
        unstarted: dict[str, list[str]] = {}
        failed: list[tuple[Job, int | None]] = []
        for job, returncode in finished:
            item = job.item
            if job.reason == "lost":
                self._done_with(item.token)  # nothing can reach the server: the lease gives the item back
            elif job.reason == "stopped":  # a stop: back at once, not as a failure
                unstarted.setdefault(item.token, []).append(item.key)
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
        for job, _ in failed:
            item = job.item
            if job.reason == "timeout":
                self._warn(f"{item.key!r}: the command ran longer than {options.timeout:g} s and was stopped")
            self._call(
                self._client.psrelease, options.name, item.token, [item.key], delay=options.retry_delay_for(item.delivery)
            )
            with self._lock:
                if item.delivery >= options.max_deliveries:
                    self.tally.dead += 1
                else:
                    self.tally.failed += 1
            self._done_with(item.token)

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
            except ServerLost:
                return
            finally:
                for _ in keys:
                    self._done_with(token)

    def _environment_for(self, item: Item) -> dict[bytes, bytes]:
        env = dict(self._environment)
        env.update(_text_variable(b"PSCTL_KEY", item.key))
        env[b"PSCTL_SCORE"] = repr(item.score).encode()
        env[b"PSCTL_DELIVERY"] = str(item.delivery).encode()
        return env

    # -- the server's answers --------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A request safe to repeat (ack, release), tried again with backoff
        while the server does not answer, for ``patience`` seconds."""
        pause = 0.25
        while True:
            try:
                result = method(*args, **kwargs)
            except (LostConnection, NoReply) as exc:
                if self._trouble(exc):
                    raise ServerLost() from exc
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            self._answered()
            return result

    def _trouble(self, error: BaseException) -> bool:
        """Notes that the server did not answer; True once it has not for
        ``patience`` seconds (the work then ends)."""
        now = time.monotonic()
        with self._lock:
            if self._trouble_since is None:
                self._trouble_since = now
                first = True
            else:
                first = False
            lost = now - self._trouble_since >= self.options.patience
            if lost and self._ending != "lost":
                self._ending = "lost"
                self._stopping = True
                self._wake_all()
        if first:
            self._warn(f"the server does not answer ({error}); trying again for {self.options.patience:g} s")
        if lost:
            self._wait.set()
        return lost

    def _answered(self) -> None:
        if self._trouble_since is not None:
            with self._lock:
                if self._trouble_since is not None and self._ending != "lost":
                    self._trouble_since = None
                    back = True
                else:
                    back = False
            if back:
                self._warn("the server answers again")

    def _pause(self, seconds: float) -> None:
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
        finally:
            self._thread_ended.set()


def _text_variable(name: bytes, text: str) -> dict[bytes, bytes]:
    """``name`` set to ``text``'s bytes; a text that an environment variable
    cannot hold (a NUL byte) goes in ``name_BASE64`` instead."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        return {name + b"_BASE64": base64.b64encode(raw)}
    return {name: raw}


def _base_environment(name: str) -> dict[bytes, bytes]:
    env = dict(os.environb)
    for variable in (b"PSCTL_KEY", b"PSCTL_KEY_BASE64", b"PSCTL_STREAM", b"PSCTL_STREAM_BASE64"):
        env.pop(variable, None)  # (from a psctl work that runs this one)
    env.update(_text_variable(b"PSCTL_STREAM", name))
    return env
