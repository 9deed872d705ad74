"""A worker's writes that did not reach the replicas its client asks for
(``ps_replicas``; ``psctl --wait-replicas N work``).

Such a write was done on the master (``NotReplicated`` carries its result),
so the work goes on with that result, and says so: at the first, then at most
once a minute while writes keep falling short, with how many did. A failover
before the replicas catch up could undo such a write (an acknowledged item
would run again, as after any lost acknowledgement). Stopping every worker
because a replica lags would turn a replica's trouble into an outage of the
queue. (No "caught up" is said: a call that wrote nothing new waits for
nothing, so its success would prove nothing.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from psctl.errors import NotReplicated
from psctl.wording import counted


class Shortfall:
    """The writes that fell short of their replicas, for every client the
    worker writes with (``wrap``)."""

    EVERY = 60.0  # seconds at least between two warnings

    def __init__(self, warn: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._warn, self._clock = warn, clock
        self._lock = threading.Lock()
        self._warned_at: float | None = None
        self._since = 0  # writes that fell short since the last warning

    def wrap(self, client: Any) -> GoingOn:
        return GoingOn(client, self)

    def fell_short(self, exc: NotReplicated) -> None:
        now = self._clock()
        with self._lock:
            self._since += 1
            if self._warned_at is not None and now - self._warned_at < self.EVERY:
                return
            first, since = self._warned_at is None, self._since
            self._warned_at, self._since = now, 0
        if first:
            self._warn(f"{exc}; going on (its item could run again after a failover)")
        else:
            self._warn(f"{counted(since, 'more write')} fell short of their replicas in the last {self.EVERY:g} s ({exc})")


class GoingOn:
    """``client`` (what the engine's threads call), its ``ps*`` calls giving
    the result of a write that was not replicated, noted in ``shortfall``."""

    def __init__(self, client: Any, shortfall: Shortfall) -> None:
        self._client, self._shortfall = client, shortfall

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not name.startswith("ps") or not callable(method):
            return method
        shortfall = self._shortfall

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except NotReplicated as exc:
                shortfall.fell_short(exc)
                return exc.result

        setattr(self, name, call)  # (looked up once)
        return call
