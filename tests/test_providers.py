"""fast-depends providers and connection settings (SPEC §3)."""

from __future__ import annotations

from typing import Annotated

import pytest
import redis
from fast_depends import inject

from psctl import AsyncRedis, AsyncRedisProvider, Redis, RedisProvider, Settings
from psctl.connections import TimedConnection, TimedUnixDomainSocketConnection
from psctl.errors import InvalidArgument
from psctl.settings import sync_pool
from psctl.urls import redact_url, seed_nodes

REDIS_ENV = ["REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_SSL"]


@pytest.fixture
def env(monkeypatch, redis_url):
    for name in [*REDIS_ENV, "REDIS_CLUSTER"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_url)
    return monkeypatch


def test_sync_provider_as_default_and_annotated(env, r):
    @inject
    def by_default(redis: Redis = RedisProvider()):
        return redis

    @inject
    def by_annotation(redis: Annotated[Redis, RedisProvider()]):
        return redis

    for make in (by_default, by_annotation):
        client = make()
        assert isinstance(client, Redis)
        assert client.psadd("q", "a", "v") is not None
    assert r.pslen("q") == 1
    # one pool per distinct settings, reused by every injection
    assert by_default().connection_pool is by_annotation().connection_pool


def test_caller_can_pass_its_own_client(env, redis_url):
    @inject
    def which(redis: Redis = RedisProvider()):
        return redis

    mine = Redis.from_url(redis_url)
    assert which(redis=mine) is mine


async def test_async_provider_with_async_with(env, r):
    @inject
    async def by_default(rc: AsyncRedis = AsyncRedisProvider()):
        async with rc as redis:
            await redis.psadd("q", "a", "v", score=2)
            return await redis.pspull("q")

    @inject
    async def by_annotation(rc: Annotated[AsyncRedis, AsyncRedisProvider()]):
        async with rc as redis:
            await redis.psadd("q", "b", "w")
            return await redis.pslen("q")

    assert await by_default() == {"a": b"v"}
    assert await by_annotation() == 1
    assert await by_annotation() == 1  # the pool survives `async with`


def test_sync_provider_inside_an_async_function(env):
    @inject
    async def mixed(redis: Redis = RedisProvider()):
        return redis.psnames()

    import asyncio

    assert asyncio.run(mixed()) == []


def test_settings_precedence():
    env = {"REDIS_URL": "redis://u:secret@from-url:1/2", "REDIS_HOST": "from-host", "REDIS_PORT": "7"}
    assert Settings.resolve(env, url="redis://explicit:9").url == "redis://explicit:9"
    assert Settings.resolve(env, host="h").host == "h" and Settings.resolve(env, host="h").url is None
    assert Settings.resolve(env).url == "redis://u:secret@from-url:1/2"
    from_host = Settings.resolve({"REDIS_HOST": "hh", "REDIS_PORT": "7", "REDIS_DB": "3", "REDIS_SSL": "true",
                                  "REDIS_USERNAME": "bob", "REDIS_PASSWORD": "pw"})
    assert (from_host.host, from_host.port, from_host.db, from_host.ssl) == ("hh", 7, 3, True)
    assert (from_host.username, from_host.password) == ("bob", "pw")
    assert Settings.resolve({}) == Settings()
    with pytest.raises(ValueError, match="REDIS_PORT"):
        Settings.resolve({"REDIS_PORT": "abc"})


def test_passwords_never_shown():
    url = Settings.resolve({"REDIS_URL": "redis://user:hunter2@example:6379/0"})
    host = Settings.resolve({"REDIS_HOST": "example", "REDIS_PASSWORD": "hunter2"})
    for settings in (url, host):
        assert "hunter2" not in repr(settings) and "hunter2" not in settings.where
        assert "hunter2" not in repr(RedisProvider(**{"url": settings.url} if settings.url else {}))
    assert redact_url("rediss://user:hunter2@h:1/0") == "rediss://user:***@h:1/0"
    assert redact_url("unix:///tmp/x.sock") == "unix:///tmp/x.sock"


