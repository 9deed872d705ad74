"""What ``psctl work``'s commands write to stderr: passed through as it comes,
and each command's last line kept, so that a failure can say why (SPEC §10:
``exit status 3: connection refused``).

One thread reads every running command's stderr pipe (a selector), writes
what it reads to psctl's own stderr at once, and keeps, per command, the last
``TAIL`` bytes: memory does not grow with what a command writes. ``watch``
gives a command the write end of a new pipe; ``last_line`` waits (a bounded
time) for that pipe's end and says the command's last non-empty line.
"""

from __future__ import annotations

import os
import selectors
import sys
import threading
from collections.abc import Callable
from typing import Any

TAIL = 4096  # bytes of a command's stderr kept, the end of it
LINE = 200  # characters of the last line a failure reports
READ = 65536


class Watched:
    """One command's stderr: its tail, and whether its pipe has ended."""

    __slots__ = ("ended", "tail")

    def __init__(self) -> None:
        self.tail = bytearray()
        self.ended = threading.Event()

    def last_line(self, wait: float = 1.0) -> str | None:
        """The last non-empty line the command wrote to stderr (at most ``LINE``
        characters, its end), once its pipe has ended or ``wait`` seconds have
        passed (a process outside its group may hold the pipe open); None when
        it wrote nothing."""
        self.ended.wait(wait)
        lines = [line.strip() for line in bytes(self.tail).splitlines()]
        found = next((line for line in reversed(lines) if line), None)
        if found is None:
            return None
        text = found.decode("utf-8", "replace")
        return text if len(text) <= LINE else "…" + text[-(LINE - 1) :]


class StderrTail:
    """The reading thread; ``close()`` ends it (what is still open is read no more)."""

    def __init__(self, sink: Callable[[bytes], None] | None = None) -> None:
        self._sink = sink or _to_stderr
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._added: list[tuple[int, Watched]] = []
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="psctl-stderr", daemon=True)
        self._thread.start()

    def watch(self) -> tuple[int, Watched]:
        """A new pipe for a command's stderr: its write end (the caller gives it
        to the command and closes it), and what is kept of what comes."""
        read, write = os.pipe()
        watched = Watched()
        with self._lock:
            self._added.append((read, watched))
        self._wake()
        return write, watched

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(timeout=5)

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except BlockingIOError:  # (woken already)
            pass

    def _run(self) -> None:
        selector = self._selector
        try:
            while True:
                for key, _ in selector.select():
                    if key.data is None:
                        os.read(self._wake_read, READ)
                        continue
                    self._read(key.fd, key.data)
                with self._lock:
                    added, self._added = self._added, []
                    closed = self._closed
                for fd, watched in added:
                    selector.register(fd, selectors.EVENT_READ, watched)
                if closed:
                    return
        finally:
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    key.data.ended.set()
                os.close(key.fd)
            selector.close()
            os.close(self._wake_write)

    def _read(self, fd: int, watched: Watched) -> None:
        try:
            data = os.read(fd, READ)
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(fd)
            os.close(fd)
            watched.ended.set()
            return
        self._sink(data)
        tail = watched.tail
        tail += data
        if len(tail) > TAIL:
            del tail[: len(tail) - TAIL]


def _to_stderr(data: bytes) -> None:
    try:
        out: Any = sys.stderr.buffer
        out.write(data)
        out.flush()
    except (OSError, ValueError, AttributeError):  # (a closed terminal: the command's output goes nowhere)
        pass
