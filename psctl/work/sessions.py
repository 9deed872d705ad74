"""What the command runner knows of processes: a value handed as a whole on
stdin, whether anything is left of a command's session (its process group,
which one ``kill`` tells, and its other groups, which only a look through
/proc finds), and whether psctl's stdout still has a reader. No state of its
own: functions of the system's."""

from __future__ import annotations

import os
import select
import stat
import tempfile
from collections.abc import Iterator

WAITID = hasattr(os, "waitid")  # Linux; not every Unix


def stdin_holding(value: bytes) -> int:
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
        write_all(fd, value)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def session_alive(session: int, *, scan: bool, again: int | None = None) -> bool:
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
        if state == b"Z" and parent == me and pid != session and WAITID:  # (the command: its runner's)
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


def reap_group(group: int) -> None:
    """Reaps the processes of ``group`` that psctl is the parent of once the
    command's own process was reaped: what it left behind, when psctl is
    their reaper (PID 1 of a container, say)."""
    if not WAITID:
        return
    try:
        while os.waitid(os.P_PGID, group, os.WEXITED | os.WNOHANG):
            pass
    except ChildProcessError:
        pass


def piped(fd: int) -> bool:
    """Whether ``fd`` is a pipe or a socket: a reader that may go away."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def reader_gone(fd: int) -> bool:
    """Whether the reading end of the pipe (or socket) ``fd`` is closed: poll()
    says POLLERR for a pipe, POLLHUP for a socket."""
    try:
        poller = select.poll()
        poller.register(fd, 0)  # (errors and hang-ups are told whatever is asked)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False

