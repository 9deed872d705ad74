"""Every part of redis-py that psctl uses beyond its documented API, in one
place, each with why: an upgrade of redis-py that changes one of them breaks
here and nowhere else. (pyproject.toml declares the versions the tests pass
on; CI runs the suite on the lowest of them too.)
"""

from __future__ import annotations

import errno
import inspect
import socket
import struct
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import redis.client
import redis.connection
from redis.exceptions import ConnectionError, TimeoutError

# -- connections from a pool --------------------------------------------------------


@cache
def _pool_wants_a_command_name(pool_class: type) -> bool:
    """redis-py before 5.3 requires a command name for ``get_connection``
    (unused by the standalone pools); 5.3 and later deprecate passing one."""
    parameter = inspect.signature(pool_class.get_connection).parameters.get("command_name")
    return parameter is not None and parameter.default is inspect.Parameter.empty


def take_connection(pool: Any) -> Any:
    """A connection of ``pool`` (``ConnectionPool.get_connection``), for a call
    psctl sends itself, so that redis-py's retries cannot resend it."""
    if _pool_wants_a_command_name(type(pool)):
        return pool.get_connection("EVALSHA")
    return pool.get_connection()


async def take_async_connection(pool: Any) -> Any:
    if _pool_wants_a_command_name(type(pool)):
        return await pool.get_connection("EVALSHA")
    return await pool.get_connection()


def single_connection_lock(client: Any) -> Any:
    """The lock a ``single_connection_client`` holds around each command
    (``single_connection_lock`` in sync redis-py 5.1+, ``_single_conn_lock`` in
    redis.asyncio); a lock of psctl's own where the client has none."""
    for name in ("single_connection_lock", "_single_conn_lock"):
        lock = getattr(client, name, None)
        if lock is not None:
            return lock
    lock = client.__dict__.get("_psctl_lock")
    if lock is None:
        lock = client.__dict__["_psctl_lock"] = threading.RLock()
    return lock


class AsyncNodePool:
    """An async cluster node's connections as a pool (``get_connection``,
    ``release``), for a line that holds one for a whole plan: redis.asyncio's
    ``ClusterNode`` keeps its own (``acquire_connection``, then ``release`` in
    redis-py 7+, or back onto ``_free`` before), where the sync cluster client
    gives each node a plain ``ConnectionPool``."""

    def __init__(self, node: Any) -> None:
        self.node = node

    async def get_connection(self) -> Any:
        return self.node.acquire_connection()

    async def release(self, connection: Any) -> None:
        release = getattr(self.node, "release", None)
        if release is not None:
            release(connection)
        else:
            self.node._free.append(connection)


def refresh_slots(client: Any) -> None:
    """A sync cluster client's slots table read again from the cluster
    (``NodesManager.initialize``): after a MOVED reply that psctl followed
    itself, so that the client routes the slot's next commands right."""
    client.nodes_manager.initialize()


async def refresh_async_slots(client: Any) -> None:
    await client.nodes_manager.initialize()


def pool_options(pool: Any) -> dict[str, Any]:
    """The keyword arguments a pool makes its connections with
    (``ConnectionPool.connection_kwargs``): the CLI reads and sets its own."""
    return pool.connection_kwargs  # type: ignore[no-any-return]


# -- the query parameters a URL may carry -------------------------------------------


@cache
def url_parameters() -> frozenset[str]:
    """What ``from_url`` accepts in a URL's query: the names it parses itself
    (``URL_QUERY_ARGUMENT_PARSERS``) and the connection classes' keyword
    arguments, to which it hands anything else (an unknown one is a TypeError
    at the first command)."""
    names = set(getattr(redis.connection, "URL_QUERY_ARGUMENT_PARSERS", {}))
    classes = [redis.connection.Connection, redis.connection.SSLConnection, redis.connection.UnixDomainSocketConnection]
    for cls in classes:
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for parameter in inspect.signature(init).parameters.values():
                if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                    names.add(parameter.name)
    names.discard("self")
    return frozenset(names)


