"""Durability a caller can ask for: ``replicas=N`` waits (``WAIT``, on the
connection that wrote) until N replicas have a write, and raises
``NotReplicated`` when they do not. On a master with one replica, and on a
3+3 Redis Cluster whose masters fail over by SIGKILL; a lagging replica is a
stalled one (SIGSTOP) whose link the master dropped, so that what follows
reaches only the master."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

from psctl import AsyncRedis, Redis, Worker
from psctl.cluster import AsyncRedisCluster, RedisCluster
from psctl.errors import InvalidArgument, NotReplicated
from psctl.launcher import find_binary
from psctl.layout import stream_keys
from .helpers import Cli
from testservers import ClusterProcess, ServerProcess, stalled, start_cluster, start_replicated

pytestmark = pytest.mark.slow

ITEMS = [(f"k{i}", f"v{i}", i) for i in range(100)]


def _binary() -> Any:
    return find_binary(os.environ.get("PSCTL_TEST_SERVER") or None)


def _linked(admin: Any) -> bool:
    return admin.info("replication").get("master_link_status") == "up"


# -- a master and its replica ---------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    master, replica = start_replicated(tmp_path_factory.mktemp("pair"), binary=_binary())
    try:
        yield master, replica
    finally:
        for process in (replica, master):
            os.kill(process.pid, signal.SIGCONT)  # (a stalled one stops too)
            process.stop()


def test_a_write_that_asks_for_a_replica_returns_once_the_replica_has_it(pair: Any) -> None:
    master, replica = pair
    r = Redis.from_url(f"redis://127.0.0.1:{master.port}")
    r.delete(*stream_keys("standing").every)
    assert r.psaddmany("standing", ITEMS, replicas=1) == [float(i) for i in range(100)]
    lease = r.pslease("standing", count=10)
    assert r.psack("standing", lease.token, replicas=1, replicas_timeout=5) == 10
    # (no wait here: WAIT said the replica had both)
    on_replica = Redis.from_url(f"redis://127.0.0.1:{replica.port}")
    assert on_replica.pslen("standing") == 90
    assert on_replica.psitem("standing", list(lease.items)[0])["state"] == "cooling"


def test_a_stalled_replica_makes_the_write_fail_loudly_after_it_was_done(pair: Any) -> None:
    master, replica = pair
    r = Redis.from_url(f"redis://127.0.0.1:{master.port}")
    r.delete(*stream_keys("stalled").every)
    r.psaddmany("stalled", ITEMS)
    lease = r.pslease("stalled", count=5)
    with stalled(replica):
        with pytest.raises(NotReplicated) as failed:
            r.psack("stalled", lease.token, replicas=1, replicas_timeout=0.2)
        r.ps_replicas = 1  # the client-wide default, for every write
        with pytest.raises(NotReplicated) as added:
            r.psadd("stalled", "new", "v", 7, replicas_timeout=0.2)
        assert r.psadd("stalled", "other", "v", 7, replicas=0) == 7.0  # a call's own 0 wins
    error = failed.value
    assert (error.operation, error.wanted, error.acknowledged, error.result) == ("psack", 1, 0, 5)
    assert str(error) == (
        "psack was done on the master, but only 0 of 1 replica acknowledged it within 0.2s: "
        "a failover now could undo it"
    )
    assert added.value.result == 7.0
    assert r.psitem("stalled", list(lease.items)[0])["state"] == "cooling"  # done on the master all the same
    assert r.psget("stalled", "new") == b"v"


async def test_the_async_client_waits_on_the_connection_that_wrote(pair: Any) -> None:
    master, replica = pair
    r = AsyncRedis.from_url(f"redis://127.0.0.1:{master.port}")
    try:
        await r.delete(*stream_keys("async").every)
        assert await r.psadd("async", "a", "v", 1, replicas=1) == 1.0
        with stalled(replica):
            with pytest.raises(NotReplicated) as failed:
                await r.psaddmany("async", ITEMS, replicas=1, replicas_timeout=0.2)
        assert failed.value.result == [float(i) for i in range(100)]
        assert failed.value.acknowledged == 0
    finally:
        await r.aclose()


def test_replicas_and_their_timeout_are_checked_before_anything_is_sent(pair: Any) -> None:
    master, _ = pair
    r = Redis.from_url(f"redis://127.0.0.1:{master.port}")
    r.delete(*stream_keys("checked").every)
    for bad in ({"replicas": -1}, {"replicas": "1"}, {"replicas": 1, "replicas_timeout": 0}):
        with pytest.raises(InvalidArgument):
            r.psadd("checked", "a", "v", 1, **bad)
    assert r.pslen("checked") == 0


def test_the_command_line_waits_for_replicas_and_says_when_they_did_not_have_a_write(pair: Any) -> None:
    master, replica = pair
    cli = Cli(f"redis://127.0.0.1:{master.port}")
    r = Redis.from_url(cli.url)
    r.delete(*stream_keys("cli").every)
    assert cli.ok("--wait-replicas", "1", "add-many", "cli", "-", "--format", "csv", input="key,value,score\na,x,1\nb,y,2\nc,z,3\n")
    token = cli.ok("lease", "cli", "--wait-replicas", "1")["token"]
    with stalled(replica):
        done = cli("--timeout", "0.4", "--wait-replicas", "1", "ack", "cli", token)
        assert (done.exit_code, done.stdout) == (1, "")
        assert done.stderr == (
            f"psctl: the write was done on the server at redis://127.0.0.1:{master.port}, but only 0 of 1 replica had it "
            "within 0.2s (--wait-replicas): a failover now could undo it\n"
        )
        pulled = cli("pull", "cli", "-o", "raw", "--timeout", "0.4", env={"PSCTL_WAIT_REPLICAS": "1"})
        assert (pulled.exit_code, pulled.stdout) == (1, "y\n")  # what it took is printed all the same
        assert "only 0 of 1 replica" in pulled.stderr and pulled.stderr.count("\n") == 1
    assert r.pslen("cli") == 1
    bad = cli("--wait-replicas", "-1", "len", "cli")
    assert bad.exit_code == 2


def test_work_goes_on_when_its_writes_miss_their_replicas_and_says_so_once(pair: Any) -> None:
    """A lagging replica must not stop the queue: each write was done on the
    master, so the worker goes on with its result, and warns once."""
    master, replica = pair
    cli = Cli(f"redis://127.0.0.1:{master.port}")
    r = Redis.from_url(cli.url)
    r.delete(*stream_keys("work").every)
    r.psaddmany("work", [(f"k{i}", "v", i) for i in range(3)])
    with stalled(replica):
        done = cli("--timeout", "0.4", "--wait-replicas", "1", "work", "work", "--idle-exit", "0", "--json", "--", "true")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["done"] == 3
    assert done.stderr.count("only 0 of 1 replica") == 1, done.stderr
    assert "going on (its item could run again after a failover)" in done.stderr
    assert r.pslen("work") == 0 and r.psstats("work")["counters"]["acked"] == 3


def test_a_python_worker_goes_on_too_and_warns_once_a_minute_at_most(pair: Any) -> None:
    master, replica = pair
    r = Redis.from_url(f"redis://127.0.0.1:{master.port}")
    r.delete(*stream_keys("worker").every)
    r.psaddmany("worker", [(f"k{i}", "v", i) for i in range(4)])
    r.ps_replicas, r.ps_replicas_timeout = 1, 0.1
    seen: list[str] = []
    worker = Worker(r, "worker", lambda item: seen.append(item.key), idle_exit=0, prefetch=1)
    with stalled(replica):  # (every lease and acknowledgement misses the replica)
        summary = worker.run()
    assert summary.done == 4 and sorted(seen) == ["k0", "k1", "k2", "k3"]
    short = [w for w in worker.warnings if "replica" in w]
    assert len(short) == 1 and "only 0 of 1 replica" in short[0] and "going on" in short[0], worker.warnings
    assert r.pslen("worker") == 0


def test_the_warning_comes_again_after_a_minute_with_how_many_fell_short() -> None:
    from psctl.work.unreplicated import Shortfall

    said: list[str] = []
    now = [0.0]
    shortfall = Shortfall(said.append, lambda: now[0])
    miss = NotReplicated("psack", 1, 0, 0.1, 1)
    for at in (0.0, 1.0, 30.0, 59.0):
        now[0] = at
        shortfall.fell_short(miss)
    assert len(said) == 1
    now[0] = 60.0
    shortfall.fell_short(miss)
    assert said[1].startswith("4 more writes fell short of their replicas in the last 60 s (psack was done")
    now[0] = 61.0
    shortfall.fell_short(miss)
    assert len(said) == 2


# -- a 3+3 cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    """Its own cluster: two of these tests kill a master. Each test takes
    masters that still have a replica, whatever ran before it: four of them,
    so that two are left."""
    process = start_cluster(
        tmp_path_factory.mktemp("replicas"), masters=4, replicas=1, node_timeout=1000, binary=_binary()
    )
    try:
        yield process
    finally:
        process.stop()


def _replicated_masters(cluster: ClusterProcess) -> list[tuple[ServerProcess, ServerProcess]]:
    """The masters that have a linked replica, each with one of them."""
    found = []
    for master in cluster.masters():
        replicas = [node for node in cluster.replicas_of(master) if _linked(cluster.admin(node))]
        if replicas:
            found.append((master, replicas[0]))
    return found


def _replicated_master(cluster: ClusterProcess) -> tuple[ServerProcess, ServerProcess]:
    return _replicated_masters(cluster)[0]


def _url(cluster: ClusterProcess) -> str:
    """A live node's: the first one may have been killed by a test before."""
    return f"redis://127.0.0.1:{cluster.alive()[0].port}"


