"""The leases a worker holds, kept (as BullMQ's lock manager keeps its
locks): the engine tells the keeper what it took (``track``) and what it is
done with (``untrack``); the keeper extends what is still held every third of
the lease's length and gives back what was taken but never started. How a
lease is extended, and through which client, is the keeper's alone.

Every request goes through ``Patience.call``: tried again while the server
does not answer, until it is declared lost (``ServerLost``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from psctl.work.clock import Clock
from psctl.work.options import Item, WorkOptions
from psctl.work.patience import Patience


class Holding:
    """A lease the worker still holds items of."""

    __slots__ = ("extended", "items", "stream", "until")

    def __init__(self, items: int, now: float, stream: str) -> None:
        self.items, self.extended, self.stream = items, now, stream
        self.until = 0.0  # a handler asked for it to be held until then at least (by the worker's clock)


class LeaseKeeper:
    """``client``'s ``psextend`` and ``psrelease`` for the worker's leases, each in its own stream."""

    def __init__(
        self, client: Any, options: WorkOptions, patience: Patience, clock: Clock, warn: Callable[[str], None]
    ) -> None:
        self._client, self._options, self._patience, self._clock, self._warn = client, options, patience, clock, warn
        self._every = options.lease / 3
        self._lock = threading.Lock()
        self._leases: dict[str, Holding] = {}

    def track(self, token: str, items: int, stream: str) -> None:
        """A lease was taken in ``stream``, of ``items`` items."""
        with self._lock:
            self._leases[token] = Holding(items, self._clock.now(), stream)

    def untrack(self, token: str, items: int = 1) -> None:
        """The worker is done with ``items`` items of the lease ``token``."""
        with self._lock:
            holding = self._leases.get(token)
            if holding is not None:
                holding.items -= items
                if holding.items <= 0:
                    del self._leases[token]

    def keep_until(self, token: str, until: float) -> None:
        """A handler extended the lease ``token`` itself, up to ``until``: the
        keeper's own extensions do not cut that short."""
        with self._lock:
            holding = self._leases.get(token)
            if holding is not None:
                holding.until = max(holding.until, until)

    def next_due(self) -> float:
        """When the next lease is due to be extended."""
        with self._lock:
            extended = [holding.extended for holding in self._leases.values()]
        return min(extended, default=self._clock.now()) + self._every

    def extend_due(self) -> None:
        """Moves the deadline of each lease still held, every third of its length."""
        now = self._clock.now()
        with self._lock:
            due = [(holding.stream, token, max(self._options.lease, holding.until - now))
                   for token, holding in self._leases.items() if now - holding.extended >= self._every]  # fmt: skip
        for stream, token, length in due:
            deadline = self._patience.call(self._client.psextend, stream, token, length)
            with self._lock:
                holding = self._leases.get(token)
                if holding is None:
                    continue
                holding.extended = now
                lost_lease = deadline is None  # it ran out before it could be extended: its items are not ours
                if lost_lease:
                    del self._leases[token]
            if lost_lease:
                self._warn(f"a lease ran out before it could be extended: its items may run again ({token})")

    def give_back(self, items: Iterable[Item], *, once: bool = False) -> None:
        """Items taken but never started (or stopped) go back at once, their
        delivery uncounted; ``once``: one try, without patience (the work is over)."""
        by_lease: dict[tuple[str, str], list[str]] = {}
        for item in items:
            by_lease.setdefault((item.stream, item.token), []).append(item.key)
        for (stream, token), keys in by_lease.items():
            try:
                if once:
                    self._client.psrelease(stream, token, keys, attempted=False)
                else:
                    self._patience.call(self._client.psrelease, stream, token, keys, attempted=False)
            finally:
                self.untrack(token, len(keys))

    def held(self) -> int:
        """Leases still held (for tests and the curious)."""
        with self._lock:
            return len(self._leases)
