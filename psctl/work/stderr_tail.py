"""What ``psctl work``'s commands write to stderr: passed through as it comes,
and each command's last line kept, so that a failure can say why
(``exit status 3: connection refused``).

A command's stderr is a pipe that the thread running the command reads while
it waits for the command to exit (``wait_reading``: one ``poll`` on the pipe
and the process's pidfd), writing what it reads to psctl's own stderr at once
and keeping the last ``TAIL`` bytes: memory does not grow with what a command
writes, and no thread beyond the runner is woken (a thread that read every
command's pipe cost a tenth of ``psctl work``'s rate, spawning being its
bound). Where the system has no pidfds, the command's stderr is psctl's own
and no line is kept.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Any

TAIL = 4096  # bytes of a command's stderr kept, the end of it
LINE = 200  # characters of the last line a failure reports
READ = 65536
LAST_READS = 16  # reads of what a command wrote just before it exited (more: something else still writes)
# seconds a command's stderr may take to end once it exited, when there is nothing else
# to do meanwhile: another command, spawned meanwhile, holds a copy of the pipe from
# its fork to its exec (which closes it)
SETTLE = 0.1
CAPTURES = hasattr(os, "pidfd_open") and hasattr(select, "poll")


class Tail:
    """The end of what a command wrote to stderr."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        data = self.data
        data += chunk
        if len(data) > TAIL:
            del data[: len(data) - TAIL]

    def last_line(self) -> str | None:
        """The last non-empty line (at most ``LINE`` characters, its end); None
        when the command wrote nothing."""
        lines = [line.strip() for line in bytes(self.data).splitlines()]
        found = next((line for line in reversed(lines) if line), None)
        if found is None:
            return None
        text = found.decode("utf-8", "replace")
        return text if len(text) <= LINE else "…" + text[-(LINE - 1) :]


def wait_reading(pid: int, fd: int, tail: Tail) -> bool:
    """Returns once process ``pid`` (a child, not yet reaped) has exited,
    passing what comes on ``fd`` (its stderr) through meanwhile: whether the
    pipe has ended too (else ``drain`` reads what is left).

    A process's files are closed before its exit is told, so that once it
    has exited, a pipe that has not ended is still held by something else:
    a process of the command's that outlives it (``psctl.work.commands`` then looks
    for what is left of the command, which it does not for every command),
    or, briefly, a command spawned meanwhile, from its fork to its exec
    (``ended`` tells, a little later)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(fd, select.POLLIN)
        done = exited = False
        while not exited:
            for ready, _ in poller.poll():
                if ready == pidfd:
                    exited = True
                elif not read_some(fd, tail):
                    poller.unregister(fd)  # (its end: all that holds it is gone, the command may not be)
                    done = True
        return done or _ended(poller, pidfd, fd, tail, 0.0)
    finally:
        os.close(pidfd)


def ended(fd: int, tail: Tail, wait: float) -> bool:
    """Whether the pipe ``fd`` has ended, reading (and passing through) what
    is there, waiting up to ``wait`` seconds for its end."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return _ended(poller, None, fd, tail, wait)


def _ended(poller: Any, pidfd: int | None, fd: int, tail: Tail, wait: float) -> bool:
    if pidfd is not None:
        poller.unregister(pidfd)
    deadline = time.monotonic() + wait
    for _ in range(LAST_READS):  # (more: something still writes)
        if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            return False
        if not read_some(fd, tail):
            return True
    return False


def drain(fd: int, tail: Tail) -> None:
    """What is left in ``fd`` once nothing of the command is left to write it."""
    os.set_blocking(fd, False)
    try:
        while read_some(fd, tail):
            pass
    except BlockingIOError:  # (a process outside the command's group still holds it: no more waiting)
        pass


def read_some(fd: int, tail: Tail) -> bool:
    """Reads, passes through and keeps one chunk; False at the end."""
    chunk = os.read(fd, READ)
    if not chunk:
        return False
    tail.add(chunk)
    try:
        out: Any = sys.stderr.buffer
        out.write(chunk)
        out.flush()
    except (OSError, ValueError, AttributeError):  # (a closed terminal: the command's words go nowhere)
        pass
    return True
