"""Flow control (SPEC §12, issue 24), enforced inside the scripts that hand
items out: a pause, a rate limit (a token bucket by the server's clock) and a
cap on items held by leases at once, kept as data in ``NAME:limits``.
Standalone and the 3-master cluster, sync and async."""

from __future__ import annotations

import math
import random
import threading
import time
from datetime import timedelta

import pytest
import redis

from psctl import InvalidArgument

from .helpers import blocked_clients, wait_until_blocked

pytestmark = pytest.mark.both_backends


def items(n: int, prefix: str = "i") -> list[tuple[str, str, int]]:
    return [(f"{prefix}{i}", f"v{i}", n - i) for i in range(n)]


# -- pause ---------------------------------------------------------------------------


def test_a_paused_stream_hands_nothing_out_from_the_next_call(ps, r, k):
    ps.psaddmany("q", items(10))
    held = ps.pslease("q", count=2)
    assert ps.pspause("q") is True
    assert ps.pspause("q") is False  # already paused
    assert ps.pspull("q") == {}
    assert ps.pspull("q", count=5) == {}
    assert ps.pspull("q", count=5, purge=False) == {}
    assert not ps.pslease("q")
    assert not ps.pslease("q", count=5)
    assert ps.pspull("q", block=0.2) == {}
    # adds, acknowledgements and releases go on
    assert ps.psadd("q", "new", "v", 100) == 100
    acked = ps.psacklease("q", held.token, ["i0"], count=3)
    assert acked.acked == 1 and not acked.lease
    assert ps.psrelease("q", held.token) == 1
    assert ps.pslen("q") == 10
    assert r.hgetall(k("q").limits) == {b"paused": b"1"}

    assert ps.psresume("q") is True
    assert ps.psresume("q") is False
    assert not r.exists(k("q").limits)  # nothing left: no limits key at all
    assert ps.pspull("q") == {"new": b"v"}
    assert len(ps.pslease("q", count=5).items) == 5


def restarted_after(backend, r, how: str) -> float:
    """One try on a fresh stream: seconds from a resume's reply to the return
    of a pull or lease blocked on the paused stream."""
    r.flushdb()
    client, other = backend.sync(), backend.sync()
    client.psaddmany("q", items(3))
    client.pspause("q")
    take = {
        "pull": lambda: client.pspull("q", block=10),
        "pull many": lambda: client.pspull("q", count=2, block=10),
        "lease": lambda: client.pslease("q", block=10).items,
        "lease many": lambda: client.pslease("q", count=2, block=10).items,
    }[how]
    got: list[object] = []
    ended: list[float] = []

    def wait() -> None:
        got.append(take())
        ended.append(time.monotonic())

    blocked = blocked_clients(r)
    thread = threading.Thread(target=wait)
    thread.start()
    wait_until_blocked(r, more_than=blocked)
    assert not got  # still waiting, paused
    other.psresume("q")
    resumed = time.monotonic()  # (after the reply: the wake-up can come no sooner than the resume)
    thread.join(5)
    client.close(), other.close()
    assert got and got[0], got
    return ended[0] - resumed


@pytest.mark.parametrize("how", ["pull", "pull many", "lease", "lease many"])
def test_resume_restarts_a_blocked_puller_within_100_ms(backend, r, how):
    # the median of three: a loaded machine delays one at times; without the
    # wake-up, each would wait for its poll (up to a second)
    waits = sorted(restarted_after(backend, r, how) for _ in range(3))
    assert waits[1] < 0.1, waits


# -- rate ----------------------------------------------------------------------------


def test_a_call_gets_at_most_the_tokens_in_the_bucket(ps, r, k):
    ps.psaddmany("q", items(100))
    limits = ps.pslimit("q", rate=1, per=timedelta(seconds=2), burst=5)
    assert limits == {"paused": False, "rate": 1.0, "per": timedelta(seconds=2), "burst": 5, "max_held": None, "aging": None}
    assert len(ps.pspull("q", count=50)) == 5  # a full bucket: the burst
    assert ps.pspull("q", count=50) == {}  # (within 2 s: a loaded machine is slow, not that slow)
    assert not ps.pslease("q")
    assert ps.pspull("q", block=3) == {"i5": b"v5"}  # the next token, in two seconds
    assert not ps.pslease("q", count=10)


