"""The Python workers (SPEC §11): ``psctl.Worker`` (threads) and
``psctl.AsyncWorker`` (tasks on the caller's event loop), on real servers
(standalone, and the cluster where marked): handlers that return, raise,
``Retry`` and ``Dead``; batches with partial failure; concurrency reached;
stops during running handlers; a worker killed with SIGKILL; a lost server
within and beyond the patience; injected parameters; bad options."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
from fast_depends import Depends

from psctl import (
    AsyncRedis,
    AsyncWorker,
    Dead,
    InvalidArgument,
    PsctlError,
    Redis,
    RedisProvider,
    Retry,
    ServerLost,
    Worker,
)
from psctl.workers import WorkSummary
from testservers import start_server

KINDS = ["sync", "async"]


def work(backend: Any, kind: str, body: Callable[[Any], Any], name: Any = "q", **options: Any) -> WorkSummary:
    """Runs a worker of ``kind`` over stream ``name`` (or streams) until it is idle (unless
    told otherwise), with ``body`` as its handler (for the async worker, in
    an ``async def`` that calls it)."""
    options.setdefault("idle_exit", 0)
    if kind == "sync":
        client = backend.sync()
        try:
            return Worker(client, name, body, **options).run()
        finally:
            client.close()

    async def handler(item: Any) -> Any:
        return body(item)

    async def main() -> WorkSummary:
        client = backend.async_()
        try:
            return await AsyncWorker(client, name, handler, **options).run()
        finally:
            await client.aclose()

    return asyncio.run(main())


# -- what a handler does to its item ----------------------------------------------------


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_a_handler_that_returns_acknowledges_and_one_that_raises_gives_back(r: Any, backend: Any, kind: str) -> None:
    r.psaddmany("q", [("good", "1", 3), ("bad", "2", 2), ("also", "3", 1)])
    seen: list[tuple[str, str, bytes, float, int]] = []

    def body(item: Any) -> None:
        seen.append((item.stream, item.key, item.value, item.score, item.deliveries))
        if item.key == "bad":
            raise ValueError("no good")

    summary = work(backend, kind, body, retry_delay=60)
    assert (summary.done, summary.failed, summary.dead, summary.outcome) == (2, 1, 0, "idle")
    assert sorted(seen) == [("q", "also", b"3", 1.0, 1), ("q", "bad", b"2", 2.0, 1), ("q", "good", b"1", 3.0, 1)]
    assert r.psitem("q", "good")["state"] == "cooling"  # acknowledged with the default cool-down
    bad = r.psitem("q", "bad")
    assert bad["state"] == "delayed" and bad["deliveries"] == 1
    assert bad["last_failure"]["reason"] == "ValueError: no good"
    assert 55 < (bad["until"] - bad["last_failure"]["at"]).total_seconds() <= 61  # the back-off: retry_delay × 2⁰


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_retry_chooses_the_delay_and_dead_buries_at_once(r: Any, backend: Any, kind: str) -> None:
    r.psaddmany("q", [("later", "1", 2), ("hopeless", "2", 1)])

    def body(item: Any) -> None:
        if item.key == "later":
            raise Retry("rate limited", delay=timedelta(seconds=600))
        raise Dead("malformed payload")

    summary = work(backend, kind, body, retry_delay=1, max_deliveries=5)
    assert (summary.done, summary.failed, summary.dead) == (0, 1, 1)
    later = r.psitem("q", "later")
    assert later["state"] == "delayed" and later["last_failure"]["reason"] == "Retry: rate limited"
    assert 590 < (later["until"] - later["last_failure"]["at"]).total_seconds() <= 601
    dead = r.psdead("q")
    assert list(dead) == ["hopeless"] and dead.reasons["hopeless"] == "malformed payload"
    assert dead.deliveries["hopeless"] == 1  # (dead on its first delivery, not its fifth)


@pytest.mark.parametrize("kind", KINDS)
def test_an_item_that_fails_every_delivery_ends_dead(r: Any, backend: Any, kind: str) -> None:
    r.psadd("q", "flaky", "v")
    deliveries: list[int] = []

    def body(item: Any) -> None:
        deliveries.append(item.deliveries)
        raise RuntimeError(f"attempt {item.deliveries}")

    summary = work(backend, kind, body, retry_delay=0, max_deliveries=3)
    assert deliveries == [1, 2, 3]
    assert (summary.failed, summary.dead) == (2, 1)
    assert r.psdead("q").reasons["flaky"] == "RuntimeError: attempt 3"


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_handler_fails_only_the_keys_it_returns(r: Any, backend: Any, kind: str) -> None:
    r.psaddmany("q", [(f"k{i}", str(i), i) for i in range(10)])
    batches: list[list[str]] = []

    def body(items: list[Any]) -> Any:
        batches.append([item.key for item in items])
        if len(batches) == 1:
            return {"k9"}  # the first item of the first batch failed
        if "k5" in [item.key for item in items]:
            return {"k5": Retry("later", delay=300), "k4": "bad row"}
        return None

    summary = work(backend, kind, body, batch=4, retry_delay=60)
    assert all(1 <= len(batch) <= 4 for batch in batches)
    assert sorted(key for batch in batches for key in batch) == sorted(f"k{i}" for i in range(10))
    assert (summary.done, summary.failed, summary.dead) == (7, 3, 0)
    assert r.psitem("q", "k9")["last_failure"]["reason"] == "failed in its batch"
    assert r.psitem("q", "k5")["last_failure"]["reason"] == "Retry: later"
    assert r.psitem("q", "k4")["last_failure"]["reason"] == "bad row"
    assert r.psitem("q", "k0")["state"] == "cooling"


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_handler_that_raises_fails_its_whole_batch(r: Any, backend: Any, kind: str) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(3)])

    def body(items: list[Any]) -> None:
        raise OSError("the database went away")

    summary = work(backend, kind, body, batch=10, retry_delay=60)
    assert (summary.done, summary.failed) == (0, 3)
    assert {r.psitem("q", f"k{i}")["last_failure"]["reason"] for i in range(3)} == {"OSError: the database went away"}


@pytest.mark.parametrize("kind", KINDS)
def test_limit_stops_after_that_many_items(r: Any, backend: Any, kind: str) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(50)])
    summary = work(backend, kind, lambda item: None, limit=7, concurrency=3, idle_exit=None)
    assert (summary.done, summary.outcome) == (7, "limit")
    assert r.pslen("q") == 43  # (nothing held, nothing lost)


# -- concurrency --------------------------------------------------------------------------


@pytest.mark.both_backends
def test_worker_runs_concurrency_handlers_at_once(r: Any, backend: Any) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(40)])
    running, most, lock = 0, 0, threading.Lock()
    all_in = threading.Barrier(8, timeout=10)

    def handler(item: Any) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if int(item.key[1:]) >= 32:  # the first 8 taken (the highest scores) meet here: 8 at once, or it fails
            all_in.wait()
        time.sleep(0.005)
        with lock:
            running -= 1

    client = backend.sync()
    summary = Worker(client, "q", handler, concurrency=8, idle_exit=0).run()
    client.close()
    assert summary.done == 40 and most == 8


@pytest.mark.both_backends
def test_async_worker_runs_concurrency_handlers_at_once(r: Any, backend: Any) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(500)])
    running, most = 0, 0

    async def handler(item: Any) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1

    async def main() -> WorkSummary:
        client = backend.async_()
        try:
            return await AsyncWorker(client, "q", handler, concurrency=100, idle_exit=0).run()
        finally:
            await client.aclose()

    summary = asyncio.run(main())
    assert summary.done == 500 and most == 100


# -- stopping -----------------------------------------------------------------------------


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_a_stop_lets_running_handlers_finish_and_gives_back_the_rest_uncounted(
    r: Any, backend: Any, kind: str
) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(20)])
    entered = threading.Semaphore(0)
    finish = threading.Event()

    def body(item: Any) -> None:
        entered.release()
        assert finish.wait(10)

    worker: Any = None
    if kind == "sync":
        client = backend.sync()
        worker = Worker(client, "q", body, concurrency=2, grace=30)
        result: list[WorkSummary] = []
        thread = threading.Thread(target=lambda: result.append(worker.run()))
        thread.start()
        assert entered.acquire(timeout=10) and entered.acquire(timeout=10)
        worker.stop()
        time.sleep(0.3)
        finish.set()
        thread.join(10)
        summary = result[0]
        client.close()
    else:

        async def handler(item: Any) -> None:
            entered.release()
            await asyncio.to_thread(finish.wait, 10)

        async def main() -> WorkSummary:
            client = backend.async_()
            worker = AsyncWorker(client, "q", handler, concurrency=2, grace=30)
            task = asyncio.ensure_future(worker.run())
            while not (entered.acquire(blocking=False) and entered.acquire(timeout=5)):
                await asyncio.sleep(0.01)
            worker.stop()
            await asyncio.sleep(0.3)
            finish.set()
            try:
                return await task
            finally:
                await client.aclose()

        summary = asyncio.run(main())
    assert (summary.done, summary.failed, summary.dead, summary.outcome) == (2, 0, 0, "stopped")
    assert r.pslen("q") == 18  # every other item is back, waiting
    assert r.psstats("q")["held"] == 0
    assert all(r.psitem("q", f"k{i}")["deliveries"] == 0 for i in range(18))  # never counted as delivered


@pytest.mark.parametrize("kind", KINDS)
def test_a_grace_that_runs_out_gives_running_items_back_at_once_uncounted(r: Any, backend: Any, kind: str) -> None:
    r.psaddmany("q", [("slow", "v", 1)])
    entered = threading.Event()
    release = threading.Event()

    if kind == "sync":

        def body(item: Any) -> None:
            entered.set()
            release.wait(10)

        client = backend.sync()
        worker = Worker(client, "q", body, grace=0.3)
        timer = threading.Timer(0, lambda: (entered.wait(10), worker.stop()))
        timer.start()
        started = time.monotonic()
        summary = worker.run()
        took = time.monotonic() - started
        release.set()
        client.close()
    else:
        cancelled = []

        async def handler(item: Any) -> None:
            entered.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(item.key)
                raise

        async def main() -> WorkSummary:
            client = backend.async_()
            worker = AsyncWorker(client, "q", handler, grace=0.3)
            task = asyncio.ensure_future(worker.run())
            await asyncio.to_thread(entered.wait, 10)
            worker.stop()
            try:
                return await task
            finally:
                await client.aclose()

        started = time.monotonic()
        summary = asyncio.run(main())
        took = time.monotonic() - started
        assert cancelled == ["slow"]  # an async handler is cancelled, as a command is stopped
    assert took < 5
    assert (summary.done, summary.failed, summary.outcome) == (0, 0, "forced")
    item = r.psitem("q", "slow")
    assert item["state"] == "waiting" and item["deliveries"] == 0 and item.get("last_failure") is None


WORKER_SCRIPT = r"""
import json, os, sys, time
from psctl import Redis, Worker
url, mode = sys.argv[1], sys.argv[2]
def handler(item):
    open(os.path.join(os.environ["FOLDER"], "started-" + item.key), "w").close()
    time.sleep(float(os.environ.get("SLEEP", "0.5")))
