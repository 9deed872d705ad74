"""The types a user of psctl meets: what the ``ps*`` methods return, and what
they are given besides plain values. Import them from here (or from
``psctl``); the modules that build them import them from here too.

This module imports nothing of psctl's but ``defaults``, so that anything may
import it. (No ``from __future__ import annotations``: a ``TypedDict`` of
string annotations costs several times as much to make, on every start.)
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, TypedDict

from psctl import defaults

__all__ = [
    "AckLease",
    "AddSummary",
    "Added",
    "Counters",
    "DeadItems",
    "Expired",
    "Failure",
    "Item",
    "KeyRow",
    "Lease",
    "Limits",
    "ListedState",
    "RefusedBy",
    "Refusal",
    "State",
    "Stats",
    "StopWaiting",
]

State = Literal["waiting", "delayed", "held", "cooling", "gated", "dead", "absent"]
"""Where an item stands (``psitem``; ``psstats`` counts them)."""
ListedState = Literal["waiting", "delayed", "held", "cooling", "gated", "dead"]
"""The states ``pskeys(state=...)`` lists."""
Refusal = Literal["held", "dead", "gated", "cooling"]
"""Why an add refused a key, most telling first."""


# -- given -------------------------------------------------------------------------


class StopWaiting:
    """Ends a blocking pull early: ``set()`` it from a signal handler, another
    thread or a task. A pull given one (``pspull(..., block=..., stop=it)``)
    checks it before and after each wait and then returns ``{}`` having taken
    nothing. Any object with ``is_set()`` works (a ``threading.Event``); this
    one also says, in ``waiting``, whether the pull is blocked in a wait at this
    moment, when interrupting it outright (raising from a signal handler) can
    lose nothing."""

    __slots__ = ("requested", "waiting")

    def __init__(self) -> None:
        self.requested = False
        self.waiting = False

    def set(self) -> None:
        self.requested = True

    def is_set(self) -> bool:
        return self.requested


# -- adding ------------------------------------------------------------------------


class Added(NamedTuple):
    """``psadd(..., explain=True)``: the new score, or why the key was refused
    (``reason``: held, dead, gated, cooling); ``until`` (UTC): when cooling,
    when the cool-down ends; when the item was added delayed, when it starts
    waiting."""

    score: float | None
    reason: str | None = None
    until: datetime | None = None


class RefusedBy(TypedDict):
    """How many keys an add refused, by why (``Refusal``)."""

    held: int
    dead: int
    gated: int
    cooling: int


class AddSummary(TypedDict):
    """``psaddmany(..., summary=True)``: how many items were added and refused, and why."""

    added: int
    refused: int
    refused_by: RefusedBy


# -- leases ------------------------------------------------------------------------


class Lease:
    """``pslease``: items held under ``token`` until ``deadline`` (UTC, by the
    server's clock): ``items`` (key → value, in pull order), each one's
    ``scores`` (what it had when it was leased) and ``deliveries`` (1 on its
    first lease). Empty (false) when nothing was handed out; then
    ``retry_in`` is how many seconds until the server expects to hand some
    out (a delayed item comes due, the rate limit's next token, a held slot's
    lease runs out), None when nothing is expected (an empty or
    paused stream: an add or a resume wakes a blocked lease). ``ack``,
    ``release`` and ``extend`` act on it early, through the client that
    leased it; with an async client they are awaitable."""

    __slots__ = ("_client", "name", "token", "deadline", "items", "_scores", "_deliveries", "retry_in")

    def __init__(
        self,
        name: str,
        token: str,
        deadline: datetime | None = None,
        items: dict[str, Any] | None = None,
        scores: dict[str, float] | list[Any] | None = None,
        deliveries: dict[str, int] | list[int] | None = None,
        client: Any = None,
        retry_in: float | None = None,
    ) -> None:
        self._client, self.name, self.token, self.deadline = client, name, token, deadline
        self.items = items or {}
        self.retry_in = retry_in
        # (a lease of a thousand items may come with its scores and deliveries
        # as the server's lists, in the order of ``items``: read when first asked for)
        self._scores = {} if scores is None else scores
        self._deliveries = {} if deliveries is None else deliveries

    @property
    def scores(self) -> dict[str, float]:
        if type(self._scores) is list:
            self._scores = dict(zip(self.items, map(float, self._scores)))
        return self._scores  # type: ignore[return-value]

    @property
    def deliveries(self) -> dict[str, int]:
        if type(self._deliveries) is list:
            counts = self._deliveries
            self._deliveries = dict(zip(self.items, counts)) if counts else dict.fromkeys(self.items, 1)
        return self._deliveries  # type: ignore[return-value]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Lease({self.name!r}, token={self.token!r}, deadline={self.deadline!r}, items={list(self.items)!r})"

    def ack(self, keys: Iterable[Any] | None = None, gate: bool = False, expire_at: Any = defaults.COOL_DOWN) -> Any:
        """``psack`` of this lease's items (all it still holds when ``keys`` is None)."""
        return self._client.psack(self.name, self.token, keys, gate=gate, expire_at=expire_at)

    def release(
        self,
        keys: Iterable[Any] | None = None,
        score: float | None = None,
        delay: Any = None,
        attempted: bool = True,
        reason: Any = None,
        *,
        dead: bool = False,
    ) -> Any:
        """``psrelease`` of this lease's items (all it still holds when ``keys`` is None)."""
        return self._client.psrelease(
            self.name, self.token, keys, score=score, delay=delay, attempted=attempted, reason=reason, dead=dead
        )

    def extend(self, lease: Any = defaults.LEASE) -> Any:
        """``psextend``: the new deadline, or None when it holds nothing any more."""
        return self._client.psextend(self.name, self.token, lease)


class AckLease(NamedTuple):
    """``psacklease``: how many items of the old lease were acknowledged
    (``acked``, as ``psack`` counts them), and the ``lease`` of the next items
    (empty, with a token that holds nothing, when nothing was waiting or
    ``count`` was 0)."""

    acked: int
    lease: Lease


class DeadItems(dict):  # type: ignore[type-arg]
    """``psdead``'s reply: key → value of the dead items, highest last score
    first (the order ``psrequeue`` gives them back in), and for each:
    ``deliveries`` (how many leases it had), ``reasons`` (why its last
    delivery failed: the reason given to ``psrelease``, ``"lease expired"``,
    or None) and ``failed_at`` (when, UTC; None where no failure is kept)."""

    def __init__(
        self,
        items: dict[str, Any],
        deliveries: dict[str, int],
        reasons: dict[str, str | None] | None = None,
        failed_at: dict[str, datetime | None] | None = None,
    ) -> None:
        super().__init__(items)
        self.deliveries: dict[str, int] = deliveries
        self.reasons: dict[str, str | None] = reasons if reasons is not None else dict.fromkeys(items)
        self.failed_at: dict[str, datetime | None] = failed_at if failed_at is not None else dict.fromkeys(items)


# -- what is due -------------------------------------------------------------------


class Expired(dict):  # type: ignore[type-arg]
    """``psexpire``'s reply: ``{name: cool-downs ended}`` for the streams with
    any; and what else came due, per stream: ``returned``, items of leases
    that ran out (back to the stream, or dead), and ``started``, delayed items
    that started waiting."""

    def __init__(self, ended: dict[str, int], returned: dict[str, int], started: dict[str, int]) -> None:
        super().__init__(ended)
        self.returned: dict[str, int] = returned
        self.started: dict[str, int] = started


# -- observing ---------------------------------------------------------------------


class Counters(TypedDict):
    """What the scripts have counted for a stream since it was created
    (cumulative; a counter another tool wrote appears beside these)."""

    added: int
    updated: int
    refused: int
    pulled: int
    leased: int
    acked: int
    released: int
    redelivered: int
    dead: int
    expired: int
    removed: int


class Limits(TypedDict):
    """A stream's flow control, as ``pslimit`` leaves it: whether it
    is ``paused``; its rate limit, ``rate`` items per ``per`` with bursts of at
    most ``burst`` (all three None without one); ``max_held``, the most items
    leases may hold at once (None: no cap); ``aging``, the wait that gives a
    waiting item one point of priority (None: no aging)."""

    paused: bool
    rate: float | None
    per: timedelta | None
    burst: int | None
    max_held: int | None
    aging: timedelta | None


class Stats(Limits):
    """``psstats``: a stream's state and counters, by the server's clock
    (``cooling``: cool-downs still to end; ``overdue``: held items whose lease
    ran out, not yet returned, at most a budget of them looked at:
    ``overdue_capped``); its flow control (``Limits``' fields) and the
    ``tokens`` in its rate limit's bucket now (None without a rate limit)."""

    name: str
    waiting: int
    delayed: int
    next_delayed_due: datetime | None
    held: int
    overdue: int
    overdue_capped: bool
    gated: int
    cooling: int
    next_cool_down_end: datetime | None
    dead: int
    top_score: float | None
    bottom_score: float | None
    counters: Counters
    server_time: datetime
    tokens: float | None


class Failure(TypedDict):
    """An item's last failure: why, when (UTC) and on which delivery."""

    reason: str | None
    at: datetime | None
    delivery: int | None


class _State(TypedDict):
    state: State


class Item(_State, total=False):
    """``psitem``: where an item stands (``state``), with only the fields that
    apply: ``until`` is the lease's deadline (held), when it starts waiting
    (delayed) or when its cool-down ends; ``gated`` when a gate is kept beside
    another state."""

    score: float
    until: datetime
    deliveries: int
    gated: bool
    last_failure: Failure


class _Key(TypedDict):
    key: str


class KeyRow(_Key, total=False):
    """A row of ``pskeys(name, state=...)``: the ``key``, and the fields its
    state lists (None where the server keeps none): ``until`` (delayed,
    cooling), ``token`` and ``deadline`` (held), ``score``, ``deliveries``,
    ``reason`` (dead, and delayed: a retry's), ``failed_at`` (dead)."""

    score: float | None
    deliveries: int | None
    until: datetime | None
    token: str | None
    deadline: datetime | None
    reason: str | None
    failed_at: datetime | None
