"""Drives the plans of ``operations.py`` over a connection: the only place where
the sync and async clients differ.

A plan yields requests; ``protocol.exchange`` turns each into steps; a runner
carries the steps out and hands the reply back to the plan. Steps that must
never be resent (``Direct``, ``Write``/``Read``: every script call and any
command not safe to repeat) go over a *line* that no retry setting reaches:

- a standalone client holds one pool connection for the plan, taken at its
  first such step, and writes straight to it (redis-py's ``execute_command``
  would resend after a lost reply, and its bookkeeping costs more than a small
  script's work);
- a ``single_connection_client`` uses its one connection, under its lock;
- a cluster client sends through ``execute_command`` with the target node
  named, which redis-py never retries (it still follows MOVED and ASK); a
  plan that waits for replicas (``Replicated``) instead holds a connection of
  each node it writes to, as a standalone client does, and follows MOVED and
  ASK itself: its ``WAIT`` must go where its writes went.

Everything else (``Plain`` and ``Pipelined``) goes through the client's
``execute_command`` and pipelines, retries and response callbacks included;
an ``OnNode`` step too, with its cluster node named. ``PRIMARIES`` is
answered from the client itself: a cluster's primaries by name, from its
slots table, or None on a standalone server.
A request safe to repeat is sent again by psctl itself after a lost
connection or a timeout, ``ps_retries`` times at most; on a cluster, any
request the cluster did not run (its slots moving, a failover under way) for
``ps_cluster_wait`` seconds at most (``protocol.exchange``).

On a cluster, a ``Pipelined`` step goes out in one part per node, written
on a connection of that node, every part before any replies are read (on
the async client, a task per part), so that the nodes work on their parts at
once; each part succeeds or fails on its own: a node that is down or does not
answer puts its error, naming it, in place of each of its commands' replies,
and the other nodes' replies stand. A reply that says its command did not run
there (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) is replaced by the command's reply
sent again through the client, which follows the redirection. A script's
``SCRIPT LOAD`` goes to each node on its own too, so that a node that is
down does not stop the others from loading it.
"""

from __future__ import annotations

import asyncio
import time
from functools import cache
from typing import Any

from redis.exceptions import AskError, ConnectionError, MovedError, ResponseError

from psctl._redispy import (
    UNDECODED,
    AsyncNodePool,
    refresh_async_slots,
    refresh_slots,
    single_connection_lock,
    take_async_connection,
    take_connection,
)
from psctl.errors import cluster_moving
from psctl.protocol import (
    NODE_FAILURES,
    RETRY_PAUSES,
    UNREACHED,
    Direct,
    OnNode,
    Pause,
    Plain,
    Plan,
    Primaries,
    Read,
    Step,
    Wait,
    Write,
    exchange,
)


def _routing_key(command: tuple[Any, ...]) -> Any:
    """The key a cluster routes a command by: an EVALSHA's first key, else the first argument."""
    return command[3] if command[0] == "EVALSHA" else command[1]


# how many MOVED or ASK replies a held cluster connection follows for one command
# (redis-py's own cluster client follows 16)
REDIRECTS = 16


def _fewest(replies: list[Any], command: tuple[Any, ...]) -> int:
    """The fewest replicas any ``WAIT`` of ``replies`` counted; the number asked
    for when none was sent (nothing was written on the line)."""
    return min((int(reply) for reply in replies), default=int(command[1]))


def _by_node(client: Any, step: Step) -> dict[str, tuple[Any, list[int]]]:
    """The indexes of a ``Pipelined`` step's commands, by the node that serves each."""
    parts: dict[str, tuple[Any, list[int]]] = {}
    for i, command in enumerate(step):
        node = client.get_node_from_key(_routing_key(command))
        parts.setdefault(node.name, (node, []))[1].append(i)
    return parts


def _named(error: Any, node: str) -> Any:
    """``error`` (a reply or a part's failure), naming ``node`` when it is a
    failure to reach it that does not name it already."""
    if not isinstance(error, UNREACHED) or node in str(error):
        return error
    try:
        named = type(error)(f"{error} (node {node})")
    except Exception:  # (a class that wants other arguments: as it is)
        return error
    named.__cause__ = error
    return named