summary = Worker(Redis.from_url(url), "q", handler, concurrency=4, lease=float(os.environ.get("LEASE", "300")),
                 grace=30, idle_exit=0 if mode == "idle" else None).run()
print(json.dumps(summary.__dict__))
"""


def _worker_process(tmp_path: Path, url: str, mode: str, **env: str) -> subprocess.Popen[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), url, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FOLDER": str(tmp_path), **env},
    )  # fmt: skip


def _wait_for(condition: Callable[[], Any], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_the_worker_as_they_stop_psctl_work(
    r: Any, redis_url: str, tmp_path: Path, signum: int
) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(20)])
    process = _worker_process(tmp_path, redis_url, "forever", SLEEP="3")  # (3 s: the signal comes before any ends)
    try:
        _wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 4)
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert (summary["done"], summary["failed"], summary["outcome"]) == (4, 0, "stopped")
    assert r.pslen("q") == 16 and r.psstats("q")["held"] == 0


def test_a_worker_killed_with_sigkill_has_its_items_back_within_one_lease(
    r: Any, redis_url: str, tmp_path: Path
) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(20)])
    process = _worker_process(tmp_path, redis_url, "forever", SLEEP="30", LEASE="2")
    try:
        _wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 4)
        process.kill()
        process.wait()
        killed_at = time.monotonic()
        held = r.psstats("q")["held"]  # (after the kill: the worker may still have been prefetching)
    finally:
        process.kill()
    assert held >= 4  # (running, and prefetched)
    deliveries: dict[str, int] = {}
    while len(deliveries) < 20:  # what waits at once; what the dead worker held once its 2 s lease ran out
        lease = r.pslease("q", count=20, block=5)
        assert lease, "the dead worker's items did not come back"
        deliveries.update(lease.deliveries)
    assert time.monotonic() - killed_at < 2 + 2.5  # within one lease (and a loaded machine's lateness)
    started = {path.name.removeprefix("started-") for path in tmp_path.glob("started-*")}
    again = {key for key, n in deliveries.items() if n == 2}  # (leased once by the dead worker: counted)
    assert started <= again and len(again) == held


# -- a lost server ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_lost_for_less_than_the_patience_loses_nothing(tmp_path: Path, kind: str) -> None:
    server = start_server(tmp_path / "own", unixsocket=tmp_path / "own" / "redis.sock")
    url = server.url
    try:
        Redis.from_url(url).psaddmany("q", [(f"k{i}", "v", i) for i in range(30)])
        frozen = threading.Event()

        def body(item: Any) -> None:
            if item.key == "k25" and not frozen.is_set():
                frozen.set()
                os.kill(server.pid, signal.SIGSTOP)  # the server freezes for a second while this item runs
                threading.Timer(1.0, os.kill, (server.pid, signal.SIGCONT)).start()

        backend = _Own(url)
        summary = work(backend, kind, body, patience=20, concurrency=2)
        assert (summary.done, summary.failed) == (30, 0)
        stats = Redis.from_url(url).psstats("q")
        assert (stats["waiting"], stats["held"], stats["counters"]["acked"]) == (0, 0, 30)
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_lost_for_the_patience_ends_the_work_with_server_lost(tmp_path: Path, kind: str) -> None:
    server = start_server(tmp_path / "own", unixsocket=tmp_path / "own" / "redis.sock")
    url = server.url
    try:
        Redis.from_url(url).psaddmany("q", [(f"k{i}", "v", i) for i in range(5)])

        def body(item: Any) -> None:
            os.kill(server.pid, signal.SIGSTOP)

        started = time.monotonic()
        with pytest.raises(ServerLost, match="did not answer for 1.5 s") as lost:
            work(_Own(url, socket_timeout=1), kind, body, patience=1.5, idle_exit=None)
        assert time.monotonic() - started < 10
        assert lost.value.summary.done == 0
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.stop()


class _Own:
    """A backend of a server the test started itself."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url, self.options = url, options

    def sync(self) -> Any:
        return Redis.from_url(self.url, **self.options)

    def async_(self) -> Any:
        return AsyncRedis.from_url(self.url, **self.options)


