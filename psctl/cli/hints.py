"""A hint on stderr for a stream name that is probably mistyped.

``psctl pull jbos`` prints ``[]`` like any empty stream, and exits 0 (a hint
is not a failure); when no stream of that name is registered but similar names
are, stderr says which: ``psctl: no stream 'jbos'; did you mean 'jobs'?``. It
costs one round trip, only when the answer was empty.
"""

from __future__ import annotations

import sys
from typing import Any


def similar_streams(client: Any, name: str) -> list[str] | None:
    """Registered names like ``name`` when ``name`` is not registered itself;
    None when it is (or the registry cannot be read: a hint never fails a command)."""
    try:
        names = client.psnames()
    except Exception:  # (a server that went away, an ACL without SMEMBERS): no hint
        return None
    if name in names:
        return None
    import difflib

    return difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def did_you_mean(client: Any, name: str) -> str:
    """``; did you mean 'jobs'?`` when ``name`` is no stream and others are like
    it (for a message about ``name``); else nothing."""
    close = similar_streams(client, name)
    return f"; did you mean {' or '.join(repr(other) for other in close)}?" if close else ""


def hint_unknown_stream(client: Any, name: str, quiet: bool = False) -> None:
    """Says on stderr that ``name`` is no stream, when similar names exist."""
    if quiet:
        return
    guess = did_you_mean(client, name)
    if guess:
        sys.stderr.write(f"psctl: no stream {name!r}{guess}\n")