def test_a_rate_hands_out_within_rate_times_time_plus_burst(backend, r):
    """Three clients pulling and leasing as fast as they can for 2 s."""
    ps = backend.sync()
    ps.psaddmany("q", items(2000))
    rate, burst = 40, 10
    ps.pslimit("q", rate=rate, burst=burst)
    taken: list[int] = []
    lock = threading.Lock()
    started = time.monotonic()
    until = started + 2.0

    def work(n: int) -> None:
        client = backend.sync()
        while time.monotonic() < until:
            if n == 0:
                got = len(client.pspull("q", count=7))
            elif n == 1:
                got = len(client.pslease("q", count=3).items)
            else:
                got = len(client.pspull("q", block=0.05))
            with lock:
                taken.append(got)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    total = sum(taken)
    assert total <= rate * elapsed + burst + 1
    # the bucket was not starved either (loose: three clients on a loaded CI machine took 79 of 90)
    assert total >= rate * 2.0 * 0.7 + burst


def test_a_blocking_pull_waits_for_the_next_token_rather_than_spin(backend, r, long_poll):
    ps = backend.sync()
    ps.psaddmany("q", items(10))
    ps.pslimit("q", rate=1, per=timedelta(seconds=1), burst=1)
    first = time.monotonic()  # (before the first pull: the next token comes a second after it)
    assert len(ps.pspull("q")) == 1
    # (each wake-up token left by the add wakes a waiter for one more look, as
    # it would without limits; a wait for a token is one of the server's clock)
    r.delete(backend.keys("q").wake)
    calls_before = _script_calls(r)
    started = time.monotonic()
    assert len(ps.pspull("q", block=5)) == 1
    returned = time.monotonic()
    # at the token (a second after the first pull), not after a poll nor the 5 s block
    assert returned - first >= 0.95 and returned - started < 3
    if calls_before is not None:
        assert _script_calls(r) - calls_before <= 4  # woke at the token, not in a loop


def test_the_slowest_rate_makes_a_blocking_pull_wait_out_its_block(backend):
    # one item per 10**9 s: the wait for the next token (10**12 ms) is a whole
    # number the scripts reply; a rate below it (1e-16/s, say) is refused, its
    # wait overflowed to a negative one and a blocking pull spun past its block
    ps = backend.sync()
    ps.psaddmany("q", items(3))
    ps.pslimit("q", rate=1, per=10**9)
    assert len(ps.pspull("q", 3)) == 1
    started = time.monotonic()
    assert ps.pspull("q", block=0.3) == {}
    assert 0.25 <= time.monotonic() - started < 5  # its block, not a spin past it


def _script_calls(r) -> int | None:
    """EVALSHA calls the server has seen (None on a cluster: several servers)."""
    try:
        stats = r.info("commandstats")
    except redis.RedisError:
        return None
    if "cmdstat_evalsha" not in stats:
        return 0 if isinstance(stats, dict) and all(isinstance(v, dict) for v in stats.values()) else None
    return int(stats["cmdstat_evalsha"]["calls"])


def test_an_empty_lease_says_when_the_limits_let_items_out_again(ps, r, k):
    """``Lease.retry_in``: the next token, the first held slot's end, a
    delayed item's time; None for an empty or a paused stream."""
    assert ps.pslease("q").retry_in is None  # (empty)
    ps.psaddmany("q", items(3))
    ps.pslimit("q", rate=1, per=timedelta(seconds=10), burst=1)
    assert ps.pslease("q", count=2)
    for count in (1, 2):
        assert 5 <= ps.pslease("q", count=count).retry_in <= 10  # a token in 10 s (5 s: room for a loaded machine)
    ps.pslimit("q", max_held=1)
    assert 250 <= ps.pslease("q", count=3, lease=timedelta(minutes=5)).retry_in <= 300  # (at 1 held already)
    ps.pspause("q")
    assert ps.pslease("q").retry_in is None
    ps.psresume("q")
    ps.pslimit("q")
    assert ps.pslease("q", count=2) and ps.pslease("q").retry_in is None  # (everything held now)
    ps.psadd("d", "later", "v", delay=timedelta(seconds=30))
    assert 29 <= ps.pslease("d").retry_in <= 30