# -- injection, extension, bad input ------------------------------------------------------


def test_handler_parameters_are_injected_with_fast_depends(
    r: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    r.psaddmany("q", [("a", "v", 1)])
    seen: list[Any] = []

    def settings() -> dict[str, str]:
        return {"region": "eu"}

    def handler(item: Any, redis: Redis = RedisProvider(), config: dict[str, str] = Depends(settings)) -> None:
        redis.psadd("done", item.key, item.value)  # the handler's own client, injected
        seen.append(config)

    client = Redis.from_url(redis_url)
    assert Worker(client, "q", handler, idle_exit=0).run().done == 1
    assert seen == [{"region": "eu"}] and r.psget("done", "a") == b"v"


def test_async_handler_parameters_are_injected_too(r: Any, redis_url: str) -> None:
    r.psaddmany("q", [("a", "v", 1), ("b", "w", 2)])
    seen: list[tuple[str, int]] = []

    async def attempts() -> int:
        return 3

    async def handler(item: Any, tries: Annotated[int, Depends(attempts)]) -> None:
        seen.append((item.key, tries))

    async def main() -> WorkSummary:
        client = AsyncRedis.from_url(redis_url)
        try:
            return await AsyncWorker(client, "q", handler, idle_exit=0).run()
        finally:
            await client.aclose()

    assert asyncio.run(main()).done == 2
    assert sorted(seen) == [("a", 3), ("b", 3)]


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_a_handler_extends_its_own_lease_and_the_worker_does_not_cut_it_short(r: Any, backend: Any, kind: str) -> None:
    r.psadd("q", "long", "v")
    deadlines: list[Any] = []

    if kind == "sync":

        def body(item: Any) -> None:
            deadlines.append(item.extend(3600))
            time.sleep(1.2)  # the worker's own extensions (every 1/3 of the 3 s lease) come meanwhile
            deadlines.append(r.psitem("q", "long")["until"])

        client = backend.sync()
        Worker(client, "q", body, lease=3, idle_exit=0).run()
        client.close()
    else:

        async def handler(item: Any) -> None:
            deadlines.append(await item.extend(timedelta(hours=1)))
            await asyncio.sleep(1.2)
            deadlines.append(r.psitem("q", "long")["until"])

        async def main() -> None:
            client = backend.async_()
            await AsyncWorker(client, "q", handler, lease=3, idle_exit=0).run()
            await client.aclose()

        asyncio.run(main())
    extended, later = deadlines
    assert later >= extended - timedelta(seconds=1)  # not brought back to 3 s from now
    assert r.psitem("q", "long")["state"] == "cooling"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number from 1"),
        ({"lease": -1}, "lease must be a timedelta or a number of seconds more than 0"),
        ({"batch": 2.5}, "batch must be a whole number from 1"),
        ({"retry_delay": "10s"}, "retry_delay must be a timedelta"),
        ({"max_deliveries": True}, "max_deliveries must be a whole number from 1"),
        ({"prefetch": 0}, "prefetch must be a whole number from 1"),
        ({"idle_exit": -1}, "idle_exit must be a timedelta or a number of seconds from 0"),
    ],
)
def test_bad_options_are_one_clear_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Worker(Redis(), "q", lambda item: None, **options)


