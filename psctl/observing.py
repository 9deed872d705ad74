"""Observing streams: the plans of ``psstats``, ``psitem`` and
``pslift``, beside ``operations.py``'s.

The scripts keep the counters themselves (``lua/includes/counters.lua``, in
``NAME:stats``); ``lua/stats-10.lua`` reads a stream's state, counters and
flow control in one call, and the stats of many streams go in one round trip
per server (a pipeline; in a cluster, one per node).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from psctl.encoding import check_count, decode_key, encode_key, flag, in_chunks, utc_moment
from psctl.errors import InvalidArgument, StreamsFailed
from psctl.flow import limits_of
from psctl.layout import StreamKeys
from psctl.operations import ADD_CHUNK, Layout, registered
from psctl.protocol import Batch, Call, Plan
from psctl.scripts import script
from psctl.types import Counters, Failure, Item, KeyRow, State, Stats

# every counter the scripts keep, in SPEC §8's order
COUNTERS = (
    "added", "updated", "refused", "pulled", "leased", "acked", "released", "redelivered", "dead", "expired",
    "removed",
)  # fmt: skip
# the states of psitem, in the order the first that applies is taken
STATES = ("held", "dead", "delayed", "waiting", "cooling", "gated", "absent")
OVERDUE_BUDGET = 1_000  # held items a stats call looks at, at most, to count the overdue ones


def _stats_call(keys: StreamKeys) -> Call:
    stats_script = script("stats")
    return Call(stats_script, stats_script.keys_of(keys), (OVERDUE_BUDGET,), safe=True)


def _score(text: Any) -> float | None:
    return None if text is None else float(text)  # (a false of Lua arrives as None)


def _moment(seconds: float) -> datetime:
    return utc_moment(seconds)


def _stats(name: str, reply: Sequence[Any]) -> Stats:
    waiting, held, overdue, capped, gated, cooling, next_end, dead, top, bottom, counted, time, delayed, due, tokens = (
        reply[:15]
    )
    counters = dict.fromkeys(COUNTERS, 0)
    for i in range(0, len(counted), 2):
        field = decode_key(counted[i])
        try:
            counters[field] = int(counted[i + 1])
        except ValueError:  # not a number: written by another tool
            continue
    return {
        "name": name,
        "waiting": int(waiting),
        "delayed": int(delayed),
        "next_delayed_due": None if due is None else _moment(int(float(due)) / 1000),
        "held": int(held),
        "overdue": int(overdue),
        "overdue_capped": bool(capped),
        "gated": int(gated),
        "cooling": int(cooling),
        "next_cool_down_end": None if next_end is None else _moment(float(next_end)),
        "dead": int(dead),
        "top_score": _score(top),
        "bottom_score": _score(bottom),
        "counters": cast(Counters, counters),
        "server_time": _moment(int(time[0]) + int(time[1]) / 1e6),
        **limits_of(reply[15:]),
        "tokens": None if tokens is None else float(tokens),
    }


def stats(keys: StreamKeys) -> Plan:
    """``psstats``: one stream's state and counters, in one round trip."""
    reply = yield _stats_call(keys)
    return _stats(keys.name, reply)


def stats_many(layout: Layout, wanted: Iterable[str] | None) -> Plan:
    """``psstatsmany``: the stats of ``wanted`` streams (every registered one
    when None), in one round trip per server. A stream that fails (a key of
    the wrong type, its cluster node down) is named in ``StreamsFailed``,
    once the others are read."""
    chosen = list((yield from registered()) if wanted is None else wanted)
    if not chosen:
        return []
    for name in chosen:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"a stream name must be a non-empty string, got {name!r}")
    replies = yield Batch(tuple(_stats_call(layout(name)) for name in chosen), errors="return")
    found: list[Stats] = []
    failed: dict[str, BaseException] = {}
    for name, reply in zip(chosen, replies):
        if isinstance(reply, Exception):
            failed[name] = reply
        else:
            found.append(_stats(name, reply))
    if failed:
        raise StreamsFailed("psstatsmany", {s["name"]: s for s in found}, failed)
    return found