def test_unix_and_tls_urls_make_the_right_pools():
    unix = sync_pool(Settings(url="unix:///tmp/psctl-test.sock"))
    tls = sync_pool(Settings(url="rediss://localhost:6390/0"))
    assert unix.connection_class is TimedUnixDomainSocketConnection  # kernel-bounded waits
    assert issubclass(unix.connection_class, redis.UnixDomainSocketConnection)
    assert tls.connection_class is redis.SSLConnection  # TLS keeps redis-py's own timeouts
    assert sync_pool(Settings(url="redis://localhost:6390/0")).connection_class is TimedConnection
    assert sync_pool(Settings(host="localhost", port=6391)).connection_class is TimedConnection
    assert sync_pool(Settings(url="unix:///tmp/psctl-test.sock")) is unix


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "redis://h:1/abc"}, "the URL's path is the database's number"),  # (redis-py: database 0)
        ({"REDIS_URL": "redis://h:1/0/5"}, "the URL's path is the database's number"),  # (redis-py: database 5)
        ({"REDIS_URL": "redis://h:1/0?db=x"}, "the URL parameter 'db' has a value redis-py cannot read"),
        ({"REDIS_URL": "redis://[::1/0"}, "the URL's host is not a host name, nor an IPv6 address"),
        ({"REDIS_URL": "unix://"}, "a unix:// URL names the socket by its full path"),
        ({"REDIS_URL": "unix://run/redis.sock"}, "a unix:// URL has no host"),  # (redis-py: /redis.sock)
        ({"REDIS_URL": "unix:///x.sock", "REDIS_CLUSTER": "1"}, "cluster mode takes a redis:// or rediss:// URL"),
        ({"REDIS_HOST": "u:hunter2@h"}, r"REDIS_HOST 'u:\*\*\*@h' is not a host name"),
        ({"REDIS_HOST": "h", "REDIS_PORT": "99999"}, "REDIS_PORT must be a whole number from 0 to 65535"),
        ({"REDIS_HOST": "h", "REDIS_DB": "x"}, "REDIS_DB must be a whole number, got 'x'"),
    ],
)
def test_settings_refuse_what_redis_py_would_misread(env, message):
    with pytest.raises(InvalidArgument, match=message) as refused:
        Settings.resolve(env)
    assert "hunter2" not in str(refused.value)


def test_settings_show_a_host_as_a_url():
    assert Settings.resolve({"REDIS_HOST": "h", "REDIS_PORT": "7", "REDIS_DB": "3"}).where == "redis://h:7/3"
    assert Settings.resolve({"REDIS_HOST": "::1", "REDIS_SSL": "yes"}).where == "rediss://[::1]:6379/0"
    assert Settings.resolve({"REDIS_URL": "unix:///x.sock?db=2"}).url == "unix:///x.sock?db=2"


def test_addr_names_more_nodes_of_a_cluster_and_nothing_else():
    """The URL parameter ``addr`` as parse_qs (and redis-py) read it: ``%61ddr``
    is ``addr`` too, and a URL without a host keeps its ``//``. Standalone
    clients refuse it."""
    assert seed_nodes("redis://h:1?db=0&%61ddr=a:2&addr=%5B::1%5D:3&protocol=3#x") == (
        "redis://h:1?db=0&protocol=3#x", [("h", 1), ("a", 2), ("::1", 3)]
    )
    assert seed_nodes("redis://?addr=a:2") == ("redis://", [("a", 2)])  # (redis-py adds the URL's own node)
    assert seed_nodes("redis://node%2D1?addr=a:2")[1] == [("node-1", 6379), ("a", 2)]  # the host unquoted, as redis-py does
    assert seed_nodes("redis://h#f?addr=a:2") == ("redis://h#f?addr=a:2", [])  # (a fragment's, as urlsplit reads it)
    assert seed_nodes("redis://h:1?db=0") == ("redis://h:1?db=0", [])
    for standalone in (lambda url: Redis.from_url(url), lambda url: AsyncRedis.from_url(url),
                       lambda url: Settings.resolve({"REDIS_URL": url})):  # fmt: skip
        with pytest.raises(InvalidArgument, match="takes cluster mode"):
            standalone("redis://h:1?%61ddr=a:2")
    assert Settings.resolve({"REDIS_URL": "redis://h:1?addr=a:2", "REDIS_CLUSTER": "1"}).cluster

