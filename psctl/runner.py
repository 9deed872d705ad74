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
  named, which redis-py never retries (it still follows MOVED and ASK).

Everything else (``Plain`` and ``Pipelined``) goes through the client's
``execute_command`` and pipelines, retries and response callbacks included.
A request safe to repeat is sent again by psctl itself after a lost
connection or a timeout, ``ps_retries`` times at most; on a cluster, any
request the cluster did not run (its slots moving, a failover under way) for
``ps_cluster_wait`` seconds at most (``protocol.exchange``).
"""

from __future__ import annotations

import asyncio
import time
from functools import cache
from typing import Any

from redis.exceptions import ResponseError

from psctl._redispy import single_connection_lock, take_async_connection, take_connection
from psctl.protocol import RETRY_PAUSES, Direct, Pause, Pipelined, Plain, Plan, Read, Step, Write, exchange


def _routing_key(command: tuple[Any, ...]) -> Any:
    """The key a cluster routes a command by: an EVALSHA's first key, else the first argument."""
    return command[3] if command[0] == "EVALSHA" else command[1]


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
    the outcome."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.outcome: tuple[bool, Any] = (True, None)

    def call(self, command: tuple[Any, ...]) -> Any:
        node = self.client.get_node_from_key(_routing_key(command))
        return self.client.execute_command(*command, target_nodes=node)

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
        pass


class SyncRunner:
    """Mixed into ``redis.Redis`` subclasses: runs a plan to its result."""

    ps_retries = len(RETRY_PAUSES)  # how often a request safe to repeat is sent again
    ps_cluster_wait = 0.0  # seconds a request a cluster did not run is sent again for (cluster clients: CLUSTER_WAIT)

    def _ps_run(self, plan: Plan) -> Any:
        line = self._ps_line()
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

    def _ps_line(self) -> Any:
        if getattr(self, "nodes_manager", None) is not None:
            return _ClusterLine(self)
        if getattr(self, "connection", None) is not None:
            return _SingleLine(self)
        return _PoolLine(getattr(self, "connection_pool"))

    execute_command: Any  # redis-py's, of the client this is mixed into
    pipeline: Any

    def _ps_step(self, step: Step, line: Any) -> Any:
        if type(step) is Direct:
            return line.call(step)
        if type(step) is Plain:
            return self.execute_command(*step)
        if type(step) is Write:
            return line.write(step)
        if type(step) is Read:
            return line.read()
        if type(step) is Pause:
            time.sleep(step)
            return None
        return _pipeline(self, step).execute(raise_on_error=False)


def _pipeline(client: Any, step: Step) -> Any:
    """A pipeline of the step's commands, not yet executed. A sync cluster
    client's pipeline is told each command's node: redis-py 8 would otherwise
    ask a server (COMMAND GETKEYS), one round trip per script call, to route
    what the EVALSHA's own arguments say."""
    assert type(step) is Pipelined
    pipe = client.pipeline(transaction=False)
    routed = isinstance(client, SyncRunner) and getattr(client, "nodes_manager", None) is not None
    for command in step:
        if routed:
            pipe.execute_command(*command, target_nodes=client.get_node_from_key(_routing_key(command)))
        else:
            pipe.execute_command(*command)
    return pipe


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

    def __init__(self, client: Any) -> None:
        self.client = client
        self.outcome: tuple[bool, Any] = (True, None)

    async def call(self, command: tuple[Any, ...]) -> Any:
        await self.client.initialize()  # (a no-op once done) the slots table, before the first command
        node = self.client.get_node_from_key(_routing_key(command))
        return await self.client.execute_command(*command, target_nodes=node)

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
        pass


class AsyncRunner:
    """Mixed into ``redis.asyncio.Redis`` subclasses: awaits a plan to its result."""

    ps_retries = len(RETRY_PAUSES)  # how often a request safe to repeat is sent again
    ps_cluster_wait = 0.0  # as SyncRunner's

    async def _ps_run(self, plan: Plan) -> Any:
        line = self._ps_line()
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

    def _ps_line(self) -> Any:
        if getattr(self, "nodes_manager", None) is not None:
            return _AsyncClusterLine(self)
        if getattr(self, "single_connection_client", False):
            return _AsyncSingleLine(self)
        return _AsyncPoolLine(getattr(self, "connection_pool"))

    execute_command: Any  # redis-py's, of the client this is mixed into
    pipeline: Any

    async def _ps_step(self, step: Step, line: Any) -> Any:
        if type(step) is Direct:
            return await line.call(step)
        if type(step) is Plain:
            return await self.execute_command(*step)
        if type(step) is Write:
            return await line.write(step)
        if type(step) is Read:
            return await line.read()
        if type(step) is Pause:
            await asyncio.sleep(step)
            return None
        return await _pipeline(self, step).execute(raise_on_error=False)
