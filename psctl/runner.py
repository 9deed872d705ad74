"""Drives the plans of ``operations.py`` over a connection: the only place where
the sync and async clients differ.

``_resolve`` turns a plan's requests into raw commands (``EVALSHA`` for script
calls) and reloads a script the server does not have. NOSCRIPT means nothing
ran, so sending the same call again cannot apply it twice.

A ``Send`` writes a call on a connection held for the rest of the plan and
returns at once; the following ``Receive`` reads its reply. At most one call
is in flight, so a NOSCRIPT reply can still be answered by loading the script
and calling again, in order. Where a connection cannot be held (a cluster, a
single-connection client), ``Send`` simply runs the call.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import cache
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from psctl.operations import Batch, Call, Command, Plan, Receive, Request, Send

RawCommand = tuple[Any, ...]


class ScriptRaw(tuple):  # type: ignore[type-arg]
    """An ``EVALSHA``: its reply takes no response callback, so the runner may
    send it on a connection of its own instead of through ``execute_command``."""


class SendRaw(tuple):  # type: ignore[type-arg]
    """A raw command to write without reading its reply."""


class ReceiveRaw:
    """Read the reply of the last ``SendRaw``."""


RECEIVE = ReceiveRaw()
Raw = RawCommand | list[RawCommand] | ScriptRaw | SendRaw | ReceiveRaw  # a list is sent as one pipeline


def _raw(request: Call | Command) -> RawCommand:
    if type(request) is Command:
        return request.args
    return ScriptRaw(("EVALSHA", request.script.sha, request.script.numkeys, *request.keys, *request.args))


def _load(requests: list[Call | Command]) -> Generator[Raw, Any, None]:
    """SCRIPT LOAD, one command each: a cluster client sends it to every primary
    (a pipeline could not, having no key to route it by)."""
    for source in sorted({r.script.source for r in requests if isinstance(r, Call)}):
        yield ("SCRIPT LOAD", source)


def _resolve(plan: Plan, first: Request | None = None) -> Generator[Raw, Any, Any]:
    """Turns the plan's requests into raw commands. ``first``: the plan's
    first request, when the runner has taken it already."""
    reply: Any = None
    error: BaseException | None = None
    in_flight: Call | None = None
    while True:
        if first is not None:
            request: Request = first
            first = None
        else:
            try:
                request = plan.throw(error) if error else plan.send(reply)
            except StopIteration as done:
                return done.value
        error = None
        kind = type(request)
        try:
            if kind is Call:  # the common case first, without a generator of its own
                raw = _raw(request)  # type: ignore[arg-type]
                try:
                    reply = yield raw
                except NoScriptError:
                    yield from _load([request])  # type: ignore[list-item]
                    reply = yield raw
            elif kind is Command:
                reply = yield request.args  # type: ignore[union-attr]
            elif kind is Send:
                in_flight = request.call  # type: ignore[union-attr]
                reply = yield SendRaw(_raw(request.call))  # type: ignore[union-attr]
            elif kind is Receive:
                reply = yield from _receive(in_flight)  # type: ignore[arg-type]
            else:
                reply = yield from _resolve_batch(list(request.requests))  # type: ignore[union-attr]
        except Exception as exc:  # handed to the plan, which may handle it or not
            error = exc


def _receive(call: Call) -> Generator[Raw, Any, Any]:
    try:
        return (yield RECEIVE)
    except NoScriptError:  # nothing else is in flight: calling again keeps the order
        yield from _load([call])
        return (yield _raw(call))


def _resolve_batch(requests: list[Call | Command]) -> Generator[Raw, Any, list[Any]]:
    replies = yield [_raw(r) for r in requests]
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        yield from _load([requests[i] for i in missing])
        for i, reply in zip(missing, (yield [_raw(requests[i]) for i in missing])):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


class _Deferred:
    """``Send`` runs the call at once; ``Receive`` hands over its outcome."""

    def __init__(self, execute: Any) -> None:
        self.execute = execute
        self.outcome: tuple[bool, Any] = (True, None)

    def send(self, command: RawCommand) -> None:
        try:
            self.outcome = (True, self.execute(*command))
        except Exception as exc:
            self.outcome = (False, exc)

    def receive(self) -> Any:
        ok, value = self.outcome
        if not ok:
            raise value
        return value

    def call(self, command: RawCommand) -> Any:
        return self.execute(*command)

    def close(self) -> None:
        pass


class _Held:
    """A pool connection, taken at the plan's first script call and held until
    the plan ends. Script calls go straight to it: ``execute_command``'s
    retries would be wrong for them (a call whose reply was lost may have run),
    and its bookkeeping costs more than a small script's work."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.connection: Any = None
        self.pending = False

    def send(self, command: RawCommand) -> None:
        if self.connection is None:
            self.connection = self.pool.get_connection()
            self.pack = _packer(self.connection, list_of=True)
        self.pending = True
        try:
            self.connection.send_packed_command(self.pack(command))
        except BaseException:
            self.close()
            raise

    def receive(self) -> Any:
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

    def call(self, command: RawCommand) -> Any:
        self.send(command)
        return self.receive()

    def close(self) -> None:
        if self.connection is not None:
            if self.pending:  # a reply we will not read: the connection is spoilt
                self.connection.disconnect()
            self.pool.release(self.connection)
            self.connection, self.pending = None, False