def test_a_worker_of_the_wrong_kind_of_handler_says_which_to_use() -> None:
    async def coroutine(item: Any) -> None: ...

    with pytest.raises(InvalidArgument, match="use AsyncWorker"):
        Worker(Redis(), "q", coroutine)
    with pytest.raises(InvalidArgument, match="use Worker"):
        AsyncWorker(AsyncRedis(), "q", lambda item: None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'jobs'"):
        Worker(Redis(), "q", lambda item: None, jobs=4)


def test_a_stop_before_run_ends_it_at_once(r: Any, backend: Any) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(5)])
    client = backend.sync()
    worker = Worker(client, "q", lambda item: None)
    worker.stop()
    summary = worker.run()
    client.close()
    assert (summary.done, summary.outcome) == (0, "stopped") and r.pslen("q") == 5


def test_cancelling_an_async_worker_stops_it_at_once_and_gives_its_items_back(r: Any, backend: Any) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(10)])
    entered = asyncio.Event()

    async def handler(item: Any) -> None:
        entered.set()
        await asyncio.sleep(30)

    async def main() -> None:
        client = backend.async_()
        task = asyncio.ensure_future(AsyncWorker(client, "q", handler, concurrency=2).run())
        await asyncio.wait_for(entered.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await client.aclose()

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 8
    assert r.pslen("q") == 10 and r.psstats("q")["held"] == 0  # all back, none counted
    assert all(r.psitem("q", f"k{i}")["deliveries"] == 0 for i in range(10))


# -- one round trip per item, or less ----------------------------------------------------------


def _evalsha_calls(r: Any) -> int:
    return int(r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.parametrize(("kind", "pause"), [("sync", 0.0), ("async", 0.0), ("sync", 0.002), ("async", 0.002)])
def test_the_steady_state_costs_less_than_one_round_trip_per_item(r: Any, backend: Any, kind: str, pause: float) -> None:
    """Leases ahead of the handlers, acknowledgements of many items at once that
    lease the next ones in the same call (psacklease): far fewer script calls
    than items, whether handlers are instant or take a while."""
    count = 3000 if pause == 0 else 400
    for start in range(0, count, 1000):
        r.psaddmany("q", [(f"k{i}", "v", i) for i in range(start, min(start + 1000, count))])
    before = _evalsha_calls(r)

    def body(item: Any) -> None:
        if pause:
            time.sleep(pause)

    summary = work(backend, kind, body, concurrency=4)
    calls = _evalsha_calls(r) - before
    assert summary.done == count
    # (2 ms handlers: about 0.25 a call on a quiet machine, 0.52 on a loaded one; 0.87 before the gather)
    assert calls <= count / (10 if pause == 0 else 1), calls


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_handler_is_logged_with_its_traceback(
    r: Any, backend: Any, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    r.psaddmany("q", [("bad", "v", 2), ("later", "v", 1)])

    def body(item: Any) -> None:
        if item.key == "later":
            raise Retry("not yet", delay=60)  # (a handler's own choice: not logged as a failure)
        {}["missing"]  # noqa: B018 - a KeyError, as a bug in a handler would raise

    with caplog.at_level("WARNING", logger="psctl.worker"):
        work(backend, kind, body, retry_delay=60)
    [record] = [record for record in caplog.records if "handler failed" in record.getMessage()]
    assert record.getMessage() == "q: the handler failed for 'bad' (delivery 1): KeyError: 'missing'"
    assert record.exc_info is not None and record.exc_info[0] is KeyError


# -- found by trying the workers as a user would (each failed before its fix) ----------------


def test_expire_at_in_seconds_is_a_cool_down_and_a_bad_one_is_refused_before_anything_runs(r: Any, backend: Any) -> None:
    r.psaddmany("q", [("a", "v", 1)])
    client = backend.sync()
    assert Worker(client, "q", lambda item: None, expire_at=3600, idle_exit=0).run().done == 1
    cooling = r.zscore(backend.keys("q").cooling, "a") - time.time()
    assert 3500 < cooling <= 3601  # (it crashed at the first acknowledgement, its items left held)
    with pytest.raises(InvalidArgument, match="expire_at must be a timedelta, a datetime, a number of seconds or None"):
        Worker(client, "q", lambda item: None, expire_at="1h")
    client.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_handler_returning_keys_not_in_its_batch_fails_the_batch(r: Any, backend: Any, kind: str) -> None:
    r.psaddmany("q", [("k0", "v", 1), ("k1", "v", 2)])
    summary = work(backend, kind, lambda items: ["typo"], batch=10, retry_delay=60)
    assert (summary.done, summary.failed) == (0, 2)  # (both were counted done, and acknowledged)
    reason = r.psitem("q", "k0")["last_failure"]["reason"]
    assert reason == "ValueError: the batch handler returned keys not in its batch: 'typo'"
    r.psaddmany("bytes", [("k0", "v", 1), ("k1", "v", 2)])
    summary = work(backend, kind, lambda items: [b"k0"], name="bytes", batch=10, retry_delay=60)
    assert (summary.done, summary.failed) == (1, 1)  # (a key as bytes is that key)


@pytest.mark.parametrize("kind", KINDS)
def test_done_counts_what_the_server_acknowledged(r: Any, backend: Any, kind: str) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(5)])
    other = backend.sync()

    def body(item: Any) -> None:
        other.psremove("q", item.key)  # (someone removes it while it runs: not acknowledged)

    summary = work(backend, kind, body)
    other.close()
    assert summary.done == 0 and r.psstats("q")["counters"]["acked"] == 0


def test_a_healthy_run_says_nothing_of_leases_running_out(r: Any, backend: Any, caplog: pytest.LogCaptureFixture) -> None:
    """An acknowledgement that leased nothing more left an empty lease tracked,
    and every third of a lease later a warning that it ran out."""
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(12)])
    client = backend.sync()
    with caplog.at_level("WARNING", logger="psctl.worker"):
        summary = Worker(client, "q", lambda item: time.sleep(0.2), concurrency=2, lease=0.9, idle_exit=0).run()
    client.close()
    assert summary.done == 12
    assert [record.getMessage() for record in caplog.records] == []


