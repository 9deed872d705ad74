"""Several streams with weights in one worker (SPEC §12, "Several streams,
fairly"): ``Worker``, ``AsyncWorker`` and ``psctl work a b:3 c``, on real
servers (standalone, and a cluster with the streams on different nodes):
each stream's share within ±2% of its weight over 5,000 items; a paused or
emptied stream's part shared by the others; an empty stream delaying
nothing; a wake-up within 200 ms when every stream was empty, without
spinning meanwhile; acknowledgements, failures and extensions in the item's
own stream; bad input refused in one line. The smooth weighted round-robin
itself, without a server, at the end."""

from __future__ import annotations

import asyncio
import collections
import json
import math
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from psctl import AsyncWorker, InvalidArgument, Redis, Worker
from psctl.work.fair import DRY, Shares, from_words, shown, weighted
from psctl.workers import WorkSummary

from .helpers import PSCTL
from .test_workers import work

KINDS = ["sync", "async"]
WEIGHTS = (1, 3, 1)


def names_for(backend: Any, r: Any) -> tuple[str, str, str]:
    """Three stream names: on a cluster, one on each of three nodes."""
    if not backend.cluster:
        return "a", "b", "c"
    found: dict[str, str] = {}
    for i in range(1000):
        name = f"s{i}"
        node = r.get_node_from_key(backend.keys(name).scores).name
        found.setdefault(node, name)
        if len(found) == 3:
            return tuple(found.values())  # type: ignore[return-value]
    raise AssertionError("no three names on three nodes")


def run_worker(backend: Any, kind: str, streams: Any, body: Callable[[Any], Any], **options: Any) -> WorkSummary:
    """A worker of ``kind`` over ``streams`` with ``body`` as its handler, until it ends (no idle exit unless told)."""
    return work(backend, kind, body, streams, **{"idle_exit": None, **options})


def backlog(r: Any, names: tuple[str, ...], count: int) -> None:
    for name in names:
        r.psaddmany(name, [(f"k{i}", b"v", i % 7) for i in range(count)])


def assert_shares(counts: dict[str, int], weights: dict[str, int], total: int) -> None:
    """Each stream took its weight's share of ``total`` items, within ±2 points."""
    assert sum(counts.values()) == total, counts
    whole = sum(weights.values())
    for name, weight in weights.items():
        share = counts.get(name, 0) / total
        assert abs(share - weight / whole) <= 0.02, (name, share, weight / whole, counts)


# -- shares ---------------------------------------------------------------------------


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_weights_1_3_1_over_5000_items_each_stream_within_2_percent(r: Any, backend: Any, kind: str) -> None:
    names = names_for(backend, r)
    backlog(r, names, 3500)
    counts: collections.Counter[str] = collections.Counter()
    weights = dict(zip(names, WEIGHTS))
    summary = run_worker(backend, kind, [(name, w) for name, w in weights.items()],
                         lambda item: counts.update([item.stream]), concurrency=4, limit=5000)  # fmt: skip
    assert summary.done == 5000 and summary.outcome == "limit"
    assert_shares(counts, weights, 5000)
    assert summary.streams == counts  # (what each one's done)
    assert sum(r.pslen(name) for name in names) == 3 * 3500 - 5000  # (taken = acknowledged: none left held)


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_a_paused_stream_s_share_goes_to_the_others(r: Any, backend: Any, kind: str) -> None:
    a, b, c = names_for(backend, r)
    backlog(r, (a, b, c), 1500)
    r.pspause(b)
    counts: collections.Counter[str] = collections.Counter()
    summary = run_worker(backend, kind, {a: 1, b: 3, c: 1}, lambda item: counts.update([item.stream]),
                         concurrency=2, limit=2000)  # fmt: skip
    assert summary.done == 2000 and counts[b] == 0
    assert_shares(counts, {a: 1, c: 1}, 2000)
    assert r.pslen(b) == 1500


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_an_emptied_stream_s_share_goes_to_the_others_and_the_end_is_idleness(
    r: Any, backend: Any, kind: str
) -> None:
    a, b, c = names_for(backend, r)
    backlog(r, (a, c), 1500)
    backlog(r, (b,), 90)  # (b empties after about 150 items of all)
    order: list[str] = []
    summary = run_worker(backend, kind, [a, (b, 3), c], lambda item: order.append(item.stream), concurrency=2,
                         limit=2000)  # fmt: skip
    assert summary.done == 2000 and order.count(b) == 90
    last = max(i for i, stream in enumerate(order) if stream == b)
    assert last < 200, last  # (b at its share, 3 of 5, while it had items)
    assert_shares(collections.Counter(order[last + 1:]), {a: 1, c: 1}, 2000 - last - 1)
    rest = run_worker(backend, kind, [a, (b, 3), c], lambda item: None, idle_exit=0)
    assert rest.outcome == "idle" and rest.done == 3090 - 2000


