"""A worker's writes that did not reach the replicas its client asks for
(``ps_replicas``; ``psctl --wait-replicas N work``).

Such a write was done on the master (``NotReplicated`` carries its result),
so the work goes on with that result, and says so: once, and again only after
writes had reached the replicas in between. A failover before the replicas
catch up could undo it (an acknowledged item would run again, as after any
lost acknowledgement). Stopping every worker because a replica lags would
turn a replica's trouble into an outage of the queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from psctl.errors import NotReplicated


class Shortfall:
    """Whether the worker's last write fell short of its replicas, for every
    client it writes with (``wrap``)."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        self._lock = threading.Lock()
        self.short = False

    def wrap(self, client: Any) -> GoingOn:
        return GoingOn(client, self)

    def fell_short(self, exc: NotReplicated) -> None:
        with self._lock:
            first, self.short = not self.short, True
        if first:
            self._warn(f"{exc}; going on (its item could run again after a failover)")

    def caught_up(self) -> None:
        with self._lock:
            back, self.short = self.short, False
        if back:
            self._warn("writes reach their replicas again")


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
                result = method(*args, **kwargs)
            except NotReplicated as exc:
                shortfall.fell_short(exc)
                return exc.result
            if shortfall.short:
                shortfall.caught_up()
            return result

        setattr(self, name, call)  # (looked up once)
        return call
