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
    "PsctlError": "psctl.errors",
    # the Python workers (psctl.workers)
    "Worker": "psctl.workers",
    "AsyncWorker": "psctl.workers",
    "WorkSummary": "psctl.workers",
    "ServerLost": "psctl.workers",
    "Delivery": "psctl.work.handlers",
    "Retry": "psctl.work.handlers",
    "Dead": "psctl.work.handlers",
    "InvalidArgument": "psctl.errors",
    # what the ps* methods return and take (psctl.types)
    "AckLease": "psctl.types",
    "AddSummary": "psctl.types",
    "Added": "psctl.types",
    "Counters": "psctl.types",
    "DeadItems": "psctl.types",
    "Expired": "psctl.types",
    "Failure": "psctl.types",
    "Item": "psctl.types",
    "KeyRow": "psctl.types",
    "Lease": "psctl.types",
    "Limits": "psctl.types",
    "ListedState": "psctl.types",
    "RefusedBy": "psctl.types",
    "Refusal": "psctl.types",
    "State": "psctl.types",
    "Stats": "psctl.types",
    "StopWaiting": "psctl.types",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # ("X as X": what a type checker takes as exported)
    from psctl.client import (
        AsyncRedis as AsyncRedis,
        Redis as Redis,
    )
    from psctl.cluster import (
        AsyncRedisCluster as AsyncRedisCluster,
        RedisCluster as RedisCluster,
    )
    from psctl.providers import (
        AsyncRedisProvider as AsyncRedisProvider,
        RedisProvider as RedisProvider,
    )
    from psctl.errors import (
        InvalidArgument as InvalidArgument,
        PsctlError as PsctlError,
    )
    from psctl.settings import Settings as Settings
    from psctl.work.handlers import (
        Dead as Dead,
        Delivery as Delivery,
        Retry as Retry,
    )
    from psctl.workers import (
        AsyncWorker as AsyncWorker,
        ServerLost as ServerLost,
        Worker as Worker,
        WorkSummary as WorkSummary,
    )
    from psctl.types import (
        AckLease as AckLease,
        AddSummary as AddSummary,
        Added as Added,
        Counters as Counters,
        DeadItems as DeadItems,
        Expired as Expired,
        Failure as Failure,
        Item as Item,
        KeyRow as KeyRow,
        Lease as Lease,
        Limits as Limits,
        ListedState as ListedState,
        RefusedBy as RefusedBy,
        Refusal as Refusal,
        State as State,
        Stats as Stats,
        StopWaiting as StopWaiting,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'psctl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
