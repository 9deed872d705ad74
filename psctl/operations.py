"""What each ``ps*`` operation sends and how its reply is read, without I/O.

Every operation is a generator (a *plan*) that yields requests and receives
their replies: a ``Call`` of a Lua script, a plain ``Command``, or a ``Batch``
of either, sent in one round trip. The sync and async clients drive the same
plans (see ``runner.py``), so argument checks, encoding and reply parsing exist
once. Every check runs before the first request is yielded.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from itertools import islice
from typing import Any

from psctl.layout import REGISTRY, StreamKeys
from psctl.scripts import LuaScript, script

# Items per script call of psaddmany and psremove: big enough to amortise the
# round trip, small enough that one call stays around a millisecond.
ADD_CHUNK = 1000
# Cool-downs ended per stream per psexpire script call.
EXPIRE_CHUNK = 1000
# A blocked pull looks again at least this often (seconds), so that items
# written by other tools, which write no wake-up token, are seen too.
POLL = 1.0


class Call:
    """A call of a Lua script."""

    __slots__ = ("script", "keys", "args")

    def __init__(self, script: LuaScript, keys: tuple[str, ...], args: tuple[Any, ...]) -> None:
        self.script, self.keys, self.args = script, keys, args


class Command:
    """A plain Redis command."""

    __slots__ = ("args",)

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.args = args


class Batch:
    """Requests sent together in one round trip (a non-transactional pipeline)."""

    __slots__ = ("requests",)

    def __init__(self, requests: tuple[Call | Command, ...]) -> None:
        self.requests = requests


class Send:
    """Sends a call without waiting for its reply, so that the plan can prepare
    its next call while the server runs this one. The next request must be
    ``Receive``: one call at most is in flight."""

    __slots__ = ("call",)

    def __init__(self, call: Call) -> None:
        self.call = call


class Receive:
    """The reply of the call of the last ``Send``."""

    __slots__ = ()


# (Plain slotted classes, not dataclasses: a request is made for every call,
# and a frozen dataclass's __init__ costs several times as much.)
Request = Call | Command | Batch | Send | Receive
Plan = Generator[Request, Any, Any]
Layout = Callable[[str], StreamKeys]


# -- argument checks and encoding -------------------------------------------------


def encode_score(score: Any) -> bytes:
    """A finite number as the exact decimal text Redis and Lua read back to the same double."""
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        raise ValueError(f"a score must be a finite number, got {score!r}")
    try:
        value = float(score)
    except OverflowError:
        raise ValueError(f"a score must be a finite number, got {score!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"a score must be a finite number, got {score!r}")
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
    if type(count) is int and count >= 0:  # the common case, in every pull
        return count
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"{what} must be a whole number >= 0, got {count!r}")
    return count


def _flag(value: bool) -> bytes:
    return b"1" if value else b"0"


def _expiry(expire_at: Any) -> tuple[bytes, bytes]:
    if expire_at is None:
        return b"none", b"0"
    if isinstance(expire_at, timedelta):
        return _cool_down_in(expire_at)
    if isinstance(expire_at, datetime):
        if expire_at.tzinfo is None:
            expire_at = expire_at.replace(tzinfo=timezone.utc)
        return b"at", repr(expire_at.timestamp()).encode()
    raise TypeError(f"expire_at must be a timedelta, a datetime or None, got {type(expire_at).__name__}")


@lru_cache(maxsize=64)  # pspull's default (a day), or a service's own, over and over
def _cool_down_in(delta: timedelta) -> tuple[bytes, bytes]:
    return b"in", repr(delta.total_seconds()).encode()


def _item_fields(item: Any) -> tuple[Any, Any, Any]:
    try:
        if len(item) == 3:
            key, value, score = item
        elif len(item) == 2:
            (key, value), score = item, 1
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"an item must be (key, value, score) or (key, value), got {item!r}") from None
    return key, value, score


_EXACT = 2**53  # ints up to this size are exact doubles


def _encode_chunk(chunk: Sequence[Any], flag: bytes) -> tuple[tuple[Any, ...], list[float | None]]:
    """The add script's arguments for ``chunk``, and each item's increment as a
    float (its new score when the key is new).

    This runs for every item added, so the common types take a fast path of
    exact type checks; anything else goes through the general checks above.
    """
    args: list[Any] = [flag]
    extend = args.extend
    increments: list[float | None] = []
    append = increments.append
    for item in chunk:
        if type(item) is tuple and len(item) == 3:
            key, value, score = item
        else:
            key, value, score = _item_fields(item)
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
    return tuple(args), increments


def _chunks(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _pairs(reply: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """(key, value) pairs from a flat [k1, v1, k2, v2, ...] or a RESP3 nested reply."""
    if reply and isinstance(reply[0], (list, tuple)):
        yield from ((pair[0], pair[1]) for pair in reply)
    else:
        yield from zip(reply[::2], reply[1::2])


def _as_float(reply: Any) -> float | None:
    return None if reply is None else float(reply)


# -- plans -------------------------------------------------------------------------


def add(keys: StreamKeys, items: Iterable[Any], readd: bool) -> Plan:
    # A list is checked whole before anything is sent; an iterator chunk by
    # chunk, so that it is never held in memory whole.
    flag = _flag(readd)
    chunks: Iterator[tuple[tuple[Any, ...], list[float | None]]]
    if isinstance(items, Sequence):
        chunks = iter([_encode_chunk(list(items[i : i + ADD_CHUNK]), flag) for i in range(0, len(items), ADD_CHUNK)])
    else:
        chunks = (_encode_chunk(chunk, flag) for chunk in _chunks(items, ADD_CHUNK))
    add_keys = keys.all_and_wake
    add_script = script("add")
    scores: list[float | None] = []

    def merge(reply: list[Any], increments: list[float | None]) -> None:
        # the script lists only the items whose new score is not their increment
        for i in range(1, len(reply), 2):
            increments[int(reply[i]) - 1] = _as_float(reply[i + 1])
        scores.extend(increments)

    unknown = 0  # items of a call whose reply was not read: written or not, no one knows
    try:
        current = next(chunks, None)
        if current is None:
            return scores
        # the first chunk alone, as a plain call: it loads the script if needed
        unknown = len(current[1])
        reply = yield Call(add_script, add_keys, current[0])
        unknown = 0
        merge(reply, current[1])
        if reply[0] == 1:
            yield Command(("SADD", REGISTRY, keys.name))
        # then each chunk is encoded while the server runs the one before
        current = next(chunks, None)
        while current is not None:
            yield Send(Call(add_script, add_keys, current[0]))
            unknown = len(current[1])
            following = next(chunks, None)
            reply = yield Receive()
            unknown = 0
            merge(reply, current[1])
            current = following
    except Exception as exc:  # how far it got, for whoever reads the error
        note = f"psaddmany wrote {len(scores)} items before the failure"
        exc.add_note(note + (f"; the {unknown} after them may have been written too" if unknown else ""))
        raise
    return scores


def add_one(keys: StreamKeys, key: Any, value: Any, score: Any, readd: bool) -> Plan:
    args, _ = _encode_chunk(((key, value, score),), _flag(readd))
    born, new_score = yield Call(script("addone"), keys.all_and_wake, args)
    if born == 1:
        yield Command(("SADD", REGISTRY, keys.name))
    return _as_float(new_score)


def pull(keys: StreamKeys, count: int, purge: bool, gate: bool, expire_at: Any, block: float | None = None) -> Plan:
    """One atomic pull; with ``block``, pulls again each time an add wakes it
    (or every ``POLL`` seconds, for items written with plain commands) until
    something comes or ``block`` seconds pass (0: no limit)."""
    count = check_count(count)
    mode, seconds = _expiry(expire_at)
    deadline = _deadline(block)
    if count == 0:
        return {}
    one = count == 1 and purge  # the most common pull, with a script of its own
    if one:
        call = Call(script("pullone"), keys.all, (_flag(gate), mode, seconds))
    else:
        call = Call(script("pull"), keys.all, (count, _flag(purge), _flag(gate), mode, seconds))
    while True:
        reply = yield call
        if reply and one:  # {key, value}
            return {decode_key(reply[0]): reply[1]}
        if reply:  # {keys, values}
            pulled, found = reply
            return dict(zip(decode_keys(pulled), found))
        if deadline is None:
            return {}
        wait = POLL if deadline == math.inf else min(POLL, deadline - time.monotonic())
        if wait <= 0:
            return {}
        yield Command(("BLPOP", keys.wake, repr(round(wait, 3)).encode()))


def _deadline(block: Any) -> float | None:
    if block is None:
        return None
    if isinstance(block, bool) or not isinstance(block, numbers.Real) or not math.isfinite(block) or block < 0:
        raise ValueError(f"block must be a number of seconds >= 0 (0: wait forever), got {block!r}")
    return math.inf if block == 0 else time.monotonic() + float(block)


def keys_(keys: StreamKeys, withscores: bool, limit: int | None) -> Plan:
    stop = -1 if limit is None else check_count(limit, "limit") - 1
    if stop == -1 and limit == 0:
        return []
    if withscores:
        reply = yield Command(("ZREVRANGE", keys.scores, 0, stop, "WITHSCORES"))
        return [(decode_key(key), float(score)) for key, score in _pairs(reply)]
    reply = yield Command(("ZREVRANGE", keys.scores, 0, stop))
    return decode_keys(reply)


def values(keys: StreamKeys, limit: int | None) -> Plan:
    stop = -1 if limit is None else check_count(limit, "limit") - 1
    if stop == -1 and limit == 0:
        return {}
    reply = yield Call(script("values"), (keys.scores, keys.values), (stop,))
    return {decode_key(key): value for key, value in _pairs(reply)}


def get(keys: StreamKeys, key: Any) -> Plan:
    return (yield Command(("HGET", keys.values, encode_key(key))))


def length(keys: StreamKeys) -> Plan:
    return int((yield Command(("ZCARD", keys.scores))))


def increment(keys: StreamKeys, key: Any, score: Any) -> Plan:
    args = ("ZADD", keys.scores, "XX", "INCR", encode_score(score), encode_key(key))
    return _as_float((yield Command(args)))


def delete_below(keys: StreamKeys, threshold: Any, gate: bool) -> Plan:
    bound = b"(" + encode_score(threshold)
    reply = yield Call(script("prune"), (keys.values, keys.scores, keys.gated), (bound, _flag(gate)))
    return decode_keys(reply)


def decrement_all(keys: StreamKeys, decrement: Any) -> Plan:
    by = encode_score(decrement)
    return int((yield Call(script("decrement"), (keys.scores,), (by,))))


def remove(keys: StreamKeys, item_keys: Any, gate: bool) -> Plan:
    if isinstance(item_keys, (str, bytes)):
        item_keys = [item_keys]
    encoded = [encode_key(key) for key in item_keys]
    removed = 0
    for chunk in _chunks(encoded, ADD_CHUNK):
        removed += yield Call(script("remove"), (keys.values, keys.scores, keys.gated), (_flag(gate), *chunk))
    return removed


def _unregister(names: Sequence[str], layout: Layout) -> Plan:
    """Drops names from the registry, putting back any whose keys exist again.

    Removing first and checking after closes the race with a concurrent first
    add: whichever order the two run in, a stream with keys stays registered.
    """
    if not names:
        return 0
    removed = yield Batch(tuple(Command(("SREM", REGISTRY, name)) for name in names))
    alive = yield Batch(tuple(Command(("EXISTS", *layout(name).all)) for name in names))
    revived = [name for name, exists in zip(names, alive) if exists]
    if revived:
        yield Command(("SADD", REGISTRY, *revived))
    return sum(removed)


def delete(keys: StreamKeys, layout: Layout) -> Plan:
    deleted = yield Command(("DEL", *keys.all_and_wake))
    unregistered = yield from _unregister([keys.name], layout)
    return bool(deleted or unregistered)


def names() -> Plan:
    reply = yield Command(("SMEMBERS", REGISTRY))
    return sorted(decode_key(name) for name in reply)


def expire(layout: Layout) -> Plan:
    pending = yield from names()
    expired = dict.fromkeys(pending, 0)
    dead: list[str] = []
    expire_script = script("expire")
    while pending:
        replies = yield Batch(tuple(Call(expire_script, layout(name).all, (EXPIRE_CHUNK,)) for name in pending))
        again = []
        for name, (count, more, alive) in zip(pending, replies):
            expired[name] += count
            if more:
                again.append(name)
            elif not alive:
                dead.append(name)
        pending = again
    yield from _unregister(dead, layout)
    return {name: count for name, count in expired.items() if count}
