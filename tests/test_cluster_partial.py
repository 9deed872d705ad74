"""A Redis Cluster with a master down or stalled (and no replica to take
over): what spans nodes (``psexpire``, ``psstatsmany``, ``stats``,
``metrics``) does every stream the live nodes serve and names the failed part;
clients start from any live node, the master of slot 0 down too; metrics say
``psctl_up 0`` when nothing answers, in a textfile and over HTTP.

Each test starts a cluster of its own (3 masters, no replicas, the slots
split evenly: the first serves slot 0, the second the registry ``:ps:keys``,
the third neither), whose servers keep serving their slots while one of them
is down (``cluster-require-full-coverage no``)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions

from psctl.cli.errors import ExitStatus
from psctl.cluster import AsyncRedisCluster, RedisCluster
from psctl.errors import StreamsFailed, cluster_moving
from psctl.launcher import find_binary
from psctl.layout import REGISTRY, stream_keys
from testservers import ClusterProcess, free_port, start_cluster

from .helpers import PSCTL, Cli
from .test_cli_observe import samples
from .test_metrics_serve import ask, env_for

pytestmark = pytest.mark.slow

# streams by the master that serves them (see the module's docstring)
ON_FIRST, ON_SECOND, ON_THIRD = ["s2", "s6"], ["s3", "s7"], ["s0", "s1", "s4"]
STREAMS = sorted(ON_FIRST + ON_SECOND + ON_THIRD)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[ClusterProcess]:
    process = start_cluster(tmp_path, node_timeout=1000, binary=find_binary(os.environ.get("PSCTL_TEST_SERVER") or None))
    try:
        for node in process.nodes:
            process.admin(node).config_set("cluster-require-full-coverage", "no")
        first, second, third = process.nodes
        assert process.owner(0) is first and process.owner_of_key(REGISTRY) is second
        for node, names in ((first, ON_FIRST), (second, ON_SECOND), (third, ON_THIRD)):
            assert all(process.owner_of_key(stream_keys(n, cluster=True).values) is node for n in names)
        yield process
    finally:
        process.stop()


class ClusterCli(Cli):
    def __call__(self, *args: str, **kwargs: Any) -> Any:
        return super().__call__("--cluster", *args, **kwargs)


def cooling_streams(url: str) -> None:
    """Every stream with one waiting item and one cool-down that is due."""
    client = RedisCluster.from_url(url)
    for name in STREAMS:
        client.psadd(name, "due", "v")
        client.pspull(name, expire_at=timedelta(seconds=-1))
        client.psadd(name, "waits", "v")
    client.close()


def failed_on(node: Any, failed: dict[str, BaseException]) -> set[str]:
    """The failed streams, each checked to name ``node``'s address."""
    for name, error in failed.items():
        assert f"127.0.0.1:{node.port}" in str(error), (name, error)
    return set(failed)


def test_a_master_down_fails_its_streams_only(nodes: ClusterProcess, tmp_path: Path) -> None:
    cooling_streams(nodes.url)
    third = nodes.nodes[2]
    nodes.kill(third)
    client = RedisCluster.from_url(nodes.url)
    with pytest.raises(StreamsFailed) as expired:
        client.psexpire()
    assert failed_on(third, expired.value.failed) == set(ON_THIRD)
    assert dict(expired.value.done) == dict.fromkeys(ON_FIRST + ON_SECOND, 1)
    with pytest.raises(StreamsFailed) as read:
        client.psstatsmany()
    assert failed_on(third, read.value.failed) == set(ON_THIRD)
    assert {name: s["waiting"] for name, s in read.value.done.items()} == dict.fromkeys(ON_FIRST + ON_SECOND, 1)
    assert str(read.value).count(f"127.0.0.1:{third.port}") == 1  # (said once for the streams of that node)

    async def read_async() -> StreamsFailed:
        aclient = AsyncRedisCluster.from_url(nodes.url)
        try:
            with pytest.raises(StreamsFailed) as failed:
                await aclient.psstatsmany(["s0", "s3", "s2", "s4"])
            return failed.value
        finally:
            await aclient.aclose()

    partial = asyncio.run(read_async())
    assert failed_on(third, partial.failed) == {"s0", "s4"} and set(partial.done) == {"s2", "s3"}

    cli = ClusterCli(nodes.url)
    stats = cli("stats")
    assert stats.exit_code == ExitStatus.SERVER
    assert [s["name"] for s in json.loads(stats.stdout)] == ["s2", "s3", "s6", "s7"]
    line, *more = stats.stderr.splitlines()
    assert not more and line.startswith("psctl: streams 's0', 's1', 's4': cannot reach a node of the cluster")
    assert f"127.0.0.1:{third.port}" in line and f"127.0.0.1:{nodes.nodes[0].port}" not in line
    named = cli("stats", "s3", "s4")
    assert named.exit_code == ExitStatus.SERVER and [s["name"] for s in json.loads(named.stdout)] == ["s3"]
    assert len(named.stderr.splitlines()) == 1 and "stream 's4'" in named.stderr
    expire = cli("expire")
    assert expire.exit_code == ExitStatus.SERVER and json.loads(expire.stdout) == {"expired": {}, "total": 0}
    assert len(expire.stderr.splitlines()) == 1 and "streams 's0', 's1', 's4'" in expire.stderr
    metrics = cli("metrics", "--textfile", str(tmp_path / "psctl.prom"))
    assert metrics.exit_code == ExitStatus.SERVER and len(metrics.stderr.splitlines()) == 1
    found = samples((tmp_path / "psctl.prom").read_text())
    assert found[("psctl_up", ())] == 1
    assert {labels[0][1] for name, labels in found if name == "psctl_stream_failed"} == set(ON_THIRD)
    waiting = {dict(labels)["stream"]: value for (name, labels), value in found.items()
               if name == "psctl_stream_items" and dict(labels)["state"] == "waiting"}  # fmt: skip
    assert waiting == dict.fromkeys(ON_FIRST + ON_SECOND, 1)


