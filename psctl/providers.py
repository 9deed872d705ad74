"""fast-depends providers: a psctl client injected into ``@inject`` functions.

``cluster=True`` (or ``REDIS_CLUSTER=1``) gives the Redis Cluster clients.
Both work as a parameter default (``redis: Redis = RedisProvider()``) and in
``Annotated[Redis, RedisProvider()]``. Settings are read when the function is
called, so a changed environment applies; clients with the same settings
share one connection pool.
"""

from __future__ import annotations

from typing import Any

from fast_depends.library import CustomField

from psctl.settings import Settings, async_cluster, async_pool, sync_cluster, sync_pool


class _Provider(CustomField):
    def __init__(self, **settings: Any) -> None:
        super().__init__(cast=False, required=False)
        self.settings = settings

    def use(self, /, **kwargs: Any) -> dict[str, Any]:
        kwargs = super().use(**kwargs)
        if kwargs.get(self.param_name) is None:  # the caller did not pass a client
            kwargs[self.param_name] = self.client()
        return kwargs

    def client(self) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({Settings.resolve(**self.settings)!r})"


class RedisProvider(_Provider):
    """Injects a ``psctl.Redis`` (or ``psctl.RedisCluster`` with ``cluster=True``)."""

    def client(self) -> Any:
        from psctl.client import Redis

        settings = Settings.resolve(**self.settings)
        if settings.cluster:
            return sync_cluster(settings)
        return Redis(connection_pool=sync_pool(settings))


class AsyncRedisProvider(_Provider):
    """Injects a ``psctl.AsyncRedis`` (or ``psctl.AsyncRedisCluster`` with
    ``cluster=True``); ``async with rc as redis:`` works on it."""

    def client(self) -> Any:
        from psctl.client import AsyncRedis

        settings = Settings.resolve(**self.settings)
        if settings.cluster:
            return async_cluster(settings)
        return AsyncRedis(connection_pool=async_pool(settings))
