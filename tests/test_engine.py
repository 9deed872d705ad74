"""The worker engine (psctl.work) driven without a process or a server: the
in-process executor, a fake lease source and a clock moved by hand. The fake
stands in for the client's pslease / psack / psrelease / psextend only as far
as the engine's state logic needs: it proves nothing of the Lua scripts (the
last tests, and test_cli_work.py, run against a real server)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as LostConnection

from psctl.work import (
    Engine,
    Event,
    IllegalTransition,
    InProcess,
    Item,
    ManualClock,
    State,
    WorkOptions,
    WorkState,
)
from psctl.work.executor import Job, Kind, Verdict
from psctl.work.inprocess import HandlerLane
from psctl.work.states import TRANSITIONS

SOON = 2.0  # seconds of real time a test waits for the engine's threads to do something


class FakeLease:
    def __init__(self, token: str, items: dict[str, bytes], scores: dict[str, float], deliveries: dict[str, int]):
        self.token, self.items, self.scores, self.deliveries = token, items, scores, deliveries
        self.retry_in = None  # (an empty stream: no limits here)

    def __bool__(self) -> bool:
        return bool(self.items)


class FakeLeases:
    """An in-memory stream of items with leases: what the engine asks of a client."""

    def __init__(self, clock: ManualClock, items: dict[str, float], deliveries: dict[str, int] | None = None):
        self.clock = clock
        self.lock = threading.Lock()
        self.waiting = dict(items)  # key -> score
        self.deliveries = dict.fromkeys(items, 0) | (deliveries or {})
        self.held: dict[str, tuple[str, int]] = {}  # key -> (token, max_deliveries)
        self.acked: list[str] = []
        self.released: list[tuple[str, float | None, str | None, bool]] = []  # key, delay, reason, attempted
        self.dead: list[str] = []
        self.extended: list[tuple[str, float]] = []  # token, when (by the clock)
        self.leases = 0
        self.down = False  # every request fails as a lost connection would

    def _answer(self) -> None:
        if self.down:
            raise LostConnection("connection refused (fake)")

    def pslease(self, name: str, count: int, lease: float, max_deliveries: int, block: Any, stop: Any) -> FakeLease:
        self._answer()
        with self.lock:
            keys = sorted(self.waiting, key=lambda key: -self.waiting[key])[:count]
            self.leases += 1
            token = f"t{self.leases}"
            scores = {key: self.waiting.pop(key) for key in keys}
            for key in keys:
                self.deliveries[key] += 1
                self.held[key] = (token, max_deliveries)
        if not keys:
            time.sleep(0.002)  # (a blocked wait, briefly)
        return FakeLease(token, {key: f"value of {key}".encode() for key in keys}, scores,
                         {key: self.deliveries[key] for key in keys})  # fmt: skip

    def _held_by(self, token: str, keys: list[str]) -> list[str]:
        return [key for key in keys if self.held.get(key, ("", 0))[0] == token]

    def psack(self, name: str, token: str, keys: list[str], gate: bool, expire_at: Any) -> int:
        self._answer()
        with self.lock:
            mine = self._held_by(token, keys)
            for key in mine:
                del self.held[key]
                self.acked.append(key)
            return len(mine)

    def psrelease(self, name: str, token: str, keys: list[str], delay: float | None = None,
                  reason: str | None = None, attempted: bool = True) -> int:  # fmt: skip
        self._answer()
        with self.lock:
            mine = self._held_by(token, keys)
            for key in mine:
                _, max_deliveries = self.held.pop(key)
                self.released.append((key, delay, reason, attempted))
                if not attempted:
                    self.deliveries[key] -= 1
                if attempted and self.deliveries[key] >= max_deliveries:
                    self.dead.append(key)
                elif not delay:
                    self.waiting[key] = 0.0  # (a delayed item is not waiting: it stays out of the fake)
            return len(mine)

    def psextend(self, name: str, token: str, lease: float) -> Any:
        self._answer()
        with self.lock:
            self.extended.append((token, self.clock.now()))
            return self.clock.now() + lease if any(held == token for held, _ in self.held.values()) else None


def until(condition: Callable[[], Any], within: float = SOON) -> None:
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, "the engine did not get there in time"
        time.sleep(0.002)


class Running:
    """An engine run in a thread of its own, the test's thread playing the outside world."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.outcome: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.outcome = self.engine.run()

    def join(self) -> str:
        self.thread.join(SOON)
        assert not self.thread.is_alive(), f"the engine did not end (state {self.engine.state})"
        assert self.outcome is not None
        return self.outcome


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def engine_for(source: FakeLeases, handler: Callable[[Item], Any], warned: list[str] | None = None,
               **options: Any) -> Engine:  # fmt: skip
    options.setdefault("idle_exit", 0.0)
    say = warned.append if warned is not None else None
    return Engine(source, source, WorkOptions(name="q", **options), InProcess(handler), warn=say, clock=source.clock)


