"""Whether psctl talks to a person or to a program, asked in one place.

Output is a table on a terminal and JSON otherwise; ``delete`` asks before
deleting only when a person can answer; progress bars appear only where a
person watches. Tests replace these functions to play either part.
"""

from __future__ import annotations

import sys


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no such method, or closed
        return False


def stdout_is_terminal() -> bool:
    return _isatty(sys.stdout)


def stderr_is_terminal() -> bool:
    return _isatty(sys.stderr)


def stdin_is_terminal() -> bool:
    return _isatty(sys.stdin)
