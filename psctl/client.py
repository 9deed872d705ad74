"""psctl's standalone clients: redis-py clients with the ``ps*`` operations."""

from __future__ import annotations

import redis
import redis.asyncio

from psctl.commands import PrioritizedStreamCommands
from psctl.runner import AsyncRunner, SyncRunner


class Redis(PrioritizedStreamCommands, SyncRunner, redis.Redis):
    """A ``redis.Redis`` with the prioritized-stream operations."""


class AsyncRedis(PrioritizedStreamCommands, AsyncRunner, redis.asyncio.Redis):
    """A ``redis.asyncio.Redis`` with the prioritized-stream operations, awaitable."""
