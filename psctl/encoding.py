"""Arguments as the scripts take them, checked before anything is sent, and
replies read back: the plans' (``operations.py``) and the CLI's readers' shared
encoding. No I/O, and no import of redis-py, so that ``psctl add-many`` checks
its whole input before it loads anything to talk to a server.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from itertools import islice
from typing import Any

from psctl.errors import InvalidArgument

# The largest count or limit: Lua's numbers print as whole numbers up to 1e14,
# and no call needs more than this.
MAX_COUNT = 2**31 - 1


def encode_score(score: Any) -> bytes:
    """A finite number as the exact decimal text Redis and Lua read back to the same double."""
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        raise InvalidArgument(f"a score must be a finite number, got {score!r}")
    try:
        value = float(score)
    except OverflowError:
        raise InvalidArgument(f"a score must be a finite number, got {score!r}") from None
    if not math.isfinite(value):
        raise InvalidArgument(f"a score must be a finite number, got {score!r}")
    return repr(value).encode()


def encode_key(key: Any) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key).encode()
    raise TypeError(f"an item key must be str or bytes, got {type(key).__name__}")


def encode_value(value: Any) -> bytes | str:
    """A value as redis-py would send it (numbers as their text), so that every
    script argument is bytes or str."""
    if isinstance(value, (bytes, str)):
        return value
    if isinstance(value, bool):
        raise TypeError("a value must be bytes, str, int or float, got bool")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a value must be bytes, str, int or float, got {type(value).__name__}")


def decode_key(key: bytes | str) -> str:
    return key if isinstance(key, str) else key.decode("utf-8", "surrogateescape")


def decode_keys(keys: Sequence[bytes | str]) -> list[str]:
    """``decode_key`` of each, in one decode where it can: a thousand small
    decodes cost more than the server's work of a pull."""
    if keys and type(keys[0]) is bytes:
        try:
            joined = b"\n".join(keys)  # type: ignore[arg-type]
        except TypeError:  # not all bytes
            pass
        else:
            if joined.count(b"\n") == len(keys) - 1:  # no key holds the separator
                # (UTF-8 resynchronises at "\n", so each key decodes as it would alone)
                return joined.decode("utf-8", "surrogateescape").split("\n")
    return [decode_key(key) for key in keys]


def check_count(count: Any, what: str = "count") -> int:
    if type(count) is int and 0 <= count <= MAX_COUNT:  # the common case, in every pull
        return count
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise InvalidArgument(f"{what} must be a whole number from 0 to {MAX_COUNT}, got {count!r}")
    return count


def flag(value: bool) -> bytes:
    return b"1" if value else b"0"


def expiry(expire_at: Any) -> tuple[bytes, bytes]:
    if expire_at is None:
        return b"none", b"0"
    if isinstance(expire_at, timedelta):
        return _cool_down_in(expire_at)
    if isinstance(expire_at, datetime):
        return b"at", repr(_checked_moment(expire_at, "expire_at").timestamp()).encode()
    raise TypeError(f"expire_at must be a timedelta, a datetime or None, got {type(expire_at).__name__}")


@lru_cache(maxsize=64)  # pspull's default (a day), or a service's own, over and over
def _cool_down_in(delta: timedelta) -> tuple[bytes, bytes]:
    return b"in", repr(_checked_delta(delta, "expire_at")).encode()


def item_fields(item: Any) -> tuple[Any, Any, Any, Any]:
    """An item's key, value, score and time (None when it gives none)."""
    try:
        if len(item) == 3:
            (key, value, score), when = item, None
        elif len(item) == 4:
            key, value, score, when = item
        elif len(item) == 2:
            (key, value), score, when = item, 1, None
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"an item must be (key, value, score, delay), (key, value, score) or (key, value), got {item!r}"
        ) from None
    return key, value, score, when


