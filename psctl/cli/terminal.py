"""Whether psctl talks to a person or to a program, asked in one place.

Output is a table on a terminal and JSON otherwise; ``delete`` asks before
deleting only when a person can answer; progress bars appear only where a
person watches. Tests replace these functions to play either part.

``visible`` is what a person may be shown of text psctl does not control
(stream names, keys, values, reasons, the server's messages that quote them):
every table cell, error line, hint and caption passes through it.
"""

from __future__ import annotations

import re
import sys

# What a terminal acts on besides printing, other than tab and newline: C0
# controls (ESC starts OSC, which can retitle the window or write the clipboard,
# and CSI, which moves the cursor or clears the screen), DEL, the C1 controls
# (U+009B is an 8-bit CSI to many terminals, also when it comes as UTF-8), and
# the bidi controls, which make text read other than it is stored.
ACTS_ON = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = f"[\x00-\x08\x0b-\x1f{ACTS_ON}]"  # (compiled by re on first use, and cached)


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


def visible(text: str) -> str:
    """``text`` safe for a terminal: what a terminal acts on (see ``ACTS_ON``)
    shown as ``\\x1b`` or ``\\u202e``, undecodable bytes as ``\\xff``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # (a name holding bytes that are not UTF-8: surrogate escapes)
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return re.sub(_CONTROL, _escape, text)


def one_line(text: str) -> str:
    """``text`` as one line for stderr: ``visible``, each run of white space one space."""
    return " ".join(visible(text).split())


def _escape(found: re.Match[str]) -> str:
    code = ord(found[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
