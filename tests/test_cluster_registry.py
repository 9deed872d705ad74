"""The registry heals itself on a real cluster: a stream whose ``SADD`` a
failover of the registry's master lost (on a 3+3 cluster of its own) comes
back into ``:ps:keys`` at the next read of the registry, found by one sweep
of the masters' keys; a key that is no stream's is never taken for one; and
a sweep happens once per change of the registry's node, not once per call
(those on the session's shared cluster, its registry's marker deleted or
changed by hand as a failover would)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pytest

from psctl.cluster import AsyncRedisCluster, RedisCluster
from psctl.errors import ServerError
from psctl.launcher import find_binary
from psctl.layout import REGISTRY, SWEPT, stream_keys
from testservers import ClusterProcess, ServerProcess, start_cluster

from .helpers import Cli

PAST = datetime(2000, 1, 1, tzinfo=timezone.utc)  # a cool-down that ends at once


@pytest.fixture
def healing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    """A 3+3 cluster of the test's own: its registry's master is failed over."""
    binary = find_binary(os.environ.get("PSCTL_TEST_SERVER") or None)
    process = start_cluster(tmp_path_factory.mktemp("registry"), replicas=1, node_timeout=1000, binary=binary)
    try:
        yield process
    finally:
        process.stop()


def scans(cluster: ClusterProcess) -> int:
    """SCAN calls the live masters have served so far."""
    total = 0
    for node in cluster.masters():
        stats = cluster.admin(node).info("commandstats")
        total += int(stats.get("cmdstat_scan", {}).get("calls", 0))
    return total


def away_from(cluster: ClusterProcess, node: ServerProcess, prefix: str) -> str:
    """A stream name whose keys live on another master than ``node``."""
    for i in range(100):
        name = f"{prefix}-{i}"
        if cluster.owner_of_key(stream_keys(name, cluster=True).values) is not node:
            return name
    raise AssertionError("every name hashed to one master")


def promoted(cluster: ClusterProcess, replica: ServerProcess, slot_key: str, timeout: float = 30) -> None:
    """Until ``replica`` serves ``slot_key``'s slot and the cluster is ok."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cluster.owner_of_key(slot_key) is replica:
                break
        except ServerError:  # (no live node serves the slot for a moment)
            pass
        assert time.monotonic() < deadline, "the replica was not promoted"
        time.sleep(0.05)
    cluster.wait_ok()


@pytest.mark.slow
def test_a_stream_whose_registration_a_failover_lost_comes_back(healing):
    with RedisCluster.from_url(healing.url) as client:
        name = orphan(healing, client)
    with RedisCluster.from_url(healing.url) as fresh:  # (and no further add)
        assert fresh.psnames() == [name]
        [stats] = fresh.psstatsmany()
        assert (stats["name"], stats["waiting"]) == (name, 31)  # (its cool-downs have ended: not "cooling")
    cli = Cli(healing.url)
    [row] = cli.ok("--cluster", "stats")
    assert (row["name"], row["waiting"]) == (name, 31)
    done = cli("--cluster", "metrics")
    assert done.exit_code == 0, done.stderr
    assert f'psctl_stream_items{{state="waiting",stream="{name}"}} 31.0' in done.stdout
    assert cli.ok("--cluster", "expire") == {"expired": {name: 10}, "total": 10}


def orphan(healing: ClusterProcess, client: Any) -> str:
    """Creates a stream while the registry's master cannot replicate, then kills that master."""
    registry_master = healing.owner_of_key(REGISTRY)
    [replica] = healing.replicas_of(registry_master)
    name = away_from(healing, registry_master, "orphan")
    client.psnames()  # the registry known whole, as a running system's is
    with healing.stalled(replica):
        # a stalled replica still takes into its socket's buffer what its master
        # sends: its link is cut too, so that the SADD never leaves the master
        healing.admin(registry_master).execute_command("CLIENT", "KILL", "TYPE", "replica")
        client.psaddmany(name, [(f"k{i:02d}", b"v", i) for i in range(41)])
        assert len(client.pspull(name, count=10, expire_at=PAST)) == 10  # 10 cool-downs, due
        healing.kill(registry_master)
    promoted(healing, replica, REGISTRY)
    assert not healing.admin(replica).sismember(REGISTRY, name)  # the SADD was lost: an orphan
    return name


