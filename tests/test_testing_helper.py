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
