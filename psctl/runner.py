"""Drives the plans of ``operations.py`` over a connection: the only place where
the sync and async clients differ.

``_resolve`` turns a plan's requests into raw commands (``EVALSHA`` for script
calls) and reloads a script the server does not have. NOSCRIPT means nothing
ran, so sending the same call again cannot apply it twice.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from redis.exceptions import NoScriptError

from psctl.operations import Batch, Call, Command, Plan, Request

RawCommand = tuple[Any, ...]
Raw = RawCommand | list[RawCommand]  # a list is sent as one pipeline


def _raw(request: Call | Command) -> RawCommand:
    if isinstance(request, Command):
        return request.args
    return ("EVALSHA", request.script.sha, request.script.numkeys, *request.keys, *request.args)


def _load(requests: list[Call | Command]) -> Generator[Raw, Any, None]:
    """SCRIPT LOAD, one command each: a cluster client sends it to every primary
    (a pipeline could not, having no key to route it by)."""
    for source in sorted({r.script.source for r in requests if isinstance(r, Call)}):
        yield ("SCRIPT LOAD", source)


def _resolve(plan: Plan) -> Generator[Raw, Any, Any]:
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            request: Request = plan.throw(error) if error else plan.send(reply)
        except StopIteration as done:
            return done.value
        error = None
        try:
            if isinstance(request, Batch):
                reply = yield from _resolve_batch(list(request.requests))
            else:
                reply = yield from _resolve_one(request)
        except Exception as exc:  # handed to the plan, which may handle it or not
            error = exc


def _resolve_one(request: Call | Command) -> Generator[Raw, Any, Any]:
    try:
        return (yield _raw(request))
    except NoScriptError:
        if not isinstance(request, Call):
            raise
        yield from _load([request])
        return (yield _raw(request))


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


class SyncRunner:
    """Mixed into ``redis.Redis`` subclasses: runs a plan to its result."""

    def _ps_run(self, plan: Plan) -> Any:
        steps = _resolve(plan)
        try:
            raw = steps.send(None)
            while True:
                try:
                    reply = self._ps_send(raw)
                except Exception as exc:
                    raw = steps.throw(exc)
                else:
                    raw = steps.send(reply)
        except StopIteration as done:
            return done.value

    def _ps_send(self, raw: Raw) -> Any:
        if isinstance(raw, tuple):
            return self.execute_command(*raw)  # type: ignore[attr-defined]
        pipe = self.pipeline(transaction=False)  # type: ignore[attr-defined]
        for command in raw:
            pipe.execute_command(*command)
        return pipe.execute(raise_on_error=False)


class AsyncRunner:
    """Mixed into ``redis.asyncio.Redis`` subclasses: awaits a plan to its result."""

    async def _ps_run(self, plan: Plan) -> Any:
        steps = _resolve(plan)
        try:
            raw = steps.send(None)
            while True:
                try:
                    reply = await self._ps_send(raw)
                except Exception as exc:
                    raw = steps.throw(exc)
                else:
                    raw = steps.send(reply)
        except StopIteration as done:
            return done.value

    async def _ps_send(self, raw: Raw) -> Any:
        if isinstance(raw, tuple):
            return await self.execute_command(*raw)  # type: ignore[attr-defined]
        pipe = self.pipeline(transaction=False)  # type: ignore[attr-defined]
        for command in raw:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)