def _name_on(cluster: ClusterProcess, master: ServerProcess, prefix: str) -> str:
    for i in range(100):
        name = f"{prefix}{i}"
        if cluster.owner(key_slot(stream_keys(name, cluster=True).scores.encode())) is master:
            return name
    raise AssertionError(f"no {prefix}N on port {master.port}")


def _promoted(cluster: ClusterProcess, replica: ServerProcess, name: str) -> None:
    """Until ``replica`` serves ``name``'s slot and the cluster agrees."""
    slot = key_slot(stream_keys(name, cluster=True).scores.encode())
    deadline = time.monotonic() + 30
    while True:
        try:
            if cluster.owner(slot) is replica:
                cluster.wait_ok()
                return
        except Exception:
            pass
        assert time.monotonic() < deadline, "the replica was not promoted"
        time.sleep(0.05)


def test_a_failover_undoes_acknowledged_writes_its_replica_did_not_have(cluster: ClusterProcess) -> None:
    """The risk, without ``replicas=``: an ack and an add answered by the master are gone after it fails over."""
    master, replica = _replicated_master(cluster)
    acked, added = _name_on(cluster, master, "acked"), _name_on(cluster, master, "added")
    r = RedisCluster.from_url(_url(cluster))
    r.psaddmany(acked, ITEMS, replicas=1)
    lease = r.pslease(acked, count=100)
    with cluster.stalled(replica):
        cluster.admin(master).execute_command("CLIENT", "KILL", "TYPE", "replica")  # the replica lags from here
        assert r.psack(acked, lease.token) == 100
        assert r.psaddmany(added, ITEMS) == [float(i) for i in range(100)]
        cluster.kill(master)
    _promoted(cluster, replica, acked)
    after = RedisCluster.from_url(f"redis://127.0.0.1:{replica.port}")
    assert after.psstats(acked)["held"] == 100  # acknowledged, and held again
    assert after.pslen(added) == 0  # added, and gone


