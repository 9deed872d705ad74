"""The ``psctl`` command line (Typer + Rich) on top of the library.

``app.py`` assembles the app from the commands, grouped by what they do to a
stream: ``adding.py``, ``taking.py``, ``reading.py``, ``changing.py``,
``leases.py``, ``work.py``, ``observe.py``, ``flow.py``, ``server.py`` (the
embedded server) and ``config.py`` (the settings in use). What they share:
``session.py`` (the session handed to each command) with
``global_options.py`` (the options before the command) and ``profiles.py``
(the config file's profiles and the choice of settings),
``options.py`` (arguments and options declared once), ``output.py`` (where a
result goes) with ``formats.py`` (the registry of output formats),
``fields.py`` and ``tables.py``; ``errors.py`` (exceptions to exit statuses,
in one place) and ``status.py``; ``group.py`` (every use of Typer's and
Click's internals); ``connection.py`` (the choice of server), ``signals.py``,
``hints.py``, ``durations.py``, ``completion.py`` and ``terminal.py``;
``manual.py`` writes the reference page and the man page from ``--help``. The
readers of ``add-many`` are the library's (``psctl.readers``).
"""

from __future__ import annotations

import io
import sys


def main() -> None:
    """The ``psctl`` entry point (imported lazily: see ``app.py``).

    Once the command is done, the process ends at once: its output flushed and
    the ``atexit`` handlers run, but without the interpreter's teardown, which
    frees every object of Typer, Rich and redis-py one by one and takes about
    a sixth of a short command's time, for nothing a user could see. Every
    file and temporary file the command opened is closed by then.
    """
    _closed_streams()
    try:
        from psctl.cli.app import main as run

        run()
        status = 0
    except SystemExit as exit:
        status = _status(exit.code)
    except KeyboardInterrupt:  # before the app could catch it (while starting): quietly
        status = 130
    _exit(status)


def _closed_streams() -> None:
    """A standard stream the shell closed (``>&-``, ``2>&-``, ``<&-``), which
    Python leaves as None. Its number gets /dev/null, opened the other way
    round, so that no file or socket of psctl's takes it and a worker's command
    meets it as closed. psctl's own messages to a closed stderr are dropped
    (the answer on stdout stands); reading a closed stdin or writing the answer
    to a closed stdout fails with one line and status 1, as on a full disk."""
    import os

    for fd, name, mode in ((0, "stdin", os.O_WRONLY), (1, "stdout", os.O_RDONLY), (2, "stderr", os.O_RDONLY)):
        if getattr(sys, name) is not None:
            continue
        held = os.open(os.devnull, mode)
        if held != fd:
            os.dup2(held, fd)
            os.close(held)
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(_Closed("input")), encoding="utf-8")
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(_Closed("output")), encoding="utf-8")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (for the life of the process)


class _Closed(io.RawIOBase):
    """A standard stream the shell closed, to psctl: reading or writing it fails, saying so."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    def readable(self) -> bool:
        return self._name == "input"

    def writable(self) -> bool:
        return self._name == "output"

    def readinto(self, buffer: object) -> int:
        raise self._error()

    def write(self, data: object) -> int:
        raise self._error()

    def _error(self) -> OSError:
        import errno

        return OSError(errno.EBADF, f"standard {self._name} is closed")


def _status(code: object) -> int:
    """What the interpreter would make of ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def _exit(status: int) -> None:
    import atexit
    import os

    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # the reader went away: quietly, as errors.quiet_broken_pipe
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    atexit._run_exitfuncs()
    os._exit(status)