def _placed(replies: list[Any], indexes: list[int], part: Any, node: str) -> None:
    """A node's part's replies (or the error that failed it) put in place."""
    if isinstance(part, BaseException):
        part = [_named(part, node)] * len(indexes)
    for i, reply in zip(indexes, part):
        replies[i] = _named(reply, node)


def _loaded(results: list[Any]) -> Any:
    """A ``SCRIPT LOAD`` sent to each node on its own: its SHA when one node
    at least loaded it; else the first node's error."""
    for result in results:
        if not isinstance(result, BaseException):
            return result
    raise results[0]


def _primaries(client: Any) -> list[str] | None:
    """``PRIMARIES``' answer: the cluster's primaries by name, from the client's slots table."""
    if getattr(client, "nodes_manager", None) is None:
        return None
    return [node.name for node in client.get_primaries()]


def _node(client: Any, name: str) -> Any:
    """The cluster node named ``name``, which an ``OnNode`` step goes to."""
    node = client.get_node(node_name=name)
    if node is None:  # (gone from the slots table since PRIMARIES named it)
        raise ConnectionError(f"{name} is no node of the cluster any more")
    return node


# -- sync lines ------------------------------------------------------------------


class _PoolLine:
    """A pool connection, taken at the plan's first step that needs it and held
    until the plan ends."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.connection: Any = None
        self.pending = False

    def _take(self) -> None:
        if self.connection is None:
            self.connection = take_connection(self.pool)
            self.pack = _packer(self.connection, list_of=True)

    def write(self, command: tuple[Any, ...]) -> None:
        self._take()
        self.pending = True
        try:
            self.connection.send_packed_command(self.pack(command))
        except BaseException:
            self.close()
            raise

    def read(self) -> Any:
        try:
            reply = self.connection.read_response()
        except ResponseError:  # a whole reply was read: the connection is fine
            self.pending = False
            raise
        except BaseException:
            self.close()
            raise
        self.pending = False
        return reply

    def call(self, command: tuple[Any, ...]) -> Any:
        self.write(command)
        return self.read()

    def wait(self, command: Wait) -> int:
        return int(self.call(command))

    def close(self) -> None:
        if self.connection is not None:
            if self.pending:  # a reply we will not read: the connection is spoilt
                self.connection.disconnect()
            self.pool.release(self.connection)
            self.connection, self.pending = None, False


class _SingleLine(_PoolLine):
    """A ``single_connection_client``'s connection, its lock held from a write
    until its reply is read."""

    def __init__(self, client: Any) -> None:
        super().__init__(None)
        self.client = client
        self.lock = single_connection_lock(client)
        self.locked = False

    def _take(self) -> None:
        if not self.locked:
            self.lock.acquire()
            self.locked = True
        self.connection = self.client.connection
        self.pack = _packer(self.connection, list_of=True)

    def read(self) -> Any:
        try:
            return super().read()
        finally:
            self._unlock()

    def close(self) -> None:
        if self.connection is not None and self.pending:
            self.connection.disconnect()  # it reconnects before its next command
        self.connection, self.pending = None, False
        self._unlock()

    def _unlock(self) -> None:
        if self.locked:
            self.locked = False
            self.lock.release()


class _ClusterLine:
    """A cluster client's commands with the target node named: redis-py does
    not retry those. A ``Write`` runs its command at once; ``Read`` hands over
    the outcome. ``hold``: each command on a connection of its node held
    until the plan ends (a ``_PoolLine`` per node), for a ``Wait`` to go
    where the writes went."""

    def __init__(self, client: Any, hold: bool = False) -> None:
        self.client = client
        self.outcome: tuple[bool, Any] = (True, None)
        self.held: dict[str, _PoolLine] | None = {} if hold else None

    def call(self, command: tuple[Any, ...]) -> Any:
        node = self.client.get_node_from_key(_routing_key(command))
        if self.held is None:
            return self.client.execute_command(*command, target_nodes=node)
        asking = False
        for _ in range(REDIRECTS):  # (a MOVED or ASK reply: the command did not run)
            line = self.held.get(node.name)
            if line is None:
                line = self.held[node.name] = _PoolLine(self.client.get_redis_connection(node).connection_pool)
            try:
                if asking:
                    line.call(("ASKING",))
                return line.call(command)
            except MovedError as moved:
                redirect: AskError = moved
                refresh_slots(self.client)
                node, asking = self.client.get_node_from_key(_routing_key(command)), False
            except AskError as ask:
                redirect = ask
                node, asking = self.client.get_node(host=ask.host, port=ask.port), True
                if node is None:  # a node the client does not know yet
                    refresh_slots(self.client)
                    raise
        raise redirect

    def wait(self, command: Wait) -> int:
        return _fewest([line.call(command) for line in (self.held or {}).values()], command)

    def write(self, command: tuple[Any, ...]) -> None:
        try:
            self.outcome = (True, self.call(command))
        except Exception as exc:
            self.outcome = (False, exc)

    def read(self) -> Any:
        ok, value = self.outcome
        if not ok:
            raise value
        return value

    def close(self) -> None:
        for line in (self.held or {}).values():
            line.close()


class SyncRunner:
    """Mixed into ``redis.Redis`` subclasses: runs a plan to its result."""

    ps_retries = len(RETRY_PAUSES)  # how often a request safe to repeat is sent again
    ps_cluster_wait = 0.0  # seconds a request a cluster did not run is sent again for (cluster clients: CLUSTER_WAIT)

    def _ps_run(self, plan: Plan, hold: bool = False) -> Any:
        """``plan``'s result; ``hold``: a cluster client holds a connection per
        node for the whole plan (it waits for replicas)."""
        line = self._ps_line(hold)
        try:
            request = plan.send(None)
            while True:
                steps = exchange(request, self.ps_retries, self.ps_cluster_wait)
                try:
                    step = steps.send(None)
                    while True:
                        try:
                            reply = self._ps_step(step, line)
                        except Exception as exc:
                            step = steps.throw(exc)
                        else:
                            step = steps.send(reply)
                except StopIteration as done:
                    request = plan.send(done.value)
                except Exception as exc:
                    request = plan.throw(exc)
        except StopIteration as done:
            return done.value
        finally:
            line.close()

    def _ps_line(self, hold: bool = False) -> Any:
        if getattr(self, "nodes_manager", None) is not None:
            return _ClusterLine(self, hold)
        if getattr(self, "connection", None) is not None:
            return _SingleLine(self)
        return _PoolLine(getattr(self, "connection_pool"))

    execute_command: Any  # redis-py's, of the client this is mixed into
    pipeline: Any

    def _ps_step(self, step: Step, line: Any) -> Any:
        if type(step) is Direct:
            return line.call(step)
        if type(step) is Plain:
            if step[0] == "SCRIPT LOAD" and getattr(self, "nodes_manager", None) is not None:
                return _load_on_each(self, step)
            return self.execute_command(*step)
        if type(step) is Write:
            return line.write(step)
        if type(step) is Read:
            return line.read()
        if type(step) is Pause:
            time.sleep(step)
            return None
        if type(step) is OnNode:
            return self.execute_command(*step[1:], target_nodes=_node(self, step[0]), **UNDECODED)
        if type(step) is Primaries:
            return _primaries(self)
        if type(step) is Wait:
            return line.wait(step)
        if getattr(self, "nodes_manager", None) is not None:
            return _cluster_parts(self, step)
        return _pipeline(self, step).execute(raise_on_error=False)


def _pipeline(client: Any, commands: list[tuple[Any, ...]]) -> Any:
    """A pipeline of ``commands``, not yet executed."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe


class _NodePart(_PoolLine):
    """A node's part of a ``Pipelined`` step on a sync cluster client: its
    commands written at once on a connection of the node's pool; then their
    replies, each parsed by the node's client as its pipeline parses it
    (response callbacks included), an error reply in its place."""

    def __init__(self, client: Any, node: Any, commands: list[tuple[Any, ...]]) -> None:
        self.node = client.get_redis_connection(node)
        super().__init__(self.node.connection_pool)
        self.commands = commands

    def send(self) -> None:
        self._take()
        self.pending = True
        self.connection.send_packed_command(_packed(self.connection, self.commands))

    def replies(self) -> list[Any]:
        replies = []
        for command in self.commands:
            try:
                replies.append(self.node.parse_response(self.connection, command[0]))
            except ResponseError as error:
                replies.append(error)
        self.pending = False
        return replies


def _cluster_parts(client: Any, step: Step) -> list[Any]:
    """A ``Pipelined`` step on a sync cluster client: every node's part
    written before any replies are read, so that the nodes work on theirs at
    once; a part whose write or read fails fails alone."""
    replies: list[Any] = [None] * len(step)
    by_node = _by_node(client, step)
    parts = {name: _NodePart(client, node, [step[i] for i in indexes]) for name, (node, indexes) in by_node.items()}
    try:
        sent = {name: _attempt(part.send, name) for name, part in parts.items()}
        for name, (_, indexes) in by_node.items():
            failed = sent[name]
            _placed(replies, indexes, failed if failed is not None else _attempt(parts[name].replies, name), name)
    finally:
        for part in parts.values():
            part.close()
    if _lost(replies):
        try:
            refresh_slots(client)
        except NODE_FAILURES:
            pass  # (the next command that meets the table's gap reads it again)
    for i in _not_run(replies):
        try:
            replies[i] = client.execute_command(*step[i])
        except NODE_FAILURES as exc:
            replies[i] = exc
    return replies


