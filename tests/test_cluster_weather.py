"""A cluster's routine weather: a stream's slot moved to another master while
clients work on it (SETSLOT/MIGRATE, its keys moving for most of a second),
and a master failed over to its replica (SIGKILL). Library calls ride both
out; ``psctl work`` and the Python workers finish every item. First, what the
protocol sends again on a cluster, driven without a server (as ``test_plans``).

One 3+3 cluster for the module: each test leaves it healthy (a killed master
is started again, and rejoins as its old replica's replica)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from redis.exceptions import ClusterDownError, ConnectionError, ResponseError, TryAgainError

from psctl import AsyncWorker, Worker
from psctl import operations as op
from psctl.cluster import AsyncRedisCluster, RedisCluster
from psctl.launcher import find_binary
from psctl.layout import cluster_base, stream_keys
from psctl.protocol import CLUSTER_WAIT, READ, Batch, Call, Command, Direct, Pause, Pipelined, Plain, Receive, exchange
from testservers import ClusterProcess, ServerProcess, start_cluster, start_server

from .test_plans import KEYS, drive

PSCTL = str(Path(sys.executable).with_name("psctl"))
FILLER = 30_000  # keys beside the stream's in its slot: a move lasts most of a second


# -- the protocol: what is sent again, on a cluster ------------------------------------


def test_a_request_the_cluster_did_not_run_is_sent_again_safe_or_not() -> None:
    add = Call(op.script("addone"), op.script("addone").keys_of(KEYS), (b"0", b"0", b"k", b"v", b"1"))
    sent, reply = drive(exchange(add, 0, CLUSTER_WAIT), [TryAgainError("TRYAGAIN"), None, ClusterDownError(
        "CLUSTERDOWN The cluster is down"), None, [0, b"1"]])  # fmt: skip
    assert [type(s) for s in sent] == [Direct, Pause, Direct, Pause, Direct] and reply == [0, b"1"]
    assert sent[1] < sent[3]  # (growing pauses)
    with pytest.raises(TryAgainError):  # a standalone client: as it is
        drive(exchange(add, 3, 0.0), [TryAgainError("TRYAGAIN")])
    with pytest.raises(ConnectionError):  # a lost reply: it may have run, never sent again
        drive(exchange(add, 3, CLUSTER_WAIT), [ConnectionError("lost")])


def test_a_call_in_flight_the_cluster_did_not_run_is_called_again() -> None:
    call = Call(op.script("add"), op.script("add").keys_of(KEYS), (b"0", b"0"))
    sent, reply = drive(exchange(Receive(call), 0, CLUSTER_WAIT), [ClusterDownError("CLUSTERDOWN"), None, [1]])
    assert sent[0] is READ and type(sent[1]) is Pause and type(sent[2]) is Direct and reply == [1]


def test_a_batch_sends_again_only_what_the_cluster_did_not_run() -> None:
    batch = Batch((Command(("GET", "a")), Command(("GET", "b")), Command(("GET", "c"))), errors="return")
    moving = TryAgainError("TRYAGAIN")
    sent, reply = drive(exchange(batch, 0, CLUSTER_WAIT), [[b"A", moving, ResponseError("other")], None, [b"B"]])
    assert [type(s) for s in sent] == [Pipelined, Pause, Pipelined] and sent[2] == [("GET", "b")]
    assert reply[:2] == [b"A", b"B"] and str(reply[2]) == "other"


def test_a_safe_request_whose_node_is_gone_is_sent_again_within_the_wait() -> None:
    length = Command(("ZCARD", "q"))
    replies = [ConnectionError("refused")] + [None, ConnectionError("refused")] * 5 + [None, 7]
    sent, reply = drive(exchange(length, 1, CLUSTER_WAIT), replies)
    assert reply == 7 and [type(s) for s in sent].count(Plain) == 7
    with pytest.raises(ConnectionError):  # with no retries at all (the command line's): once
        drive(exchange(length, 0, CLUSTER_WAIT), [ConnectionError("refused")])


def test_the_wait_ends_with_the_cluster_s_last_error() -> None:
    steps = exchange(Command(("ZCARD", "q")), 0, 0.3)
    step, tries, started = next(steps), 0, time.monotonic()
    with pytest.raises(ClusterDownError):
        while True:
            if type(step) is Pause:
                time.sleep(step)
                step = steps.send(None)
            else:
                tries += 1
                step = steps.throw(ClusterDownError("CLUSTERDOWN"))
    assert tries > 2 and time.monotonic() - started >= 0.3


# -- a real cluster's weather ----------------------------------------------------------


@pytest.fixture(scope="module")
def weather(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    binary = find_binary(os.environ.get("PSCTL_TEST_SERVER") or None)
    process = start_cluster(tmp_path_factory.mktemp("weather"), masters=3, replicas=1, node_timeout=1000, binary=binary)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(weather: ClusterProcess) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(weather.url)
    client.flushdb()
    yield client
    client.close()


def slot_of(name: str) -> int:
    return key_slot(cluster_base(name).encode())


def fill(weather: ClusterProcess, name: str, count: int = FILLER) -> None:
    """``count`` keys of no stream in ``name``'s slot, so that moving it takes a while."""
    admin = weather.admin(weather.owner(slot_of(name)))
    for start in range(0, count, 5000):
        pipe = admin.pipeline(transaction=False)
        for i in range(start, min(start + 5000, count)):
            pipe.set(f"{cluster_base(name)}~filler:{i}", "x")
        pipe.execute()


