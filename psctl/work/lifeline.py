"""The lifeline of ``psctl work``'s commands: a small process that outlives a
worker killed without warning (SIGKILL, the OOM killer, a crash) just long
enough to kill the commands it left running, so that no command outlives its
worker and no item runs twice at once.

The worker starts it once (``Lifeline.start``) and tells it through a pipe
each command's process group as the command starts and ends: one short write
each, which no reader waits for. The watcher does nothing until the pipe's
end, which comes when the worker closes it or dies, however. Then it kills
(SIGKILL) every group still announced, and every group of their sessions
(each command leads a session of its own: what left the command's group,
GNU ``timeout`` does, is still in it), and removes the folders it was given;
and unless the worker said goodbye (a normal end), twice, 0.2 s apart, the
groups of every process that carries the worker's mark in its environment: a
command whose start the worker could not announce before it died (the mark
reaches its environment with its ``execve``, hence the second look), and
processes that left their command's session (``setsid``) but kept the mark.

It runs in a session of its own and ignores SIGINT, SIGHUP and SIGTERM: what
stops the worker (Ctrl-C, a closed terminal, a ``kill`` of its process group)
must leave the watcher to do its job.

Why not PR_SET_PDEATHSIG: only code run in the child between fork and exec
can set it, which ``posix_spawn`` (``spawning``) has no room for, and which
makes Python's subprocess fork instead of vfork, about 4 times slower on a
small machine, when spawning is what bounds ``psctl work``; and it would
reach the command only, not its children.

This file also runs as a script (``python -I -S lifeline.py``): it imports
nothing outside the standard library. The mark comes first on the pipe, not
on the command line, where any user could read it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

VARIABLE = b"PSCTL_WORKER"  # the mark: one value per worker, in each command's environment
SECOND_LOOK = 0.2  # seconds between the two searches for marked processes
# seconds between the watcher's reads: what it is told matters only at the pipe's
# end, and a write into a pipe no one waits on wakes no one (at full speed, one
# wake-up per command would cost the watcher a few per cent of a core)
READ_EVERY = 0.05


class Lifeline:
    """The worker's end of the pipe. ``start()`` returns None where no
    watcher could be started (said through ``warn``)."""

    def __init__(self, fd: int, process: Any, mark: bytes, warn: Callable[[str], None]) -> None:
        import threading

        self.mark = mark
        self._fd: int | None = fd
        self._process = process
        self._warn = warn
        # (the runners write at once; the descriptor is closed under it, so that no
        # write ever reaches another file given the same number)
        self._lock = threading.Lock()

    @classmethod
    def start(cls, warn: Callable[[str], None]) -> Lifeline | None:
        import secrets
        import subprocess

        mark = secrets.token_hex(12).encode()
        read, write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__)], stdin=read,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", env={}, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            os.close(write)
            warn(f"cannot start the watcher of commands ({exc}): if psctl work is killed, its commands go on")
            return None
        finally:
            os.close(read)
        lifeline = cls(write, process, mark, warn)
        lifeline._say(b"m" + mark + b"\n")
        return lifeline

    def started(self, group: int) -> None:
        self._say(b"+%d\n" % group)

    def ended(self, group: int) -> None:
        self._say(b"-%d\n" % group)

    def remove_later(self, folder: str) -> None:
        """``folder`` goes when the worker does, however it ends."""
        self._say(b"r" + os.fsencode(folder) + b"\n")

    def close(self) -> None:
        """A normal end: the watcher kills what is still announced, removes the
        folders, and leaves every other process alone."""
        self._say(b".\n")
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        # not waited for: it ends within READ_EVERY (and is reaped with this process)

    def _say(self, line: bytes) -> None:
        with self._lock:
            if self._fd is None:
                return
            try:
                os.write(self._fd, line)
                return
            except OSError as exc:
                os.close(self._fd)
                self._fd = None
                error = exc
        self._warn(f"the watcher of commands is gone ({error}): if psctl work is killed, its commands go on")


# -- the watcher -----------------------------------------------------------------------


def watch(source: int = 0) -> None:
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    mark = b""
    groups: set[int] = set()
    folders: list[str] = []
    goodbye = False
    rest = b""
    while chunk := os.read(source, 65536):
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            kind, value = line[:1], line[1:]
            if kind == b"+":
                groups.add(int(value))
            elif kind == b"-":
                groups.discard(int(value))
            elif kind == b"r":
                folders.append(os.fsdecode(value))
            elif kind == b"m":
                mark = value
            elif kind == b".":
                goodbye = True
        time.sleep(READ_EVERY)
    for group in groups:
        _kill(group)
    for group in set(_in_sessions(groups)):  # (each command leads a session: what left its group is in it)
        _kill(group)
    if mark and not goodbye:
        for look in range(2):
            if look:
                time.sleep(SECOND_LOOK)
            for group in set(_marked(VARIABLE + b"=" + mark)):
                _kill(group)
    if folders:
        import shutil

        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _kill(group: int) -> None:
    if group > 1:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:  # gone already
            pass


def _in_sessions(sessions: set[int]) -> Iterator[int]:
    """The process groups of the processes in ``sessions`` (by /proc/PID/stat's
    sixth field; the second, the name, is in parentheses and may hold
    anything, spaces and parentheses too: what follows the last ``)``)."""
    if not sessions:
        return
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc here: the announced groups are all there is
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split(maxsplit=4)
            if int(fields[3]) in sessions:
                yield int(fields[2])
        except (OSError, ValueError, IndexError):  # gone
            continue


def _marked(entry: bytes) -> Iterator[int]:
    """The process groups of the processes whose environment holds ``entry``."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc here: the announced groups are all there is
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if entry in environ.read().split(b"\0"):
                    yield os.getpgid(pid)
        except OSError:  # gone, or not ours to read
            continue


if __name__ == "__main__":
    watch()
