"""Fake psctl clients for unit-testing *your* code without a server.

``fake_redis()`` and ``fake_async_redis()`` return psctl clients backed by
fakeredis (with Lua through lupa: ``pip install 'psctl[testing]'``). The pytest
fixtures ``psctl_fake_redis`` and ``psctl_fake_async_redis`` give each test a
fresh, empty one. psctl's own tests run against a real server; this module is
for its users.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
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
