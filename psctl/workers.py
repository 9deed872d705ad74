"""Python workers: ``Worker`` runs a function for every item of a
stream, on leases, in threads; ``AsyncWorker`` awaits a coroutine function,
on the caller's event loop. Both are the engine of ``psctl work``
(``psctl.work``) with another executor, and take its options, names and
defaults.

    def handle(item):        # item.stream, .key, .value, .score, .deliveries, .extend(lease)
        ...                  # return: acknowledged; raise: given back with back-off

    summary = Worker(Redis.from_url(url), "jobs", handle, concurrency=8).run()

Several streams, each with a weight (1 unless given): while
several have work, items are taken in smooth weighted round-robin, and an
empty or paused stream never holds up the others (``psctl.work.fair``):

    Worker(client, ["a", ("b", 3), "c"], handle)   # or {"a": 1, "b": 3, "c": 1}
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import ConnectionError as LostConnection

from psctl import defaults
from psctl.encoding import check_count, expiry
from psctl.errors import InvalidArgument, PsctlError
from psctl.work.engine import Engine
from psctl.work.fair import Streams, shown, weighted
from psctl.work.handlers import Delivery, injected, is_async, seconds
from psctl.work.inloop import InLoop, LoopClient, LoopRunners
from psctl.work.inprocess import InProcess
from psctl.leases import MAX_LEASE
from psctl.work.options import Item, WorkOptions
from psctl.wording import counted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LOG = logging.getLogger("psctl.worker")


@dataclass(frozen=True)
class WorkSummary:
    """What a worker's ``run()`` did: items acknowledged (``done``), failures
    given back for another delivery (``failed``), items that went to the dead
    items (``dead``), for how long (``seconds``), and why it ended
    (``outcome``: "limit", "idle", "stopped", or "forced" when a stop cut
    running handlers short); ``streams``: ``done`` by stream."""

    done: int
    failed: int
    dead: int
    seconds: float
    outcome: str
    streams: dict[str, int] = field(default_factory=dict, repr=False)


class ServerLost(PsctlError, LostConnection):
    """The server did not answer (or refused commands) for the worker's
    ``patience``: the work stopped; the leases give back what it held.
    ``summary`` says what it did until then."""

    def __init__(self, message: str, summary: WorkSummary) -> None:
        super().__init__(message)
        self.summary = summary


def _whole(value: Any, what: str, most: int = 10**9) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidArgument(f"{what} must be a whole number from 1 to {most:,}, got {value!r}")
    return value


def _cool_down(expire_at: Any) -> Any:
    """``expire_at`` as ``psack`` takes it (seconds: a ``timedelta``), checked now, not at the first acknowledgement."""
    if isinstance(expire_at, (int, float)) and not isinstance(expire_at, bool):
        expire_at = timedelta(seconds=seconds(expire_at, "expire_at"))
    try:
        expiry(expire_at)
    except TypeError:
        raise InvalidArgument(
            f"expire_at must be a timedelta, a datetime, a number of seconds or None, got {expire_at!r}"
        ) from None
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    return expire_at


def work_options(
    streams: Streams, *, concurrency: int = 1, lease: timedelta | float = defaults.LEASE,
    max_deliveries: int = defaults.MAX_DELIVERIES, retry_delay: timedelta | float = defaults.RETRY_DELAY,
    gate: bool = False, expire_at: Any = defaults.COOL_DOWN, limit: int | None = None,
    idle_exit: timedelta | float | None = None, grace: timedelta | float = defaults.GRACE,
    patience: timedelta | float = defaults.PATIENCE, batch: int | None = None, prefetch: int | None = None,
) -> WorkOptions:  # fmt: skip
    """The engine's options from a worker's keywords, each checked
    (``InvalidArgument``); ``streams``: a name, or several (``fair.weighted``)."""
    weights = weighted(streams)
    if not isinstance(gate, bool):
        raise InvalidArgument(f"gate must be True or False, got {gate!r}")
    return WorkOptions(
        name=shown(weights),
        streams=weights if len(weights) > 1 else (),
        jobs=_whole(concurrency, "concurrency", 100_000),
        lease=seconds(lease, "lease"),
        max_deliveries=_whole(max_deliveries, "max_deliveries"),
        retry_delay=seconds(retry_delay, "retry_delay", zero=True),
        gate=gate,
        expire_at=_cool_down(expire_at),
        limit=None if limit is None else check_count(limit, "limit"),
        idle_exit=None if idle_exit is None else seconds(idle_exit, "idle_exit", zero=True),
        grace=seconds(grace, "grace", zero=True),
        patience=seconds(patience, "patience"),
        batch=1 if batch is None else _whole(batch, "batch", MAX_LEASE),
        prefetch=None if prefetch is None else _whole(prefetch, "prefetch", MAX_LEASE),
    )


def _check_handler(handler: Callable[..., Any], batch: int | None) -> None:
    """A handler takes the item (or the batch) as its first parameter, and
    nothing else that neither has a default nor is injected: said now, not
    as a failure of every delivery."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):  # (no signature to read: it will be called as it is)
        return
    what = "the list of items" if batch is not None else "the item"
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or not (parameters[0].kind in positional or parameters[0].kind is inspect.Parameter.VAR_POSITIONAL):
        raise InvalidArgument(f"a handler takes {what} as its first parameter: {_shown(handler)} takes none")
    for parameter in parameters[1:]:
        kind, plain = parameter.kind, parameter.default is inspect.Parameter.empty
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD) or not plain:
            continue
        if "Annotated" in str(parameter.annotation):  # (resolved by fast-depends)
            continue
        raise InvalidArgument(
            f"a handler gets {what} alone: its parameter {parameter.name!r} needs a default "
            "or a dependency (Depends(...), a provider)"
        )


