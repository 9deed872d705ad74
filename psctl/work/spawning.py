"""How ``psctl work`` starts a command: ``posix_spawn`` in a session of its
own (``setsid``: no controlling terminal, a process group of its own), its
stdin and stderr given, SIGPIPE and SIGXFSZ at their defaults, and no
descriptor of psctl's but its stdin, stdout and stderr.

Spawning is what bounds ``psctl work``, so it is done the cheapest way that
keeps the GIL released while the new process runs up to its ``exec`` (the
caller is held meanwhile, as with ``vfork``: a held GIL would stop every
other runner, the feeder and the acknowledger too, for as long, which on a
busy machine is milliseconds). ``subprocess.Popen`` releases it, but costs
about 100 µs of psctl's own CPU per command in Python around the spawn (a
pipe for the child's errors, the environment and ``PATH`` rebuilt per call,
its own bookkeeping); ``os.posix_spawn`` costs less but holds the GIL. So,
where the C library is glibc, its ``posix_spawnp`` is called through ctypes
(which releases the GIL), with what does not change from one command to the
next (the command's argv, the attributes, the environment but the item's
variables) built once; elsewhere, ``os.posix_spawnp``.

What Popen did besides is done here too:

- ``close_fds``: Python opens every descriptor close-on-exec (PEP 446); the
  descriptors psctl was given open by its parent, which are not, are closed
  in the child (``inherited``, listed once, when the work starts);
- ``restore_signals``: SIGPIPE and SIGXFSZ, which Python ignores, back to
  their defaults (``RESTORED``): a command dies of a write to a pipe whose
  reader went away, as it would from a shell;
- ``start_new_session``: ``setsid`` in the child, before its ``exec``;
- the ``PATH`` search, through psctl's own ``PATH`` (the commands' too);
- an ``exec`` that fails (ENOENT, EACCES...) is an ``OSError`` raised here,
  as Popen raised it from its error pipe.

(Its child also sets the two signals the C library keeps for itself, 32 and
33, to "ignored" before the ``exec``, and an ignored signal stays ignored
across it: a command sees them so in /proc/PID/status. No program may use
them but its C library, which installs its own handlers for them before it
does: glibc and musl both.)
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

RESTORED = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))
EXTRA = 4  # the item's variables a command gets beside the worker's environment, at most
GLIBC = (2, 26)  # the oldest glibc whose posix_spawnp is used
# glibc's posix_spawn flags (spawn.h), which Python does not export
_SETSIGDEF = 0x04
_SETSID = 0x80
_OPAQUE = 1024  # bytes for a posix_spawnattr_t or posix_spawn_file_actions_t (glibc's: 336 and 80)


class Spawner:
    """Starts ``command`` with ``environment`` (plus an item's variables) in
    a session of its own; ``closed``: psctl's descriptors to close in the
    child (``inherited()``). Each runner thread spawns through a ``lane()``
    of its own (its buffers are reused from one command to the next)."""

    def __init__(self, command: Sequence[str], environment: Mapping[bytes, bytes], closed: Sequence[int]) -> None:
        self.command = tuple(command)
        self.environment = dict(environment)
        self.closed = tuple(closed)
        self._glibc = _Glibc.load(self)

    def lane(self) -> SpawnLane:
        return SpawnLane(self)


class SpawnLane:
    """One runner thread's spawner. ``reaped(pid, status)`` once its runner
    has reaped a command it started."""

    def __init__(self, spawner: Spawner) -> None:
        self._spawner = spawner
        self._glibc = spawner._glibc.lane() if spawner._glibc is not None else None
        # (Popen's, kept until reaped: one dropped before reaps its process itself, as it goes)
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, extra: Mapping[bytes, bytes], stdin: int, stderr: int | None) -> int:
        """Starts the command with ``extra`` in its environment (at most
        ``EXTRA`` variables, none of the worker's), ``stdin`` as its stdin and
        ``stderr`` as its stderr (None: psctl's); returns its process number,
        which is also its session's and its process group's."""
        if self._glibc is None:
            spawner = self._spawner
            process = subprocess.Popen(
                spawner.command, stdin=stdin, stderr=stderr, env={**spawner.environment, **extra},
                start_new_session=True,
            )  # fmt: skip
            self._processes[process.pid] = process
            return process.pid
        moved = []  # (stdin or stderr on 0-2, when psctl was started with those closed: out of dup2's way)
        if stdin < 3:
            stdin = fcntl.fcntl(stdin, fcntl.F_DUPFD_CLOEXEC, 3)
            moved.append(stdin)
        if stderr is not None and stderr < 3:
            stderr = fcntl.fcntl(stderr, fcntl.F_DUPFD_CLOEXEC, 3)
            moved.append(stderr)
        try:
            return self._glibc.spawn(extra, stdin, stderr)
        finally:
            for fd in moved:
                os.close(fd)

    def reaped(self, pid: int, returncode: int) -> None:
        process = self._processes.pop(pid, None)
        if process is not None:
            process.returncode = returncode


class _Glibc:
    """glibc's ``posix_spawnp`` through ctypes, with the argv and the
    attributes built once (shared: ``posix_spawnp`` only reads them)."""

    def __init__(self, ctypes: Any, libc: Any, spawn: Any, spawner: Spawner) -> None:
        self.ctypes, self.libc, self.posix_spawnp, self.spawner = ctypes, libc, spawn, spawner
        command = [os.fsencode(argument) for argument in spawner.command]
        self.file = command[0]
        self.argv = (ctypes.c_char_p * (len(command) + 1))(*command, None)
        self.attributes = ctypes.create_string_buffer(_OPAQUE)
        signals = ctypes.create_string_buffer(_OPAQUE)
        failed = libc.posix_spawnattr_init(self.attributes) or libc.sigemptyset(signals)
        for number in RESTORED:
            failed = failed or libc.sigaddset(signals, number)
        failed = failed or libc.posix_spawnattr_setsigdefault(self.attributes, signals)
        failed = failed or libc.posix_spawnattr_setflags(self.attributes, _SETSIGDEF | _SETSID)
        if failed:
            raise OSError(ctypes.get_errno() or failed, "cannot prepare posix_spawn's attributes")
        self.entries = [name + b"=" + value for name, value in spawner.environment.items()]

    @classmethod
    def load(cls, spawner: Spawner) -> _Glibc | None:
        """None where the C library is not glibc ``GLIBC`` or later (or ctypes cannot reach it)."""
        try:
            name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
            if name != "glibc" or tuple(int(part) for part in version.split(".")[:2]) < GLIBC:
                return None
            import ctypes

            # this process's C library, glibc: its short calls hold the GIL (PyDLL: each
            # release of the GIL is a chance for another thread to take it, and to make
            # this one wait for it back); posix_spawnp releases it (CDLL), as the child
            # runs up to its exec meanwhile
            libc = ctypes.PyDLL(None, use_errno=True)
            for name in _ARGTYPES:
                getattr(libc, name).argtypes = _ARGTYPES[name](ctypes)
            spawn = ctypes.CDLL(None, use_errno=True).posix_spawnp
            spawn.argtypes = _ARGTYPES["posix_spawnp"](ctypes)
            return cls(ctypes, libc, spawn, spawner)
        except (OSError, ValueError, AttributeError, ImportError):
            return None

    def lane(self) -> _GlibcLane:
        return _GlibcLane(self)


_ARGTYPES: dict[str, Any] = {
    "posix_spawnp": lambda c: [c.POINTER(c.c_int), c.c_char_p, c.c_void_p, c.c_void_p, c.c_void_p, c.c_void_p],
    "posix_spawnattr_init": lambda c: [c.c_void_p],
    "posix_spawnattr_setflags": lambda c: [c.c_void_p, c.c_short],
    "posix_spawnattr_setsigdefault": lambda c: [c.c_void_p, c.c_void_p],
    "sigemptyset": lambda c: [c.c_void_p],
    "sigaddset": lambda c: [c.c_void_p, c.c_int],
    "posix_spawn_file_actions_init": lambda c: [c.c_void_p],
    "posix_spawn_file_actions_destroy": lambda c: [c.c_void_p],
    "posix_spawn_file_actions_adddup2": lambda c: [c.c_void_p, c.c_int, c.c_int],
    "posix_spawn_file_actions_addclose": lambda c: [c.c_void_p, c.c_int],
}


class _GlibcLane:
    """A runner thread's buffers: its file actions, and its environment
    (the worker's, then room for the item's variables)."""

    def __init__(self, glibc: _Glibc) -> None:
        ctypes = glibc.ctypes
        self._glibc, self._libc = glibc, glibc.libc
        self._actions = ctypes.create_string_buffer(_OPAQUE)
        self._base = len(glibc.entries)
        self._environment = (ctypes.c_char_p * (self._base + EXTRA + 1))(*glibc.entries)
        self._pid = ctypes.c_int()
        self._pid_pointer = ctypes.pointer(self._pid)

    def spawn(self, extra: Mapping[bytes, bytes], stdin: int, stderr: int | None) -> int:
        glibc, libc, actions, environment = self._glibc, self._libc, self._actions, self._environment
        if len(extra) > EXTRA:
            raise ValueError(f"at most {EXTRA} variables beside the worker's environment")
        at = self._base
        for name, value in extra.items():
            environment[at] = name + b"=" + value
            at += 1
        environment[at] = None
        failed = libc.posix_spawn_file_actions_init(actions)
        if failed:
            raise OSError(failed, os.strerror(failed))
        try:
            failed = libc.posix_spawn_file_actions_adddup2(actions, stdin, 0)
            if stderr is not None:
                failed = failed or libc.posix_spawn_file_actions_adddup2(actions, stderr, 2)
            for fd in glibc.spawner.closed:
                failed = failed or libc.posix_spawn_file_actions_addclose(actions, fd)
            if not failed:  # (the GIL is released for the call: other threads run while the child execs)
                failed = glibc.posix_spawnp(
                    self._pid_pointer, glibc.file, actions, glibc.attributes, glibc.argv, environment
                )
        finally:
            libc.posix_spawn_file_actions_destroy(actions)
        if failed:
            raise OSError(failed, os.strerror(failed), glibc.spawner.command[0])
        return self._pid.value


def inherited() -> tuple[int, ...]:
    """psctl's descriptors above stderr that a command would inherit: those
    its parent gave it open (Python opens its own close-on-exec). Listed
    once, when the work starts: one that psctl's caller makes inheritable
    later (in a program that runs a ``CommandRunner`` itself) would reach
    the commands."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found = []
        for name in names:
            fd = int(name)
            try:
                if fd > 2 and os.get_inheritable(fd):
                    found.append(fd)
            except OSError:  # (the listing's own descriptor, closed since)
                continue
        return tuple(sorted(found))
    return ()
