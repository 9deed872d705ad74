"""What a Python handler gets and may raise, and how what it did
becomes a verdict: shared by the thread executor (``inprocess``) and the
event loop's (``inloop``).

- ``Delivery``: one item as a handler sees it (``.stream``, ``.key``,
  ``.value``, ``.score``, ``.deliveries``, ``.extend(lease)``);
- ``Retry`` and ``Dead``: exceptions a handler raises to choose what becomes
  of its item (another delivery after a delay of its choosing; the dead items
  at once);
- ``injected``: the handler with its other parameters resolved by fast-depends.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, get_origin

from psctl.encoding import MAX_SECONDS
from psctl.errors import InvalidArgument
from psctl.work.executor import ABANDONED, BACK, DONE, Kind, Verdict
from psctl.work.options import Item

LOG = logging.getLogger("psctl.worker")
REASON = 2048  # characters of a failure's reason kept (the server keeps 2 KiB)
BATCH_FAILURE = "failed in its batch"  # the reason of a key a batch handler returned without one
# seconds the acknowledger waits, when fewer functions ended than run, for more to end, to
# acknowledge them together: short (functions end in bursts, commands at the pace of processes:
# the command runner waits 5 ms); measured, 2 ms handlers at 4 at once: 0.87 script calls per
# item without it, 0.25 with it, and no cost to instant handlers (a 5 ms wait halved those)
GATHER = 0.0005


class Retry(Exception):
    """Raised by a handler: the item goes back for another delivery after
    ``delay`` (a ``timedelta`` or seconds; None: the usual back-off). It
    counts as a failed delivery (after its last one the item is dead), with
    ``reason`` (or "Retry") as its reason."""

    def __init__(self, reason: str | None = None, *, delay: timedelta | float | None = None) -> None:
        super().__init__(*(() if reason is None else (reason,)))
        self.delay = None if delay is None else seconds(delay, "Retry's delay", zero=True)


class Dead(Exception):
    """Raised by a handler: the item goes to the dead items at once, whatever
    deliveries it has left, with ``reason`` as its reason (``psctl dead``,
    ``psdead``, ``psrequeue`` bring it back)."""

    def __init__(self, reason: str = "dead") -> None:
        super().__init__(reason)


def seconds(value: Any, what: str, *, zero: bool = False) -> float:
    """A duration given as a ``timedelta`` or seconds, checked (``InvalidArgument``)."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 or zero and value == 0):
        least = "from 0" if zero else "more than 0"
        raise InvalidArgument(f"{what} must be a timedelta or a number of seconds {least}, got {value!r}")
    if value > MAX_SECONDS:
        raise InvalidArgument(f"{what} must be at most {MAX_SECONDS:,} seconds (about 31 years), got {value:g}")
    return float(value)


class Delivery:
    """One delivery of an item to a handler: ``stream``, ``key``, ``value``
    (bytes, or text with ``decode_responses``), ``score`` (the one it was
    leased with), ``deliveries`` (1 on its first). ``extend(lease)`` keeps
    its lease for at least ``lease`` from now (the worker extends it by
    itself meanwhile; this is for a handler that knows it needs longer)."""

    __slots__ = ("_extend", "deliveries", "key", "score", "stream", "token", "value")

    def __init__(self, item: Item, extend: Callable[[str, str, Any], Any]) -> None:
        self.stream, self.key, self.value, self.score = item.stream, item.key, item.value, item.score
        self.deliveries, self.token, self._extend = item.delivery, item.token, extend

    def extend(self, lease: timedelta | float) -> datetime | None:
        """The lease's new deadline, or None when the lease ran out already
        (its item may be running elsewhere). With ``AsyncWorker``, awaited."""
        return self._extend(self.stream, self.token, lease)

    def __repr__(self) -> str:
        return f"Delivery(stream={self.stream!r}, key={self.key!r}, score={self.score!r}, deliveries={self.deliveries})"


