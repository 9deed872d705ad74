"""The requests a plan makes, and how each becomes commands on the wire: the
one place that reads the protocol, with no I/O of its own.

A plan (``operations.py``) yields requests and receives their replies:

- ``Call``: a Lua script, by ``EVALSHA``;
- ``Command``: a plain Redis command;
- ``Batch``: requests sent together in one round trip (a non-transactional
  pipeline), all of them safe to repeat;
- ``Send`` then ``Receive``: a call written now and its reply read later, so
  that the plan can prepare its next call while the server runs this one;
- ``Replicated``: how many replicas have the plan's writes so far (``WAIT``);
- ``PRIMARIES``: the names of a cluster's primaries (None on a standalone
  server), for a ``Command`` sent to one of them by name.

``exchange(request)`` turns one request into *steps* for a runner
(``runner.py``) to carry out, and returns its reply. It reloads a script the
server does not have (``NOSCRIPT`` means nothing ran, so calling again cannot
apply it twice), turns the scripts' own errors into ``psctl.errors`` types,
and sends a request that is safe to repeat again after a lost connection or a
timeout, a few times, with a pause between (``RETRY_PAUSES``). On a cluster it
also sends again any request the cluster says it did not run, its slots moving
or a master failing over (``errors.cluster_moving``: nothing ran there either),
for a while (``CLUSTER_PAUSES``, ``CLUSTER_WAIT``).

Every request is safe to repeat or not. What is not (every script call, unless
marked, and a ``Command`` marked ``safe=False``) goes out as a ``Direct`` step,
which a runner sends once, never through a path that could resend it whatever
the client's retry settings; what is goes out as ``Plain`` through the
client's ``execute_command``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from typing import Any

from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TimeoutError,
)

from psctl.errors import InvalidArgument, cluster_moving, wrong_type
from psctl.scripts import LuaScript

# -- requests (made by the plans) ------------------------------------------------


class Call:
    """A call of a Lua script; ``safe``: a repeat changes nothing (reads, acks)."""

    __slots__ = ("script", "keys", "args", "safe")

    def __init__(self, script: LuaScript, keys: tuple[Any, ...], args: tuple[Any, ...], safe: bool = False) -> None:
        self.script, self.keys, self.args, self.safe = script, keys, args, safe


class Command:
    """A plain Redis command; ``safe=False`` for one a repeat could apply twice.
    ``node``: the name of the cluster node it goes to (one of ``PRIMARIES``),
    for a command about a node rather than a key (``SCAN``); it goes out as a
    plain command, so only one that is safe to repeat."""

    __slots__ = ("args", "safe", "node")

    def __init__(self, args: tuple[Any, ...], safe: bool = True, node: str | None = None) -> None:
        self.args, self.safe, self.node = args, safe, node


class Batch:
    """Requests sent together in one round trip, each safe to repeat (a cluster
    pipeline resends what failed). Its reply lists theirs in order; with
    ``errors="return"`` a request's error takes the place of its reply instead
    of being raised."""

    __slots__ = ("requests", "errors")

    def __init__(self, requests: tuple[Call | Command, ...], errors: str = "raise") -> None:
        unsafe = [r for r in requests if not r.safe]
        if unsafe:
            raise ValueError(f"a Batch holds only requests that are safe to repeat, not {unsafe[0]!r}")
        self.requests, self.errors = requests, errors


class Send:
    """Writes a call without waiting for its reply; the next request must be its
    ``Receive``: one call at most is in flight."""

    __slots__ = ("call",)

    def __init__(self, call: Call) -> None:
        self.call = call


class Receive:
    """The reply of ``call``, written by the last ``Send``."""

    __slots__ = ("call",)

    def __init__(self, call: Call) -> None:
        self.call = call


class Replicated:
    """How many replicas have acknowledged what the plan wrote so far, waiting up
    to ``timeout`` seconds for ``replicas`` of them: ``WAIT`` on each connection
    that carried one of the plan's writes (a ``WAIT`` counts its own
    connection's writes only). Never sent again: on another connection it
    would prove nothing."""

    __slots__ = ("replicas", "timeout")

    def __init__(self, replicas: int, timeout: float) -> None:
        self.replicas, self.timeout = replicas, timeout


class Primaries:
    """The names of a cluster's primaries, as the client knows them (the
    runner answers from its slots table, sending nothing); None on a
    standalone server. A request and a step in one, as ``Pause`` is."""

    __slots__ = ()


PRIMARIES = Primaries()

# (Plain slotted classes, not dataclasses: a request is made for every call,
# and a frozen dataclass's __init__ costs several times as much.)
Request = Call | Command | Batch | Send | Receive | Replicated | Primaries  # and a Pause (below): a plan may wait too
Plan = Generator[Request, Any, Any]

# -- steps (carried out by the runners) --------------------------------------------


class Direct(tuple[Any, ...]):
    """A command sent once and its raw reply read, on a path that never resends
    (see ``runner.py``)."""


class Plain(tuple[Any, ...]):
    """A command through the client's ``execute_command`` (response callbacks
    apply; the client's own retries may resend it: safe requests only)."""