def test_setting_the_rate_again_does_not_refill_the_bucket(ps, r):
    ps.psaddmany("q", items(50))
    ps.pslimit("q", rate=1, per=timedelta(minutes=1), burst=3)
    assert len(ps.pspull("q", count=10)) == 3
    ps.pslimit("q", rate=1, per=timedelta(minutes=1), burst=3)  # from cron, say
    assert ps.pspull("q", count=10) == {}
    ps.pslimit("q", rate=1, per=timedelta(minutes=1), burst=1)
    assert ps.pspull("q", count=10) == {}


# -- max_held ------------------------------------------------------------------------


def test_max_held_caps_what_leases_hold(ps, r, k):
    ps.psaddmany("q", items(20))
    ps.pslimit("q", max_held=3)
    first = ps.pslease("q", count=2)
    assert len(first.items) == 2
    assert len(ps.pslease("q", count=5).items) == 1
    assert not ps.pslease("q")
    assert len(ps.pspull("q", count=2)) == 2  # a pull holds nothing: not capped
    next_ = ps.psacklease("q", first.token, count=5)
    assert next_.acked == 2 and len(next_.lease.items) == 2
    assert r.hlen(k("q").held) == 3


def test_a_blocking_lease_waits_for_a_held_slot(backend, r, long_poll):
    ps = backend.sync()
    ps.psaddmany("q", items(5))
    ps.pslimit("q", max_held=1)
    ps.pslease("q", lease=timedelta(milliseconds=400))  # never acknowledged
    started = time.monotonic()
    lease = ps.pslease("q", block=5)
    assert lease and time.monotonic() - started < 3  # when the first lease ran out, not after a poll nor the block


def test_max_held_is_never_exceeded_by_several_workers(backend, r, k):
    ps = backend.sync()
    ps.psaddmany("q", items(300))
    most = 4
    ps.pslimit("q", max_held=most)
    held = k("q").held
    lock = threading.Lock()
    now_held, peak, sampled_peak, done = [0], [0], [0], [0]
    finished = threading.Event()
    failures: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            work(seed)
        except BaseException as exc:  # (told by the test, not lost in a thread)
            failures.append(exc)
            finished.set()

    def work(seed: int) -> None:
        client = backend.sync()
        rng = random.Random(seed)
        lease = None
        while not finished.is_set():
            if lease is not None and lease.items:
                with lock:
                    now_held[0] -= len(lease.items)  # counted before the acknowledgement frees them
                    done[0] += len(lease.items)
                if rng.random() < 0.5:
                    lease = client.psacklease("q", lease.token, count=rng.randint(1, 3)).lease
                else:
                    client.psack("q", lease.token)
                    lease = client.pslease("q", count=rng.randint(1, 3), block=0.2)
            else:
                lease = client.pslease("q", count=rng.randint(1, 3), block=0.2)
            if lease.items:
                with lock:
                    now_held[0] += len(lease.items)
                    peak[0] = max(peak[0], now_held[0])
                time.sleep(rng.random() * 0.003)
            elif client.pslen("q") == 0 and not r.hlen(held):
                finished.set()

    def sampler() -> None:
        while not finished.is_set():
            sampled_peak[0] = max(sampled_peak[0], r.hlen(held))
            time.sleep(0.0005)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    threads.append(threading.Thread(target=sampler))
    for thread in threads:
        thread.start()
    finished.wait(30)
    finished.set()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert done[0] == 300
    assert 1 <= sampled_peak[0] <= most
    assert peak[0] <= most


# -- as data -------------------------------------------------------------------------