def url_parameter_readable(name: str, value: str) -> bool:
    """Whether ``from_url`` can read ``value`` for its query parameter
    ``name`` (``URL_QUERY_ARGUMENT_PARSERS``: ``db=x`` is a ValueError there)."""
    parser = getattr(redis.connection, "URL_QUERY_ARGUMENT_PARSERS", {}).get(name)
    if parser is None:  # (handed to the connection class as it is)
        return True
    try:
        parser(value)
    except (TypeError, ValueError):
        return False
    return True


# -- connections whose waits the kernel bounds --------------------------------------


class _KernelTimeouts:
    """Mixed into a redis-py connection class: the socket stays blocking and
    the kernel bounds each read and write by ``socket_timeout``
    (``SO_RCVTIMEO``/``SO_SNDTIMEO``). Python's own socket timeout puts the
    socket in non-blocking mode and calls ``poll()`` before every read and
    write, which costs about 25 µs per round trip on a small machine: more
    than a short script's work. A wait that runs out is a ``TimeoutError``
    and closes the connection, as redis-py's would.

    redis-py internals: ``_connect()`` makes and connects the socket (overridden
    to set the options on it) and ``_host_error()`` names the server in errors;
    a timed-out read or write surfaces as the ``ConnectionError`` redis-py makes
    of ``EAGAIN``.
    """

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
TIMED: dict[str, type] = {"redis": TimedConnection, "unix": TimedUnixDomainSocketConnection}


# -- a cluster client that starts while a master is down ----------------------------


def command_from_a_live_node(client: Any, command: Callable[[], Any]) -> Any:
    """``command()``, a sync cluster client's ``COMMAND``, from its default node
    or, when that does not answer, from the first master that does, which
    becomes the default node. redis-py calls the client's ``command()`` while it
    makes the client, from the master of slot 0, with no retry."""
    try:
        return command()
    except (ConnectionError, TimeoutError):
        failed = client.get_default_node()
        for node in client.get_primaries():
            if node is failed:
                continue
            try:
                client.execute_command("PING", target_nodes=node)
            except (ConnectionError, TimeoutError):
                continue
            client.set_default_node(node)
            return command()
        raise


def on_a_live_node(client: Any) -> None:
    """Makes a redis.asyncio cluster client read its table of commands
    (``COMMAND``) from a master that answers. redis-py asks its default node,
    the master of slot 0, with no retry, when the client first connects
    (``commands_parser.initialize(node)``, which calls the node's own
    ``execute_command``: the client's would wait for the lock that its
    ``initialize`` holds): with that master down, no client could start
    although the other masters serve their slots."""
    parser = client.commands_parser
    first_try = parser.initialize

    async def initialize(node: Any = None) -> None:
        try:
            await first_try(node)
        except (ConnectionError, TimeoutError, OSError):
            for other in client.get_primaries():
                if other is node:
                    continue
                try:
                    await other.execute_command("PING")
                except (ConnectionError, TimeoutError, OSError):
                    continue
                client.set_default_node(other)
                await first_try(other)
                return
            raise

    parser.initialize = initialize


# -- an async cluster client during a reshard ---------------------------------------


def async_cluster_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a redis.asyncio cluster client, with ``reinitialize_steps=0``
    unless the caller chose, on redis-py versions whose ``ClusterNode`` lacks
    ``update_active_connections_for_reconnect`` (up to 7 at least). Those
    close the whole client at every 5th MOVED reply (``reinitialize_steps``),
    every node's connections with it, those other tasks are using too: during
    a reshard their commands fail with "Connection closed by server", and one
    not safe to repeat cannot be sent again. A MOVED reply already points its
    slot to the node that took it (``_update_moved_slots``): with 0 steps that
    is all it does. Later versions let commands under way finish, and keep
    their default."""
    import redis.asyncio.cluster

    if not hasattr(redis.asyncio.cluster.ClusterNode, "update_active_connections_for_reconnect"):
        kwargs.setdefault("reinitialize_steps", 0)
    return kwargs


# -- a reply as bytes, whatever the client's decode_responses ---------------------

# The option redis-py's ``parse_response`` reads (``NEVER_DECODE``, as its
# ``DUMP`` uses) to leave one reply undecoded, sync and async, cluster nodes too.
UNDECODED: dict[str, Any] = {redis.client.NEVER_DECODE: True}
