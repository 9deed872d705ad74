"""What spans the nodes of a Redis Cluster (``psstatsmany``, ``psexpire``)
sends every node its part before it reads any node's replies: the nodes work
at once, and one that is slow to answer holds up no other node's part; a
part that lost its node has the client read the slots table again, so that
the next call finds the replica that took over.

The first test's cluster is ``test_cluster_partial``'s: 3 masters, ``s0``
served by the third, ``s3`` by the second, ``s2`` by the first."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from psctl.cluster import AsyncRedisCluster, RedisCluster
from psctl.errors import StreamsFailed
from psctl.launcher import find_binary
from psctl.layout import stream_keys
from testservers import ClusterProcess, ServerProcess, start_cluster

from .test_cluster_partial import cooling_streams, nodes  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

# the first name's node is stalled: its part goes out first
NAMES = ["s0", "s3", "s2"]


def script_calls(nodes: ClusterProcess, node: ServerProcess) -> int:
    """How many script calls ``node`` has run."""
    return int(nodes.admin(node).info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def waiting(stats: list[Any]) -> dict[str, int]:
    return {s["name"]: s["waiting"] for s in stats}


def test_the_nodes_work_on_their_parts_at_once(nodes: ClusterProcess) -> None:  # noqa: F811
    cooling_streams(nodes.url)
    first, second, third = nodes.nodes
    others = (first, second)

    def others_ran(before: list[int]) -> bool:
        """Whether the other nodes run their parts within a few seconds."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if all(script_calls(nodes, node) > calls for node, calls in zip(others, before)):
                return True
            time.sleep(0.02)
        return False

    client = RedisCluster.from_url(nodes.url, socket_timeout=30)
    assert waiting(client.psstatsmany(NAMES)) == dict.fromkeys(NAMES, 1)  # (connections made, scripts loaded)
    with ThreadPoolExecutor(1) as pool:
        with nodes.stalled(third):
            before = [script_calls(nodes, node) for node in others]
            read = pool.submit(client.psstatsmany, NAMES)
            ran = others_ran(before)
            assert not read.done()  # (the stalled node's part is still out)
        assert ran and waiting(read.result()) == dict.fromkeys(NAMES, 1)

    async def read_async() -> tuple[bool, list[Any]]:
        aclient = AsyncRedisCluster.from_url(nodes.url, socket_timeout=30)
        try:
            await aclient.psstatsmany(NAMES)
            with nodes.stalled(third):
                before = [script_calls(nodes, node) for node in others]
                read = asyncio.ensure_future(aclient.psstatsmany(NAMES))
                await asyncio.sleep(0.05)  # (the parts under way)
                ran = await asyncio.to_thread(others_ran, before)
                assert not read.done()
            return ran, await read
        finally:
            await aclient.aclose()

    ran, stats = asyncio.run(read_async())
    assert ran and waiting(stats) == dict.fromkeys(NAMES, 1)


def test_a_part_that_lost_its_node_finds_the_replica_that_took_over(tmp_path: Path) -> None:
    process = start_cluster(tmp_path, replicas=1, node_timeout=1000, binary=find_binary(os.environ.get("PSCTL_TEST_SERVER") or None))

    def read_twice(call: Any) -> Any:
        try:
            return waiting(call(NAMES))
        except StreamsFailed:  # (the part whose node went away)
            return waiting(call(NAMES))

    async def read_async(aclient: Any) -> dict[str, int]:
        try:
            return waiting(await aclient.psstatsmany(NAMES))
        except StreamsFailed:
            return waiting(await aclient.psstatsmany(NAMES))

    async def fail_over() -> list[dict[str, int]]:
        client = RedisCluster.from_url(process.url)
        aclient = AsyncRedisCluster.from_url(process.url)
        try:
            for name in NAMES:
                client.psadd(name, "k", "v")
            assert waiting(client.psstatsmany(NAMES)) == waiting(await aclient.psstatsmany(NAMES))  # (tables read)
            master = process.owner_of_key(stream_keys("s0", cluster=True).values)
            await asyncio.to_thread(process.failover_by_kill, master)
            return [read_twice(client.psstatsmany), await read_async(aclient)]
        finally:
            await aclient.aclose()

    try:
        assert asyncio.run(fail_over()) == [dict.fromkeys(NAMES, 1)] * 2
    finally:
        process.stop()