@pytest.mark.both_backends
def test_an_empty_stream_delays_nothing(r: Any, backend: Any) -> None:
    a, b, c = names_for(backend, r)
    r.psaddmany(b, [(f"k{i}", b"v", 1) for i in range(300)])
    times: list[float] = []

    def body(item: Any) -> None:
        times.append(time.monotonic())
        time.sleep(0.001)

    summary = run_worker(backend, "sync", [(a, 5), b, (c, 5)], body, idle_exit=0)
    assert summary.done == 300 and summary.outcome == "idle"
    gaps = sorted(later - earlier for earlier, later in zip(times, times[1:]))
    # (a and c, empty, five times b's weight: b's items flow on.) All but two of the
    # 299 gaps under 100 ms, and none near a poll (a second): a loaded machine
    # stalls a thread for over 100 ms at times
    assert gaps[-3] < 0.1 and gaps[-1] < 0.9, gaps[-3:]


# -- waiting ----------------------------------------------------------------------------


def _script_calls(r: Any, backend: Any) -> int:
    """Script calls and BLPOPs the server(s) answered so far."""
    if backend.cluster:
        per_node = r.info("commandstats", target_nodes=r.PRIMARIES).values()
    else:
        per_node = [r.info("commandstats")]
    return sum(
        entry["calls"] for node in per_node for name, entry in node.items()
        if name in ("cmdstat_evalsha", "cmdstat_blpop", "cmdstat_eval")
    )  # fmt: skip


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_all_empty_it_waits_without_spinning_and_any_stream_wakes_it_within_200_ms(
    r: Any, backend: Any, kind: str
) -> None:
    names = names_for(backend, r)
    seen: dict[str, float] = {}
    ready = threading.Event()

    def body(item: Any) -> None:
        seen[item.key] = time.monotonic()

    result: list[WorkSummary] = []
    if kind == "sync":
        client = backend.sync()
        worker: Any = Worker(client, list(zip(names, WEIGHTS)), body)
        thread = threading.Thread(target=lambda: result.append(worker.run()))
    else:
        async def handler(item: Any) -> None:
            body(item)

        async def main() -> None:
            nonlocal worker
            async_client = backend.async_()
            worker = AsyncWorker(async_client, list(zip(names, WEIGHTS)), handler)
            ready.set()
            try:
                result.append(await worker.run())
            finally:
                await async_client.aclose()

        thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    try:
        assert kind == "sync" or ready.wait(10)
        time.sleep(0.5)
        before = _script_calls(r, backend)
        time.sleep(2)
        calls = (_script_calls(r, backend) - before - 1) / 2  # (less the INFO's own round)
        # one server: a BLPOP on the three wake-up lists and a lease of each a second (measured: 3.5, with
        # the INFO); a cluster: a BLPOP per slot (in threads) and a lease of each a second (measured: 5.5-6)
        assert calls <= (12 if backend.cluster else 8), calls
        for name in reversed(names):
            waited = []
            for i in range(5):  # (the median of five: a machine busy with other work delays some at times)
                time.sleep(0.3)
                r.psadd(name, f"for-{name}-{i}", b"v", 1)
                added = time.monotonic()  # (after the reply: the wake-up can come no sooner than the add)
                while f"for-{name}-{i}" not in seen and time.monotonic() - added < 3:
                    time.sleep(0.001)
                waited.append(seen.get(f"for-{name}-{i}", added + 3) - added)
            assert sorted(waited)[2] < 0.2, (name, waited)  # (measured alone: 1-25 ms)
    finally:
        worker.stop()
        thread.join(10)
    assert result and result[0].done == 15 and result[0].outcome == "stopped"


