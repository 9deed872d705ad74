"""psctl: prioritized streams on Redis.

Names are imported on first use, so that ``psctl --help`` and ``--version``
start without importing redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    "Redis": "psctl.client",
    "AsyncRedis": "psctl.client",
    "RedisCluster": "psctl.cluster",
    "AsyncRedisCluster": "psctl.cluster",
    "RedisProvider": "psctl.providers",
    "AsyncRedisProvider": "psctl.providers",
    "Settings": "psctl.settings",
    "StopWaiting": "psctl.operations",
    "PsctlError": "psctl.errors",
    "InvalidArgument": "psctl.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from psctl.client import AsyncRedis, Redis
    from psctl.cluster import AsyncRedisCluster, RedisCluster
    from psctl.providers import AsyncRedisProvider, RedisProvider
    from psctl.errors import InvalidArgument, PsctlError
    from psctl.operations import StopWaiting
    from psctl.settings import Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'psctl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