def test_a_key_that_is_no_streams_is_never_registered(cluster, rc):
    rc.psadd("real", "k", b"v")
    k = lambda name: stream_keys(name, cluster=True)  # noqa: E731
    rc.zadd(k("half").scores, {"k": 1})  # written by another tool: only a stream's scores
    rc.hset(k("{tenant}:jobs").values, "k", "v")  # a braced name's values
    rc.sadd(k("}odd").gated, "k")  # a name with a stray brace: only its gates
    rc.set(k("user").values, "a string, not a hash")  # a stream's key name, not its type
    rc.hset(k("counted").stats, "added", 1)  # counters alone hold no items
    rc.rpush(k("woken").wake, "1")  # nor does a wake-up token
    rc.set("plain", "x")
    rc.hset("{odd}x:t", "k", "v")  # not a key psctl would build for any name
    rc.delete(SWEPT)  # as if the registry had just moved
    assert rc.psnames() == sorted(["real", "half", "{tenant}:jobs", "}odd"])
    assert rc.exists(SWEPT)  # (a whole sweep marks the registry)


def test_a_sweep_happens_once_per_registry_change_not_per_call(cluster, rc):
    rc.psadd("kept", "k", b"v")
    rc.srem(REGISTRY, "kept")  # lost, as a failover would lose it
    rc.set(SWEPT, "another node")  # the registry's node changed since its last sweep
    before = scans(cluster)
    assert rc.psnames() == ["kept"]
    swept = scans(cluster)
    assert swept > before
    for _ in range(5):
        assert rc.psnames() == ["kept"]
        rc.psexpire()
        rc.psstatsmany()
    assert scans(cluster) == swept
    rc.delete(SWEPT)  # changed again: one more sweep
    rc.srem(REGISTRY, "kept")
    assert rc.psnames() == ["kept"]
    assert scans(cluster) > swept


def test_the_async_client_heals_the_registry_too(cluster, rc):
    rc.psadd("later", "k", b"v")
    rc.srem(REGISTRY, "later")
    rc.delete(SWEPT)

    async def names() -> list[str]:
        async with AsyncRedisCluster.from_url(cluster.url) as aclient:
            return await aclient.psnames()

    assert asyncio.run(names()) == ["later"]
    assert rc.sismember(REGISTRY, "later")


def test_a_user_an_acl_keeps_from_the_marker_reads_the_registry_as_it_is(cluster, rc):
    rights = "~:ps:keys ~{seen}:* ~{lost}:* +@read +@write +@scripting +time -@dangerous +info +cluster|slots +command"
    admins = [cluster.admin(node) for node in cluster.alive()]  # (a cluster's nodes do not share their ACLs)
    rc.psadd("seen", "k", b"v")
    rc.psadd("lost", "k", b"v")
    rc.srem(REGISTRY, "lost")
    rc.delete(SWEPT)
    url = cluster.url.replace("redis://", "redis://worker:pw@")
    try:
        for admin in admins:
            admin.execute_command("ACL", "SETUSER", "worker", "reset", "on", ">pw", *rights.split())
        with RedisCluster.from_url(url) as worker:
            assert worker.psnames() == ["seen"]  # no sweep, and no error
        for admin in admins:
            admin.execute_command("ACL", "SETUSER", "worker", f"~{SWEPT}")
        with RedisCluster.from_url(url) as worker:
            assert worker.psnames() == ["lost", "seen"]
    finally:
        for admin in admins:
            admin.execute_command("ACL", "DELUSER", "worker")


def test_concurrent_sweeps_are_harmless(cluster, rc):
    names = [f"many-{i}" for i in range(30)]
    for name in names:
        rc.psadd(name, "k", b"v")
    rc.srem(REGISTRY, *names[::2])
    rc.delete(SWEPT)
    with RedisCluster.from_url(cluster.url) as other, ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda c: c.psnames(), [rc, other, rc, other]))
    assert found == [sorted(names)] * 4
    assert rc.smembers(REGISTRY) == {name.encode() for name in names}
    run_id = cluster.admin(cluster.owner_of_key(REGISTRY)).info("server")["run_id"]
    assert rc.get(SWEPT) == run_id.encode()


def test_a_client_that_decodes_heals_past_a_key_that_is_not_utf8(cluster, rc):
    """Another tool's key that is not UTF-8, beside a stream on its node, must
    not stop a ``decode_responses`` client's sweep of that node."""
    rc.psadd("kept", "k", b"v")
    rc.set(b"{kept}\xff", "x")  # (its tag puts it on the stream's node)
    rc.srem(REGISTRY, "kept")  # lost, as a failover would lose it
    rc.delete(SWEPT)
    decoding = RedisCluster.from_url(cluster.url, decode_responses=True)
    try:
        assert decoding.psnames() == ["kept"]
    finally:
        decoding.close()
    assert rc.exists(SWEPT)  # (swept whole: no node left for the next read)
