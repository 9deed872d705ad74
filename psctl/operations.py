"""What each ``ps*`` operation sends and how its reply is read, without I/O.

Every operation is a generator (a *plan*) that yields requests
(``protocol.py``: a ``Call`` of a Lua script, a plain ``Command``, a ``Batch``
of them, ``Send``/``Receive``) and receives their replies. The sync and async
clients drive the same plans (``runner.py``), so argument checks, encoding and
reply parsing exist once. Every check runs before the first request is yielded.
A plan is given everything it works from: no client (what it returns is plain
data, ``psctl.types``), and no clock but the one a blocking plan is handed
(``clock``); every time that matters to the data is the server's.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from redis.exceptions import RedisError

from psctl.encoding import (
    as_float,
    in_chunks,
    encode_items,
    encode_time,
    expiry,
    flag,
    pairs,
    check_count,
    decode_key,
    decode_keys,
    encode_key,
    encode_score,
    utc_moment,
)
from psctl.errors import InvalidArgument, NotReplicated, StreamsFailed, acl_denied
from psctl.layout import KINDS, REGISTRY, REGISTRY_KEYS, StreamKeys, cluster_stream_of, stream_keys
from psctl.protocol import PRIMARIES, UNREACHED, Batch, Call, Command, Pause, Plan, Receive, Replicated, Send
from psctl.scripts import script
from psctl.types import Added, Expired, StopWaiting  # (here too, as before psctl.types)
from psctl.wording import counted

# Items per script call of psaddmany and psremove: big enough to amortise the
# round trip, small enough that one call stays around a millisecond.
ADD_CHUNK = 1000
# Cool-downs (and delayed items) ended per stream per psexpire script call.
EXPIRE_CHUNK = 1000
# A blocked pull looks again at least this often (seconds), so that items
# written by other tools, which write no wake-up token, are seen too.
POLL = 1.0
# The shortest wait for a delayed item (seconds): BLPOP's timeout is in whole
# milliseconds, and one due sooner is taken by calling again at once.
MIN_WAIT = 0.001
# Keys a registry sweep asks a primary for per SCAN: one call stays well under
# a millisecond of the server's time.
SWEEP_COUNT = 1000
# How late a server may end a blocked wait (seconds): it checks their timeouts
# on its timer, 10 times a second by default (hz 10)
SERVER_TICK = 0.1
Layout = Callable[[str], StreamKeys]
Clock = Callable[[], float]  # seconds on a clock that only goes forward (time.monotonic)


def monotonic() -> float:
    """The clock a waiting plan reads unless it is given its own (a test's, say)."""
    return time.monotonic()


# -- plans -------------------------------------------------------------------------

# the add scripts' first reply field
BORN = 1  # the call created the stream
UNREGISTERED = 2  # nothing written: the stream does not exist and its name was not registered first


def _register(keys: StreamKeys) -> Plan:
    yield Command(("SADD", REGISTRY, keys.member))


def _add_call(keys: StreamKeys, add_script: Any, args: tuple[Any, ...]) -> Plan:
    """One call of an add script (``args``: readd flag, registered flag "0",
    items). A stream is only created once its name is in the registry: a call
    that would create it writes nothing and says so; then the name is
    registered and the call made again, saying so. A lost connection can then
    never leave a stream that holds data out of the registry, where psexpire
    would never see it."""
    reply = yield Call(add_script, add_script.keys_of(keys), args)
    if reply[0] == UNREGISTERED:
        reply = yield from _registered_call(keys, add_script, args)
    return reply


def _registered_call(keys: StreamKeys, add_script: Any, args: tuple[Any, ...]) -> Plan:
    """The name registered, then the add script's call saying so."""
    yield from _register(keys)
    reply = yield Call(add_script, add_script.keys_of(keys), (args[0], b"1", *args[2:]))
    if reply[0] == BORN:  # an unregistering psdelete/psexpire may have run between the two
        yield from _register(keys)
    return reply


def add(
    keys: StreamKeys,
    items: Iterable[Any],
    readd: bool,
    summary: bool = False,
    replace: bool = False,
    stop: Any = None,
    delay: Any = None,
) -> Plan:
    """``psaddmany``: the new score of each item, or with ``summary`` only how
    many were added and refused (constant memory, whatever the input's size).
    ``replace``: each score is set to the one given instead of added to.
    ``delay`` (a ``timedelta`` or a ``datetime``): when the items that give
    no time of their own (a 4th field) start waiting.
    ``stop`` (anything with ``is_set()``) is looked at before each chunk is
    sent: once set, no further chunk goes out (not even one already encoded),
    and the result covers the items written so far."""
    # A list is checked whole before anything is sent; an iterator chunk by
    # chunk, so that it is never held in memory whole.
    prefix = (flag(readd), b"0", flag(replace), encode_time(delay))
    chunks: Iterator[tuple[tuple[Any, ...], list[float | None]]]
    if isinstance(items, Sequence):
        chunks = iter([encode_items(list(items[i : i + ADD_CHUNK]), prefix) for i in range(0, len(items), ADD_CHUNK)])
    else:
        chunks = (encode_items(chunk, prefix) for chunk in in_chunks(items, ADD_CHUNK))
    add_script = script("add")
    scores: list[float | None] = []
    refused_by = dict.fromkeys(REFUSALS, 0)
    counts: dict[str, Any] = {"added": 0, "refused": 0, "refused_by": refused_by}
    written = 0

    def merge(reply: list[Any], increments: list[float | None]) -> None:
        # the script lists only the items whose new score is not their increment,
        # or why they were refused
        nonlocal written
        written += len(increments)
        if summary:
            refused = 0
            for i in range(2, len(reply), 2):
                reason = _refusal(reply[i])
                if reason is not None:
                    refused_by[reason] += 1
                    refused += 1
            counts["added"] += len(increments) - refused
            counts["refused"] += refused
            return
        for i in range(1, len(reply), 2):
            increments[int(reply[i]) - 1] = None if _refusal(reply[i + 1]) else float(reply[i + 1])
        scores.extend(increments)

    unknown = 0  # items of a call whose reply was not read: written or not, no one knows
    try:
        stopped = (lambda: False) if stop is None else stop.is_set
        current = next(chunks, None)
        if current is not None and not stopped():
            # the first chunk alone, as a plain call: it loads the script if needed
            unknown = len(current[1])
            merge((yield from _add_call(keys, add_script, current[0])), current[1])
            unknown = 0
            current = next(chunks, None)
        # then each chunk is encoded while the server runs the one before
        while current is not None and not stopped():
            call = Call(add_script, add_script.keys_of(keys), current[0])
            yield Send(call)
            unknown = len(current[1])
            following = next(chunks, None)
            reply = yield Receive(call)
            if reply[0] == UNREGISTERED:  # the stream was deleted meanwhile
                reply = yield from _registered_call(keys, add_script, current[0])
            unknown = 0
            merge(reply, current[1])
            current = following
    except Exception as exc:  # how far it got, for whoever reads the error
        note = f"psaddmany wrote {counted(written, 'item')} before the failure"
        exc.add_note(note + (f"; the {unknown} after them may have been written too" if unknown else ""))
        raise
    return counts if summary else scores


# why an add refused a key (the add scripts' words), most telling first
REFUSALS = ("held", "dead", "gated", "cooling")
_REFUSALS = {reason.encode(): reason for reason in REFUSALS}


def _refusal(reply: Any) -> str | None:
    """The reason an add script gave for refusing an item; None for a score."""
    if isinstance(reply, str):  # (a client that decodes replies)
        reply = reply.encode()
    return _REFUSALS.get(reply) if isinstance(reply, bytes) else None


def add_one(
    keys: StreamKeys,
    key: Any,
    value: Any,
    score: Any,
    readd: bool,
    explain: bool = False,
    replace: bool = False,
    delay: Any = None,
) -> Plan:
    args, _ = encode_items(((key, value, score),), (flag(readd), b"0", flag(replace)))
    # (addone takes the item's own fields, then its time: not add's layout)
    reply = yield from _add_call(keys, script("addone"), (*args[:3], *args[4:], encode_time(delay)))
    new = as_float(reply[1])
    if not explain:
        return new
    if new is not None:
        later = reply[4] if len(reply) > 4 else None
        return Added(new, None, None if not later else utc_moment(int(later) / 1000))
    until = reply[3] if len(reply) > 3 else None
    return Added(None, _refusal(reply[2]), None if not until else utc_moment(int(until)))


def pull(
    keys: StreamKeys,
    count: int,
    purge: bool,
    gate: bool,
    expire_at: Any,
    block: float | None = None,
    stop: Any = None,
    clock: Clock = monotonic,
) -> Plan:
    """One atomic pull; with ``block``, waits for items (``waiting``), by ``clock``."""
    count = check_count(count)
    mode, seconds = expiry(expire_at)
    if count == 0:
        _deadline(block, clock)
        return {}
    one = count == 1 and purge  # the most common pull, with a script of its own
    if one:
        pull_script = script("pullone")
        call = Call(pull_script, pull_script.keys_of(keys), (flag(gate), mode, seconds))
    else:
        pull_script = script("pull")
        call = Call(pull_script, pull_script.keys_of(keys), (count, flag(purge), flag(gate), mode, seconds))
    reply = yield from waiting(call, keys, block, stop, clock)
    if len(reply) < 2:  # nothing taken
        return {}
    if one:  # {key, value}
        return {decode_key(reply[0]): reply[1]}
    pulled, found = reply  # {keys, values}
    return dict(zip(decode_keys(pulled), found))


def waiting(call: Call, keys: StreamKeys, block: float | None, stop: Any, clock: Clock = monotonic) -> Plan:
    """``call`` (a pull or a lease), made again each time an add wakes it, a
    delayed item is due (the call says when the next is, by the server's
    clock) or ``POLL`` seconds pass (for items written with plain commands),
    until it takes something, ``block`` seconds pass on ``clock`` (0: no
    limit; None: no wait) or ``stop`` is set. Returns its last reply: a reply
    of fewer than two fields took nothing (``{}``, or ``{ms}`` until the next
    delayed item)."""
    deadline = _deadline(block, clock)
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise InvalidArgument(f"stop must have an is_set() method (a psctl.StopWaiting, say), got {stop!r}")
    marks = isinstance(stop, StopWaiting)
    while True:
        reply = yield call
        if len(reply) > 1 or deadline is None or (stop is not None and stop.is_set()):
            return reply
        wait = POLL if deadline == math.inf else min(POLL, deadline - clock())
        if reply:  # the next delayed item is due in reply[0] ms
            soon = int(reply[0]) / 1000
            if soon < wait:
                if soon < MIN_WAIT:
                    continue  # due now (a call hands out a bounded number at a time)
                if soon <= SERVER_TICK:
                    # the server ends a blocked wait only on its timer's tick (every 100 ms
                    # at its default hz 10): the last stretch is waited out here, to the ms
                    yield Pause(soon)
                    continue
                wait = soon - SERVER_TICK  # (ends by its time however late the tick)
        if wait <= 0:
            return reply
        if marks:
            stop.waiting = True  # a wait holds nothing: it may be cut short at any moment
        try:
            # in whole ms, rounded up: BLPOP's "0" (a wait under 0.5 ms, rounded) waits for ever
            yield Command(("BLPOP", keys.wake, repr(math.ceil(wait * 1000) / 1000).encode()))
        finally:
            if marks:
                stop.waiting = False
        if stop is not None and stop.is_set():
            return []


def _deadline(block: Any, clock: Clock) -> float | None:
    if block is None:
        return None
    if isinstance(block, bool) or not isinstance(block, numbers.Real) or not math.isfinite(block) or block < 0:
        raise InvalidArgument(f"block must be a number of seconds >= 0 (0: wait forever), got {block!r}")
    return math.inf if block == 0 else clock() + float(block)


def _ranks(limit: int | None, start: int) -> tuple[int, int] | None:
    """The ZREVRANGE ranks of ``limit`` items from rank ``start``; None for none."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise InvalidArgument(f"start must be a whole number from 0, got {start!r}")
    if limit is None:
        return start, -1
    count = check_count(limit, "limit")
    return None if count == 0 else (start, start + count - 1)


def keys_(keys: StreamKeys, withscores: bool, limit: int | None, start: int = 0, below: Any = None) -> Plan:
    """``pskeys``: from rank ``start``; with ``below``, only the keys scored
    strictly below it. Scores (given and shown) are effective: aging's shift,
    by the server's clock, is applied in the call that reads them."""
    ranks = _ranks(limit, start)
    if ranks is None:
        return []
    if below is None and not withscores:  # (the order needs no shift)
        return decode_keys((yield Command(("ZREVRANGE", keys.scores, *ranks))))
    if below is None:
        args: tuple[Any, ...] = (b"ranks", flag(withscores), *ranks)
    else:
        count = -1 if ranks[1] == -1 else ranks[1] - ranks[0] + 1
        args = (b"below", flag(withscores), encode_score(below), ranks[0], count)
    scores_script = script("scores")
    reply = yield Call(scores_script, scores_script.keys_of(keys), args, safe=True)
    if withscores:
        return [(decode_key(key), float(score)) for key, score in pairs(reply)]
    return decode_keys(reply)


def values(keys: StreamKeys, limit: int | None, start: int = 0, withscores: bool = False) -> Plan:
    """``psvalues``; with ``withscores``, each value with its score: ``{key: (value, score)}``."""
    page = yield from values_page(keys, limit, start, withscores)
    return page[0]


def values_page(keys: StreamKeys, limit: int | None, start: int = 0, withscores: bool = False) -> Plan:
    """``values``, and how many ranks it read (orphans included): where the next page starts."""
    ranks = _ranks(limit, start)
    if ranks is None:
        return {}, 0
    values_script = script("values")
    reply = yield Call(values_script, values_script.keys_of(keys), (*ranks, flag(withscores)), safe=True)
    read = int(reply[-1])
    if withscores:
        return {decode_key(reply[i]): (reply[i + 1], float(reply[i + 2])) for i in range(0, len(reply) - 1, 3)}, read
    return {decode_key(key): value for key, value in pairs(reply[:-1])}, read


def values_next(keys: StreamKeys, start: int, count: int, withscores: bool) -> Plan:
    """``psvaluespage``: a page, and the rank where the next one starts (None after the last)."""
    found, read = yield from values_page(keys, count, start, withscores)
    return found, (start + read if read >= count else None)


def scores(keys: StreamKeys, item_keys: Sequence[Any]) -> Plan:
    """``psscores``: each key's (effective) score, None for a key that is not waiting."""
    if not item_keys:
        return []
    scores_script = script("scores")
    args = (b"of", b"0", *(encode_key(key) for key in item_keys))
    reply = yield Call(scores_script, scores_script.keys_of(keys), args, safe=True)
    return [as_float(score) for score in reply]


def exists(keys: StreamKeys) -> Plan:
    """``psexists``: whether any of the stream's keys exists."""
    return bool((yield Command(("EXISTS", *keys.every))))


def get(keys: StreamKeys, key: Any) -> Plan:
    return (yield Command(("HGET", keys.values, encode_key(key))))


def length(keys: StreamKeys) -> Plan:
    return int((yield Command(("ZCARD", keys.scores))))


def increment(keys: StreamKeys, key: Any, score: Any) -> Plan:
    increment_script = script("increment")
    reply = yield Call(increment_script, increment_script.keys_of(keys), (encode_score(score), encode_key(key)))
    return as_float(reply)


def delete_below(keys: StreamKeys, threshold: Any, gate: bool) -> Plan:
    bound = b"(" + encode_score(threshold)
    prune_script = script("prune")
    reply = yield Call(prune_script, prune_script.keys_of(keys), (bound, flag(gate)))
    return decode_keys(reply)


def decrement_all(keys: StreamKeys, decrement: Any) -> Plan:
    by = encode_score(decrement)
    decrement_script = script("decrement")
    return int((yield Call(decrement_script, decrement_script.keys_of(keys), (by,))))


def remove(keys: StreamKeys, item_keys: Any, gate: bool, dry_run: bool = False) -> Plan:
    """``psremove``: each item whole, in whatever state (waiting, held, dead);
    ``dry_run`` counts what would go and changes nothing."""
    if isinstance(item_keys, (str, bytes)):
        item_keys = [item_keys]
    # each key once, so that one named twice counts once even across chunks (a dry run's too)
    encoded = list(dict.fromkeys(encode_key(key) for key in item_keys))
    removed = 0
    remove_script = script("remove")
    remove_keys = remove_script.keys_of(keys)
    for chunk in in_chunks(encoded, ADD_CHUNK):
        count = yield Call(remove_script, remove_keys, (flag(gate), flag(dry_run), flag(False), *chunk), safe=dry_run)
        if count == -1:  # its gates would create the stream: registered first, as an add's stream is
            yield from _register(keys)
            count = yield Call(remove_script, remove_keys, (flag(gate), flag(False), flag(True), *chunk), safe=False)
            yield from _register(keys)  # (an unregistering psexpire may have run between the two)
        removed += count
    return removed


def replicated(plan: Plan, operation: str, replicas: Any, timeout: Any) -> Plan:
    """``plan``, then a wait of up to ``timeout`` seconds until ``replicas``
    replicas have what it wrote; ``NotReplicated`` (holding the plan's
    result) when fewer had it by then. A plan that fails is not waited for."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise InvalidArgument(f"replicas must be a whole number from 0, got {replicas!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not 0 < timeout < math.inf:
        raise InvalidArgument(f"replicas_timeout must be a number of seconds above 0, got {timeout!r}")
    result = yield from plan
    acknowledged = yield Replicated(replicas, float(timeout))
    if acknowledged < replicas:
        raise NotReplicated(operation, replicas, acknowledged, float(timeout), result)
    return result


def _unregister(names: Sequence[str], layout: Layout) -> Plan:
    """Drops names from the registry, putting back any whose keys exist again.

    Removing first and checking after closes the race with a concurrent first
    add: whichever order the two run in, a stream with keys stays registered.
    """
    if not names:
        return 0
    streams = [layout(name) for name in names]
    removed = yield Batch(tuple(Command(("SREM", REGISTRY, keys.member)) for keys in streams))
    alive = yield Batch(tuple(Command(("EXISTS", *keys.holding_data)) for keys in streams))
    revived = [keys.member for keys, exists in zip(streams, alive) if exists]
    if revived:
        yield Command(("SADD", REGISTRY, *revived))
    return sum(removed)


def delete(keys: StreamKeys, layout: Layout) -> Plan:
    # not safe to repeat: a resent DEL could delete items added since the first
    deleted = yield Command(("DEL", *keys.every), safe=False)
    unregistered = yield from _unregister([keys.name], layout)
    return bool(deleted or unregistered)


def names() -> Plan:
    """``psnames``: the registered names, sorted. On a cluster the registry
    heals itself: a stream is registered on the registry's node before it is
    created on its own, and a failover of the registry's node can lose that
    ``SADD``; so the registry is read with a marker beside it (``SWEPT``)
    naming the server that held it when it was last known whole. When it
    names another (a failover, a restart, a move of its slot), every
    primary's keys are swept once for streams that hold data, and those
    missing are registered (``_sweep``). A standalone server needs none of
    this: there the registry and the streams share one server and one order
    of writes."""
    primaries = yield PRIMARIES
    if primaries is None:
        reply = yield Command(("SMEMBERS", REGISTRY))
    else:
        reply = yield from _cluster_registry(primaries)
    return sorted(decode_key(name) for name in reply)


def registered() -> Plan:
    """``names()`` for an operation over every registered stream: a registry
    that cannot be read is said to be the failure (on a cluster its node may
    be down while the streams' nodes answer)."""
    try:
        return (yield from names())
    except UNREACHED as exc:
        exc.add_note(f"reading the registry of stream names, {REGISTRY}")
        raise


def _cluster_registry(primaries: list[str]) -> Plan:
    """The registry's members, swept first when it may have lost some. The
    marker is read beside them, in one round trip to the registry's node
    (SMEMBERS itself, not through Lua: that costs the server four times as
    much for a big registry)."""
    registered = script("registered")
    run_id, members = yield Batch(
        (Call(registered, registered.keys_of(REGISTRY_KEYS), (), safe=True), Command(("SMEMBERS", REGISTRY))),
        errors="return",
    )
    if isinstance(members, Exception):
        raise members
    if isinstance(run_id, Exception):
        if not acl_denied(run_id):
            raise run_id
        return members  # a user not allowed INFO or the marker: the registry as it is
    if not run_id:
        return members
    found, whole = yield from _sweep(primaries, {decode_key(name) for name in members})
    for chunk in in_chunks(found, ADD_CHUNK):
        yield Command(("SADD", REGISTRY, *(stream_keys(name, cluster=True).member for name in chunk)))
    if whole:  # (unless the registry's server changed meanwhile: then the next read sweeps again)
        swept = script("swept")
        yield Call(swept, swept.keys_of(REGISTRY_KEYS), (run_id,), safe=True)
    return [*members, *(stream_keys(name, cluster=True).member for name in found)]


def _sweep(primaries: list[str], known: set[str]) -> Plan:
    """The streams that hold data on ``primaries`` and are not ``known``, and
    whether every primary was swept whole (one that fails is left for the
    next sweep). A key is taken for a stream's only when psctl would build
    it for that name (``layout.cluster_stream_of``) and it has the type psctl
    gives it (``KINDS``): ``{user}:t`` holding a string is no stream's. Memory
    grows with the streams, not the keys."""
    found: list[str] = []
    whole = True
    for node in primaries:
        cursor = 0
        try:
            while True:
                cursor, keys = _scanned((yield Command(("SCAN", cursor, "COUNT", SWEEP_COUNT), node=node)))
                candidates: dict[Any, tuple[str, str]] = {}
                for key in keys:
                    stream = cluster_stream_of(key)
                    if stream is not None and stream[0] not in known:
                        candidates[key] = stream
                if candidates:
                    kinds = yield Batch(tuple(Command(("TYPE", key)) for key in candidates))
                    for (name, field), kind in zip(candidates.values(), kinds):
                        if name not in known and decode_key(kind) == KINDS[field]:
                            known.add(name)
                            found.append(name)
                if cursor == 0:
                    break
        except (RedisError, UnicodeDecodeError):  # (the latter: a client that decodes, a key that is not UTF-8)
            whole = False
    return found, whole


def _scanned(reply: Any) -> tuple[int, list[Any]]:
    """A ``SCAN`` reply's cursor and keys (a cluster client gives the cursor by node name)."""
    cursor, keys = reply
    if isinstance(cursor, dict):
        [cursor] = cursor.values()
    return int(cursor), keys


def expire(layout: Layout) -> Plan:
    """Every registered stream's due cool-downs, a chunk per stream per round
    trip. A stream that fails (a key of the wrong type, its cluster node down)
    is left as it is and named in ``StreamsFailed`` once every other stream
    is done."""
    pending = yield from registered()
    expired = dict.fromkeys(pending, 0)
    returned: dict[str, int] = {}
    started: dict[str, int] = {}
    failed: dict[str, BaseException] = {}
    dead: list[str] = []
    expire_script = script("expire")
    while pending:
        calls = tuple(
            Call(expire_script, expire_script.keys_of(layout(name)), (EXPIRE_CHUNK,), safe=True) for name in pending
        )
        replies = yield Batch(calls, errors="return")
        again = []
        for name, reply in zip(pending, replies):
            if isinstance(reply, Exception):
                failed[name] = reply
                continue
            count, more, alive = reply[:3]
            expired[name] += count
            if len(reply) > 5:  # (what else came due: for the record, not in the reply's own dict)
                returned[name] = returned.get(name, 0) + int(reply[3]) + int(reply[4])
                started[name] = started.get(name, 0) + int(reply[5])
            if more:
                again.append(name)
            elif not alive:
                dead.append(name)
        pending = again
    yield from _unregister(dead, layout)
    done = Expired(
        {name: count for name, count in expired.items() if count},
        {name: n for name, n in returned.items() if n},
        {name: n for name, n in started.items() if n},
    )
    if failed:
        raise StreamsFailed("psexpire", done, failed)
    return done
