"""A runner thread's lane of the command runner: starts the command for an
item with the value on stdin, passes its stderr through while it waits for
it, then waits for what it left in its session, and reports it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Protocol

from psctl.work import sessions, stderr_tail
from psctl.work.clock import Clock
from psctl.work.commandjob import (
    KILL_AFTER,
    NOT_STARTED,
    UNREAD,
    CommandJob,
    send,
    terminate,
)
from psctl.work.executor import Job
from psctl.work.lifeline import Lifeline
from psctl.work.options import Item, shown
from psctl.work.spawning import Spawner
from psctl.work.stderr_tail import Tail

LINGER = 1.0  # seconds a process group SIGKILL did not empty may take before its item is reported


class Runner(Protocol):
    """What a lane reads of its ``CommandRunner``."""

    command: tuple[str, ...]
    time_limit: float | None
    clock: Clock
    lifeline: Lifeline | None
    spawner: Spawner | None
    stdout_piped: bool
    warn: Callable[[str], None]

    def environment_for(self, item: Item) -> tuple[dict[bytes, bytes], str | None]: ...


class CommandLane:
    def __init__(self, runner: Runner, report: Callable[[Job], None], halt: Callable[[Job], None]) -> None:
        self._runner, self._report, self._halt = runner, report, halt
        assert runner.spawner is not None  # (the runner is open)
        self._spawner = runner.spawner.lane()
        # see CommandJob.unsettled: looked at again once this lane's next command has
        # started, so that its wait, a command spawned meanwhile to exec, is no wait for the next
        self._unsettled: CommandJob | None = None

    @property
    def holding(self) -> bool:
        return self._unsettled is not None

    def run(self, job: Job | None) -> None:
        assert job is None or isinstance(job, CommandJob)
        started = job is not None and self._start(job)
        unsettled = self._unsettled
        if unsettled is not None:
            self._settle(unsettled, unsettled.settle_by - time.monotonic())
            self._unsettled = None
        if job is None:
            return
        if started:
            self._await(job)
        if job.unsettled:
            job.settle_by = time.monotonic() + stderr_tail.SETTLE
            self._unsettled = job
        else:
            self._finish(job)

    def close(self, job: Job | None) -> None:
        for left in (job, self._unsettled):  # (an unexpected error: reported as they are)
            if left is not None:
                assert isinstance(left, CommandJob)
                _close(left)
                self._report(left)
        self._unsettled = None

    def _start(self, job: CommandJob) -> bool:
        """Starts the command for ``job``'s item; False when it could not be
        started."""
        runner, item = self._runner, job.item
        try:
            variables, job.key_file = runner.environment_for(item)
            stdin = sessions.stdin_holding(item.value)
            item.value = b""  # (its stdin holds it now: no second copy while the command runs)
            pipe = writer = None
            try:
                if stderr_tail.CAPTURES:
                    pipe, writer = os.pipe()  # (read by this thread while the command runs)
                pid = self._spawner.spawn(variables, stdin, writer)
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
        if runner.lifeline is not None:
            runner.lifeline.started(pid)  # (a session leader leads its process group)
        with job.lock:
            job.pid = pid
        if runner.time_limit is not None:
            job.deadline = runner.clock.now() + runner.time_limit
        if job.reason is not None:  # ended before it started
            send(job, signal.SIGKILL)
        return True

    def _cannot_start(self, job: CommandJob, error: OSError) -> None:
        """A command that cannot be started is not the item's failure: the item
        goes back uncounted, and the work halts at once (running commands may
        finish within the grace), as ``xargs`` does; said once (another runner
        may fail to start its command before the halt reaches it: its item goes
        back the same way, unsaid)."""
        job.reason = NOT_STARTED
        job.gone = True
        job.halt, job.error = "unstartable", error
        job.note = (
            f"cannot start {self._runner.command[0]} for item {shown(job.item.key)}: {error.strerror or error}; "
            "stopping (the item goes back, not counted as a delivery)"
        )
        self._halt(job)

    def _await(self, job: CommandJob) -> None:
        """Waits for the command's own process to exit, passing its stderr
        through, then for what is left of its session; or, when its stderr is
        still held by something but its process group is empty, marks it
        ``unsettled``."""
        assert job.pid is not None
        held = False  # something still holds the command's stderr once it exited
        exited = False  # it is known to have exited (not yet reaped)
        if job.pipe is not None:
            job.stderr = Tail()
            if stderr_tail.wait_reading(job.pid, job.pipe, job.stderr):
                os.close(job.pipe)  # (it ended: nothing is left to read)
                job.pipe = None
            else:
                held = True
            exited = True
        job.returncode = _wait_for(job, exited)
        self._spawner.reaped(job.pid, job.returncode)
        if held and job.gone and job.reason is None and not job.killed:
            with job.lock:
                job.gone = False  # (its session is still to be looked at)
                job.unsettled = True
            return
        self._empty_session(job)

    def _settle(self, job: CommandJob, wait: float) -> None:
        """Looks again at an ``unsettled`` job (its stderr held when it
        exited, its process group empty), waiting up to ``wait`` seconds: a
        stderr that ended since was held by a command spawned meanwhile
        (``gone``); one still held sends the look through /proc for the rest
        of its session, and what is left of it is stopped
        (``_empty_session``). Then it is reported."""
        assert job.pipe is not None and job.stderr is not None and job.pid is not None
        if stderr_tail.ended(job.pipe, job.stderr, max(0.0, wait)):
            os.close(job.pipe)
            job.pipe = None
            with job.lock:
                job.gone = True
        else:
            with job.lock:
                job.gone = not sessions.session_alive(job.pid, scan=True)
            self._empty_session(job)
        self._finish(job)

    def _finish(self, job: CommandJob) -> None:
        """The command is over, nothing left of it: its resources go, and it
        is reported to the acknowledger."""
        runner = self._runner
        if job.pid is not None and runner.lifeline is not None:
            runner.lifeline.ended(job.pid)
        _close(job)
        if job.returncode and job.reason is None and runner.stdout_piped and sessions.reader_gone(1):
            # it failed writing to a pipe whose reader went away (SIGPIPE, or an exit
            # on EPIPE): not the item's failure; and so would every next command
            job.reason = UNREAD
            job.halt = "unread"
            self._halt(job)
        self._report(job)

    def _empty_session(self, job: CommandJob) -> None:
        """Waits until nothing is left of the command's session, whatever
        process group of it a process moved to. What the command left running
        when it exited is asked to end then (SIGTERM, SIGKILL ``KILL_AFTER``
        seconds later), as a stop's would be, so that it cannot go on working
        on an item that is given back, or outlive the worker."""
        if job.gone:
            return
        assert job.pid is not None
        session = job.pid
        if job.reason is None and not job.killed:  # no stop reached it: it just left them behind
            job.kill_at = min(job.kill_at, self._runner.clock.now() + KILL_AFTER)
            self._runner.warn(f"{shown(job.item.key)}: the command left processes running: stopping them")
            terminate(job)
        killed_at: float | None = None
        while True:
            with job.lock:
                sessions.reap_group(session)
                if not sessions.session_alive(session, scan=True, again=signal.SIGKILL if job.killed else None):
                    job.gone = True
                    return
                if job.killed and killed_at is None:
                    killed_at = time.monotonic()
            if killed_at is not None and time.monotonic() - killed_at >= LINGER:
                job.lingering = True  # (unkillable: not ours, or stuck in the kernel)
                return
            time.sleep(0.02)


def _close(job: CommandJob) -> None:
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


def _wait_for(job: CommandJob, exited: bool) -> int:
    """The exit status of the command's own process, reaped (``exited``: it
    is known to have exited, its pidfd said so); then a first look at its
    session. The look is cheap (one ``kill``: is its process group empty?)
    when the command's end was its own; when psctl ended it (a timeout, a
    stop: its other groups were signalled too), the look goes through /proc
    for the session's other groups. (Spawning bounds ``psctl work``: no such
    look for every command; ``_await`` looks further when something still
    holds the command's stderr.) It is reaped under the job's lock, so that
    no signal meant for its session reaches a process given its number
    since; waited for outside it, so that a timeout's signals get through
    meanwhile."""
    pid = job.pid
    assert pid is not None
    if not exited and sessions.WAITID:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
        exited = True
    if exited:
        with job.lock:
            status = os.waitpid(pid, 0)[1]
            job.exited = True
            job.gone = not sessions.session_alive(pid, scan=job.reason is not None or job.killed)
        return os.waitstatus_to_exitcode(status)
    status = os.waitpid(pid, 0)[1]  # (no waitid here: reaped outside the lock, as it must be waited for)
    with job.lock:
        job.exited = True
        job.gone = not sessions.session_alive(pid, scan=job.reason is not None or job.killed)
    return os.waitstatus_to_exitcode(status)
