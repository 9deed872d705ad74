"""Ctrl-C and SIGTERM around a command that takes items from a stream.

Once a pull has taken an item, an interrupt must not cut between the pull and
the output, or the item is gone: it left the stream and nobody saw it. Inside
``held(stop)``, SIGINT and SIGTERM are noted instead of raised, and ``stop``
(the pull's ``psctl.StopWaiting``) is set, so that a waiting pull stops before
its next wait; only while the pull is blocked in a wait, which holds nothing,
do they interrupt at once (``KeyboardInterrupt``).

``psctl work`` takes SIGHUP (a closed terminal) too, as a stop like SIGTERM:
it has commands to let finish or to stop, and their items to give back. And
it does not let itself be stopped (``unstoppable``): Ctrl-Z would stop the
worker but not its commands, which run in sessions of their own, and a
stopped worker extends no lease: its items would run again elsewhere while
the first runs go on.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# the shells' 128 + signal number
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORK_STATUS = {**STATUS, signal.SIGHUP: 129}  # what stops psctl work


class Caught:
    """The first signal that arrived inside ``held``, if any."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def status(self) -> int:
        return STATUS.get(self.signal, 130)  # type: ignore[arg-type]


@contextmanager
def held(stop: Any, *, twice: bool = False) -> Iterator[Caught]:
    """Notes the first signal and sets ``stop``; interrupts at once
    (``KeyboardInterrupt``) while ``stop.waiting`` or, with ``twice``, at a
    second signal (``add-many``: the first lets the chunk in flight end)."""
    caught = Caught()
    if threading.current_thread() is not threading.main_thread():  # no signal handlers here
        yield caught
        return

    def on_signal(signum: int, frame: Any) -> None:
        again = caught.signal is not None
        if not again:
            caught.signal = signum
        stop.set()
        if stop.waiting or (twice and again):
            raise KeyboardInterrupt

    previous = {number: signal.signal(number, on_signal) for number in STATUS}
    try:
        yield caught
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def unstoppable(on_suspend: Callable[[], None]) -> Iterator[None]:
    """Inside, the terminal's stop signals stop nothing: Ctrl-Z (SIGTSTP) calls
    ``on_suspend`` instead; SIGTTIN and SIGTTOU (a read from, or a write to,
    the terminal from the background) are ignored, so that such a write goes
    through (a handler would make the write fail and be tried again, for
    ever). The commands inherit the two ignored ones (only a process with a
    terminal of its own gets them: a command has none) and get SIGTSTP as it
    was. SIGSTOP, which nothing can refuse, still stops the worker."""
    if threading.current_thread() is not threading.main_thread():  # no signal handlers here
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        on_suspend()

    previous = {signal.SIGTSTP: signal.signal(signal.SIGTSTP, on_signal)}
    for number in (signal.SIGTTIN, signal.SIGTTOU):
        previous[number] = signal.signal(number, signal.SIG_IGN)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
