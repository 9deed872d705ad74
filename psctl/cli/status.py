"""Exit statuses, and the errors a command raises with a message fit for the
user. (``errors.py`` turns every other exception into one of these.)"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    SERVER = 1  # the server failed or could not be reached
    USAGE = 2  # bad usage or bad input
    NOT_FOUND = 3  # the named item does not exist


# Ctrl-C: the shells' 128 + SIGINT, outside ExitStatus as it is no outcome of a command
INTERRUPTED = 130


class CliError(Exception):
    """An error with a message fit for the user and its exit status."""

    status = ExitStatus.SERVER


class BadUsage(CliError):
    status = ExitStatus.USAGE


class NotFound(CliError):
    status = ExitStatus.NOT_FOUND


class ServerUnavailable(CliError):
    status = ExitStatus.SERVER