def _lost(replies: list[Any]) -> bool:
    """Whether a node's part failed to connect or lost its connection: its
    slots may be served elsewhere now (a failover), which the slots table
    learns when read again, as redis-py's own pipeline has it read."""
    return any(isinstance(reply, ConnectionError) for reply in replies)


def _not_run(replies: list[Any]) -> list[int]:
    """The indexes of the replies that say their command did not run where it
    was sent, its slot moving or served elsewhere (MOVED, ASK, TRYAGAIN,
    CLUSTERDOWN): each is sent again through the client, which follows the
    redirection (a ``Pipelined`` step is safe to repeat)."""
    return [i for i, reply in enumerate(replies) if isinstance(reply, ResponseError) and cluster_moving(reply) is not None]


def _packed(connection: Any, commands: list[tuple[Any, ...]]) -> list[bytes]:
    """``commands`` packed for one write on a connection (``_packer``'s way)."""
    pack = _packer(connection)
    if pack is _hiredis_pack:
        return [b"".join(map(pack, commands))]
    return connection.pack_commands(commands)  # type: ignore[no-any-return]


def _load_on_each(client: Any, step: Step) -> Any:
    """A script's ``SCRIPT LOAD`` on a sync cluster client: each node on its
    own, replicas too (redis-py 5.0 counts a master whose slot moved away a
    replica until it reads the slots again, and a replica that takes over
    then has the script already)."""
    return _loaded([
        _attempt(lambda: client.execute_command(*step, target_nodes=node), node.name) for node in client.get_nodes()
    ])  # fmt: skip


def _attempt(call: Any, node: str) -> Any:
    """``call()``'s result, or the error that failed it on ``node``."""
    try:
        return call()
    except NODE_FAILURES as exc:
        return _named(exc, node)


def _packer(connection: Any, list_of: bool = False) -> Any:
    """hiredis's command packer where it gives the same bytes: redis.asyncio
    packs in pure Python, which costs more than the server's work for a
    thousand-item call. ``list_of``: the packed bytes in a list, as a sync
    connection's ``send_packed_command`` takes them."""
    encoder = connection.encoder
    if _hiredis_pack is not None and _utf8_strict(encoder.encoding, encoder.encoding_errors):
        return _pack_in_list if list_of else _hiredis_pack
    return lambda command: connection.pack_command(*command)


@cache
def _utf8_strict(encoding: str, errors: str) -> bool:
    return encoding.lower().replace("-", "") == "utf8" and errors == "strict"


def _pack_in_list(command: tuple[Any, ...]) -> list[bytes]:
    return [_hiredis_pack(command)]


_hiredis_pack: Any
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # the hiredis extra is not installed
    _hiredis_pack = None


# -- async lines -----------------------------------------------------------------