def test_a_stalled_master_costs_its_part_only(nodes: ClusterProcess) -> None:
    cooling_streams(nodes.url)
    third = nodes.nodes[2]
    client = RedisCluster.from_url(nodes.url, socket_timeout=1)
    client.psstatsmany()  # (connections to every node made before it stalls)
    with nodes.stalled(third):
        with pytest.raises(StreamsFailed) as expired:
            client.psexpire()
        assert failed_on(third, expired.value.failed) == set(ON_THIRD)
        assert dict(expired.value.done) == dict.fromkeys(ON_FIRST + ON_SECOND, 1)
        stats = ClusterCli(nodes.url)("--timeout", "1", "stats")
        assert stats.exit_code == ExitStatus.SERVER
        assert [s["name"] for s in json.loads(stats.stdout)] == ["s2", "s3", "s6", "s7"]
        assert "streams 's0', 's1', 's4': a node of the cluster did not answer in time" in stats.stderr
        assert f"127.0.0.1:{third.port}" in stats.stderr and len(stats.stderr.splitlines()) == 1
    nodes.wait_ok()
    assert client.psexpire() == dict.fromkeys(ON_THIRD, 1)  # the rest, once it answers again


def test_clients_start_while_the_master_of_slot_0_is_down(nodes: ClusterProcess) -> None:
    first, second, third = nodes.nodes
    nodes.kill(first)
    client = RedisCluster.from_url(second.url)  # (no script loaded yet on any node)
    assert client.psadd("s0", "a", "v", score=2) == 2.0
    assert client.pspull("s0") == {"a": b"v"}
    with pytest.raises(redis.exceptions.ConnectionError, match=f"127.0.0.1:{first.port}"):
        client.psadd("s2", "a", "v")

    async def use_async() -> Any:
        aclient = AsyncRedisCluster.from_url(third.url)
        try:
            return await aclient.psadd("s3", "a", "v", score=3), await aclient.psnames()
        finally:
            await aclient.aclose()

    assert asyncio.run(use_async()) == (3.0, ["s0", "s3"])
    cli = ClusterCli(third.url)
    assert cli.ok("add", "s4", "k", "v")["added"] is True
    assert cli.ok("get", "s4", "k") == {"key": "k", "value": "v"}
    assert cli.ok("names") == ["s0", "s3", "s4"]
    assert [s["name"] for s in cli.ok("stats")] == ["s0", "s3", "s4"]
    line = cli.fails(ExitStatus.SERVER, "add", "s6", "k", "v")
    assert line.startswith("psctl: cannot reach a node of the cluster") and f"127.0.0.1:{first.port}" in line


def test_a_client_starts_from_any_node_its_url_names_with_addr(nodes: ClusterProcess) -> None:
    """The URL's own node down (the one redis-py reads a URL for; here also
    the master of slot 0): ``addr=``
    names more (go-redis's form), and a client starts from the first that
    answers, sync, async and on the command line."""
    first, second, third = nodes.nodes
    nodes.kill(first)
    gone = f"redis://127.0.0.1:{first.port}"
    url = f"{gone}?addr=127.0.0.1:{free_port()}&addr=127.0.0.1:{third.port}&socket_timeout=5"
    with pytest.raises(redis.exceptions.RedisClusterException, match="cannot be connected"):
        RedisCluster.from_url(gone)  # (without addr)
    client = RedisCluster.from_url(url)
    assert client.psadd("s0", "a", "v", score=2) == 2.0
    assert {node.port for node in client.get_primaries()} == {first.port, second.port, third.port}

    async def use_async() -> Any:
        aclient = AsyncRedisCluster.from_url(url)
        try:
            return await aclient.psadd("s3", "a", "v", score=3)
        finally:
            await aclient.aclose()

    assert asyncio.run(use_async()) == 3.0
    cli = ClusterCli(url)
    assert cli.ok("get", "s0", "a") == {"key": "a", "value": "v"}
    refused = Cli(url)("len", "s0")  # not in cluster mode
    assert refused.exit_code == ExitStatus.USAGE and "takes cluster mode" in refused.stderr
    bad = ClusterCli(f"{gone}?addr=127.0.0.1")("len", "s0")
    assert bad.exit_code == ExitStatus.USAGE and "is a node's HOST:PORT" in bad.stderr


