"""Redis Cluster specifics, on a real 3-master cluster. (Every operation also
runs on the cluster in test_operations.py.)"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Annotated

import pytest
from fast_depends import inject

from psctl import AsyncRedisCluster, AsyncRedisProvider, RedisCluster, RedisProvider
from psctl.layout import REGISTRY, has_hash_tag, stream_keys


def node_of(client, key: str) -> str:
    return client.get_node_from_key(key).name


@pytest.mark.parametrize(
    ("name", "values_key"),
    [
        ("jobs", "{jobs}:t"),  # no braces: wrapped (SPEC §1)
        ("a:b", "{a:b}:t"),
        ("{user1}.jobs", "{user1}{user1}.jobs:t"),  # braces: prefixed with its own tag
        ("pre{x}post", "{x}pre{x}post:t"),
        ("{}empty", "{empty}{}empty:t"),  # no tag: the name without braces as one
        ("half{open", "{halfopen}half{open:t"),
        ("}", "{_}}:t"),
    ],
)
def test_cluster_key_layout(name, values_key):
    keys = stream_keys(name, cluster=True)
    assert keys.values == values_key
    assert keys.all == tuple(values_key[:-1] + suffix for suffix in ("t", "s", "exc", "exp"))
    assert stream_keys(name).values == f"{name}:t"  # standalone: exactly the SPEC §1 layout


def test_has_hash_tag():
    assert has_hash_tag("{a}") and has_hash_tag("x{a}y")
    assert not has_hash_tag("{}") and not has_hash_tag("abc") and not has_hash_tag("}{")


def test_each_stream_lives_in_one_slot_and_streams_spread_over_all_masters(rc):
    names = [f"stream-{i}" for i in range(20)] + [f"{{tag{i}}}:q" for i in range(10)]
    for name in names:
        rc.psaddmany(name, [(f"k{j}", "v", j) for j in range(3)])
        rc.pspull(name, count=1, gate=True)
    nodes = set()
    for name in names:
        keys = stream_keys(name, cluster=True)
        slots = {rc.keyslot(key) for key in keys.all}
        assert len(slots) == 1, name
        assert rc.exists(*keys.all) == 4
        nodes.add(node_of(rc, keys.values))
    assert len(nodes) == 3
    assert rc.psnames() == sorted(names)
    assert sum(rc.pslen(name) for name in names) == 2 * len(names)


def test_psexpire_across_nodes_in_one_batch(rc, monkeypatch):
    names = [f"s{i}" for i in range(30)]
    rc.psadd("warm-up", "a", "v")
    rc.pspull("warm-up", expire_at=None)
    rc.psexpire()  # loads the script on every primary (a cold one also reloads: test_operations)
    for name in names:
        rc.psaddmany(name, [("due", "v", 2), ("later", "v", 1)])
        rc.pspull(name, count=2, expire_at=timedelta(hours=1))
        rc.zadd(stream_keys(name, cluster=True).cooling, {"due": 1})  # long past (a pull would have ended it)
    assert len({node_of(rc, stream_keys(n, cluster=True).values) for n in names}) == 3

    from redis.connection import AbstractConnection

    writes: list[bytes] = []  # what goes on the wire, one write at a time
    original = AbstractConnection.send_packed_command

    def send_packed_command(self, packed, *args, **kwargs):
        writes.append(packed if isinstance(packed, bytes) else b"".join(packed))
        return original(self, packed, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
    assert rc.psexpire() == dict.fromkeys(names, 1)
    # the registry read (SMEMBERS and its marker's script, in one write), then one pipeline with every
    # stream's script: one write per node
    assert [w.count(b"\r\n:ps:keys\r\n") for w in writes] == [2, 0, 0, 0]
    assert sorted(w.count(b"\r\nEVALSHA\r\n") for w in writes[1:]) == sorted(
        sum(node_of(rc, stream_keys(n, cluster=True).values) == node for n in names)
        for node in {node_of(rc, stream_keys(n, cluster=True).values) for n in names}
    )
    for name in names:
        assert rc.zrange(stream_keys(name, cluster=True).cooling, 0, -1) == [b"later"]


def test_psexpire_unregisters_dead_streams_on_every_node(rc):
    names = [f"d{i}" for i in range(12)]
    for name in names:
        rc.psadd(name, "a", "v")
        rc.pspull(name, expire_at=timedelta(seconds=-1))
    rc.psadd("alive", "a", "v")
    assert rc.psexpire() == dict.fromkeys(names, 1)
    assert rc.psnames() == ["alive"]
    assert rc.smembers(REGISTRY) == {b"alive"}


def test_slot_migration_during_a_run_loses_nothing(rc, cluster):
    """One stream's slot moves from one master to another while an adder and a
    puller run; redis-py follows MOVED/ASK and every item is accounted for."""
    name = "migrating"
    keys = stream_keys(name, cluster=True)
    slot = rc.keyslot(keys.values)
    rc.psadd(name, "seed", "v")
    source = rc.get_node_from_key(keys.values)
    target = next(n for n in rc.get_primaries() if n.name != source.name)
    ids = {n.name: rc.cluster_myid(n) for n in rc.get_primaries()}
    src = RedisCluster.from_url(cluster.url).get_redis_connection(source)
    dst = RedisCluster.from_url(cluster.url).get_redis_connection(target)

    added, pulled, errors = [], [], []
    stop = threading.Event()

    def adder():
        client = RedisCluster.from_url(cluster.url)
        i = 0
        while not stop.is_set():
            try:
                if client.psaddmany(name, [(f"k{i}-{j}", "v", j) for j in range(10)]) is not None:
                    added.extend(f"k{i}-{j}" for j in range(10))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                errors.append(exc)
            i += 1

    def puller():
        client = RedisCluster.from_url(cluster.url)
        while not stop.is_set():
            try:
                pulled.extend(client.pspull(name, count=7, expire_at=None))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=adder), threading.Thread(target=puller)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source.name])
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target.name])
    while moving := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
        src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *moving)
    for node in (dst, src):
        node.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target.name])
    for node in rc.get_primaries():
        if node.name not in (source.name, target.name):
            rc.get_redis_connection(node).execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target.name])
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()

    assert not errors, errors[:3]
    rc.nodes_manager.initialize()
    assert rc.get_node_from_key(keys.values).name == target.name
    left = rc.pskeys(name)
    assert added, "the adder never ran"
    assert sorted(pulled + left) == sorted(["seed", *added])


def test_providers_give_cluster_clients(cluster, monkeypatch, rc):
    monkeypatch.delenv("REDIS_CLUSTER", raising=False)
    monkeypatch.setenv("REDIS_URL", cluster.url)

    @inject
    def explicit(redis: RedisCluster = RedisProvider(cluster=True)):
        return redis

    monkeypatch.setenv("REDIS_CLUSTER", "1")

    @inject
    def from_env(redis: Annotated[RedisCluster, RedisProvider()]):
        return redis

    assert isinstance(explicit(), RedisCluster) and explicit() is from_env()
    assert explicit().psadd("p", "a", "v", 2) == 2.0

    @inject
    async def async_one(rc: AsyncRedisCluster = AsyncRedisProvider(cluster=True)):
        async with rc as redis:
            assert isinstance(redis, AsyncRedisCluster)
            return await redis.pspull("p")

    import asyncio

    assert asyncio.run(async_one()) == {"a": b"v"}


# -- issue 11: names with braces (points 10 and 11) ------------------------------------

BRACED = ["jobs", "{jobs}", "}jobs", "}", "{", "{}", "{}jobs", "jobs}", "{a}b}", "a}b", "{tenant-7}:jobs", "{{x}}", "x{y}z"]


def test_different_names_never_share_a_key():
    seen: dict[str, str] = {}
    for name in BRACED:
        for key in stream_keys(name, cluster=True).every:
            assert key not in seen, (name, seen.get(key))
            seen[key] = name


def test_every_name_keeps_its_keys_in_one_slot_and_works(rc):
    from redis.crc import key_slot

    for name in BRACED:
        keys = stream_keys(name, cluster=True)
        assert len({key_slot(key.encode()) for key in keys.every}) == 1, name
        assert rc.psadd(name, "k", name, 1) == 1.0
    for name in BRACED:
        assert rc.psget(name, "k") == name.encode(), name
        assert rc.pspull(name) == {"k": name.encode()}
    assert rc.psnames() == sorted(BRACED)


def test_a_tagged_name_still_shares_a_node_with_its_tag(rc):
    assert node_of(rc, stream_keys("{tenant-7}:jobs", cluster=True).values) == node_of(
        rc, stream_keys("{tenant-7}:mail", cluster=True).values
    )