@pytest.mark.both_backends
def test_a_resumed_stream_is_taken_from_again_within_a_poll(r: Any, backend: Any) -> None:
    a, b, c = names_for(backend, r)
    seen: dict[str, float] = {}
    worker = Worker(r, [a, b, c], lambda item: seen.setdefault(item.key, time.monotonic()))
    thread = threading.Thread(target=worker.run)
    thread.start()
    waited = []
    try:
        for i in range(3):  # (the median of three: a machine busy with other work delays one at times)
            r.pspause(b)
            r.psadd(b, f"waiting-{i}", b"v", 1)
            time.sleep(0.5)
            assert f"waiting-{i}" not in seen
            r.psresume(b)
            resumed = time.monotonic()  # (after the reply: the wake-up can come no sooner than the resume)
            while f"waiting-{i}" not in seen and time.monotonic() - resumed < 3:
                time.sleep(0.001)
            waited.append(seen.get(f"waiting-{i}", resumed + 3) - resumed)
        assert sorted(waited)[1] < 0.2, waited
    finally:
        worker.stop()
        thread.join(10)


def test_empty_streams_on_a_slow_server_are_asked_once_a_round_then_waited_for(redis_url: str, r: Any) -> None:
    calls = collections.Counter()

    class Slow(Redis):  # (each lease slower than a stream is left out for: 50 ms)
        def pslease(self, name: str, *args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            time.sleep(0.06)
            return super().pslease(name, *args, **kwargs)

    client = Slow.from_url(redis_url)
    started = time.monotonic()
    summary = Worker(client, ["a", ("b", 3), "c"], lambda item: None, idle_exit=0.3).run()
    client.close()
    assert summary.outcome == "idle" and time.monotonic() - started < 10  # (a wait, not for ever)
    assert set(calls) == {"a", "b", "c"} and max(calls.values()) <= 3, calls


# -- each item in its own stream ------------------------------------------------------------


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_the_same_key_in_two_streams_is_two_items_each_acked_failed_and_extended_in_its_own(
    r: Any, backend: Any, kind: str
) -> None:
    a, b, _ = names_for(backend, r)
    r.psadd(a, "same", b"in a", 1)
    r.psadd(b, "same", b"in b", 1)
    r.psadd(b, "fails", b"once", 2)
    seen: list[tuple[str, str, bytes, int]] = []

    def body(item: Any) -> None:
        seen.append((item.stream, item.key, item.value, item.deliveries))
        if kind == "sync":
            assert item.extend(60) is not None  # (held in its own stream: in the other, the lease is unknown)
        if item.key == "fails" and item.deliveries == 1:
            raise ValueError("once")

    summary = run_worker(backend, kind, [a, (b, 2)], body, idle_exit=0, retry_delay=0)
    assert summary.done == 3 and summary.failed == 1
    assert sorted(seen) == sorted([(a, "same", b"in a", 1), (b, "same", b"in b", 1), (b, "fails", b"once", 1),
                                   (b, "fails", b"once", 2)])  # fmt: skip
    assert r.pslen(a) == r.pslen(b) == 0
    assert r.psitem(b, "fails")["state"] == r.psitem(a, "same")["state"] == r.psitem(b, "same")["state"] == "cooling"
    assert r.psitem(a, "fails") == {"state": "absent"}  # (acknowledged and failed in b, its own)


def test_a_batch_holds_items_of_one_stream(r: Any, backend: Any) -> None:
    backlog(r, ("a", "b"), 40)
    batches: list[set[str]] = []
    summary = run_worker(backend, "sync", ["a", ("b", 3)], lambda items: batches.append({i.stream for i in items}),
                         batch=8, idle_exit=0)  # fmt: skip
    assert summary.done == 80 and all(len(streams) == 1 for streams in batches)


# -- psctl work a b:3 c ------------------------------------------------------------------


def psctl_work(url: str, *words: str, cluster: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"REDIS_URL": url, "PATH": "/usr/bin:/bin"} | ({"REDIS_CLUSTER": "1"} if cluster else {})
    return subprocess.run([str(PSCTL), "work", *words], capture_output=True, text=True, env=env, timeout=120,
                          check=False)  # fmt: skip


@pytest.mark.both_backends
def test_psctl_work_a_b3_c_takes_by_weight_with_the_item_s_stream_in_psctl_stream(r: Any, backend: Any) -> None:
    names = names_for(backend, r)
    backlog(r, names, 700)
    done = psctl_work(backend.url, names[0], f"{names[1]}:3", names[2], "-j", "4", "--limit", "1000", "--", "sh",
                      "-c", 'echo "$PSCTL_STREAM"', cluster=backend.cluster)  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts = collections.Counter(done.stdout.split())
    assert_shares(counts, dict(zip(names, WEIGHTS)), 1000)
    each = ", ".join(f"{name} {counts[name]}" for name in names)
    assert f"psctl work {names[0]} {names[1]}:3 {names[2]}: 1000 done ({each}), 0 failed" in done.stderr
    assert sum(r.pslen(name) for name in names) == 3 * 700 - 1000
    again = psctl_work(backend.url, *names, "--limit", "10", "--json", "--", "true", cluster=backend.cluster)
    found = json.loads(again.stdout)
    assert again.returncode == 0 and found["done"] == 10 and sum(found["streams"].values()) == 10
    assert list(found["streams"]) == list(names)  # (in the order given, each one)


def test_psctl_work_names_ending_in_digits_and_colons(r: Any, redis_url: str) -> None:
    r.psadd("jobs:2", "k", b"v", 1)
    r.psadd("crawl:urls", "k", b"v", 1)
    r.psadd("a:x", "k", b"v", 1)
    done = psctl_work(redis_url, "jobs:2:1", "crawl:urls:4", "a:x", "--idle-exit", "0", "--", "sh", "-c",
                      'echo "$PSCTL_STREAM"')  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == ["a:x", "crawl:urls", "jobs:2"]
    r.psadd("jobs:2", "alone", b"v", 1)  # (one name alone is the stream's name as it is, as it always was)
    done = psctl_work(redis_url, "jobs:2", "--idle-exit", "0", "--", "sh", "-c", 'echo "$PSCTL_STREAM"')
    assert done.returncode == 0 and done.stdout.split() == ["jobs:2"]


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (("a", "b:0"), "the weight of 'b' must be a whole number from 1 to 1000, got 0"),
        (("a", "b:1001"), "the weight of 'b' must be a whole number from 1 to 1000, got 1001"),
        (("a", "b", "a:2"), "'a' is given twice"),
        (("a", "",), "a stream name must be a non-empty string"),
    ],
)
def test_psctl_work_bad_streams_are_one_line_and_exit_2(redis_url: str, r: Any, words: tuple[str, ...],
                                                        said: str) -> None:  # fmt: skip
    r.psadd("a", "k", b"v", 1)
    done = psctl_work(redis_url, *words, "--idle-exit", "0", "--", "true")
    assert done.returncode == 2 and said in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and r.pslen("a") == 1  # (nothing leased)


