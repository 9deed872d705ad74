"""psctl's Redis Cluster clients: the same operations and plans as the
standalone clients, with each stream's keys under one hash tag."""

from __future__ import annotations

import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry

from psctl.commands import PrioritizedStreamCommands
from psctl.connections import SafeConnections
from psctl.protocol import CLUSTER_WAIT
from psctl.runner import AsyncRunner, SyncRunner


class RedisCluster(SafeConnections, PrioritizedStreamCommands, SyncRunner, redis.cluster.RedisCluster):
    """A ``redis.cluster.RedisCluster`` with the prioritized-stream operations."""

    _ps_cluster = True
    _ps_retry_class = redis.retry.Retry
    # seconds a request the cluster did not run (a reshard, a failover) is sent again for
    ps_cluster_wait = CLUSTER_WAIT


class AsyncRedisCluster(SafeConnections, PrioritizedStreamCommands, AsyncRunner, redis.asyncio.cluster.RedisCluster):
    """A ``redis.asyncio.cluster.RedisCluster`` with the prioritized-stream operations, awaitable."""

    _ps_cluster = True
    _ps_retry_class = redis.asyncio.retry.Retry
    ps_cluster_wait = CLUSTER_WAIT