class OnNode(tuple[Any, ...]):
    """A ``Plain`` command on one cluster node: its name first, then the
    command. Its reply is never decoded, whatever the client's
    ``decode_responses`` (a ``SCAN`` of every key: one that is not UTF-8
    must not fail the rest)."""


class Pipelined(list[tuple[Any, ...]]):
    """Commands in one non-transactional pipeline; errors come back in place."""


class Write(tuple[Any, ...]):
    """A command written on the never-resending path, its reply not read yet."""


class Read:
    """The reply of the last ``Write``."""

    __slots__ = ()


READ = Read()


class Wait(tuple[Any, ...]):
    """``WAIT`` sent on every connection of the plan's line that wrote (see
    ``Replicated``): the fewest replicas any of them counted."""


class Pause(float):
    """Wait this many seconds (before sending a safe request again; a plan's
    wait for a delayed item)."""


Step = Direct | Plain | OnNode | Pipelined | Write | Read | Wait | Pause | Primaries

# seconds between the attempts of a request that is safe to repeat: 3 more tries
RETRY_PAUSES = (0.1, 0.2, 0.4)
# seconds between the attempts of a request a cluster did not run (its slots
# moving, a failover under way): short at first (most slots move in a moment),
# growing to the last, repeated until the client's ``ps_cluster_wait``
CLUSTER_PAUSES = (0.05, 0.1, 0.2, 0.3, 0.5)
# seconds a cluster client keeps sending such a request again (``ps_cluster_wait``):
# a reshard's TRYAGAIN storm lasts about as long as a slot's keys take to move
# (1 to 1.6 s for 60,000 keys on loopback), a failover about the cluster's node
# timeout and a second or two more (15 s by default: ``cluster-node-timeout 15000``)
CLUSTER_WAIT = 20.0

# what a node that could not be reached raises: down, stalled, or no node known
# for a slot (redis-py's cluster errors are no RedisErrors)
UNREACHED = (ConnectionError, TimeoutError, RedisClusterException)
# what a node's work may fail with, that node down, stalled or moving its slots
NODE_FAILURES = (RedisError, RedisClusterException, OSError)


def evalsha(call: Call) -> tuple[Any, ...]:
    return ("EVALSHA", call.script.sha, call.script.numkeys, *call.keys, *call.args)


def _load(call: Call) -> Plain:
    # its own command: a cluster client sends SCRIPT LOAD to every primary
    return Plain(("SCRIPT LOAD", call.script.source))


def exchange(request: Request, retries: int = 0, wait: float = 0.0) -> Generator[Step, Any, Any]:
    """The steps of one request; returns its reply. A request that is safe to
    repeat is sent again, up to ``retries`` times, after a lost connection or
    a timeout (not a refused password: that does not mend itself).

    On a cluster client (``wait``: its ``ps_cluster_wait`` seconds), a request
    the cluster did not run because its slots move or a node fails over
    (``cluster_moving``) is sent again, safe to repeat or not (nothing ran),
    until ``wait`` seconds after its first such failure; so is what failed so
    in a ``Batch``, and a safe request whose connection was lost once its
    ``retries`` are spent (a failed master: its replica answers once promoted;
    not with ``retries`` 0). A request that is not safe to repeat and lost its
    connection is not: whether it ran is unknown."""
    tries = waits = 0
    since: float | None = None  # when a cluster first failed it
    while True:
        try:
            return (yield from _steps(request, wait))
        except (ConnectionError, TimeoutError) as error:
            if isinstance(error, AuthenticationError) or not _safe(request) or retries <= 0:
                raise
            if tries < retries:
                yield Pause(RETRY_PAUSES[min(tries, len(RETRY_PAUSES) - 1)])
                tries += 1
                continue
            since = _within(since, wait)
            if since is None:
                raise
        except Exception as error:
            if not wait or cluster_moving(error) is None:
                raise
            since = _within(since, wait)
            if since is None:
                raise
            if type(request) is Receive:  # what its Send wrote did not run: called again, at once
                request = request.call
        yield Pause(_cluster_pause(waits))
        waits += 1