class _AsyncPoolLine:
    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.connection: Any = None
        self.pending = False

    async def _take(self) -> None:
        if self.connection is None:
            self.connection = await take_async_connection(self.pool)
            self.pack = _packer(self.connection)

    async def write(self, command: tuple[Any, ...]) -> None:
        await self._take()
        self.pending = True
        try:
            await self.connection.send_packed_command(self.pack(command))
        except BaseException:
            await self.close()
            raise

    async def read(self) -> Any:
        try:
            reply = await self.connection.read_response()
        except ResponseError:
            self.pending = False
            raise
        except BaseException:
            await self.close()
            raise
        self.pending = False
        return reply

    async def call(self, command: tuple[Any, ...]) -> Any:
        await self.write(command)
        return await self.read()

    async def wait(self, command: Wait) -> int:
        return int(await self.call(command))

    async def close(self) -> None:
        if self.connection is not None:
            if self.pending:
                await self.connection.disconnect()
            await self.pool.release(self.connection)
            self.connection, self.pending = None, False


class _AsyncSingleLine(_AsyncPoolLine):
    def __init__(self, client: Any) -> None:
        super().__init__(None)
        self.client = client
        self.lock = single_connection_lock(client)
        self.locked = False

    async def _take(self) -> None:
        if self.client.connection is None:  # redis.asyncio makes it on first use
            await self.client.initialize()
        if not self.locked:
            await self.lock.acquire()
            self.locked = True
        self.connection = self.client.connection
        self.pack = _packer(self.connection)

    async def read(self) -> Any:
        try:
            return await super().read()
        finally:
            self._unlock()

    async def close(self) -> None:
        if self.connection is not None and self.pending:
            await self.connection.disconnect()
        self.connection, self.pending = None, False
        self._unlock()

    def _unlock(self) -> None:
        if self.locked:
            self.locked = False
            self.lock.release()


class _AsyncClusterLine:
    """``_ClusterLine``, awaited."""

    def __init__(self, client: Any, hold: bool = False) -> None:
        self.client = client
        self.outcome: tuple[bool, Any] = (True, None)
        self.held: dict[str, _AsyncPoolLine] | None = {} if hold else None

    async def call(self, command: tuple[Any, ...]) -> Any:
        await self.client.initialize()  # (a no-op once done) the slots table, before the first command
        node = self.client.get_node_from_key(_routing_key(command))
        if self.held is None:
            return await self.client.execute_command(*command, target_nodes=node)
        asking = False
        for _ in range(REDIRECTS):  # as _ClusterLine.call
            line = self.held.get(node.name)
            if line is None:
                line = self.held[node.name] = _AsyncPoolLine(AsyncNodePool(node))
            try:
                if asking:
                    await line.call(("ASKING",))
                return await line.call(command)
            except MovedError as moved:
                redirect: AskError = moved
                await refresh_async_slots(self.client)
                node, asking = self.client.get_node_from_key(_routing_key(command)), False
            except AskError as ask:
                redirect = ask
                node, asking = self.client.get_node(host=ask.host, port=ask.port), True
                if node is None:
                    await refresh_async_slots(self.client)
                    raise
        raise redirect

    async def wait(self, command: Wait) -> int:
        return _fewest([await line.call(command) for line in (self.held or {}).values()], command)

    async def write(self, command: tuple[Any, ...]) -> None:
        try:
            self.outcome = (True, await self.call(command))
        except Exception as exc:
            self.outcome = (False, exc)

    async def read(self) -> Any:
        ok, value = self.outcome
        if not ok:
            raise value
        return value

    async def close(self) -> None:
        for line in (self.held or {}).values():
            await line.close()


