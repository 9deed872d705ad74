"""What ``psctl work``'s commands write to stderr: passed through as it comes,
and each command's last line kept, so that a failure can say why (SPEC §10:
``exit status 3: connection refused``).

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
from typing import Any

TAIL = 4096  # bytes of a command's stderr kept, the end of it
LINE = 200  # characters of the last line a failure reports
READ = 65536
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
    pipe has ended too (else ``drain`` reads what is left)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(fd, select.POLLIN)
        ended = exited = False
        while not exited:
            for ready, _ in poller.poll():
                if ready == pidfd:
                    exited = True
                elif not read_some(fd, tail):
                    poller.unregister(fd)  # (its end: all that holds it is gone, the command may not be)
                    ended = True
        return ended
    finally:
        os.close(pidfd)


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