def reshard(weather: ClusterProcess, name: str, times: int, *, gap: float = 0.2) -> None:
    """Moves ``name``'s slot to the next master, ``times`` times, a while apart."""
    slot = slot_of(name)
    for _ in range(times):
        masters = weather.masters()
        owner = weather.owner(slot)
        to = masters[(masters.index(owner) + 1) % len(masters)]
        weather.migrate_slot(slot, to, batch=1500, pause=0.02)
        time.sleep(gap)


def revive(weather: ClusterProcess, node: ServerProcess) -> None:
    """Starts a killed node again, on its own port and config: a master that failed
    over rejoins as a replica; one nobody took over from serves its slots again."""
    extra = {"cluster-enabled": "yes", "cluster-config-file": str(node.dir / "nodes.conf"),
             "cluster-node-timeout": str(weather.node_timeout)}  # fmt: skip
    for live in weather.alive():  # (a master waits 5 s for more replicas before it sends its data to one)
        weather.admin(live).config_set("repl-diskless-sync-delay", 0)
    again = start_server(node.dir, binary=node.binary, port=node.port, extra=extra)
    weather.nodes[weather.nodes.index(node)] = again
    deadline = time.monotonic() + 30
    while (replication := weather.admin(again).info("replication"))["role"] != "master" and (
        replication.get("master_link_status") != "up"
    ):
        assert time.monotonic() < deadline, "the revived node did not catch up with its master"
        time.sleep(0.05)
    weather.wait_ok()


def another_master(weather: ClusterProcess, name: str) -> ServerProcess:
    owner = weather.owner(slot_of(name))
    return next(m for m in weather.masters() if m is not owner)


def fail_over(weather: ClusterProcess, master: ServerProcess) -> None:
    weather.failover_by_kill(master)
    revive(weather, master)


