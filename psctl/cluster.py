"""psctl's Redis Cluster clients: the same operations and plans as the
standalone clients, with each stream's keys under one hash tag.

A client starts from any node that answers: with a master down (and no
replica to take over), it still starts and serves the slots of the others.
redis-py reads its table of commands (``COMMAND``) from its default node, the
master of slot 0, while it makes the client, and with psctl's ``Retry`` of no
retries nothing else would be tried; psctl's clients ask another master then,
and keep it as their default node.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry

from psctl._redispy import async_cluster_kwargs, command_from_a_live_node, on_a_live_node
from psctl.commands import PrioritizedStreamCommands
from psctl.connections import SafeConnections
from psctl.protocol import CLUSTER_WAIT
from psctl.runner import AsyncRunner, SyncRunner


class RedisCluster(SafeConnections, PrioritizedStreamCommands, SyncRunner, redis.cluster.RedisCluster):
    """A ``redis.cluster.RedisCluster`` with the prioritized-stream operations."""

    _ps_cluster = True
    _ps_retry_class = redis.retry.Retry
    _ps_node_class = redis.cluster.ClusterNode
    # seconds a request the cluster did not run (a reshard, a failover) is sent again for
    ps_cluster_wait = CLUSTER_WAIT

    def command(self, **kwargs: Any) -> Any:
        """``COMMAND``, from the default node or the first master that answers."""
        return command_from_a_live_node(self, partial(super().command, **kwargs))


class AsyncRedisCluster(SafeConnections, PrioritizedStreamCommands, AsyncRunner, redis.asyncio.cluster.RedisCluster):
    """A ``redis.asyncio.cluster.RedisCluster`` with the prioritized-stream operations, awaitable."""

    _ps_cluster = True
    _ps_retry_class = redis.asyncio.retry.Retry
    _ps_node_class = redis.asyncio.cluster.ClusterNode
    ps_cluster_wait = CLUSTER_WAIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **async_cluster_kwargs(kwargs))
        on_a_live_node(self)
