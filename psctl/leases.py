"""Leases: at-least-once work that survives a dead worker.

``pslease`` takes items like a pull but *holds* them under a new random token
until a deadline, by the server's clock; ``psack`` finishes them, ``psrelease``
gives them back, ``psextend`` moves the deadline. A lease that runs out gives
its items back by itself, inside every pull and lease on the stream and in
``psexpire`` (``lua/includes/reclaim.lua``); an item leased too often goes to
the dead set instead. A token acts only on what it still holds, so
``psack``, ``psrelease`` and ``psextend`` are safe to repeat after a lost reply.

The plans here are the lease family's, beside ``operations.py``'s; the Lua
scripts are ``lua/lease-13.lua`` (``leaseone-13`` for one item), ``ack-10``,
``acklease-15`` (an acknowledgement and the next lease in one call),
``release-12``, ``extend-3``, ``dead-4`` and ``requeue-5``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from psctl import defaults
from psctl.encoding import (
    MAX_SECONDS,
    check_count,
    decode_key,
    decode_keys,
    encode_key,
    encode_score,
    expiry,
    flag,
    in_chunks,
    utc_moment,
)
from psctl.errors import InvalidArgument
from psctl.layout import StreamKeys
from psctl.operations import ADD_CHUNK, Clock, monotonic, waiting
from psctl.protocol import Call, Plan
from psctl.scripts import script
from psctl.types import AckLease, DeadItems, Lease  # (here too, as before psctl.types)

MAX_LEASE = 1000  # items per lease: a lease that runs out comes back in one short call
DEFAULT_LEASE = defaults.LEASE  # (the name callers knew before psctl.defaults)


class Leased:
    """``psleased``: a context manager (``with`` or ``async with``) yielding a
    ``Lease``. A normal exit acknowledges what the lease still holds; an
    exception gives it back, at once, with the exception as its reason, and
    goes on."""

    def __init__(self, client: Any, name: str, options: dict[str, Any]) -> None:
        self._client, self._name, self._options = client, name, options
        self.lease: Lease | None = None

    def __enter__(self) -> Lease:
        self.lease = self._client.pslease(self._name, **self._options)
        return self.lease

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if self.lease:
            if kind is None:
                self.lease.ack()
            else:
                self.lease.release(reason=_failure(error))

    async def __aenter__(self) -> Lease:
        self.lease = await self._client.pslease(self._name, **self._options)
        return self.lease

    async def __aexit__(self, kind: Any, error: Any, trace: Any) -> None:
        if self.lease:
            if kind is None:
                await self.lease.ack()
            else:
                await self.lease.release(reason=_failure(error))


# -- checks ------------------------------------------------------------------------


def milliseconds(value: Any, what: str, *, zero: bool = False) -> int:
    """A duration (``timedelta`` or seconds) as whole milliseconds, rounded up."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidArgument(f"{what} must be a timedelta or a number of seconds, got {value!r}")
    if not (seconds > 0 or (zero and seconds == 0)):
        raise InvalidArgument(f"{what} must be {'at least 0' if zero else 'more than 0'} seconds, got {seconds:g}")
    if seconds > MAX_SECONDS:
        raise InvalidArgument(f"{what} must be at most {MAX_SECONDS:,} seconds (about 31 years), got {seconds:g}")
    return max(int(-(-seconds * 1000 // 1)), 0 if zero else 1)


def _max_deliveries(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        raise InvalidArgument(f"max_deliveries must be a whole number from 1, or None, got {value!r}")
    return value


def _which(keys: Iterable[Any] | None) -> list[list[bytes]] | None:
    """The keys asked for, in chunks of one script call each; None for "all"."""
    if keys is None:
        return None
    if isinstance(keys, (str, bytes)):
        keys = [keys]
    return list(in_chunks([encode_key(key) for key in keys], ADD_CHUNK))


def _deadline(ms: Any) -> datetime:
    return utc_moment(int(ms) / 1000)


def new_token() -> str:
    """96 random bits, in hex: never a leading "-" that a command line would read as an option."""
    return os.urandom(12).hex()


# -- plans -------------------------------------------------------------------------


def lease(
    keys: StreamKeys,
    token: str,
    count: int,
    length: Any,
    max_deliveries: Any,
    block: float | None = None,
    stop: Any = None,
    clock: Clock = monotonic,
) -> Plan:
    """``pslease``: the items taken, held under ``token`` (``new_token()``). The
    ``Lease`` comes back with no client: the one that runs the plan gives it
    itself (``Lease.ack`` and the rest go through it)."""
    count = _lease_count(count)
    ms = milliseconds(length, "lease")
    most = _max_deliveries(max_deliveries)
    if count == 0:
        return Lease(keys.name, token)
    if count == 1:  # the most common lease, in its own shorter script
        one = script("leaseone")
        call = Call(one, one.keys_of(keys), (token, ms, most))
        reply = (yield call) if block is None else (yield from waiting(call, keys, block, stop, clock))
        if len(reply) < 2:  # nothing taken
            return _nothing(keys, token, reply)
        deadline, key, value, score, delivered = reply
        name = decode_key(key)
        return Lease(keys.name, token, _deadline(deadline), {name: value}, {name: float(score)}, {name: delivered})
    many = script("lease")
    call = Call(many, many.keys_of(keys), (count, token, ms, most))
    reply = yield from waiting(call, keys, block, stop, clock)
    if len(reply) < 2:  # nothing taken
        return _nothing(keys, token, reply)
    return _taken(keys, token, *reply)


def _nothing(keys: StreamKeys, token: str, reply: Any) -> Lease:
    """An empty lease, from a reply that took nothing: ``{}``, or ``{ms}`` until
    the server expects to hand items out (``Lease.retry_in``)."""
    return Lease(keys.name, token, retry_in=int(reply[0]) / 1000 if reply else None)


def _lease_count(count: Any) -> int:
    count = check_count(count)
    if count > MAX_LEASE:
        raise InvalidArgument(f"a lease holds at most {MAX_LEASE} items, got count={count}")
    return count


def _taken(keys: StreamKeys, token: str, deadline: Any, taken: Any, found: Any, scores: Any, counts: Any) -> Lease:
    """The ``Lease`` of what ``lease-13.lua`` (or ``acklease-15.lua``) took."""
    names = decode_keys(taken)
    # (no deliveries listed: every item is on its first)
    return Lease(keys.name, token, _deadline(deadline), dict(zip(names, found)), scores, counts or [])


def _token(token: Any) -> bytes:
    if not isinstance(token, (str, bytes)) or not token:
        raise InvalidArgument(f"a lease's token must be a non-empty string, got {token!r}")
    return encode_key(token)


def ack(keys: StreamKeys, token: Any, items: Iterable[Any] | None, gate: bool, expire_at: Any) -> Plan:
    head = _ack_head(token, gate, expire_at)
    return (yield from _acked(keys, head, _which(items)))


def _ack_head(token: Any, gate: bool, expire_at: Any) -> tuple[Any, ...]:
    """An acknowledgement's first arguments (``ack-10.lua``'s ARGV[1..4])."""
    return (_token(token), flag(gate), *expiry(expire_at))


def _acked(keys: StreamKeys, head: tuple[Any, ...], chunks: list[list[bytes]] | None) -> Plan:
    """``psack`` of the keys in ``chunks`` (all the token holds: None), a call per chunk."""
    ack_script = script("ack")
    ack_keys = ack_script.keys_of(keys)
    if chunks is None:
        return int((yield Call(ack_script, ack_keys, (*head, b"all"), safe=True)))
    acked = 0
    for chunk in chunks:
        acked += int((yield Call(ack_script, ack_keys, (*head, b"keys", *chunk), safe=True)))
    return acked


def ack_lease(
    keys: StreamKeys,
    token: Any,
    items: Iterable[Any] | None,
    gate: bool,
    expire_at: Any,
    new: str,
    count: int,
    length: Any,
    max_deliveries: Any,
) -> Plan:
    """``psacklease``: ``psack`` of ``token``'s ``items``, then ``pslease``
    (never waiting) under ``new`` (``new_token()``), in one call of
    ``acklease-15.lua``. Not safe to repeat: it leases. Keys past the first
    thousand are acknowledged first, by ``ack-10.lua``, a call per thousand; with
    ``count=0`` only ``ack-10.lua`` runs. The ``Lease`` comes back with no
    client, as ``lease``'s does."""
    head = _ack_head(token, gate, expire_at)
    count = _lease_count(count)
    ms = milliseconds(length, "lease")
    most = _max_deliveries(max_deliveries)
    chunks = _which(items)
    if count == 0:
        return AckLease((yield from _acked(keys, head, chunks)), Lease(keys.name, new))
    acked = 0
    if chunks is None:
        which: tuple[Any, ...] = (b"all",)
    else:
        if len(chunks) > 1:
            acked = yield from _acked(keys, head, chunks[:-1])
        which = (b"keys", *chunks[-1]) if chunks else (b"keys",)
    combined = script("acklease")
    reply = yield Call(combined, combined.keys_of(keys), (*head, count, new, ms, most, *which))
    acked += int(reply[0])
    if len(reply) < 2:  # nothing leased
        return AckLease(acked, Lease(keys.name, new))
    return AckLease(acked, _taken(keys, new, *reply[1:]))


REASON_BYTES = 2048  # a failure's reason is kept up to this size


def reason_text(reason: Any) -> bytes:
    """A failure's reason as it is kept: text (or bytes, or an exception: its
    type and message), cut to ``REASON_BYTES`` at a character boundary."""
    if isinstance(reason, BaseException):
        reason = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    if not isinstance(reason, (str, bytes)):
        raise InvalidArgument(f"a reason must be text, got {type(reason).__name__}")
    raw = reason.encode("utf-8", "surrogateescape") if isinstance(reason, str) else reason
    if len(raw) <= REASON_BYTES:
        return raw
    return raw[:REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


def _failure(error: BaseException | None) -> str | None:
    """What an exception that ended a ``psleased`` block says, as a reason."""
    return None if error is None else reason_text(error).decode("utf-8", "replace")


def release(
    keys: StreamKeys,
    token: Any,
    items: Iterable[Any] | None,
    score: Any,
    delay: Any,
    attempted: bool = True,
    reason: Any = None,
    dead: bool = False,
) -> Plan:
    """``psrelease``; ``dead``: the items go to the dead set now, whatever
    their deliveries (``score`` and ``delay`` do not apply then, as for an
    item at its max_deliveries; never with ``attempted=False``)."""
    token_bytes = _token(token)
    if dead and not attempted:
        raise InvalidArgument("a release with dead=True is of items worked on: it takes no attempted=False")
    score_text = b"" if score is None else encode_score(score)
    delay_ms = 0 if delay is None else milliseconds(delay, "delay", zero=True)
    why = (b"0", b"") if reason is None else (b"1", reason_text(reason))
    chunks = _which(items)
    release_script = script("release")
    release_keys = release_script.keys_of(keys)
    head = (token_bytes, score_text, delay_ms, b"dead" if dead else flag(attempted), *why)
    if chunks is None:
        released, _ = yield Call(release_script, release_keys, (*head, b"all"), safe=True)
        return int(released)
    total = 0
    for chunk in chunks:
        released, _ = yield Call(release_script, release_keys, (*head, b"keys", *chunk), safe=True)
        total += int(released)
    return total


def extend(keys: StreamKeys, token: Any, length: Any) -> Plan:
    token_bytes = _token(token)
    ms = milliseconds(length, "lease")
    extend_script = script("extend")
    reply = yield Call(extend_script, extend_script.keys_of(keys), (token_bytes, ms), safe=True)
    return None if reply is None else _deadline(reply)


def dead(keys: StreamKeys, limit: int | None) -> Plan:
    stop = -1 if limit is None else check_count(limit, "limit") - 1
    if stop == -1 and limit == 0:
        return DeadItems({}, {})
    return (yield from dead_page(keys, 0, stop))


def dead_page(keys: StreamKeys, start: int, stop: int) -> Plan:
    """The dead items from rank ``start`` to ``stop`` (-1: the last)."""
    dead_script = script("dead")
    taken, found, counts, reasons, times = yield Call(dead_script, dead_script.keys_of(keys), (start, stop), safe=True)
    names = decode_keys(taken)
    return DeadItems(
        dict(zip(names, found)),
        {key: int(n) for key, n in zip(names, counts)},
        {key: None if why is None else decode_key(why) for key, why in zip(names, reasons)},
        {key: None if at is None else _deadline(at) for key, at in zip(names, times)},
    )


def requeue(keys: StreamKeys, items: Iterable[Any] | None, score: Any) -> Plan:
    score_text = b"" if score is None else encode_score(score)
    chunks = _which(items)
    requeue_script = script("requeue")
    requeue_keys = requeue_script.keys_of(keys)
    if chunks is None:
        return int((yield Call(requeue_script, requeue_keys, (score_text, b"all"))))
    total = 0
    for chunk in chunks:
        total += int((yield Call(requeue_script, requeue_keys, (score_text, b"keys", *chunk))))
    return total