def _shown(handler: Callable[..., Any]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def _check_client(client: Any, asynchronous: bool) -> None:
    from psctl.runner import AsyncRunner, SyncRunner

    kind = type(client).__name__
    if not isinstance(client, (SyncRunner, AsyncRunner)):
        raise InvalidArgument(f"a worker needs a psctl client (psctl.Redis, psctl.AsyncRedis, ...), got {kind}")
    if isinstance(client, AsyncRunner) != asynchronous:
        wanted = "AsyncWorker needs an AsyncRedis (or AsyncRedisCluster)" if asynchronous else (
            "Worker needs a Redis (or RedisCluster)")  # fmt: skip
        other = "use Worker for it" if asynchronous else "use AsyncWorker for it"
        raise InvalidArgument(f"{wanted}, got {kind}: {other}")


class BaseWorker:
    """What both workers share: the options, the engine, stopping, the summary."""

    asynchronous = False

    def __init__(
        self, client: Any, streams: Streams, handler: Callable[..., Any], *, concurrency: int = 1,
        lease: timedelta | float = defaults.LEASE, max_deliveries: int = defaults.MAX_DELIVERIES,
        retry_delay: timedelta | float = defaults.RETRY_DELAY, gate: bool = False, expire_at: Any = defaults.COOL_DOWN,
        limit: int | None = None, idle_exit: timedelta | float | None = None, grace: timedelta | float = defaults.GRACE,
        patience: timedelta | float = defaults.PATIENCE, batch: int | None = None, prefetch: int | None = None,
    ) -> None:  # fmt: skip
        self.options = work_options(
            streams, concurrency=concurrency, lease=lease, max_deliveries=max_deliveries, retry_delay=retry_delay,
            gate=gate, expire_at=expire_at, limit=limit, idle_exit=idle_exit, grace=grace, patience=patience,
            batch=batch, prefetch=prefetch,
        )  # fmt: skip
        _check_client(client, self.asynchronous)
        if not callable(handler):
            raise InvalidArgument(f"a handler must be callable, got {handler!r}")
        if is_async(handler) != self.asynchronous:
            raise InvalidArgument(
                "AsyncWorker awaits async def handlers: use Worker for a plain function" if self.asynchronous
                else "Worker runs plain functions: use AsyncWorker for an async def handler"
            )  # fmt: skip
        _check_handler(handler, batch)
        self.client, self.name, self.batch = client, self.options.name, batch
        self.handler = injected(handler)
        self.warnings: deque[str] = deque(maxlen=100)  # the last things the worker said (all are logged)
        self._engine: Engine | None = None
        self._running = threading.Lock()  # one run() at a time
        self._stop: bool | None = None  # a stop asked before the engine was there: force or not
        self._told_stop = False

    def stop(self, *, force: bool = False) -> None:
        """Leases nothing more and ends once the running handlers are done
        (within ``grace``); a second call (or ``force``) cuts them short: their
        items go back at once, uncounted. Safe from any thread or a signal handler."""
        engine = self._engine
        if engine is None:
            self._stop = force or self._stop is not None
        else:
            engine.request_stop(force=force)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        LOG.warning("%s: %s", self.name, message)

    @contextmanager
    def _running_on(self, engine: Engine) -> Iterator[None]:
        """The block runs ``engine`` as this worker's one run (``_summary`` ends it, or an exception)."""
        if not self._running.acquire(blocking=False):
            raise PsctlError("this worker runs already: make another for another run at the same time")
        self._engine, self._told_stop = engine, False
        if self._stop is not None:
            engine.request_stop(force=self._stop)
            self._stop = None
        try:
            yield
        except BaseException:
            self._engine = None
            self._running.release()
            raise

    def _wrap(self, item: Item) -> Delivery:
        return Delivery(item, self._extend)

    def _extend(self, stream: str, token: str, lease: Any) -> Any:
        raise NotImplementedError

    def _kept(self, token: str, seconds: float, deadline: datetime | None) -> datetime | None:
        """A handler extended its lease by ``seconds``: the worker's own extensions keep at least that."""
        engine = self._engine
        if engine is not None and deadline is not None:
            engine.keeper.keep_until(token, engine.clock.now() + seconds)
        return deadline

    def _on_tick(self, tally: Any) -> None:
        """The supervisor's round: a stop is said once, as psctl work says it."""
        engine = self._engine
        if engine is not None and engine.signal is not None and not self._told_stop:
            self._told_stop = True
            if tally.running:
                self._warn(
                    f"stopping: {counted(tally.running, 'running handler')} may finish within {self.options.grace:g} s "
                    "(a second signal stops them now)"
                )

    def _summary(self, engine: Engine, outcome: str) -> WorkSummary:
        self._engine = None
        self._running.release()
        if engine.error is not None:
            raise engine.error
        tally = engine.snapshot()
        summary = WorkSummary(tally.done, tally.failed, tally.dead, round(tally.seconds, 3), outcome, tally.streams)
        if outcome == "lost":
            patience = self.options.patience
            why = (f"refused commands for {patience:g} s ({engine.refusal})" if engine.refusal is not None
                   else f"did not answer for {patience:g} s")  # fmt: skip
            raise ServerLost(f"the server {why}: the worker stopped; the leases give back what it held", summary)
        return summary

    def _on_signal(self, signum: int, frame: Any = None) -> None:
        engine = self._engine
        if engine is not None:
            engine.request_stop(signum)


class Worker(BaseWorker):
    """Runs ``handler(item)`` for every item of ``streams`` (a ``Delivery``;
    with ``batch=N``, a list of up to N, all of one stream, and it returns
    None or the keys that failed), in ``concurrency`` threads, on leases.
    ``streams`` is a stream's name, or several: a list of names and
    ``(name, weight)`` pairs, or a dict of name to weight (whole numbers
    from 1 to 1000; each name once), taken from in smooth weighted
    round-robin. ``client`` is a ``psctl.Redis`` (or ``RedisCluster``).
    ``run()`` works until ``limit`` items (in all), ``idle_exit`` with
    nothing to do in any stream, ``stop()`` or SIGINT/SIGTERM."""

    def run(self) -> WorkSummary:
        """Works until the end; the summary. Raises ``ServerLost`` when the
        server did not answer for ``patience``."""
        client = self.client
        executor = InProcess(self.handler, self.batch, self._wrap)
        engine = Engine(client, client, self.options, executor, warn=self._warn)
        with self._running_on(engine), _signals_to(self._on_signal):
            outcome = engine.run(self._on_tick)
        return self._summary(engine, outcome)

    def _extend(self, stream: str, token: str, lease: Any) -> datetime | None:
        length = seconds(lease, "lease")
        return self._kept(token, length, self.client.psextend(stream, token, length))


class AsyncWorker(BaseWorker):
    """``Worker`` for an ``async def`` handler, awaited on the running event
    loop by ``concurrency`` tasks; ``client`` is a ``psctl.AsyncRedis`` (or
    ``AsyncRedisCluster``). ``await worker.run()``."""

    asynchronous = True

    async def run(self) -> WorkSummary:
        """Works until the end; the summary. Raises ``ServerLost`` when the
        server did not answer for ``patience``. Cancelling it stops the work
        at once (running handlers cancelled, their items given back)."""
        loop = asyncio.get_running_loop()
        bridge = LoopClient(self.client, loop)
        executor = InLoop(self.handler, loop, self.batch, self._wrap)
        engine = Engine(bridge, bridge, self.options, executor, warn=self._warn,
                        runners=lambda engine: LoopRunners(engine, loop))  # fmt: skip
        done = threading.Event()
        with self._running_on(engine), _loop_signals_to(loop, self._on_signal):
            future = loop.run_in_executor(None, _run_then_set, engine, self._on_tick, done)
            try:
                outcome = await asyncio.shield(future)
            except asyncio.CancelledError:
                engine.request_stop(force=True)
                while not done.is_set():  # (the engine's threads call into this loop: it must turn meanwhile)
                    await asyncio.sleep(0.01)
                raise
            finally:
                bridge.cancel_all()
        return self._summary(engine, outcome)

    async def _extend(self, stream: str, token: str, lease: Any) -> datetime | None:  # type: ignore[override]
        length = seconds(lease, "lease")
        return self._kept(token, length, await self.client.psextend(stream, token, length))


def _run_then_set(engine: Engine, on_tick: Callable[[Any], None], done: threading.Event) -> str:
    try:
        return engine.run(on_tick)
    finally:
        done.set()


@contextmanager
def _signals_to(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``handler`` while in the block, when this is the main thread (else nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)


@contextmanager
def _loop_signals_to(loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]) -> Iterator[None]:
    """The same through the event loop (its own way of taking signals), when it can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    added = []
    try:
        for number in STOP_SIGNALS:
            try:
                loop.add_signal_handler(number, handler, number)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            added.append(number)
        yield
    finally:
        for number in added:
            loop.remove_signal_handler(number)
            if previous[number] is not None:
                signal.signal(number, previous[number])
