"""What a worker is told (``WorkOptions``), what it hands its executor for each
item (``Item``), and what it counted so far (``Tally``). Durations are in
seconds; every default comes from ``psctl.defaults``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psctl import defaults

# a failed item's delay before its next delivery grows up to this
MAX_RETRY_DELAY = defaults.MAX_RETRY_DELAY.total_seconds()
PREFETCH = 3  # items queued (leased, waiting for a runner) per item the runners take at once, at least
AHEAD = 0.05  # seconds of work kept queued, by the rate the runners take items at (the prefetch, when not set)
MOST_AHEAD = 1000  # items queued at most, when the prefetch is not set (a lease's most)


@dataclass(frozen=True)
class WorkOptions:
    """What the worker was told (``psctl work``'s options; ``command`` and
    ``time_limit`` are the command runner's)."""

    name: str  # the stream (with several: the first, or as shown: "a, b:3, c")
    command: tuple[str, ...] = ()
    jobs: int = 1
    lease: float = defaults.LEASE.total_seconds()
    time_limit: float | None = None  # per command (psctl work --time-limit)
    max_deliveries: int = defaults.MAX_DELIVERIES
    retry_delay: float = defaults.RETRY_DELAY.total_seconds()
    gate: bool = False
    expire_at: Any = defaults.COOL_DOWN  # the cool-down of an acknowledged item
    limit: int | None = None  # items to take, in all
    idle_exit: float | None = None  # stop after this long with nothing to do
    grace: float = defaults.GRACE.total_seconds()  # after a stop is asked for, before running commands are stopped
    patience: float = defaults.PATIENCE.total_seconds()  # how long an unreachable server is tried again
    batch: int = 1  # items a runner takes at once (the Python workers' batch=)
    prefetch: int | None = None  # items queued at most, leased ahead of the runners (None: as they go, see below)
    streams: tuple[tuple[str, int], ...] = ()  # several streams: (name, weight) each (none: ``name``, alone)

    @property
    def weights(self) -> tuple[tuple[str, int], ...]:
        """The streams it takes from, each with its weight (one: ``name``'s, 1)."""
        return self.streams or ((self.name, 1),)

    def queue_target(self, rate: float) -> int:
        """How many items the feeder keeps queued for the runners, at most:
        the prefetch; when not set, what they take in ``AHEAD`` seconds at
        ``rate`` items/s, at least ``PREFETCH`` per item they take at once, at
        most ``MOST_AHEAD`` (fast handlers get big leases, slow ones hold few
        items they do not run)."""
        if self.prefetch is not None:
            return self.prefetch
        least = PREFETCH * self.jobs * self.batch
        return max(least, min(int(rate * AHEAD), MOST_AHEAD))

    def retry_delay_for(self, delivery: int) -> float:
        """The delay before a failed item's next delivery: ``retry_delay``
        doubled per delivery it has had, at most ``MAX_RETRY_DELAY``."""
        return min(self.retry_delay * 2.0 ** min(delivery - 1, 64), MAX_RETRY_DELAY)


@dataclass
class Tally:
    """What the work did so far."""

    done: int = 0  # items acknowledged: their command exited 0 (their handler returned)
    failed: int = 0  # failures, their items given back for another delivery
    dead: int = 0  # failures on an item's last delivery: the item went to the dead items
    running: int = 0
    started: float = field(default_factory=time.monotonic)
    now: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)  # the worker's clock
    streams: dict[str, int] = field(default_factory=dict)  # items acknowledged, by stream

    @property
    def seconds(self) -> float:
        return self.now() - self.started


class Item:
    """One leased item, as an executor gets it: ``stream`` is where it was
    leased (and where it is acknowledged, given back and extended)."""

    __slots__ = ("delivery", "key", "score", "stream", "token", "value")

    def __init__(self, token: str, key: str, value: bytes, score: float, delivery: int, stream: str = "") -> None:
        self.token, self.key, self.value, self.score, self.delivery = token, key, value, score, delivery
        self.stream = stream

    @property
    def deliveries(self) -> int:
        """Which delivery of the item this is (1 on the first): ``delivery``, by another name."""
        return self.delivery


def shown(key: str) -> str:
    """A key for a message: quoted, and cut when long."""
    return repr(key) if len(key) <= 80 else repr(key[:80]) + f"… ({len(key)} characters)"