class AsyncRunner:
    """Mixed into ``redis.asyncio.Redis`` subclasses: awaits a plan to its result."""

    ps_retries = len(RETRY_PAUSES)  # how often a request safe to repeat is sent again
    ps_cluster_wait = 0.0  # as SyncRunner's

    async def _ps_run(self, plan: Plan, hold: bool = False) -> Any:
        line = self._ps_line(hold)
        try:
            request = plan.send(None)  # as SyncRunner._ps_run
            while True:
                steps = exchange(request, self.ps_retries, self.ps_cluster_wait)
                try:
                    step = steps.send(None)
                    while True:
                        try:
                            reply = await self._ps_step(step, line)
                        except Exception as exc:
                            step = steps.throw(exc)
                        else:
                            step = steps.send(reply)
                except StopIteration as done:
                    request = plan.send(done.value)
                except Exception as exc:
                    request = plan.throw(exc)
        except StopIteration as done:
            return done.value
        finally:
            await line.close()

    def _ps_line(self, hold: bool = False) -> Any:
        if getattr(self, "nodes_manager", None) is not None:
            return _AsyncClusterLine(self, hold)
        if getattr(self, "single_connection_client", False):
            return _AsyncSingleLine(self)
        return _AsyncPoolLine(getattr(self, "connection_pool"))

    execute_command: Any  # redis-py's, of the client this is mixed into
    pipeline: Any

    async def _ps_step(self, step: Step, line: Any) -> Any:
        if type(step) is Direct:
            return await line.call(step)
        if type(step) is Plain:
            if step[0] == "SCRIPT LOAD" and getattr(self, "nodes_manager", None) is not None:
                return await _async_load_on_each(self, step)
            return await self.execute_command(*step)
        if type(step) is Write:
            return await line.write(step)
        if type(step) is Read:
            return await line.read()
        if type(step) is Pause:
            await asyncio.sleep(step)
            return None
        if type(step) is OnNode:
            return await self.execute_command(*step[1:], target_nodes=_node(self, step[0]), **UNDECODED)
        if type(step) is Primaries:
            if getattr(self, "nodes_manager", None) is not None:
                await self.initialize()  # (a no-op once done) the slots table
            return _primaries(self)
        if type(step) is Wait:
            return await line.wait(step)
        if getattr(self, "nodes_manager", None) is not None:
            return await _async_cluster_parts(self, step)
        return await _pipeline(self, step).execute(raise_on_error=False)


class _AsyncNodePart(_AsyncPoolLine):
    """``_NodePart`` for the async client, on a connection of the node's own."""

    def __init__(self, node: Any, commands: list[tuple[Any, ...]]) -> None:
        super().__init__(AsyncNodePool(node))
        self.node = node
        self.commands = commands

    async def replies(self) -> list[Any]:
        await self._take()
        self.pending = True
        await self.connection.send_packed_command(_packed(self.connection, self.commands))
        replies = []
        for command in self.commands:
            try:
                replies.append(await self.node.parse_response(self.connection, command[0]))
            except ResponseError as error:
                replies.append(error)
        self.pending = False
        return replies


async def _async_cluster_parts(client: Any, step: Step) -> list[Any]:
    """``_cluster_parts``, awaited: each node's part its own task, on a
    connection of its own. (The async client routes each EVALSHA by its keys
    itself. redis-py's async pipeline is not used: in redis-py 5.0, one that
    meets a node down closes the client's other connections, those of the
    parts still under way too.)"""
    await client.initialize()  # (a no-op once done) the slots table, before the first command
    replies: list[Any] = [None] * len(step)
    by_node = _by_node(client, step)
    parts = {name: _AsyncNodePart(node, [step[i] for i in indexes]) for name, (node, indexes) in by_node.items()}
    try:
        outcomes = await asyncio.gather(*(_async_attempt(part.replies(), name) for name, part in parts.items()))
    finally:
        for part in parts.values():
            await part.close()
    for (name, (_, indexes)), outcome in zip(by_node.items(), outcomes):
        _placed(replies, indexes, outcome, name)
    if _lost(replies):
        try:
            await refresh_async_slots(client)
        except NODE_FAILURES:
            pass  # as in _cluster_parts
    for i in _not_run(replies):
        try:
            replies[i] = await client.execute_command(*step[i])
        except NODE_FAILURES as exc:
            replies[i] = exc
    return replies


async def _async_load_on_each(client: Any, step: Step) -> Any:
    await client.initialize()
    return _loaded([
        await _async_attempt(client.execute_command(*step, target_nodes=node), node.name) for node in client.get_nodes()
    ])  # fmt: skip


async def _async_attempt(call: Any, node: str) -> Any:
    try:
        return await call
    except NODE_FAILURES as exc:
        return _named(exc, node)