def item(keys: StreamKeys, key: Any) -> Plan:
    """``psitem``: where one item stands, by the server's clock; only the fields that apply."""
    item_script = script("item")
    state, score, deliveries, deadline, ends, gated, later, failure = yield Call(
        item_script, item_script.keys_of(keys), (encode_key(key),), safe=True
    )
    state = decode_key(state)
    found: Item = {"state": cast(State, state)}
    # (a false of Lua arrives as None)
    if score is not None:
        found["score"] = float(score)
    if state == "held" and deadline is not None:
        found["until"] = _moment(int(deadline) / 1000)  # the lease's deadline
    elif state == "delayed" and later is not None:
        found["until"] = _moment(int(later) / 1000)  # when it starts waiting
    elif ends is not None:
        found["until"] = _moment(float(ends))  # the cool-down's end
    if deliveries is not None:
        found["deliveries"] = int(deliveries)
    if gated and state != "gated":
        found["gated"] = True
    if failure:
        found["last_failure"] = failure_of(failure)
    return found


def failure_of(failure: Sequence[Any]) -> Failure:
    """An item's last failure, as the scripts keep it ({reason, unix ms, delivery})."""
    reason, at, delivery = (list(failure) + [None, None, None])[:3]
    return {
        "reason": None if reason is None else decode_key(reason),
        "at": None if at is None else _moment(int(at) / 1000),
        "delivery": None if delivery is None else int(delivery),
    }


def lift(keys: StreamKeys, items: Iterable[Any], dry_run: bool = False) -> Plan:
    """``pslift``: ends the gates and cool-downs of ``items``; how many had one.
    ``dry_run`` counts them and changes nothing."""
    if isinstance(items, (str, bytes)):
        items = [items]
    lifted = 0
    # each key once, so that one named twice counts once even across chunks
    for chunk in in_chunks(list(dict.fromkeys(encode_key(key) for key in items)), ADD_CHUNK):
        lift_script = script("lift")
        lifted += int((yield Call(lift_script, lift_script.keys_of(keys), (flag(dry_run), *chunk), safe=dry_run)))
    return lifted


# the states ``pskeys(state=...)`` lists, and each row's fields after the key
LISTED = {
    "waiting": ("score", "deliveries"),
    "delayed": ("until", "score", "deliveries", "reason"),
    "held": ("token", "deadline", "score", "deliveries"),
    "cooling": ("until",),
    "gated": (),
    "dead": ("score", "deliveries", "reason", "failed_at"),
}
PAGE = 1000  # keys per page of a listing


def state_page(keys: StreamKeys, state: str, start: Any = 0, count: int = PAGE) -> Plan:
    """One page of the keys in ``state``, each a dict of what applies (see
    ``LISTED``): ``(rows, following)``, ``following`` where the next page
    starts (None after the last). Pages are not a snapshot."""
    if state not in LISTED:
        raise InvalidArgument(f"state must be one of {', '.join(LISTED)}, got {state!r}")
    state_script = script("state")
    following, flat = yield Call(
        state_script, state_script.keys_of(keys), (state, start, count), safe=True
    )
    fields = LISTED[state]
    width = 1 + len(fields)
    rows: list[KeyRow] = []
    for i in range(0, len(flat), width):
        row: Any = {"key": decode_key(flat[i])}
        for name, value in zip(fields, flat[i + 1 : i + width]):
            row[name] = _field(name, value)
        rows.append(row)
    return rows, None if following is None else decode_key(following)


def _field(name: str, value: Any) -> Any:
    if value is None:  # (a false of Lua)
        return None
    if name == "score":
        return float(value)
    if name == "deliveries":
        return int(value)
    if name in ("until", "deadline", "failed_at"):
        return _moment(int(float(value)) / 1000)  # unix ms
    return decode_key(value)


def in_state(keys: StreamKeys, state: str, limit: int | None = None) -> Plan:
    """``pskeys(name, state=...)``: the keys in ``state``, page by page, at most ``limit``."""
    if limit is not None:
        limit = check_count(limit, "limit")
    found: list[KeyRow] = []
    start: Any = 0
    while limit is None or len(found) < limit:
        rows, start = yield from state_page(keys, state, start)
        found.extend(rows)
        if start is None:
            break
    return found if limit is None else found[:limit]