class Load:
    """Threads calling ``pslease``/``psack``, ``psadd``, ``psaddmany`` and
    ``psstats`` on one stream until told to stop; every error kept."""

    def __init__(self, client: Any, name: str, *, writers: bool = True) -> None:
        self.client, self.name = client, name
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.calls: Counter[str] = Counter()
        self.added: list[str] = []
        self.acked: Counter[str] = Counter()
        self.lock = threading.Lock()
        bodies: list[Callable[[], None]] = [self._lease, self._lease, self._stats]
        if writers:
            bodies += [self._add, self._add_many]
        self.threads = [threading.Thread(target=self._loop, args=(body,), daemon=True) for body in bodies]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _loop(self, body: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                body()
            except Exception as error:  # noqa: BLE001 - what the test looks at
                self.errors.append(error)
                time.sleep(0.05)

    def _lease(self) -> None:
        lease = self.client.pslease(self.name, count=5, lease=60)
        self.calls["pslease"] += 1
        if lease.items:
            acked = self.client.psack(self.name, lease.token, list(lease.items))
            self.calls["psack"] += 1
            assert acked == len(lease.items), (acked, lease.items)
            with self.lock:
                self.acked.update(list(lease.items))
        else:
            time.sleep(0.01)

    def _stats(self) -> None:
        self.client.psstats(self.name)
        self.calls["psstats"] += 1
        time.sleep(0.005)

    def _add(self) -> None:
        with self.lock:
            key = f"one-{len(self.added)}"
            self.added.append(key)
        self.client.psadd(self.name, key, "v")
        self.calls["psadd"] += 1
        time.sleep(0.005)

    def _add_many(self) -> None:
        with self.lock:
            keys = [f"many-{len(self.added)}-{i}" for i in range(10)]
            self.added += keys
        self.client.psaddmany(self.name, [(key, "v", 1) for key in keys])
        self.calls["psaddmany"] += 1
        time.sleep(0.01)

    def drain(self) -> None:
        """Leases and acknowledges what is left, after the load stopped."""
        while True:
            lease = self.client.pslease(self.name, count=100, lease=60)
            if not lease.items:
                return
            assert self.client.psack(self.name, lease.token, list(lease.items)) == len(lease.items)
            self.acked.update(list(lease.items))


def acknowledged_once(load: Load, initial: list[str]) -> None:
    assert load.errors == [], load.errors[:3]
    load.drain()
    assert set(load.acked) == {*initial, *load.added}
    assert set(load.acked.values()) == {1}


@pytest.mark.slow
def test_library_calls_ride_out_reshards(weather: ClusterProcess, client: RedisCluster) -> None:
    name = "reshards"
    initial = [f"k{i}" for i in range(2000)]
    client.psaddmany(name, [(key, "v", i) for i, key in enumerate(initial)])
    fill(weather, name)
    with Load(client, name) as load:
        reshard(weather, name, 4)
    assert all(load.calls[call] > 10 for call in ("pslease", "psack", "psadd", "psaddmany", "psstats")), load.calls
    acknowledged_once(load, initial)
    asyncio.run(async_calls_ride_out_reshards(weather))


async def async_calls_ride_out_reshards(weather: ClusterProcess) -> None:
    name = "async-reshards"
    client = AsyncRedisCluster.from_url(weather.url)
    try:
        initial = [f"k{i}" for i in range(1000)]
        await client.psaddmany(name, [(key, "v", i) for i, key in enumerate(initial)])
        await asyncio.to_thread(fill, weather, name)
        errors: list[BaseException] = []
        acked: Counter[str] = Counter()
        added: list[str] = []
        calls: Counter[str] = Counter()
        moving = asyncio.create_task(asyncio.to_thread(reshard, weather, name, 4))

        async def loop(body: Callable[[], Any]) -> None:
            while not moving.done():
                try:
                    await body()
                except Exception as error:  # noqa: BLE001 - what the test looks at
                    errors.append(error)
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.005)

        async def lease() -> None:
            got = await client.pslease(name, count=5, lease=60)
            calls["pslease"] += 1
            if got.items:
                assert await client.psack(name, got.token, list(got.items)) == len(got.items)
                calls["psack"] += 1
                acked.update(list(got.items))

        async def add() -> None:
            keys = [f"a{len(added)}-{i}" for i in range(5)]
            added.extend(keys)
            await client.psaddmany(name, [(key, "v", 1) for key in keys])
            added.append(f"one{len(added)}")
            await client.psadd(name, added[-1], "v")
            calls["psadd"] += 1

        async def stats() -> None:
            await client.psstats(name)
            calls["psstats"] += 1

        await asyncio.gather(loop(lease), loop(lease), loop(add), loop(stats), moving)
        assert errors == [], errors[:3]
        assert all(calls[call] > 10 for call in ("pslease", "psack", "psadd", "psstats")), calls
        while (got := await client.pslease(name, count=100, lease=60)).items:
            assert await client.psack(name, got.token, list(got.items)) == len(got.items)
            acked.update(list(got.items))
        assert set(acked) == {*initial, *added} and set(acked.values()) == {1}
    finally:
        await client.aclose()