def test_with_replicas_a_lagging_replica_is_an_error_and_an_acknowledged_write_survives_a_failover(
    cluster: ClusterProcess,
) -> None:
    master, replica = _replicated_master(cluster)
    name, other = _name_on(cluster, master, "kept"), _name_on(cluster, master, "late")
    r = RedisCluster.from_url(_url(cluster))
    r.ps_replicas = 1  # every write, leases included
    assert r.psaddmany(name, ITEMS) == [float(i) for i in range(100)]
    lease = r.pslease(name, count=60)
    with cluster.stalled(replica):
        with pytest.raises(NotReplicated) as failed:
            r.psaddmany(other, ITEMS[:3], replicas_timeout=0.2)
    assert (failed.value.acknowledged, failed.value.result) == (0, [0.0, 1.0, 2.0])
    assert r.psack(name, lease.token, list(lease.items)[:50]) == 50
    assert r.psaddmany(other, ITEMS[3:]) == [float(i) for i in range(3, 100)]
    assert cluster.failover_by_kill(master) is replica
    after = RedisCluster.from_url(f"redis://127.0.0.1:{replica.port}")
    assert (after.psstats(name)["waiting"], after.psstats(name)["held"]) == (40, 10)
    assert after.pslen(other) == 100


async def test_the_async_cluster_client_waits_on_the_node_that_wrote(cluster: ClusterProcess) -> None:
    master, replica = _replicated_master(cluster)
    name = _name_on(cluster, master, "async")
    r = AsyncRedisCluster.from_url(_url(cluster))
    try:
        assert await r.psadd(name, "a", "v", 1, replicas=1) == 1.0
        with cluster.stalled(replica):
            with pytest.raises(NotReplicated) as failed:
                await r.psadd(name, "b", "v", 2, replicas=1, replicas_timeout=0.2)
        assert failed.value.result == 2.0
    finally:
        await r.aclose()


async def test_a_replicated_write_follows_its_slot_to_another_master(cluster: ClusterProcess) -> None:
    """The held connection's MOVED: the clients' slots tables are stale after a reshard (sync and async)."""
    (master, _), (other, _) = _replicated_masters(cluster)[:2]
    name = _name_on(cluster, master, "moved")
    r, ar = RedisCluster.from_url(_url(cluster)), AsyncRedisCluster.from_url(_url(cluster))
    try:
        assert r.psadd(name, "a", "v", 1, replicas=1) == 1.0
        assert await ar.psadd(name, "b", "v", 1, replicas=1) == 1.0
        cluster.migrate_slot(key_slot(stream_keys(name, cluster=True).scores.encode()), other)
        assert r.psadd(name, "a", "v", 1, replicas=1) == 2.0
        assert await ar.psadd(name, "b", "v", 1, replicas=1) == 2.0
        assert cluster.admin(other).zscore(stream_keys(name, cluster=True).scores, "b") == 2.0
    finally:
        await ar.aclose()
