"""The seam between the engine and what runs an item: an ``Executor``. The
engine leases, queues, counts, acknowledges and stops; the executor runs one
item per call of a runner thread's ``Lane``, and says how each ended
(``verdict``). Two exist: ``commands.CommandRunner`` (``psctl work``: a
command in a session of its own per item) and ``inprocess.InProcess`` (a
Python callable per item, in the runner's thread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from psctl.work.clock import Clock
from psctl.work.options import Item


class Order(Enum):
    """What the supervisor's round asks of the running jobs (from the worker's state)."""

    RUN = "run"  # nothing: they run (a timeout of their own applies)
    TERMINATE = "terminate"  # the grace is over: asked to end, then killed
    KILL = "kill"  # a stop at once: killed
    ABANDON = "abandon"  # the work gave up (the server is lost): ended, their items left to the leases


class Kind(Enum):
    DONE = "done"  # acknowledged
    FAILED = "failed"  # given back with the back-off (or dead, on its last delivery)
    BACK = "back"  # given back at once, uncounted (a stop, a command that could not start)
    ABANDONED = "abandoned"  # nothing said to the server: its lease gives it back


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str | None = None  # a failure's, as its item keeps it
    warning: str | None = None  # said before it is reported


class Job:
    """An item being run. ``halt``: why the work must stop itself because of
    it ("unstartable", "unread"), with ``note`` to say so once."""

    __slots__ = ("error", "halt", "item", "note")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.halt: str | None = None
        self.note: str | None = None
        self.error: BaseException | None = None


class Lane(Protocol):
    """A runner thread's part of the executor: runs its jobs one by one."""

    @property
    def holding(self) -> bool:
        """It holds a job back (to look at it again): call ``run(None)`` soon, not wait for work."""

    def run(self, job: Job | None) -> None:
        """Runs ``job`` to its end (None: just what it holds back); each job
        it is done with goes to ``report``, as soon as it is."""

    def close(self, job: Job | None) -> None:
        """After an unexpected error: ``job`` (the one being run, if any) and
        what it holds back go to ``report`` as they are."""


class Executor(Protocol):
    def open(self, name: str, clock: Clock, warn: Callable[[str], None]) -> None:
        """Before the first item of stream ``name``."""

    def job(self, item: Item) -> Job: ...

    def lane(self, report: Callable[[Job], None], halt: Callable[[Job], None]) -> Lane:
        """A runner thread's lane: ``report`` gets each job it is done with;
        ``halt`` a job that stops the work at once (``Job.halt``), as soon as
        that is found, before it is reported."""

    def supervise(self, jobs: list[Job], now: float, order: Order) -> bool:
        """One supervisor's round over the running ``jobs``; True when it cut
        one short because of ``order`` (a stop)."""

    def stop_all(self, jobs: list[Job], given_up: bool) -> None:
        """The work is over: nothing may be left running."""

    def verdict(self, job: Job) -> Verdict: ...

    def close(self) -> None:
        """After the last item, the runners' threads joined (or given up on)."""