def test_psctl_work_with_nothing_before_the_dashes_is_bad_usage(redis_url: str) -> None:
    done = psctl_work(redis_url, "--idle-exit", "0", "--", "true", "x")
    assert done.returncode == 2 and "give the stream's name before --" in done.stderr, done.stderr


# -- bad input in Python -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("streams", "said"),
    [
        ([], "give at least one stream"),
        (["a", ("b", 0)], "the weight of 'b' must be a whole number from 1 to 1000, got 0"),
        ({"a": 1, "b": 1001}, "got 1001"),
        ([("a", True)], "got True"),
        ([("a", "3")], "got '3'"),
        ([("a", 2.0)], "got 2.0"),
        (["a", "b", ("a", 2)], "'a' is given twice"),
        (["a", ""], "a stream name must be a non-empty string"),
        ([("a", 1, 2)], "a stream is a name or a (name, weight) pair"),
        (None, "streams must be a name, a list of names or (name, weight) pairs"),
        (b"a", "streams must be a name"),
    ],
)
def test_bad_streams_are_one_invalid_argument(r: Any, streams: Any, said: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Worker(r, streams, lambda item: None)
    assert said in str(raised.value)


# -- the round-robin itself -----------------------------------------------------------------


def test_weights_1_3_1_are_spread_out_as_nginx_spreads_them() -> None:
    shares = Shares((("a", 1), ("b", 3), ("c", 1)))
    order = []
    for _ in range(10):
        picks = shares.plan(1, shares.ready(0.0))
        order.extend(picks.counts)
    assert "".join(order) == "babcbbabcb"


def test_unused_picks_are_undone_and_a_dry_stream_comes_back_at_its_share_not_with_a_burst() -> None:
    shares = Shares((("a", 1), ("b", 3), ("c", 1)))
    picks = shares.plan(10, shares.ready(0.0))
    assert picks.counts == {"b": 6, "a": 2, "c": 2}
    shares.settle(picks, "b", 1, now=0.0)  # b gave 1 of 6: dry, its credit forfeit
    assert shares.ready(0.01) == ["a", "c"] and shares.ready(1.0) == ["a", "b", "c"]
    taken = collections.Counter({"a": 2, "b": 1, "c": 2})
    for _ in range(100):  # the others alone while b is dry
        taken.update(shares.plan(1, ["a", "c"]).counts)
    back = collections.Counter()
    for _ in range(50):
        back.update(shares.plan(1, shares.ready(1.0)).counts)
    assert abs(back["b"] - 30) <= 1 and abs(back["a"] - 10) <= 1  # (no burst of b: its share from now on)
    assert abs(taken["a"] - taken["c"]) <= 1


def test_a_stream_held_back_by_its_limits_is_waited_for_until_its_lease_said_not_a_poll() -> None:
    shares = Shares((("a", 1), ("b", 1)))
    picks = shares.plan(2, shares.ready(0.0))
    shares.settle(picks, "a", 0, now=0.0)  # empty: nothing said of what comes
    shares.settle(picks, "b", 0, now=0.0, retry_in=0.2)  # its next token in 200 ms
    shares.wait_longer(["a", "b"], until=1.0)  # a wait of a POLL on both
    assert shares.next_ready() == 0.2 and shares.ready(0.2) == ["b"]
    # an acknowledgement's lease of b (psacklease: it never says when) that took
    # nothing leaves what b's last lease said; one that took all it asked clears it
    picks = shares.plan(1, ["b"])
    shares.settle(picks, "b", 0, now=0.18, told=False)
    assert shares.due["b"] == 0.2
    picks = shares.plan(1, ["b"])
    shares.settle(picks, "b", 1, now=0.4, told=False)
    assert shares.due["b"] == math.inf
    # one that took fewer than asked after a lease that took all: looked at again
    # after DRY (its lease then says why), not a POLL later (a worker idled with b's
    # items waiting, its last word from b "all taken")
    picks = shares.plan(1, ["b"])
    shares.settle(picks, "b", 0, now=0.5, told=False)
    assert shares.due["b"] == 0.5 + DRY
    shares.wait_longer(["a", "b"], until=1.5)
    assert shares.ready(0.5 + DRY) == ["b"]
    # a lease that took some, not all (a token for one of three): the same
    picks = shares.plan(3, ["b"])
    shares.settle(picks, "b", 1, now=2.0)
    assert shares.due["b"] == 2.0 + DRY
    picks = shares.plan(3, ["b"])
    shares.settle(picks, "b", 0, now=3.0)  # nothing, and nothing to come (empty, paused)
    assert shares.due["b"] == math.inf


def test_an_acknowledgement_leases_its_stream_only_on_its_turn_every_later_pick_undone() -> None:
    shares, alone = Shares((("a", 1), ("b", 3))), Shares((("a", 1), ("b", 3)))
    picks = shares.plan(8, ["a", "b"])
    assert picks.order == list("babbbabb")
    assert shares.first(picks, "a") == 0 and shares.current == {"a": 0, "b": 0}
    shares.plan(1, ["a", "b"])  # b
    alone.plan(1, ["a", "b"])
    picks = shares.plan(8, ["a", "b"])  # a b b b a b b b
    assert shares.first(picks, "a") == 1
    alone.plan(1, ["a", "b"])
    assert shares.current == alone.current  # (exactly as if only a's one had been picked)


def test_the_command_line_s_words() -> None:
    assert from_words(["a", "b:3", "c"]) == (("a", 1), ("b", 3), ("c", 1))
    assert from_words(["jobs:2:1", "a:x", "b:03"]) == (("jobs:2", 1), ("a:x", 1), ("b", 3))
    assert from_words(["jobs:2"]) == (("jobs:2", 1),)
    assert shown((("a", 1), ("b", 3), ("jobs:2", 1))) == "a b:3 jobs:2:1"
    assert weighted({"a": 2}) == (("a", 2),) and weighted("a") == (("a", 1),)


# -- limits that hold items back are not idleness --------------------------------------


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_idle_exit_waits_for_a_rate_limited_stream_s_tokens_while_its_items_wait(
    r: Any, backend: Any, kind: str
) -> None:
    """Before, a worker with idle_exit=0 ended at the first lease that had to
    wait for a token: 5 of 12 done (the burst)."""
    a, _, _ = names_for(backend, r)
    backlog(r, (a,), 12)
    r.pslimit(a, rate=20, burst=5)
    started = time.monotonic()
    summary = run_worker(backend, kind, a, lambda item: None, concurrency=2, idle_exit=0)
    took = time.monotonic() - started
    assert (summary.done, summary.outcome, r.pslen(a)) == (12, "idle", 0)
    assert 0.3 <= took < 4.0, took  # (7 tokens after the burst, at 20/s: 0.35 s)


@pytest.mark.both_backends
def test_idle_exit_still_ends_on_a_paused_stream_and_on_only_delayed_items(r: Any, backend: Any) -> None:
    a, b, _ = names_for(backend, r)
    backlog(r, (a,), 3)
    r.pspause(a)
    r.psadd(b, "later", "v", delay=timedelta(hours=1))
    for streams in (a, b, [a, b]):
        summary = run_worker(backend, "sync", streams, lambda item: None, idle_exit=0.2)
        assert (summary.done, summary.outcome) == (0, "idle")
    assert r.pslen(a) == 3


@pytest.mark.both_backends
@pytest.mark.parametrize("kind", KINDS)
def test_a_rate_limited_stream_among_empty_ones_is_served_at_its_rate_not_once_a_poll(
    r: Any, backend: Any, kind: str
) -> None:
    """Before, with every stream waiting, the worker looked again once a POLL
    (1 s): a stream of 5/s with a burst of 1 gave one item a second."""
    a, b, c = names_for(backend, r)
    backlog(r, (b,), 6)
    r.pslimit(b, rate=5, burst=1)
    started = time.monotonic()
    summary = run_worker(backend, kind, [a, (b, 3), c], lambda item: None, idle_exit=0.5)
    took = time.monotonic() - started
    assert (summary.done, summary.outcome) == (6, "idle")
    assert took < 4.0, took  # (6 items at 5/s: 1 s, then 0.5 s idle; at one a poll: over 5.5 s)
