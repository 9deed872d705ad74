"""The worker's patience with a server that stopped answering.

A lost server does not stop the work at once: acknowledgements, releases and
leases are tried again with backoff until the server has owed an answer for
``patience`` seconds, by the worker's clock, counted from the first request
it did not answer (a server that refuses writes for now, its disk full, say,
counts as not answering, and so does a cluster whose slots move or whose
nodes fail over, beyond what its client rides out by itself). The supervisor
asks ``overdue`` every round, whatever a request in flight still waits for,
and declares the server lost (``lose``): retries end then (``ServerLost``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from redis.exceptions import ClusterError, RedisClusterException, ResponseError
from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import TimeoutError as NoReply

from psctl.errors import refused_for_now
from psctl.work.clock import Clock

# what ``trouble`` sorts out (a cluster's own errors: its slots moving, a failover)
UNANSWERED = (LostConnection, NoReply, ResponseError, ClusterError, RedisClusterException)
FIRST_PAUSE = 0.25  # seconds before the first retry, doubled up to LONGEST_PAUSE
LONGEST_PAUSE = 5.0


class ServerLost(Exception):
    """The server has owed an answer for ``patience`` seconds."""


class Patience:
    """Who the server owes an answer, since when; whether it is lost."""

    def __init__(self, patience: float, clock: Clock, warn: Callable[[str], None]) -> None:
        self.patience = patience
        self.refusal: str | None = None  # the server's last refusal, while it refuses commands for now
        self._clock, self._warn = clock, warn
        self._lock = threading.Lock()
        # since when the server owes each asker an answer (from the first request it did not
        # answer, or refused, to the first it answers)
        self._owed: dict[str, float] = {}
        self._asked_at: float | None = None  # when the request that ``call`` awaits was sent
        self.lost = threading.Event()  # set once the server is lost (or the work gave up): retries stop

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A request safe to repeat (ack, release, extend), tried again with
        backoff while the server does not answer or refuses it for now, until
        the server is declared lost (``ServerLost``)."""
        pause = FIRST_PAUSE
        while True:
            self._asked_at = asked_at = self._clock.now()
            try:
                result = method(*args, **kwargs)
            except UNANSWERED as exc:
                self.trouble(exc, asked_at, "acknowledger")
                if self._clock.wait_event(self.lost, pause):
                    raise ServerLost() from exc
                pause = min(pause * 2, LONGEST_PAUSE)
                continue
            finally:
                self._asked_at = None
            self.answered()
            return result

    def trouble(self, error: Exception, since: float, asker: str) -> None:
        """Notes that the server did not answer ``asker``'s request sent at
        ``since``, or refused it for now; any other error is raised again (it
        ends the work)."""
        refusal = refused_for_now(error)
        if refusal is None and not isinstance(error, (LostConnection, NoReply)):
            raise error
        with self._lock:
            first = not self._owed
            self._owed[asker] = min(self._owed.get(asker, since), since)
            self.refusal = refusal
        if first:  # (what failed, and where: a cluster's error names its node)
            why = f"refuses commands for now ({refusal})" if refusal is not None else f"does not answer ({error})"
            self._warn(f"the server {why}; trying again for {self.patience:g} s")

    def answered(self) -> None:
        if self._owed:
            with self._lock:
                back = bool(self._owed) and not self.lost.is_set()
                if back:
                    self._owed.clear()
                    self.refusal = None
            if back:
                self._warn("the server answers again")

    def forget(self, asker: str) -> None:
        """``asker`` asks nothing more (the feeder's end)."""
        with self._lock:
            self._owed.pop(asker, None)

    def overdue(self, now: float) -> bool:
        """Whether the server has owed an answer for ``patience`` seconds at ``now``."""
        with self._lock:
            asked_at = self._asked_at
            owed = [*self._owed.values(), *([] if asked_at is None else [asked_at])]
        return bool(owed) and now - min(owed) >= self.patience

    def lose(self) -> None:
        """Retries end: the server is lost, or the work gave up."""
        with self._lock:
            self.lost.set()
