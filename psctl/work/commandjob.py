"""A command running for an item (``CommandJob``), and the signals sent to
its session."""

from __future__ import annotations

import os
import signal
import threading

from psctl.work.executor import Job
from psctl.work.options import Item
from psctl.work.sessions import Census
from psctl.work.stderr_tail import Tail

KILL_AFTER = 5.0  # seconds from SIGTERM to SIGKILL for a command being stopped
NOT_STARTED = "not started"  # a job's reason when its command could not be started
UNREAD = "unread"  # a job's reason when its command failed once the reader of its stdout had gone


class CommandJob(Job):
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
        "deadline", "exited", "gone", "key_file", "kill_at", "killed", "lingering", "lock", "pid", "pipe",
        "reason", "returncode", "settle_by", "stderr", "unsettled",
    )  # fmt: skip

    def __init__(self, item: Item) -> None:
        super().__init__(item)
        self.pid: int | None = None  # the command's process, its session's and its own group's number
        self.lock = threading.Lock()
        self.exited = False  # the command's own process exited: its exit status is its outcome
        self.gone = False  # nothing is left of its process group
        self.killed = False  # SIGKILL was sent to its process group
        self.lingering = False  # SIGKILL did not empty its session in time
        self.deadline = float("inf")  # --time-limit
        self.kill_at = float("inf")  # SIGKILL after a SIGTERM that was not enough
        self.reason: str | None = None  # why psctl ends it: "timeout", "stopped", "lost", NOT_STARTED, UNREAD
        self.stderr: Tail | None = None  # the end of what it wrote to stderr: its last line says why it failed
        self.pipe: int | None = None  # the read end of its stderr, while open
        self.key_file: str | None = None  # the file that holds its key, when too long for the environment
        self.returncode: int | None = None  # its exit status (negative: a signal); None: not started
        # it exited, its process group is empty, but something still held its stderr: maybe a
        # process of its session in another group, maybe a command spawned meanwhile (from its
        # fork to its exec): the runner looks again after its next spawn (``CommandLane.settle``)
        self.unsettled = False
        self.settle_by = 0.0  # when an unsettled job's session is looked at through /proc


def send(job: CommandJob, how: int, census: Census | None = None) -> None:
    """``how`` to every process group of the command's session (a timeout,
    a stop, a lost server, what the command left behind: rare, so the look
    through /proc that finds them is affordable here; one ``census`` serves
    the signals sent at once)."""
    with job.lock:
        if job.gone or job.pid is None:
            return
        session = job.pid
        for group in (census or Census()).groups(session):
            try:
                os.killpg(group, how)
            except (ProcessLookupError, PermissionError):  # (empty since the look; not ours)
                pass
        if how == signal.SIGKILL:
            job.killed = True


def terminate(job: CommandJob, census: Census | None = None) -> None:
    """SIGTERM to the command's session, and SIGCONT, so that a stopped
    process (state T) acts on it."""
    census = census or Census()
    send(job, signal.SIGTERM, census)
    send(job, signal.SIGCONT, census)