def _within(since: float | None, wait: float) -> float | None:
    """When a cluster first failed a request (``since``, or now if it had not),
    while less than ``wait`` seconds have passed since; None after."""
    now = time.monotonic()
    if since is None:
        since = now
    return since if now - since < wait else None


def _cluster_pause(waits: int) -> Pause:
    return Pause(CLUSTER_PAUSES[min(waits, len(CLUSTER_PAUSES) - 1)])


def _safe(request: Request) -> bool:
    if type(request) is Call or type(request) is Command:
        return request.safe
    return type(request) is Batch  # (it holds safe requests only; Send and Receive never are)


def _steps(request: Request, wait: float = 0.0) -> Generator[Step, Any, Any]:
    if type(request) is Call:
        return (yield from _call(request))
    if type(request) is Command:
        if request.node is not None:
            return (yield OnNode((request.node, *request.args)))
        return (yield (Plain if request.safe else Direct)(request.args))
    if type(request) is Send:
        return (yield Write(evalsha(request.call)))
    if type(request) is Receive:
        return (yield from _receive(request.call))
    if type(request) is Batch:
        return (yield from _batch(request, wait))
    if type(request) is Pause or type(request) is Primaries:
        return (yield request)
    if type(request) is Replicated:
        return int((yield Wait(("WAIT", request.replicas, math.ceil(request.timeout * 1000)))))
    raise TypeError(f"not a request: {request!r}")


def _call(call: Call) -> Generator[Step, Any, Any]:
    try:
        step = Direct(evalsha(call))
        try:
            return (yield step)
        except NoScriptError:
            yield _load(call)
            return (yield step)
    except ResponseError as error:
        raise script_error(error, call) from None


def _receive(call: Call) -> Generator[Step, Any, Any]:
    try:
        try:
            return (yield READ)
        except NoScriptError:  # nothing else is in flight: calling again keeps the order
            yield _load(call)
            return (yield Direct(evalsha(call)))
    except ResponseError as error:
        raise script_error(error, call) from None


def _batch(batch: Batch, wait: float = 0.0) -> Generator[Step, Any, list[Any]]:
    """A Batch's replies; with ``wait`` (a cluster's), the requests a cluster
    did not run are sent again, by themselves, for ``wait`` seconds at most."""
    requests = batch.requests
    replies = yield from _sent(requests)
    if wait:
        waits = 0
        since: float | None = None
        while True:
            moving = [i for i, reply in enumerate(replies) if isinstance(reply, Exception) and cluster_moving(reply)]
            if not moving:
                break
            since = _within(since, wait)
            if since is None:  # (time is up: the replies stand as they are)
                break
            yield _cluster_pause(waits)
            waits += 1
            for i, reply in zip(moving, (yield from _sent(tuple(requests[i] for i in moving)))):
                replies[i] = reply
    if batch.errors == "raise":
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies


def _sent(requests: tuple[Call | Command, ...]) -> Generator[Step, Any, list[Any]]:
    """Their replies from one pipeline, errors in place (scripts the server did
    not have loaded and called again)."""
    steps = [evalsha(r) if type(r) is Call else r.args for r in requests]
    replies = list((yield Pipelined(steps)))
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        loaded: set[str] = set()
        for i in missing:
            call = requests[i]
            if isinstance(call, Call) and call.script.sha not in loaded:
                loaded.add(call.script.sha)
                yield _load(call)
        for i, reply in zip(missing, (yield Pipelined([steps[i] for i in missing]))):
            replies[i] = reply
    for i, (reply, request) in enumerate(zip(replies, requests)):
        if isinstance(reply, ResponseError) and type(request) is Call:
            replies[i] = script_error(reply, request)
    return replies


def script_error(error: ResponseError, call: Call) -> Exception:
    """A script's error as psctl's own type where it has one: a key of the
    wrong type (``WrongType``), a score that would not be finite
    (``InvalidArgument``); else the error as it is."""
    text = str(error)
    if text.startswith("WRONGTYPE KEYS["):
        return wrong_type(error, call.keys) or error
    if text.startswith("NOTFINITE "):
        return InvalidArgument(text.removeprefix("NOTFINITE ").split(" script: ")[0])
    return error