def test_metrics_say_what_is_true_when_nodes_go_down(nodes: ClusterProcess, tmp_path: Path) -> None:
    cooling_streams(nodes.url)
    first, second, third = nodes.nodes
    path = tmp_path / "psctl.prom"
    assert ClusterCli(nodes.url)("metrics", "--textfile", str(path)).exit_code == 0
    assert samples(path.read_text())[("psctl_up", ())] == 1
    nodes.kill(second)  # the registry's master
    cli = ClusterCli(third.url)
    line = cli.fails(ExitStatus.SERVER, "names")
    assert f"127.0.0.1:{second.port}" in line
    line = cli.fails(ExitStatus.SERVER, "stats")
    assert REGISTRY in line and f"127.0.0.1:{second.port}" in line
    assert [s["name"] for s in cli.ok("stats", "s0", "s2")] == ["s0", "s2"]  # named: no registry needed
    nodes.kill(first)
    nodes.kill(third)
    down = cli("metrics", "--textfile", str(path))
    assert down.exit_code == ExitStatus.SERVER and len(down.stderr.splitlines()) == 1
    assert samples(path.read_text()) == {("psctl_up", ()): 0}
    port = free_port()
    server = subprocess.Popen([str(PSCTL), "--cluster", "metrics", "--serve", f"127.0.0.1:{port}"],
                              env=env_for(third.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        status = None
        for _ in range(200):
            try:
                status, _, body = ask(port, "/metrics")
                break
            except OSError:
                assert server.poll() is None, server.communicate()
                time.sleep(0.05)
        assert status == 200 and samples(body.decode()) == {("psctl_up", ()): 0}
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert b"Traceback" not in err


def test_a_node_part_follows_its_slots_while_they_move(nodes: ClusterProcess) -> None:
    """A stream whose slot is half moved fails as moving (its script's keys
    are on two nodes: TRYAGAIN, for the caller to send again) while the rest
    of its node's part is read; once moved, it is read and expired right
    inside its node's part by a client whose table of slots is older (MOVED)."""
    from redis.crc import key_slot

    cooling_streams(nodes.url)
    first, _, third = nodes.nodes
    client = RedisCluster.from_url(nodes.url)
    client.psstatsmany()  # (its table of slots is read now, before the move)
    slot = key_slot(stream_keys("s0", cluster=True).values.encode())
    source, target = nodes.admin(third), nodes.admin(first)
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", nodes.node_id(third))
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", nodes.node_id(first))
    keys = source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
    source.execute_command("MIGRATE", "127.0.0.1", first.port, "", 0, 10000, "KEYS", *keys)
    with pytest.raises(StreamsFailed) as moving:
        client.psstatsmany(["s0", "s1", "s2"])
    assert set(moving.value.failed) == {"s0"} and cluster_moving(moving.value.failed["s0"]) is not None
    assert {name: s["waiting"] for name, s in moving.value.done.items()} == {"s1": 1, "s2": 1}
    for node in nodes.nodes:
        nodes.admin(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", nodes.node_id(first))
    assert client.psexpire() == dict.fromkeys(STREAMS, 1)  # s0 by MOVED

    async def read_async() -> dict[str, int]:
        aclient = AsyncRedisCluster.from_url(nodes.url)
        try:
            return {s["name"]: s["waiting"] for s in await aclient.psstatsmany(["s0", "s4"])}
        finally:
            await aclient.aclose()

    assert asyncio.run(read_async()) == {"s0": 1, "s4": 1}


def test_a_command_line_command_rides_a_cluster_refusal_out_for_its_timeout_not_longer(nodes: ClusterProcess) -> None:
    """With two masters of three gone, the last one refuses everything
    (CLUSTERDOWN: it lost the majority). The command line sends a refused
    command again for up to its --timeout, not for the library's 20 s."""
    first, second, third = nodes.nodes
    cli = ClusterCli(f"redis://127.0.0.1:{third.port}")
    for node in (first, second):
        nodes.kill(node)
    admin = nodes.admin(third)
    deadline = time.monotonic() + 30
    while "cluster_state:fail" not in str(admin.execute_command("CLUSTER", "INFO")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    began = time.monotonic()
    done = cli("--timeout", "1", "len", ON_THIRD[0])
    took = time.monotonic() - began
    assert done.exit_code == ExitStatus.SERVER and "cluster is down" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert took < 10, took  # (the library's ps_cluster_wait is 20 s)