def test_a_handler_raising_systemexit_ends_the_work_and_gives_back_what_never_started(r: Any, backend: Any) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(20)])
    client = backend.sync()

    def handler(item: Any) -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        Worker(client, "q", handler, concurrency=2).run()
    client.close()
    stats = r.psstats("q")
    assert stats["held"] <= 2 and stats["waiting"] >= 18  # (all 20 stayed held for the whole lease)


def test_wrong_uses_are_one_clear_error_before_anything_is_leased(r: Any, backend: Any) -> None:
    async def coroutine(item: Any) -> None: ...

    with pytest.raises(InvalidArgument, match="AsyncWorker needs an AsyncRedis .*, got Redis: use Worker for it"):
        AsyncWorker(Redis(), "q", coroutine)
    with pytest.raises(InvalidArgument, match="Worker needs a Redis .*, got AsyncRedis: use AsyncWorker for it"):
        Worker(AsyncRedis(), "q", lambda item: None)
    with pytest.raises(InvalidArgument, match="a handler takes the item as its first parameter"):
        Worker(Redis(), "q", lambda: None)
    with pytest.raises(InvalidArgument, match="its parameter 'b' needs a default or a dependency"):
        Worker(Redis(), "q", lambda a, b: None)
    with pytest.raises(InvalidArgument, match="max_deliveries must be a whole number from 1 to 1,000,000,000"):
        Worker(Redis(), "q", lambda item: None, max_deliveries=10**12)
    with pytest.raises(InvalidArgument, match="lease must be at most"):
        Worker(Redis(), "q", lambda item: None, lease=float("inf"))
    with pytest.raises(TypeError, match="BaseWorker.__init__.. got an unexpected keyword argument 'jobs'"):
        Worker(Redis(), "q", lambda item: None, jobs=4)
    assert r.psstats("q")["counters"]["leased"] == 0


def test_one_worker_runs_once_at_a_time(r: Any, backend: Any) -> None:
    r.psadd("q", "a", "v")
    client = backend.sync()
    entered, finish = threading.Event(), threading.Event()
    worker = Worker(client, "q", lambda item: (entered.set(), finish.wait(10)))
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert entered.wait(10)
    with pytest.raises(PsctlError, match="this worker runs already"):
        worker.run()
    worker.stop()
    finish.set()
    thread.join(10)
    assert not thread.is_alive()
    client.close()


def test_a_stop_is_said_as_psctl_work_says_it(r: Any, backend: Any, caplog: pytest.LogCaptureFixture) -> None:
    r.psadd("q", "a", "v")
    client = backend.sync()
    entered = threading.Event()
    worker = Worker(client, "q", lambda item: (entered.set(), time.sleep(0.5)), grace=30)
    threading.Thread(target=lambda: (entered.wait(10), worker._on_signal(signal.SIGTERM))).start()
    with caplog.at_level("WARNING", logger="psctl.worker"):
        assert worker.run().done == 1
    client.close()
    assert "q: stopping: 1 running handler may finish within 30 s (a second signal stops them now)" in caplog.messages