def reason(error: BaseException) -> str:
    """A failure's reason: the exception's type and message ("ValueError: bad input")."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:REASON]


def failed(error: BaseException, items: list[Item], stream: str = "") -> Verdict:
    """What a handler that raised ``error`` for ``items`` of ``stream`` did
    to them; said on the ``psctl.worker`` logger (with the traceback), as a
    command's stderr is passed through by ``psctl work``."""
    if not isinstance(error, (Retry, Dead)) and LOG.isEnabledFor(logging.WARNING):
        keys = ", ".join(repr(item.key) for item in items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
        LOG.warning(
            "%s: the handler failed for %s (delivery %d): %s", stream, keys, items[0].delivery, reason(error),
            exc_info=error,
        )  # fmt: skip
    if isinstance(error, Dead):
        return Verdict(Kind.DEAD, str(error)[:REASON] or "dead")
    if isinstance(error, Retry):
        return Verdict(Kind.FAILED, reason(error), delay=error.delay)
    return Verdict(Kind.FAILED, reason(error))


def batch_verdicts(items: list[Item], returned: Any, stream: str = "") -> list[tuple[Item, Verdict]]:
    """What a batch handler's return value says of each item: None, all
    done; keys (an iterable), those failed; a mapping, key -> its reason (text,
    or an exception: ``Retry``/``Dead`` apply), the others done."""
    if returned is None:
        return [(item, DONE) for item in items]
    by_key = {item.key: item for item in items}
    if isinstance(returned, Mapping):
        why = {_key(key): failed(value, [by_key[_key(key)]], stream) if isinstance(value, BaseException)
               and _key(key) in by_key else Verdict(Kind.FAILED, _text(value))
               for key, value in returned.items()}  # fmt: skip
    elif isinstance(returned, Iterable) and not isinstance(returned, (str, bytes)):
        why = dict.fromkeys(map(_key, returned), Verdict(Kind.FAILED, BATCH_FAILURE))
    else:
        raise TypeError(
            f"a batch handler returns None, the keys that failed or a dict of key -> reason, not {type(returned).__name__}"
        )
    strangers = [key for key in why if key not in by_key]
    if strangers:  # (a key misspelt, or another batch's: which of these failed is unknown, so all did)
        shown = ", ".join(repr(key) for key in strangers[:3]) + (" ..." if len(strangers) > 3 else "")
        raise ValueError(f"the batch handler returned keys not in its batch: {shown}")
    return [(item, why.get(item.key, DONE)) for item in items]


def _key(key: Any) -> Any:
    """A key as the items have them (text), from what a batch handler returned (text or bytes)."""
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key


def verdicts(
    items: list[Item], cut: str | None, outcome: list[tuple[Item, Verdict]] | Verdict | None
) -> list[tuple[Item, Verdict]]:
    """What became of a handler's ``items``: ``cut`` short ("stopped": back
    at once; "abandoned": left to the lease), else its ``outcome`` (one
    verdict for all, or one per item; None: it never ended)."""
    if cut is not None:
        verdict = BACK if cut == "stopped" else ABANDONED
        return [(item, verdict) for item in items]
    if isinstance(outcome, Verdict):
        return [(item, outcome) for item in items]
    return outcome if outcome is not None else [(item, ABANDONED) for item in items]


def _text(value: Any) -> str:
    return (BATCH_FAILURE if value is None else str(value))[:REASON]


def injected(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` with its parameters after the first (the item, or the
    batch) resolved by fast-depends (``Depends(...)``, ``RedisProvider()``),
    as the library's own functions get theirs; a handler of one plain
    parameter is called as it is (no cost per item)."""
    if not callable(handler):
        raise InvalidArgument(f"a handler must be callable, got {handler!r}")
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):  # (no signature to read: called as it is)
        return handler
    plain = (
        len(parameters) == 1
        and parameters[0].default is inspect.Parameter.empty
        and get_origin(parameters[0].annotation) is not Annotated
    )
    if plain or not parameters:
        return handler
    from fast_depends import inject

    return inject(handler)


def is_async(handler: Callable[..., Any]) -> bool:
    """Whether calling ``handler`` gives a coroutine (an ``async def``, or an object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None))  # noqa: B004
