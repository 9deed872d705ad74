"""The command runner: ``psctl work``'s executor, a command run once per
item, the way ``xargs -P`` runs one per line.

A command runs in a session of its own: a process group of its own, so that
the terminal's Ctrl-C reaches psctl only, which decides what the commands get
(a grace, then SIGTERM, then SIGKILL; at once on a second Ctrl-C),
and a stop reaches the command's children too; and no controlling terminal,
so that a command that asks a question on the terminal fails at once instead
of being stopped for ever by SIGTTIN. Its stdin holds the whole value before
it starts, and the ``lifeline`` watcher kills its session should psctl die: a
command never outlives its worker, nor reads a cut value as a whole one. A
command is over when nothing is left of its session, whatever process group
of it a process moved to (GNU ``timeout`` makes one): signals go to every
group of the session, and what a stop's SIGTERM (or the command's own exit)
leaves running gets SIGKILL ``KILL_AFTER`` seconds later, whether or not the
command itself is gone. Only a process that left the session (``setsid``: a
daemon) is no longer the command's. The session's other groups are found
through /proc, which costs too much to do for every command (spawning is the
bound): a command that exits by itself is looked at that way only when
something still holds its stderr (``stderr_tail``); otherwise one ``kill``
tells whether its own group is empty.

The work stops itself (a halt) when a command cannot be started, and when a
command fails once the reader of psctl's stdout, which the commands share,
went away (``| head``): at once, from the runner that found it, so that
nothing more is leased or started meanwhile; that command's item goes back
uncounted, not as a failure.
"""

from __future__ import annotations

import base64
import itertools
import os
import signal
import threading
from collections.abc import Callable

from psctl.work import sessions
from psctl.work.clock import Clock
from psctl.work.commandjob import (
    KILL_AFTER,
    NOT_STARTED,
    UNREAD,
    CommandJob,
    send,
    terminate,
)
from psctl.work.commandlane import CommandLane
from psctl.work.executor import Job, Kind, Order, Verdict
from psctl.work.lifeline import VARIABLE as WORKER_VARIABLE
from psctl.work.lifeline import Lifeline
from psctl.work.options import Item, shown
from psctl.work.spawning import Spawner, inherited

# the longest key given in PSCTL_KEY (or PSCTL_KEY_BASE64): the kernel refuses an
# environment string over 128 KiB, and all of them together over a quarter of the
# stack limit; a longer key comes in a file named by PSCTL_KEY_FILE
KEY_IN_ENVIRONMENT = 32 * 1024


