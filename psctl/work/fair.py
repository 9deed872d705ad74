"""Several streams for one worker, fairly:
which stream the next items are leased from.

While several streams have work, items are taken in smooth weighted
round-robin (nginx's: each pick, every stream that may have work gains its
weight, the one that gained most is picked and loses the sum of them), so
that weights 1:3:1 take b a b c b, and so on: each stream its share, spread
out, each by priority within itself. A lease of k items is k picks, leased
stream by stream; a stream that gave fewer than asked (empty, paused,
rate-limited, at its ``max_held``) gives the picks it did not use back and
is *dry*: left out of the picks, so that its share goes to the others,
until it is woken (an add, ``psresume``, ``pslimit`` push a wake-up token)
or ``DRY`` seconds pass while the others have work (``POLL`` while they all
wait: items written with plain commands, delayed items come due). A dry
stream gains nothing meanwhile: it comes back at its share, not with a burst.

``Shares`` is the picks' state (no I/O); ``weighted`` checks what a worker
was given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Union

from psctl.errors import InvalidArgument

# what a worker takes: a name, a list of names and (name, weight) pairs, or a dict of name to weight
Streams = Union[str, Iterable[Union[str, tuple[str, int]]], Mapping[str, int]]
MOST_WEIGHT = 1000  # weights are whole numbers from 1 to this
DRY = 0.05  # seconds a stream that gave fewer items than asked is left out (while others have work)
TRAILING_WEIGHT = re.compile(r"^(.+):([0-9]+)$")  # "b:3" on the command line; "jobs:2:1": "jobs:2", weight 1


def weighted(streams: Any) -> tuple[tuple[str, int], ...]:
    """The streams a worker takes from, each with its weight: a name (one
    stream), a list of names or ``(name, weight)`` pairs, or a mapping of
    name to weight; checked (``InvalidArgument``: an empty list, a name
    twice, a weight that is not a whole number from 1 to ``MOST_WEIGHT``)."""
    if isinstance(streams, str):
        streams = [streams]
    elif isinstance(streams, Mapping):
        streams = list(streams.items())
    elif not isinstance(streams, Iterable) or isinstance(streams, (bytes, bytearray)):
        raise InvalidArgument(
            f"streams must be a name, a list of names or (name, weight) pairs, or a dict of weights, got {streams!r}"
        )
    pairs: list[tuple[str, int]] = []
    seen: set[str] = set()
    for entry in streams:
        name, weight = (entry, 1) if isinstance(entry, str) else _pair(entry)
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"a stream name must be a non-empty string, got {name!r}")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MOST_WEIGHT:
            raise InvalidArgument(
                f"the weight of {name!r} must be a whole number from 1 to {MOST_WEIGHT}, got {weight!r}"
            )
        if name in seen:
            raise InvalidArgument(f"{name!r} is given twice: give each stream once, with its weight")
        seen.add(name)
        pairs.append((name, weight))
    if not pairs:
        raise InvalidArgument("give at least one stream to work on")
    return tuple(pairs)


def _pair(entry: Any) -> tuple[Any, Any]:
    if isinstance(entry, tuple) and len(entry) == 2:
        return entry
    raise InvalidArgument(f"a stream is a name or a (name, weight) pair, got {entry!r}")


def from_words(words: list[str]) -> tuple[tuple[str, int], ...]:
    """Streams as the command line gives them: ``a b:3 c``, a trailing
    ``:digits`` the weight (``jobs:2:1`` is ``jobs:2``, weight 1; ``a:x`` is
    the stream ``a:x``); one word alone is a name as it is (``psctl work
    jobs:2 -- CMD`` works on ``jobs:2``, as it always did: a weight means
    nothing alone). Checked as ``weighted`` checks them."""
    if len(words) == 1:
        return weighted(words[0])
    pairs: list[tuple[str, int]] = []
    for word in words:
        match = TRAILING_WEIGHT.match(word)
        pairs.append((match[1], int(match[2])) if match else (word, 1))
    return weighted(pairs)


def shown(streams: tuple[tuple[str, int], ...]) -> str:
    """Streams as the command line gives them, for messages: ``a``; ``a b:3 c``; ``jobs:2:1``."""
    if len(streams) == 1:
        return streams[0][0]
    return " ".join(name if weight == 1 and not TRAILING_WEIGHT.match(name) else f"{name}:{weight}"
                    for name, weight in streams)  # fmt: skip


class Picks:
    """A plan of picks: how many items to lease from each stream, in the
    order they were first picked."""

    __slots__ = ("among", "counts", "order", "total")

    def __init__(self, among: list[str], total: int) -> None:
        self.among = among  # the streams it picked among
        self.counts: dict[str, int] = {}
        self.order: list[str] = []  # the stream of each pick, in turn
        self.total = total  # the sum of their weights


class Shares:
    """The smooth weighted round-robin's state over ``streams`` ((name,
    weight) pairs), and which are dry until when (seconds on the worker's
    clock). Not thread-safe: the engine uses it under its board's lock."""

    def __init__(self, streams: tuple[tuple[str, int], ...]) -> None:
        self.weights = dict(streams)
        self.current = dict.fromkeys(self.weights, 0)
        self.dry_until = dict.fromkeys(self.weights, 0.0)
        # when a dry stream's last lease said it may hand items out (its
        # ``retry_in``: a token, a held slot, a delayed item): a wait ends then
        self.due = dict.fromkeys(self.weights, math.inf)

    def ready(self, now: float) -> list[str]:
        """The streams that may have work (not dry), in the order given."""
        return [name for name, until in self.dry_until.items() if until <= now]

    def plan(self, count: int, among: list[str]) -> Picks:
        """``count`` picks among the streams ``among``."""
        weights, current = self.weights, self.current
        picks = Picks(among, sum(weights[name] for name in among))
        for _ in range(count if among else 0):
            best = among[0]
            for name in among:
                current[name] += weights[name]
                if current[name] > current[best]:
                    best = name
            current[best] -= picks.total
            picks.counts[best] = picks.counts.get(best, 0) + 1
            picks.order.append(best)
        return picks

    def unpick(self, picks: Picks, name: str, count: int) -> None:
        """``count`` of ``name``'s picks in ``picks`` were not used: undone, as
        if never made (each pick only added to every one's weight and took the
        sum from one: undone in any order)."""
        if count <= 0:
            return
        for other in picks.among:
            self.current[other] -= self.weights[other] * count
        self.current[name] += picks.total * count
        picks.counts[name] -= count

    def settle(
        self, picks: Picks, name: str, got: int, now: float, retry_in: float | None = None, told: bool = True
    ) -> None:
        """``name`` gave ``got`` items for its picks: the picks it did not use
        are undone, and it is dry for ``DRY`` seconds (its credit forfeit: it
        comes back at its share, not owed what the others took meanwhile), and
        looked at again ``retry_in`` seconds from ``now`` at the latest when
        its lease said so (``Lease.retry_in``: limits hold its items back).
        A lease that took some items but fewer than asked says nothing of what
        comes (a limit, or the last of them?), nor does one not ``told``
        (``psacklease``'s) that took fewer: the stream is looked at again after
        ``DRY`` at the latest (that lease says why), not only when woken."""
        asked = picks.counts.get(name, 0)
        if retry_in is not None:
            self.due[name] = now + retry_in
        elif got >= asked or (told and got == 0):  # (all it asked; or nothing, and nothing to come)
            self.due[name] = math.inf
        else:  # some but not all, or an acknowledgement's lease short: why is not said
            due = self.due[name]
            self.due[name] = now + DRY if due <= now else min(due, now + DRY)  # (one said, still to come, stands)
        if got < asked:
            self.unpick(picks, name, asked - got)
            self.dry_until[name] = now + DRY
            self.current[name] = min(self.current[name], 0)

    def first(self, picks: Picks, name: str) -> int:
        """How many of the first picks in ``picks`` are ``name``'s, every later
        pick undone (an acknowledgement of ``name``'s items leases more of
        ``name`` only when it is ``name``'s turn, as many as come in a row:
        the queue keeps the picks' order)."""
        run = 0
        while run < len(picks.order) and picks.order[run] == name:
            run += 1
        for other, count in list(picks.counts.items()):
            self.unpick(picks, other, count - (run if other == name else 0))
        return run

    def wait_longer(self, names: Iterable[str], until: float) -> None:
        """``names`` are looked at again at ``until`` at the soonest, unless
        woken (a wait covers them) or due sooner (their ``retry_in``)."""
        for name in names:
            self.dry_until[name] = max(self.dry_until[name], min(until, self.due[name]))

    def woken(self, name: str) -> None:
        self.dry_until[name] = 0.0

    def next_ready(self) -> float:
        """When the first dry stream is looked at again."""
        return min(self.dry_until.values())
