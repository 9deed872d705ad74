"""A hint on stderr for a stream name that is probably mistyped.

``psctl pull jbos`` prints ``[]`` like any empty stream, and exits 0 (a hint
is not a failure); when no stream of that name is registered but similar names
are, stderr says which: ``psctl: no stream 'jbos'; did you mean 'jobs'?``. It
costs one round trip, only when the answer was empty (for ``stats`` and
``metrics``: when a named stream shows nothing at all, one for all names).
"""

from __future__ import annotations

import sys
from typing import Any

from psctl.cli.terminal import one_line


def similar_streams(client: Any, name: str) -> list[str] | None:
    """Registered names like ``name`` when ``name`` is not registered itself;
    None when it is (or the registry cannot be read: a hint never fails a command)."""
    registered = _registered(client)
    return None if registered is None else _like(name, registered)


def _registered(client: Any) -> list[str] | None:
    try:
        return client.psnames()  # type: ignore[no-any-return]
    except Exception:  # (a server that went away, an ACL without SMEMBERS): no hint
        return None


def _like(name: str, registered: list[str]) -> list[str] | None:
    if name in registered:
        return None
    import difflib

    return difflib.get_close_matches(name, registered, n=3, cutoff=0.6)


def did_you_mean(client: Any, name: str) -> str:
    """``; did you mean 'jobs'?`` when ``name`` is no stream and others are like
    it (for a message about ``name``); else nothing."""
    return _suggestion(similar_streams(client, name))


def _suggestion(close: list[str] | None) -> str:
    return f"; did you mean {' or '.join(repr(other) for other in close)}?" if close else ""


def hint_unknown_stream(client: Any, name: str, quiet: bool = False) -> None:
    """Says on stderr that ``name`` is no stream, when similar names exist."""
    if quiet:
        return
    _hint(name, similar_streams(client, name))


def hint_unknown_streams(client: Any, names: list[str], quiet: bool = False) -> None:
    """``hint_unknown_stream`` for each of ``names`` (``stats``, ``metrics``),
    with one read of the registry for all of them."""
    if quiet or not names:
        return
    registered = _registered(client)
    if registered is not None:
        for name in dict.fromkeys(names):
            _hint(name, _like(name, registered))


def _hint(name: str, close: list[str] | None) -> None:
    if close:
        line = one_line(f"no stream {name!r}{_suggestion(close)}")
        sys.stderr.write(f"psctl: {line}\n")