# The longest delay or cool-down psctl writes (about 31 years): far beyond any
# use, and short of the times a datetime can hold (year 9999), so that what is
# written can always be read back and shown.
MAX_SECONDS = 10**9
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)
_FIRST = datetime(1, 1, 1, tzinfo=timezone.utc)
_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)


def utc_moment(seconds: float) -> datetime:
    """Unix ``seconds`` as an aware UTC datetime; a time beyond what a datetime
    holds (written by another tool, say) is shown as the first or last there is."""
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return _FIRST if seconds < 0 else _LAST


def _checked_delta(delta: timedelta, what: str) -> float:
    seconds = delta.total_seconds()
    if seconds > MAX_SECONDS:
        raise InvalidArgument(f"{what} must be at most {MAX_SECONDS:,} seconds (about 31 years), got {delta}")
    return seconds


def _checked_moment(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment >= LATEST:
        raise InvalidArgument(f"{what} must be before {LATEST.year}, got {moment.isoformat()}")
    return moment


def encode_time(when: Any) -> bytes:
    """When a delayed item starts waiting, as the add scripts take it: b"" for
    now (None), ``+N`` for N ms from the server's clock (a ``timedelta``,
    rounded up: an item never starts early), or unix ms (a ``datetime``; naive
    means UTC). A time that has come means now."""
    if when is None:
        return b""
    if isinstance(when, timedelta):
        return b"+%d" % max(0, math.ceil(_checked_delta(when, "a delay") * 1000))
    if isinstance(when, datetime):
        return b"%d" % math.ceil(_checked_moment(when, "a delay's time").timestamp() * 1000)
    raise InvalidArgument(f"a delay must be a timedelta, a datetime or None, got {when!r}")


_EXACT = 2**53  # ints up to this size are exact doubles


def encode_items(chunk: Sequence[Any], prefix: tuple[bytes, ...]) -> tuple[tuple[Any, ...], list[float | None]]:
    """The add script's arguments for ``chunk`` after ``prefix``: how many
    fields each item has (3, or 4 when any item of the chunk gives its own
    time), then the items; and each item's increment as a float (its new score
    when the key is new).

    This runs for every item added, so the common types take a fast path of
    exact type checks; anything else goes through the general checks above.
    """
    args: list[Any] = [*prefix, b"3"]
    extend = args.extend
    increments: list[float | None] = []
    append = increments.append
    times: dict[int, bytes] = {}  # item index -> its own time, for the few that give one
    for item in chunk:
        if type(item) is tuple and len(item) == 3:
            key, value, score = item
        else:
            key, value, score, when = item_fields(item)
            if when is not None:
                times[len(increments)] = encode_time(when)
        kind = type(key)
        if kind is str:
            key = key.encode("utf-8", "surrogateescape")
        elif kind is not bytes:
            key = encode_key(key)
        kind = type(value)
        if kind is not bytes and kind is not str:
            value = encode_value(value)
        kind = type(score)
        if kind is int and -_EXACT <= score <= _EXACT:
            number = float(score)
            text = b"%d" % score
        elif kind is float and score - score == 0.0:  # finite
            number = score + 0.0  # -0.0 becomes 0.0, as ZINCRBY from 0 would make it
            text = repr(number).encode()
        else:
            text = encode_score(score)
            number = float(text)
        extend((key, value, text))
        append(number)
    if times:
        first = len(prefix) + 1
        wide: list[Any] = [*prefix, b"4"]
        for i in range(len(increments)):
            wide.extend((*args[first + 3 * i : first + 3 * i + 3], times.get(i, b"")))
        args = wide
    return tuple(args), increments


def in_chunks(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def pairs(reply: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """(key, value) pairs from a flat [k1, v1, k2, v2, ...] or a RESP3 nested reply."""
    if reply and isinstance(reply[0], (list, tuple)):
        yield from ((pair[0], pair[1]) for pair in reply)
    else:
        yield from zip(reply[::2], reply[1::2])


def as_float(reply: Any) -> float | None:
    return None if reply is None else float(reply)
