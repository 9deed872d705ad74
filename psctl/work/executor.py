"""The seam between the engine and what runs an item: an ``Executor``. The
engine leases, queues, counts, acknowledges and stops; the executor runs one
job (one item, or up to ``batch`` of them) per call of a runner's ``Lane``,
and says how each item ended (``verdicts``). Three exist:
``commands.CommandRunner`` (``psctl work``: a command in a session of its own
per item), ``inprocess.InProcess`` (a Python callable per item or batch, in
the runner's thread: ``psctl.Worker``) and ``inloop.InLoop`` (a coroutine
function, on an event loop: ``psctl.AsyncWorker``)."""

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
    DEAD = "dead"  # to the dead items at once, whatever deliveries are left
    BACK = "back"  # given back at once, uncounted (a stop, a command that could not start)
    ABANDONED = "abandoned"  # nothing said to the server: its lease gives it back


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str | None = None  # a failure's, as its item keeps it
    warning: str | None = None  # said before it is reported
    delay: float | None = None  # a failure's delay before the next delivery, when not the back-off's


DONE = Verdict(Kind.DONE)
BACK = Verdict(Kind.BACK)
ABANDONED = Verdict(Kind.ABANDONED)


class Job:
    """An item being run (``item``; ``items``: all of them, for a batch).
    ``halt``: why the work must stop itself because of it ("unstartable",
    "unread"), with ``note`` to say so once."""

    __slots__ = ("error", "halt", "item", "items", "note")

    def __init__(self, item: Item, items: list[Item] | None = None) -> None:
        self.item = item
        self.items = [item] if items is None else items
        self.halt: str | None = None
        self.note: str | None = None
        self.error: BaseException | None = None


class Lane(Protocol):
    """A runner thread's part of the executor: runs its jobs one by one."""

    @property
    def abandoned(self) -> bool:
        """Its job was cut short but cannot be stopped (a Python function in a
        thread): the work does not wait for it to end."""

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
    batch: int  # items per job at most
    # seconds the acknowledger waits for more jobs to end when few did, to acknowledge
    # them together (commands end at the pace of processes; functions end in a burst)
    gather: float

    def open(self, name: str, clock: Clock, warn: Callable[[str], None]) -> None:
        """Before the first item of stream ``name``."""

    def job(self, items: list[Item]) -> Job:
        """A job of ``items`` (one, or up to ``batch``), taken from the queue to run."""

    def lane(self, report: Callable[[Job], None], halt: Callable[[Job], None]) -> Lane:
        """A runner thread's lane: ``report`` gets each job it is done with;
        ``halt`` a job that stops the work at once (``Job.halt``), as soon as
        that is found, before it is reported."""

    def supervise(self, jobs: list[Job], now: float, order: Order) -> bool:
        """One supervisor's round over the running ``jobs``; True when it cut
        one short because of ``order`` (a stop)."""

    def stop_all(self, jobs: list[Job], given_up: bool) -> None:
        """The work is over: nothing may be left running."""

    def verdicts(self, job: Job) -> list[tuple[Item, Verdict]]:
        """How each item of a job that ended did."""

    def close(self) -> None:
        """After the last item, the runners' threads joined (or given up on)."""
