"""The benchmark's sizes, data, clients and plain-redis helpers, shared by every case."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from benchmarks.node import BullMQ
from benchmarks.node import install as install_bullmq
from psctl import AsyncRedis, Redis
from psctl.layout import REGISTRY, stream_keys

if TYPE_CHECKING:
    import redis.cluster

    from testservers import ClusterProcess, ServerProcess
    from psctl.cluster import RedisCluster

Item = tuple[str, bytes, int]


@dataclass(frozen=True)
class Sizes:
    items: int = 100_000  # items per add / pull / expire run
    value_size: int = 100  # bytes per value
    chunk: int = 1000  # items per pipeline round / script call
    streams: int = 10  # streams the expire case spreads its items over
    calls: int = 5_000  # single-round-trip calls of each side per round
    run_calls: int = 250  # ... in runs of this many (fine interleaving: the latency noise here is large)
    cli_rows: int = 400_000  # rows of the add-many NDJSON file
    cold_runs: int = 8  # cold starts of each side per round (a start's time varies by ±30% here)
    work_items: int = 5_000  # items of a psctl work run (and lines of its xargs baseline)
    work_memory_items: int = 100_000  # items of the psctl work run whose peak memory is reported
    wake_items: int = 200  # delayed items a blocked pull receives one by one (each 50-300 ms after the last)
    peer_items: int = 20_000  # jobs of a BullMQ run, and items of its psctl side
    rounds: int = 5


FULL = Sizes()
QUICK = Sizes(
    items=5_000,
    calls=300,
    cli_rows=5_000,
    cold_runs=1,
    work_items=500,
    work_memory_items=1_000,
    wake_items=20,
    peer_items=300,
    rounds=2,
)


def make_items(count: int, value_size: int, seed: int, prefix: str = "item") -> list[Item]:
    """Distinct keys, distinct ``value_size``-byte values, random integer scores."""
    rng = random.Random(seed)
    pad = b"v" * max(value_size - 12, 0)
    return [(f"{prefix}:{i:08d}", b"%012d" % i + pad, rng.randint(-1_000_000, 1_000_000)) for i in range(count)]


@dataclass
class Bench:
    url: str
    sizes: Sizes
    tmp: Path
    seed: int = 5
    binary: Path | None = None  # of the cluster's servers (None: the launcher's choice)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    # -- clients -----------------------------------------------------------------

    @cached_property
    def plain(self) -> redis.Redis:
        """A plain redis-py client: what the baselines use."""
        return redis.Redis.from_url(self.url)

    @cached_property
    def ps(self) -> Redis:
        return Redis.from_url(self.url)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    @cached_property
    def aps(self) -> AsyncRedis:
        return AsyncRedis.from_url(self.url)

    def run_async(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    # -- a 3-master Redis Cluster, started on first use ---------------------------

    @cached_property
    def cluster(self) -> ClusterProcess:
        """Three masters on loopback TCP (the standalone server is on a unix socket)."""
        from testservers import start_cluster
        from psctl.launcher import find_binary

        return start_cluster(self.tmp / "cluster", binary=self.binary or find_binary())

    @cached_property
    def cluster_plain(self) -> redis.cluster.RedisCluster:
        import redis.cluster

        return redis.cluster.RedisCluster.from_url(self.cluster.url)

    @cached_property
    def cluster_ps(self) -> RedisCluster:
        from psctl.cluster import RedisCluster

        return RedisCluster.from_url(self.cluster.url)

    def cluster_missing(self) -> str | None:
        """Why no cluster can be started here, or None once it runs."""
        try:
            self.cluster_plain.ping()
        except Exception as exc:
            return f"no cluster: {exc}"
        return None

    def cluster_flush(self) -> None:
        self.cluster_plain.flushdb(target_nodes=self.cluster_plain.PRIMARIES)

    def stop_cluster(self) -> None:
        """Stops the cluster and the replicated pair, if they were started: their
        idle servers would otherwise share this machine's two cores with what
        is measured next."""
        for name in ("cluster_plain", "cluster_ps", "replicated_ps"):
            if name in self.__dict__:
                self.__dict__.pop(name).close()
        if "cluster" in self.__dict__:
            self.__dict__.pop("cluster").stop()
        for server in self.__dict__.pop("replicated", ()):
            server.stop()

    # -- a master with one replica, started on first use ----------------------------

    @cached_property
    def replicated(self) -> tuple[ServerProcess, ServerProcess]:
        """A master and its replica on loopback TCP."""
        from testservers import start_replicated
        from psctl.launcher import find_binary

        return start_replicated(self.tmp / "replicated", binary=self.binary or find_binary())

    @cached_property
    def replicated_ps(self) -> Redis:
        return Redis.from_url(f"redis://127.0.0.1:{self.replicated[0].port}")

    def close(self) -> None:
        for name in ("plain", "ps"):
            if name in self.__dict__:
                self.__dict__[name].close()
        if self._loop is not None:
            if "aps" in self.__dict__:
                self.run_async(self.aps.aclose())
            self._loop.close()
        self.stop_cluster()

    # -- BullMQ, the peer ----------------------------------------------------------

    @cached_property
    def bullmq(self) -> BullMQ | str:
        """BullMQ for Node, installed into the cache on first use; or why it cannot be."""
        return install_bullmq()

    # -- data --------------------------------------------------------------------

    @cached_property
    def items(self) -> list[Item]:
        return make_items(self.sizes.items, self.sizes.value_size, self.seed)

    @cached_property
    def call_items(self) -> list[Item]:
        """The items of one single-round-trip run."""
        return make_items(min(self.sizes.run_calls, self.sizes.calls), self.sizes.value_size, self.seed + 1)

    @cached_property
    def peer_items(self) -> list[Item]:
        """The items of the bullmq cases' psctl side (bench.mjs makes BullMQ's alike)."""
        return make_items(self.sizes.peer_items, self.sizes.value_size, self.seed + 4)

    @cached_property
    def cli_items(self) -> list[Item]:
        return make_items(self.sizes.cli_rows, self.sizes.value_size, self.seed + 2)

    @cached_property
    def ndjson(self) -> Path:
        """``cli_items`` as an NDJSON file, written once."""
        path = self.tmp / "rows.ndjson"
        with path.open("w") as out:
            for key, value, score in self.cli_items:
                out.write(json.dumps({"key": key, "value": value.decode(), "score": score}) + "\n")
        return path

    # -- plain-redis helpers (setup only, never timed) ---------------------------

    def flush(self) -> None:
        self.plain.flushdb()

    def fill(self, name: str, items: list[Item], cooling_until: int | None = None, cluster: bool = False) -> None:
        """Writes a stream directly (``:t``, ``:s``, the registry), and a
        ``:exp`` entry per item when ``cooling_until`` is given; on the cluster
        with its hash-tagged keys when ``cluster``."""
        keys = stream_keys(name, cluster=cluster)
        chunk = self.sizes.chunk
        pipe = self.cluster_plain.pipeline() if cluster else self.plain.pipeline(transaction=False)
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            pipe.hset(keys.values, mapping={k: v for k, v, _ in part})
            pipe.zadd(keys.scores, {k: s for k, _, s in part})
            if cooling_until is not None:
                pipe.zadd(keys.cooling, {k: cooling_until for k, _, _ in part})
            if len(pipe) >= 30:
                pipe.execute()
        pipe.sadd(REGISTRY, name)
        pipe.execute()

    def server_time(self) -> int:
        return int(self.plain.time()[0])

    # -- the command line ----------------------------------------------------------

    @cached_property
    def psctl_exe(self) -> str | None:
        here = Path(sys.executable).parent / "psctl"
        return str(here) if here.exists() else shutil.which("psctl")

    def cli(self, *args: str) -> list[str]:
        return [self.psctl_exe or "psctl", "--url", self.url, *args]

    def cli_missing(self, *probe: str) -> str | None:
        """Why the ``psctl`` command cannot run ``probe``, or None when it can."""
        if self.psctl_exe is None:
            return "no psctl executable"
        try:
            done = subprocess.run(self.cli(*probe), capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`psctl {' '.join(probe)}` failed: {exc}"
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"`psctl {' '.join(probe)}` is not available (exit {done.returncode}: {lines[-1] if lines else ''})"
        return None
