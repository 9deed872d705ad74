"""psctl's standalone clients: redis-py clients with the ``ps*`` operations."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry

from psctl.commands import PrioritizedStreamCommands
from psctl.connections import SafeConnections
from psctl.runner import AsyncRunner, SyncRunner


class Redis(SafeConnections, PrioritizedStreamCommands, SyncRunner, redis.Redis):
    """A ``redis.Redis`` with the prioritized-stream operations."""

    _ps_retry_class = redis.retry.Retry
    _ps_timed = True

    @classmethod
    def embedded(cls, **kwargs: Any) -> Redis:
        """A client on psctl's embedded server (see ``psctl.embedded``), started
        if it is not running; ``kwargs`` go to ``from_url``."""
        from psctl.embedded import ensure_server

        return cls.from_url(ensure_server(), **kwargs)


class AsyncRedis(SafeConnections, PrioritizedStreamCommands, AsyncRunner, redis.asyncio.Redis):
    """A ``redis.asyncio.Redis`` with the prioritized-stream operations, awaitable."""

    _ps_retry_class = redis.asyncio.retry.Retry

    @classmethod
    def embedded(cls, **kwargs: Any) -> AsyncRedis:
        """An async client on psctl's embedded server, started if it is not
        running (a start blocks for a few milliseconds; reuse is one PING)."""
        from psctl.embedded import ensure_server

        return cls.from_url(ensure_server(), **kwargs)
