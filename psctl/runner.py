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
``execute_command`` and pipelines, retries and response callbacks included.
A request safe to repeat is sent again by psctl itself after a lost
connection or a timeout, ``ps_retries`` times at most (``protocol.exchange``).
"""

from __future__ import annotations

import asyncio
import time
from functools import cache
from typing import Any

from redis.exceptions import AskError, MovedError, ResponseError

from psctl._redispy import (
    AsyncNodePool,
    refresh_async_slots,
    refresh_slots,
    single_connection_lock,
    take_async_connection,
    take_connection,
)
from psctl.protocol import RETRY_PAUSES, Direct, Pause, Pipelined, Plain, Plan, Read, Step, Wait, Write, exchange


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

    def _ps_run(self, plan: Plan, hold: bool = False) -> Any:
        """``plan``'s result; ``hold``: a cluster client holds a connection per
        node for the whole plan (it waits for replicas)."""
        line = self._ps_line(hold)
        try:
            request = plan.send(None)
            while True:
                steps = exchange(request, self.ps_retries)
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
            return self.execute_command(*step)
        if type(step) is Write:
            return line.write(step)
        if type(step) is Read:
            return line.read()
        if type(step) is Pause:
            time.sleep(step)
            return None
        if type(step) is Wait:
            return line.wait(step)
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

    async def _ps_run(self, plan: Plan, hold: bool = False) -> Any:
        line = self._ps_line(hold)
        try:
            request = plan.send(None)  # as SyncRunner._ps_run
            while True:
                steps = exchange(request, self.ps_retries)
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
            return await self.execute_command(*step)
        if type(step) is Write:
            return await line.write(step)
        if type(step) is Read:
            return await line.read()
        if type(step) is Pause:
            await asyncio.sleep(step)
            return None
        if type(step) is Wait:
            return await line.wait(step)
        return await _pipeline(self, step).execute(raise_on_error=False)