def test_limits_are_data_in_the_streams_own_key(ps, r, k):
    ps.psaddmany("q", items(5))
    ps.pspause("q")
    limits = ps.pslimit("q", rate=10, per=timedelta(seconds=2), burst=4, max_held=7)
    assert limits == {"paused": True, "rate": 10.0, "per": timedelta(seconds=2), "burst": 4, "max_held": 7, "aging": None}
    assert r.hgetall(k("q").limits) == {
        b"paused": b"1", b"rate": b"10", b"per_ms": b"2000", b"burst": b"4", b"max_held": b"7"
    }
    ps.psresume("q")
    ps.pspull("q")
    stored = r.hgetall(k("q").limits)
    assert float(stored[b"tokens"]) == pytest.approx(3, abs=0.1) and int(stored[b"at"]) > 0
    # the keys of SPEC §1 are as they were: a tool that knows only them reads and writes them
    assert r.type(k("q").values) == b"hash" and r.type(k("q").scores) == b"zset"
    r.hset(k("q").values, "plain", "p")
    r.zadd(k("q").scores, {"plain": 100})
    assert ps.pspull("q") == {"plain": b"p"}
    assert ps.psdelete("q") and not r.exists(k("q").limits)


def test_clearing_the_limits_leaves_a_pause(ps, r, k):
    ps.psaddmany("q", items(5))
    ps.pslimit("q", rate=1, per=60, max_held=1)
    assert ps.pslimit("q") == {"paused": False, "rate": None, "per": None, "burst": None, "max_held": None, "aging": None}
    assert not r.exists(k("q").limits)
    assert len(ps.pspull("q", count=5)) == 5
    ps.psaddmany("q", items(5))
    ps.pspause("q")
    ps.pslimit("q", rate=1)
    assert ps.pslimit("q")["paused"] is True
    assert ps.pspull("q") == {}


def test_no_limits_means_no_key_and_no_writes(ps, r, k):
    ps.psaddmany("q", items(10))
    ps.pspull("q")
    ps.pspull("q", count=3)
    lease = ps.pslease("q")
    ps.psacklease("q", lease.token, count=2)
    assert not r.exists(k("q").limits)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0},
        {"rate": -1},
        {"rate": math.nan},
        {"rate": math.inf},
        {"rate": True},
        {"rate": "5"},
        {"rate": 10**10},
        {"rate": 1e-16},
        {"rate": 5e-324},
        {"rate": 0.5, "per": 10**9},
        {"rate": 5, "per": 0},
        {"rate": 5, "per": -1},
        {"rate": 5, "per": "1s"},
        {"rate": 5, "burst": 0},
        {"rate": 5, "burst": 1.5},
        {"burst": 3},
        {"per": timedelta(minutes=1)},
        {"per": 60, "max_held": 3},
        {"max_held": 0},
        {"max_held": -2},
        {"max_held": 2.0},
        {"max_held": True},
    ],
)
def test_bad_limits_are_one_clear_error_and_change_nothing(ps, r, k, kwargs):
    ps.pslimit("q", rate=3, max_held=2)
    before = r.hgetall(k("q").limits)
    with pytest.raises(InvalidArgument) as raised:
        ps.pslimit("q", **kwargs)
    assert any(word in str(raised.value) for word in ("rate", "per", "burst", "max_held"))
    assert r.hgetall(k("q").limits) == before


@pytest.mark.parametrize(
    "operation",
    [
        lambda ps: ps.pspull("q"),
        lambda ps: ps.pspull("q", count=3),
        lambda ps: ps.pslease("q"),
        lambda ps: ps.pslease("q", count=3),
        lambda ps: ps.psacklease("q", "t", count=3),
        lambda ps: ps.pspause("q"),
        lambda ps: ps.psresume("q"),
        lambda ps: ps.pslimit("q", rate=1),
    ],
    ids=["pull", "pull many", "lease", "lease many", "acklease", "pause", "resume", "limit"],
)
def test_a_limits_key_of_the_wrong_type_fails_naming_it_and_changes_nothing(ps, r, k, operation):
    ps.psaddmany("q", items(5))
    keys = k("q")
    r.set(keys.limits, "not what psctl keeps here")
    before = {str(name): r.dump(name) for name in keys.every}
    with pytest.raises(redis.ResponseError) as raised:
        operation(ps)
    assert "WRONGTYPE" in str(raised.value) and str(keys.limits) in str(raised.value)
    assert {str(name): r.dump(name) for name in keys.every} == before
