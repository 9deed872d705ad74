"""How psctl clients connect: a command is never sent twice, and no wait is
unbounded.

``psadd`` adds to a score and ``pspull`` pops, so sending one again after its
reply was lost would apply it twice. redis-py's default ``Retry`` does exactly
that on a connection error, so psctl clients default to no retries. Nothing is
lost by it: the pool replaces a pooled connection the server closed (a restart,
``CLIENT KILL``) before a command is sent on it, and a ``NOSCRIPT`` reply, which
means nothing ran, is answered by loading the script (``runner.py``).

Replies are awaited on blocking sockets whose waits the kernel bounds
(``SO_RCVTIMEO``/``SO_SNDTIMEO``, see ``TimedConnection``), not with Python's
socket timeouts, which cost a ``poll()`` before every read and write.

A client made with a ``connection_pool`` keeps that pool's settings.
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

import redis.connection
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, TimeoutError

# seconds; a blocked pull waits at most operations.POLL per command, well below
SOCKET_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0


def safe_kwargs(kwargs: dict[str, Any], retry_class: type, scheme: str | None = None) -> dict[str, Any]:
    """``kwargs`` with psctl's defaults for whatever the caller left unset.
    ``scheme`` (``redis``, ``rediss`` or ``unix``): a sync standalone client's,
    whose connections can then be ``TimedConnection``s."""
    if "connection_pool" in kwargs:
        return kwargs
    kwargs.setdefault("retry", retry_class(NoBackoff(), 0))
    kwargs.setdefault("socket_timeout", SOCKET_TIMEOUT)
    kwargs.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
    if scheme is not None and "connection_class" not in kwargs and not kwargs.get("ssl"):
        timed = _TIMED.get(scheme.lower())
        if timed is not None:
            kwargs["connection_class"] = timed
    return kwargs


class _KernelTimeouts:
    """Mixed into a redis-py connection class: the socket stays blocking and
    the kernel bounds each read and write by ``socket_timeout``
    (``SO_RCVTIMEO``/``SO_SNDTIMEO``). Python's own socket timeout puts the
    socket in non-blocking mode and calls ``poll()`` before every read and
    write, which costs about 25 µs per round trip on a small machine: more
    than a short script's work. A wait that runs out is a ``TimeoutError``
    and closes the connection, as redis-py's would."""

    _host_error: Any

    def __init__(self, *args: Any, socket_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, socket_timeout=None, **kwargs)  # type: ignore[call-arg]
        self.kernel_timeout = socket_timeout

    def _connect(self) -> socket.socket:
        sock = super()._connect()  # type: ignore[misc]
        if self.kernel_timeout:
            seconds = float(self.kernel_timeout)
            whole = int(seconds)
            timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        return sock

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ConnectionError as exc:
            if _ran_out(exc):
                raise TimeoutError(f"Timeout reading from {self._host_error()}") from None
            raise

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        except ConnectionError as exc:
            if _ran_out(exc):
                raise TimeoutError(f"Timeout writing to {self._host_error()}") from None
            raise


def _ran_out(exc: BaseException) -> bool:
    """True for the error redis-py makes of a socket wait the kernel ended."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, OSError) and cause.errno in (errno.EAGAIN, errno.EWOULDBLOCK)


class TimedConnection(_KernelTimeouts, redis.connection.Connection):
    """A TCP connection with kernel-bounded waits (see ``_KernelTimeouts``)."""


class TimedUnixDomainSocketConnection(_KernelTimeouts, redis.connection.UnixDomainSocketConnection):
    """A unix-socket connection with kernel-bounded waits (see ``_KernelTimeouts``)."""


# by URL scheme; TLS keeps redis-py's own timeouts
_TIMED: dict[str, type] = {"redis": TimedConnection, "unix": TimedUnixDomainSocketConnection}


class SafeConnections:
    """Mixed into every psctl client class, before the redis-py class."""

    _ps_retry_class: type  # redis.retry.Retry or redis.asyncio.retry.Retry

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **safe_kwargs(kwargs, self._ps_retry_class))

    _ps_timed = False  # connections with kernel-bounded waits (sync standalone clients)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        scheme = url.partition("://")[0] if cls._ps_timed else None
        return super().from_url(url, **safe_kwargs(kwargs, cls._ps_retry_class, scheme))  # type: ignore[misc]