class Gate:
    """A handler that waits until the test opens it."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.opened = threading.Event()

    def __call__(self, item: Item) -> None:
        self.entered.append(item.key)
        assert self.opened.wait(SOON)


# -- the state table -----------------------------------------------------------------


def states_after(*events: Event) -> WorkState:
    state = WorkState()
    for event in events:
        state.handle(event)
    return state


@pytest.mark.parametrize(
    ("events", "outcome"),
    [
        ((), "stopped"),
        ((Event.LIMIT,), "limit"),
        ((Event.IDLE,), "idle"),
        ((Event.LIMIT, Event.STOP), "stopped"),
        ((Event.STOP, Event.GRACE_OVER), "stopped"),
        ((Event.STOP, Event.GRACE_OVER, Event.CUT_SHORT), "forced"),
        ((Event.FORCE, Event.CUT_SHORT), "forced"),
        ((Event.UNREAD, Event.FORCE, Event.CUT_SHORT), "unread"),
        ((Event.UNREAD, Event.UNSTARTABLE), "unstartable"),
        ((Event.UNSTARTABLE, Event.UNREAD), "unstartable"),
        ((Event.STOP, Event.LOST), "lost"),
        ((Event.LOST, Event.STOP, Event.FORCE), "lost"),
        ((Event.LOST, Event.ERROR), "error"),
    ],
)
def test_the_outcome_comes_from_the_state_table(events: tuple[Event, ...], outcome: str) -> None:
    assert states_after(*events).outcome == outcome


@pytest.mark.parametrize(
    ("events", "illegal"),
    [
        ((), Event.GRACE_OVER),  # no grace runs while working
        ((), Event.CUT_SHORT),  # nothing is stopped while working
        ((Event.LIMIT,), Event.IDLE),  # the feeder ends at the first
        ((Event.STOP,), Event.LIMIT),  # nothing is leased once stopping
        ((Event.STOP, Event.GRACE_OVER), Event.GRACE_OVER),
        ((Event.LOST,), Event.LOST),
        ((Event.LOST,), Event.UNREAD),
    ],
)
def test_an_illegal_transition_raises(events: tuple[Event, ...], illegal: Event) -> None:
    state = states_after(*events)
    before = state.state
    with pytest.raises(IllegalTransition):
        state.handle(illegal)
    assert state.state is before


def test_what_each_state_allows() -> None:
    assert [state for state in State if states_in(state).leases] == [State.WORKING]
    assert [state for state in State if states_in(state).starts] == [State.WORKING, State.DRAINING]
    assert states_after(Event.LIMIT).starts and not states_after(Event.LIMIT).leases
    assert not states_after(Event.STOP).starts and states_after(Event.STOP).stopped
    assert states_after(Event.LOST).given_up and states_after(Event.ERROR).given_up
    assert all((state, Event.ERROR) in TRANSITIONS for state in State)  # an error ends any state


def states_in(state: State) -> WorkState:
    work = WorkState()
    work._become(state)  # (a state reached by hand, as no table path need reach it)
    return work


# -- the engine, in process ---------------------------------------------------------------


def test_items_are_acknowledged_when_the_handler_returns(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"a": 3, "b": 2, "c": 1})
    seen: list[tuple[str, bytes, float, int]] = []
    engine = engine_for(source, lambda item: seen.append((item.key, item.value, item.score, item.deliveries)))
    assert engine.run() == "idle"
    assert seen == [("a", b"value of a", 3, 1), ("b", b"value of b", 2, 1), ("c", b"value of c", 1, 1)]
    assert sorted(source.acked) == ["a", "b", "c"]
    assert (engine.tally.done, engine.tally.failed, engine.tally.dead) == (3, 0, 0)
    assert engine.keeper.held() == 0


def fail(item: Item) -> None:
    raise ValueError(f"cannot handle {item.key}")


def test_a_failure_is_given_back_with_the_back_off_and_why(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"x": 1}, deliveries={"x": 1})  # (its second delivery)
    engine = engine_for(source, fail, retry_delay=10.0, max_deliveries=5)
    assert engine.run() == "idle"
    assert source.released == [("x", 20.0, "ValueError: cannot handle x", True)]
    assert (engine.tally.done, engine.tally.failed, engine.tally.dead) == (0, 1, 0)


class SlowReleases(FakeLeases):
    """Its releases take a while to reach the stream (a slow network)."""

    def psrelease(self, *args: Any, **kwargs: Any) -> int:
        time.sleep(0.3)
        return super().psrelease(*args, **kwargs)


def test_idleness_waits_for_the_items_still_being_given_back(clock: ManualClock) -> None:
    """--idle-exit 0: a stream that looks empty while the worker's own failed
    item is still on its way back is not idle: the item comes back and runs
    again (it ended the work with the retry pending, now and then)."""
    source = SlowReleases(clock, {"x": 1})
    calls: list[int] = []

    def fails_once(item: Item) -> None:
        calls.append(item.deliveries)
        if item.deliveries == 1:
            raise ValueError("not yet")

    engine = engine_for(source, fails_once, retry_delay=0.0, max_deliveries=5)
    assert engine.run() == "idle"
    assert calls == [1, 2]
    assert (engine.tally.done, engine.tally.failed) == (1, 1) and source.acked == ["x"]


def test_an_item_is_dead_after_max_deliveries_and_said_so(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"x": 1}, deliveries={"x": 2})
    warned: list[str] = []
    engine = engine_for(source, fail, warned, retry_delay=10.0, max_deliveries=3)
    assert engine.run() == "idle"
    assert source.dead == ["x"]
    assert (engine.tally.failed, engine.tally.dead) == (0, 1)
    assert "'x' is dead after 3 deliveries: ValueError: cannot handle x" in warned


def test_the_limit_ends_the_leasing_and_what_was_taken_runs(clock: ManualClock) -> None:
    source = FakeLeases(clock, {f"k{i}": i for i in range(10)})
    engine = engine_for(source, lambda item: None, limit=4, idle_exit=None)
    assert engine.run() == "limit"
    assert engine.tally.done == 4 and len(source.acked) == 4
    assert len(source.waiting) == 6


def test_a_lease_is_extended_every_third_of_its_length(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"a": 1})
    handler = Gate()
    engine = engine_for(source, handler, lease=30.0)
    running = Running(engine)
    until(lambda: handler.entered == ["a"])
    clock.advance(9.9)
    time.sleep(0.05)
    assert source.extended == []
    clock.advance(0.2)  # 10.1 s: a third of 30
    until(lambda: source.extended)
    assert source.extended[0][0] == "t1"
    clock.advance(10.5)
    until(lambda: len(source.extended) == 2)
    handler.opened.set()
    assert running.join() == "idle"
    assert source.acked == ["a"]


def test_a_lost_server_is_declared_after_the_patience(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"a": 1})
    warned: list[str] = []

    def handler(item: Item) -> None:
        source.down = True  # (the server goes while the item runs: its acknowledgement is owed)

    engine = engine_for(source, handler, warned, patience=60.0, idle_exit=None)
    running = Running(engine)
    until(lambda: any("does not answer" in message for message in warned))
    clock.advance(59.0)
    time.sleep(0.05)
    assert engine.state is State.WORKING  # (still patient)
    clock.advance(1.5)
    assert running.join() == "lost"
    assert source.acked == [] and engine.tally.done == 0  # (the lease gives it back)


def test_the_server_answering_again_within_the_patience_loses_nothing(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"a": 1})
    warned: list[str] = []
    source.down = True
    engine = engine_for(source, lambda item: None, warned, patience=60.0)
    running = Running(engine)
    until(lambda: warned)
    clock.advance(50.0)
    source.down = False
    assert running.join() == "idle"
    assert source.acked == ["a"] and "the server answers again" in warned


def test_a_stop_gives_back_what_was_not_started_and_lets_the_running_finish(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"a": 3, "b": 2, "c": 1})
    handler = Gate()
    engine = engine_for(source, handler, grace=30.0, idle_exit=None)
    running = Running(engine)
    until(lambda: handler.entered == ["a"])
    engine.request_stop(15)
    until(lambda: engine.state is State.STOPPING)
    until(lambda: len(source.released) == 2)
    assert sorted(source.released) == [("b", None, None, False), ("c", None, None, False)]  # back, uncounted
    assert engine.signal == 15
    clock.advance(30.0)  # the grace is over: the handler's item goes back, its thread is not waited for
    assert running.join() == "forced"
    assert source.acked == [] and engine.tally.done == 0
    assert ("a", None, None, False) in source.released  # back at once, uncounted
    handler.opened.set()  # (the thread ends; what its handler did is not reported)
    time.sleep(0.05)
    assert source.acked == [] and engine.tally.failed == 0


def test_a_second_stop_is_at_once(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"a": 1})
    handler = Gate()
    engine = engine_for(source, handler, idle_exit=None)
    running = Running(engine)
    until(lambda: handler.entered)
    engine.request_stop(2)
    until(lambda: engine.state is State.STOPPING)
    engine.request_stop(2)
    assert running.join() == "forced"  # (its item given back at once; its thread left to end)
    assert source.released == [("a", None, None, False)] and source.acked == []
    handler.opened.set()


def test_an_error_in_the_engine_ends_it_and_is_kept(clock: ManualClock) -> None:
    source = FakeLeases(clock, {"a": 1})
    source.psack = None  # type: ignore[assignment,method-assign]  # (not callable: a bug, not a lost server)
    engine = engine_for(source, lambda item: None)
    assert engine.run() == "error"
    assert isinstance(engine.error, TypeError)


def test_the_in_process_executor_starts_no_process(clock: ManualClock) -> None:
    """No child appears while it works (the command runner's lifeline would be one)."""
    source = FakeLeases(clock, {f"k{i}": i for i in range(50)})
    before = set(_children())
    seen: list[set[int]] = []
    engine = engine_for(source, lambda item: seen.append(set(_children())), jobs=4)
    assert engine.run() == "idle"
    assert engine.tally.done == 50 and all(children == before for children in seen)


def _children() -> Iterator[int]:
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as file:
                yield from map(int, file.read().split())
        except OSError:
            continue


class Unstartable(InProcess):
    """An executor that cannot start anything: each job halts the work, as a command that cannot be started does."""

    def lane(self, report: Callable[[Job], None], halt: Callable[[Job], None]) -> Any:
        executor = self

        class Lane(HandlerLane):
            def run(self, job: Job | None) -> None:
                if job is not None:
                    job.halt, job.note = "unstartable", f"cannot start anything for {job.item.key}"
                    executor.halted.append(job.item.key)
                    halt(job)
                    report(job)

        return Lane(self, report)

    def verdicts(self, job: Job) -> list[tuple[Item, Verdict]]:
        return [(item, Verdict(Kind.BACK)) for item in job.items]


def test_a_job_that_halts_the_work_stops_the_leasing_at_once(clock: ManualClock) -> None:
    source = FakeLeases(clock, {f"k{i}": i for i in range(20)})
    warned: list[str] = []
    executor = Unstartable(lambda item: None)
    executor.halted = []  # type: ignore[attr-defined]
    engine = Engine(source, source, WorkOptions(name="q", jobs=2), executor, warn=warned.append, clock=clock)
    assert engine.run() == "unstartable"
    assert source.leases == 1 and len(executor.halted) <= 2  # type: ignore[attr-defined]
    assert all(attempted is False for _, _, _, attempted in source.released)  # back, uncounted
    assert len(source.waiting) == 20 and engine.tally.failed == 0
    said = [message for message in warned if message.startswith("cannot start")]
    assert len(said) == 1 and said[0].removeprefix("cannot start anything for ") in executor.halted  # type: ignore[attr-defined]


# -- the in-process executor against a real server ------------------------------------------


def test_in_process_against_the_server(r: Any, standalone_backend: Any) -> None:
    r.psaddmany("q", [("good", "1", 2), ("bad", "2", 1)])
    seen: list[tuple[str, bytes]] = []

    def handler(item: Item) -> None:
        seen.append((item.key, item.value))
        if item.key == "bad":
            raise RuntimeError("no good")

    feeder = standalone_backend.sync()
    try:
        options = WorkOptions(name="q", jobs=2, idle_exit=0.0, retry_delay=60.0)
        engine = Engine(r, feeder, options, InProcess(handler))
        assert engine.run() == "idle"
    finally:
        feeder.close()
    assert sorted(seen) == [("bad", b"2"), ("good", b"1")]
    assert (engine.tally.done, engine.tally.failed) == (1, 1)
    assert r.psitem("q", "good")["state"] == "cooling"  # acknowledged: the default cool-down
    bad = r.psitem("q", "bad")
    assert bad["state"] == "delayed" and bad["last_failure"]["reason"] == "RuntimeError: no good"


def test_in_process_dead_items_against_the_server(r: Any, standalone_backend: Any) -> None:
    r.psadd("q", "x", "v")
    feeder = standalone_backend.sync()
    try:
        engine = Engine(r, feeder, WorkOptions(name="q", idle_exit=0.0, max_deliveries=1), InProcess(fail))
        assert engine.run() == "idle"
    finally:
        feeder.close()
    assert engine.tally.dead == 1
    dead = r.psdead("q")
    assert list(dead) == ["x"] and dead.reasons == {"x": "ValueError: cannot handle x"}
