"""The worker's clock, injected: every time the engine compares (a lease's
extension, a grace, a timeout, the patience with a lost server, idleness) is
read from it, and every wait for time to pass goes through it, so that tests
move time by hand (``ManualClock``) and run no slower for a 5-minute lease."""

from __future__ import annotations

import threading
import time


class Clock:
    """Real time: ``time.monotonic``, and waits that last what they say."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Waits on ``condition`` (its lock held) for a notification, at most ``timeout`` seconds."""
        condition.wait(timeout)

    def wait_event(self, event: threading.Event, timeout: float) -> bool:
        """Waits for ``event`` at most ``timeout`` seconds; whether it is set."""
        return event.wait(timeout)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ManualClock(Clock):
    """A clock that moves only when ``advance`` moves it. A wait lasts a
    moment of real time (``POLL``) whatever it was asked for, so that the
    threads waiting on time look again once it has been moved."""

    POLL = 0.002

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        condition.wait(self.POLL)

    def wait_event(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(self.POLL)

    def sleep(self, seconds: float) -> None:
        time.sleep(self.POLL)
