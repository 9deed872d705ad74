"""How psctl clients connect: a command is never sent twice, and no wait is
unbounded.

``psadd`` adds to a score and ``pspull`` pops, so sending one again after its
reply was lost would apply it twice. redis-py's default ``Retry`` does exactly
that on a connection error, so psctl clients default to no retries, and send
every request that is not safe to repeat on a path no retry setting reaches
(``runner.py``). Nothing is lost by it: the pool replaces a pooled connection
the server closed (a restart, ``CLIENT KILL``) before a command is sent on it,
and a ``NOSCRIPT`` reply, which means nothing ran, is answered by loading the
script (``protocol.py``).

Replies are awaited on blocking sockets whose waits the kernel bounds
(``SO_RCVTIMEO``/``SO_SNDTIMEO``, see ``psctl._redispy.TimedConnection``), not
with Python's socket timeouts, which cost a ``poll()`` before every read and
write.

A client made with a ``connection_pool`` keeps that pool's settings.
"""

from __future__ import annotations

from typing import Any

from redis.backoff import NoBackoff

from psctl._redispy import TIMED, TimedConnection, TimedUnixDomainSocketConnection
from psctl.errors import InvalidArgument
from psctl.urls import ADDR_ALONE, check_url, seed_nodes

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
        timed = TIMED.get(scheme.lower())
        if timed is not None:
            kwargs["connection_class"] = timed
    return kwargs


class SafeConnections:
    """Mixed into every psctl client class, before the redis-py class."""

    _ps_retry_class: type  # redis.retry.Retry or redis.asyncio.retry.Retry

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **safe_kwargs(kwargs, self._ps_retry_class))

    _ps_timed = False  # connections with kernel-bounded waits (sync standalone clients)

    _ps_node_class: type | None = None  # a cluster client's ClusterNode (sync or async): it takes addr=

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        check_url(url)  # before redis-py, whose messages could show part of a password
        url, seeds = seed_nodes(url)  # (addr=: more nodes to start from, which redis-py does not read)
        if seeds:
            if cls._ps_node_class is None:  # (not a cluster client)
                raise InvalidArgument(ADDR_ALONE)
            nodes = [cls._ps_node_class(host, port) for host, port in seeds]
            kwargs["startup_nodes"] = [*kwargs.get("startup_nodes", ()), *nodes]
        scheme = url.partition("://")[0] if cls._ps_timed else None
        return super().from_url(url, **safe_kwargs(kwargs, cls._ps_retry_class, scheme))  # type: ignore[misc]


__all__ = ["SafeConnections", "TimedConnection", "TimedUnixDomainSocketConnection", "safe_kwargs"]