@pytest.mark.slow
def test_safe_calls_ride_out_failovers(weather: ClusterProcess, client: RedisCluster) -> None:
    name = "failovers"
    client.psaddmany(name, [(f"k{i}", "v", i) for i in range(500)])
    held = [client.pslease(name, count=1, lease=600) for _ in range(200)]
    errors: list[BaseException] = []
    calls: Counter[str] = Counter()
    stop = threading.Event()

    def safe_calls() -> None:
        while not stop.is_set():
            try:
                client.psstats(name)
                client.pslen(name)
                if held:
                    lease = held.pop()
                    assert client.psack(name, lease.token, list(lease.items)) == 1
                calls["rounds"] += 1
            except Exception as error:  # noqa: BLE001 - what the test looks at
                errors.append(error)
            time.sleep(0.01)

    threads = [threading.Thread(target=safe_calls, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        fail_over(weather, another_master(weather, name))
        before = calls["rounds"]
        fail_over(weather, weather.owner(slot_of(name)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert errors == [], errors[:3]
    assert calls["rounds"] > before > 0
    assert client.pslen(name) == 300


# -- the workers ---------------------------------------------------------------------


def work(
    weather: ClusterProcess, name: str, *options: str, command: tuple[str, ...], idle_exit: bool = True
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_HOST", "PSCTL_TIMEOUT")}
    env |= {"REDIS_URL": f"redis://127.0.0.1:{weather.owner(slot_of(name)).port}", "REDIS_CLUSTER": "1"}
    return subprocess.Popen(
        [PSCTL, "work", name, *(("--idle-exit", "1") if idle_exit else ()), "--json", *options, "--", *command], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def finished(process: subprocess.Popen[str], items: int) -> str:
    """A worker's stderr, once it did every item and exited 0."""
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert json.loads(out)["done"] == items, (out, err)
    return err


@pytest.mark.slow
def test_psctl_work_rides_out_reshards_and_failovers(weather: ClusterProcess, client: RedisCluster) -> None:
    name = "work"  # -j 8: a reshard of a slot holding 60,000 more keys, then its own master's failover
    client.psaddmany(name, [(f"k{i}", "v", i) for i in range(800)])
    fill(weather, name, 60_000)
    process = work(weather, name, "-j", "8", command=("sleep", "0.05"))
    until(lambda: client.pslen(name) < 780)
    reshard(weather, name, 2)
    assert process.poll() is None  # (still working)
    master = weather.owner(slot_of(name))
    fail_over(weather, master)
    err = finished(process, 800)
    # the node that failed is named (refused, or reset mid-reply: whichever the kill met)
    assert re.search(rf"does not answer \(Error .*127\.0\.0\.1:{master.port}\b", err), err
    assert "Traceback" not in err
    assert client.pslen(name) == 0

    name = "work-1"  # -j 1: another master's failover (the healthy ones answer CLUSTERDOWN meanwhile)
    client.psaddmany(name, [(f"k{i}", "v", i) for i in range(150)])
    process = work(weather, name, "-j", "1", command=("sleep", "0.02"))
    until(lambda: client.pslen(name) < 145)
    assert process.poll() is None  # (still working)
    fail_over(weather, another_master(weather, name))
    assert "Traceback" not in finished(process, 150)
    assert client.pslen(name) == 0


@pytest.mark.slow
def test_psctl_work_waits_for_a_cluster_down_for_its_patience_only(weather: ClusterProcess, client: RedisCluster) -> None:
    name = "work-down"
    client.psaddmany(name, [(f"k{i}", "v", i) for i in range(10)])
    process = work(weather, name, "--patience", "1s", command=(shutil.which("true") or "true",), idle_exit=False)
    until(lambda: client.pslen(name) == 0)  # (and then it waits for work)
    master = another_master(weather, name)
    replica = weather.replicas_of(master)[0]
    weather.kill(replica)
    weather.kill(master)  # nothing serves its slots: the others answer CLUSTERDOWN until it is back
    try:
        out, err = process.communicate(timeout=15)  # (not the clients' own 20 s, and then the patience)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        revive(weather, master)
        revive(weather, replica)
    assert process.returncode == 1, err
    assert "refused commands for 1 s (CLUSTERDOWN" in err and "Traceback" not in err
    assert json.loads(out)["done"] == 10


def test_psctl_work_prints_its_summary_whatever_ends_it(cluster: ClusterProcess, rc: RedisCluster) -> None:
    name = "work-wrong-type"
    rc.set(stream_keys(name, cluster=True).values, "not a hash")
    process = work(cluster, name, command=(shutil.which("true") or "true",))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert json.loads(out) == {"done": 0, "failed": 0, "dead": 0, "seconds": json.loads(out)["seconds"]}
    assert "WRONGTYPE" in err and "Traceback" not in err


@pytest.mark.slow
def test_workers_ride_out_reshards_and_failovers(weather: ClusterProcess, client: RedisCluster) -> None:
    name = "worker"  # a reshard, then another master's failover
    client.psaddmany(name, [(f"k{i}", "v", i) for i in range(600)])
    fill(weather, name)
    seen: Counter[str] = Counter()

    def handle(item: Any) -> None:
        seen[item.key] += 1
        time.sleep(0.005)

    worker = Worker(RedisCluster.from_url(weather.url), name, handle, concurrency=4, idle_exit=1)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()), daemon=True)
    thread.start()
    until(lambda: len(seen) > 20)
    reshard(weather, name, 1)
    fail_over(weather, another_master(weather, name))
    thread.join(120)
    assert result and result[0].done == 600
    assert client.pslen(name) == 0
    asyncio.run(async_worker_rides_out_a_reshard_and_its_master_s_failover(weather))


async def async_worker_rides_out_a_reshard_and_its_master_s_failover(weather: ClusterProcess) -> None:
    name = "async-worker"
    client = AsyncRedisCluster.from_url(weather.url)
    try:
        await client.psaddmany(name, [(f"k{i}", "v", i) for i in range(600)])
        await asyncio.to_thread(fill, weather, name)
        seen: Counter[str] = Counter()

        async def handle(item: Any) -> None:
            seen[item.key] += 1
            await asyncio.sleep(0.01)

        worker = AsyncWorker(client, name, handle, concurrency=4, idle_exit=1)
        running = asyncio.create_task(worker.run())
        while len(seen) < 20:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(reshard, weather, name, 1)
        await asyncio.to_thread(fail_over, weather, weather.owner(slot_of(name)))
        summary = await asyncio.wait_for(running, 120)
        assert summary.done == 600
        assert await client.pslen(name) == 0
    finally:
        await client.aclose()