class SyncRunner:
    """Mixed into ``redis.Redis`` subclasses: runs a plan to its result."""

    def _ps_run(self, plan: Plan) -> Any:
        flight = self._ps_flight()
        try:
            # script calls while they go well, without the general machinery:
            # most plans are one call, and its cost counts in every round trip
            request = plan.send(None)
            while type(request) is Call:
                try:
                    reply = flight.call(_raw(request))
                except NoScriptError:
                    break  # nothing ran: _resolve sends it again after SCRIPT LOAD
                except Exception as exc:
                    request = plan.throw(exc)
                else:
                    request = plan.send(reply)
            steps = _resolve(plan, request)
            raw = steps.send(None)
            while True:
                try:
                    reply = self._ps_send(raw, flight)
                except Exception as exc:
                    raw = steps.throw(exc)
                else:
                    raw = steps.send(reply)
        except StopIteration as done:
            return done.value
        finally:
            flight.close()

    def _ps_flight(self) -> _Deferred | _Held:
        pool = getattr(self, "connection_pool", None)
        if pool is None or getattr(self, "connection", None) is not None:
            return _Deferred(self.execute_command)  # type: ignore[attr-defined]
        return _Held(pool)

    def _ps_send(self, raw: Raw, flight: _Deferred | _Held) -> Any:
        if type(raw) is ScriptRaw:
            return flight.call(raw)
        if type(raw) is tuple:
            return self.execute_command(*raw)  # type: ignore[attr-defined]
        if type(raw) is SendRaw:
            return flight.send(raw)
        if raw is RECEIVE:
            return flight.receive()
        pipe = self.pipeline(transaction=False)  # type: ignore[attr-defined]
        for command in raw:  # type: ignore[union-attr]
            pipe.execute_command(*command)
        return pipe.execute(raise_on_error=False)


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


def _pack_in_list(command: RawCommand) -> list[bytes]:
    return [_hiredis_pack(command)]  # type: ignore[misc]


try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # the hiredis extra is not installed
    _hiredis_pack = None


class _AsyncDeferred(_Deferred):
    async def send(self, command: RawCommand) -> None:  # type: ignore[override]
        try:
            self.outcome = (True, await self.execute(*command))
        except Exception as exc:
            self.outcome = (False, exc)

    async def receive(self) -> Any:  # type: ignore[override]
        return super().receive()

    async def call(self, command: RawCommand) -> Any:  # type: ignore[override]
        return await self.execute(*command)

    async def close(self) -> None:  # type: ignore[override]
        pass


class _AsyncHeld(_Held):
    async def send(self, command: RawCommand) -> None:  # type: ignore[override]
        if self.connection is None:
            self.connection = await self.pool.get_connection()
            self.pack = _packer(self.connection)
        self.pending = True
        try:
            await self.connection.send_packed_command(self.pack(command))
        except BaseException:
            await self.close()
            raise

    async def receive(self) -> Any:
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

    async def call(self, command: RawCommand) -> Any:  # type: ignore[override]
        await self.send(command)
        return await self.receive()

    async def close(self) -> None:  # type: ignore[override]
        if self.connection is not None:
            if self.pending:
                await self.connection.disconnect()
            await self.pool.release(self.connection)
            self.connection, self.pending = None, False


class AsyncRunner:
    """Mixed into ``redis.asyncio.Redis`` subclasses: awaits a plan to its result."""

    async def _ps_run(self, plan: Plan) -> Any:
        flight = self._ps_flight()
        try:
            request = plan.send(None)  # as SyncRunner._ps_run
            while type(request) is Call:
                try:
                    reply = await flight.call(_raw(request))
                except NoScriptError:
                    break
                except Exception as exc:
                    request = plan.throw(exc)
                else:
                    request = plan.send(reply)
            steps = _resolve(plan, request)
            raw = steps.send(None)
            while True:
                try:
                    reply = await self._ps_send(raw, flight)
                except Exception as exc:
                    raw = steps.throw(exc)
                else:
                    raw = steps.send(reply)
        except StopIteration as done:
            return done.value
        finally:
            await flight.close()

    def _ps_flight(self) -> _AsyncDeferred | _AsyncHeld:
        pool = getattr(self, "connection_pool", None)
        if pool is None or getattr(self, "connection", None) is not None:
            return _AsyncDeferred(self.execute_command)  # type: ignore[attr-defined]
        return _AsyncHeld(pool)

    async def _ps_send(self, raw: Raw, flight: _AsyncDeferred | _AsyncHeld) -> Any:
        if type(raw) is ScriptRaw:
            return await flight.call(raw)
        if type(raw) is tuple:
            return await self.execute_command(*raw)  # type: ignore[attr-defined]
        if type(raw) is SendRaw:
            return await flight.send(raw)
        if raw is RECEIVE:
            return await flight.receive()
        pipe = self.pipeline(transaction=False)  # type: ignore[attr-defined]
        for command in raw:  # type: ignore[union-attr]
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)