class CommandRunner:
    """Runs ``command`` for each item, stopped after ``time_limit`` seconds if given."""

    def __init__(self, command: tuple[str, ...], time_limit: float | None = None) -> None:
        self.command, self.time_limit = command, time_limit
        self.clock = Clock()
        self.lifeline: Lifeline | None = None
        self.stdout_piped = False  # psctl's stdout (the commands') is a pipe or a socket: its reader may go
        self.warn: Callable[[str], None] = lambda message: None
        self.spawner: Spawner | None = None
        self._key_folder: str | None = None  # for keys too long for the environment
        self._key_files = itertools.count()
        self._lock = threading.Lock()

    def open(self, name: str, clock: Clock, warn: Callable[[str], None]) -> None:
        self.clock, self.warn = clock, warn
        self.stdout_piped = sessions.piped(1)
        self.lifeline = Lifeline.start(warn)
        environment = _base_environment(self.lifeline.mark if self.lifeline is not None else None)
        self.spawner = Spawner(self.command, environment, inherited())

    batch = 1  # (a command per item)
    gather = 0.005  # (what several commands ending near each other wait, to be acknowledged at once)

    def job(self, items: list[Item]) -> CommandJob:
        return CommandJob(items[0])

    def lane(self, report: Callable[[Job], None], halt: Callable[[Job], None]) -> CommandLane:
        return CommandLane(self, report, halt)

    def close(self) -> None:
        if self.lifeline is not None:
            self.lifeline.close()
        if self._key_folder is not None:
            import shutil

            shutil.rmtree(self._key_folder, ignore_errors=True)

    # -- the supervisor's ------------------------------------------------------------

    def supervise(self, jobs: list[Job], now: float, order: Order) -> bool:
        cut = False
        census = sessions.Census()  # (one look through /proc for all the signals of this round, if any)
        for job in jobs:
            assert isinstance(job, CommandJob)
            if job.gone or job.killed:
                continue
            if job.exited:  # what it left in its session was asked to end when it exited
                if order is Order.ABANDON or order is Order.KILL:
                    job.kill_at = min(job.kill_at, now)
            elif order is Order.ABANDON:
                if job.reason != "lost":
                    self.end(job, "lost", now, census)
            elif order is Order.KILL:  # a second Ctrl-C: at once
                if job.reason is None:
                    job.reason = "stopped"
                    cut = True
                job.kill_at = now
            elif order is Order.TERMINATE:  # the grace is over
                if job.reason is None:
                    cut = True
                    self.end(job, "stopped", now, census)
            elif now >= job.deadline and job.reason is None:
                self.end(job, "timeout", now, census)
            if now >= job.kill_at:
                send(job, signal.SIGKILL, census)
        return cut

    def stop_all(self, jobs: list[Job], given_up: bool) -> None:
        census = sessions.Census()
        for job in jobs:
            assert isinstance(job, CommandJob)
            if job.reason is None and not job.exited:
                job.reason = "lost" if given_up else "stopped"
            send(job, signal.SIGKILL, census)

    def end(self, job: CommandJob, reason: str, now: float, census: sessions.Census | None = None) -> None:
        """Asks ``job``'s command to end, and notes when to insist (SIGKILL)."""
        job.reason = reason
        job.kill_at = min(job.kill_at, now + KILL_AFTER)
        terminate(job, census)


    # -- the acknowledger's ----------------------------------------------------------

    def verdicts(self, job: Job) -> list[tuple[Item, Verdict]]:
        return [(job.item, self.verdict(job))]

    def verdict(self, job: Job) -> Verdict:
        assert isinstance(job, CommandJob)
        if job.reason == "lost":
            return Verdict(Kind.ABANDONED)
        if job.reason in ("stopped", NOT_STARTED, UNREAD) and not job.lingering:
            return Verdict(Kind.BACK)
        if job.returncode == 0 and job.reason is None:
            return Verdict(Kind.DONE)
        warning = None
        if job.reason == "timeout":
            warning = f"{shown(job.item.key)}: the command ran longer than {self.time_limit:g} s and was stopped"
        elif job.lingering:
            warning = (
                f"{shown(job.item.key)}: SIGKILL did not end every process of the command: "
                "its item goes back as a failed delivery"
            )
        return Verdict(Kind.FAILED, self._failure(job), warning)

    def _failure(self, job: CommandJob) -> str:
        """Why the command failed, as its item keeps it: ``exit status 3``,
        ``killed by SIGKILL``, ``timed out after 5 s``, with the last line it
        wrote to stderr."""
        returncode = job.returncode
        if job.reason == "timeout":
            why = f"timed out after {self.time_limit:g} s"
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

    # -- the runners' ----------------------------------------------------------------

    def environment_for(self, item: Item) -> tuple[dict[bytes, bytes], str | None]:
        """The item's variables in the command's environment (beside the
        worker's, the spawner's), and the file that holds its key when the
        key is too long for the environment (to remove once it ends)."""
        env: dict[bytes, bytes] = {}
        raw = item.key.encode("utf-8", "surrogateescape")
        key_file = None
        if len(raw) > KEY_IN_ENVIRONMENT:
            key_file = self._key_file(raw)
            env[b"PSCTL_KEY_FILE"] = os.fsencode(key_file)
        else:
            env.update(_text_variable(b"PSCTL_KEY", item.key))
        env.update(_text_variable(b"PSCTL_STREAM", item.stream))
        env[b"PSCTL_SCORE"] = repr(item.score).encode()
        env[b"PSCTL_DELIVERY"] = str(item.delivery).encode()
        return env, key_file

    def _key_file(self, raw: bytes) -> str:
        """A new private file holding ``raw``, in a folder of this worker's own."""
        import tempfile

        with self._lock:
            if self._key_folder is None:
                self._key_folder = tempfile.mkdtemp(prefix="psctl-work-")  # (only its owner may enter)
                if self.lifeline is not None:
                    self.lifeline.remove_later(self._key_folder)
            path = os.path.join(self._key_folder, f"key-{next(self._key_files)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            sessions.write_all(fd, raw)
        finally:
            os.close(fd)
        return path


def _text_variable(name: bytes, text: str) -> dict[bytes, bytes]:
    """``name`` set to ``text``'s bytes; a text that an environment variable
    cannot hold (a NUL byte) goes in ``name_BASE64`` instead."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        return {name + b"_BASE64": base64.b64encode(raw)}
    return {name: raw}


def _base_environment(mark: bytes | None) -> dict[bytes, bytes]:
    env = dict(os.environb)
    for variable in (b"PSCTL_KEY", b"PSCTL_KEY_BASE64", b"PSCTL_KEY_FILE", b"PSCTL_SCORE", b"PSCTL_DELIVERY",
                     b"PSCTL_STREAM", b"PSCTL_STREAM_BASE64", WORKER_VARIABLE):  # fmt: skip
        env.pop(variable, None)  # (from a psctl work that runs this one; the item's are given per command)
    if mark is not None:
        env[WORKER_VARIABLE] = mark
    return env
