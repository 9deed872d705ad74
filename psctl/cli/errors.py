"""Exit statuses, and the one place where exceptions become them.

Every failure leaves ``psctl`` as one line on stderr and a status from
``ExitStatus``; the traceback is shown only with ``--debug``, and neither ever
holds a password. ``CatchingGroup`` is the app's Typer group: parsing errors,
the commands' own errors and the library's all pass through it, whether
``psctl`` runs from the shell or from ``typer.testing.CliRunner``.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable
from enum import IntEnum
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup


class ExitStatus(IntEnum):
    OK = 0
    SERVER = 1  # the server failed or could not be reached
    USAGE = 2  # bad usage or bad input
    NOT_FOUND = 3  # the named item does not exist


class CliError(Exception):
    """An error with a message fit for the user and its exit status."""

    status = ExitStatus.SERVER


class BadUsage(CliError):
    status = ExitStatus.USAGE


class NotFound(CliError):
    status = ExitStatus.NOT_FOUND


class ServerUnavailable(CliError):
    status = ExitStatus.SERVER


def describe(exc: BaseException, where: str | None = None) -> tuple[ExitStatus, str]:
    """The exit status and the one-line message for an exception."""
    if isinstance(exc, CliError):
        return exc.status, str(exc)
    at = f" at {where}" if where else ""
    # redis-py is imported only by commands that talk to a server: when it is
    # not loaded, no exception can be one of its own
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None and isinstance(exc, redis_errors.RedisError):
        if isinstance(exc, redis_errors.AuthenticationError):
            return ExitStatus.SERVER, f"the server{at} refused the credentials: {exc}"
        if isinstance(exc, redis_errors.ConnectionError):
            return ExitStatus.SERVER, f"cannot reach the server{at}: {exc}"
        if isinstance(exc, redis_errors.TimeoutError):
            return ExitStatus.SERVER, f"the server{at} did not answer in time ({exc}); see --timeout"
        if isinstance(exc, redis_errors.ResponseError):
            return ExitStatus.SERVER, f"the server{at} refused the command: {exc}"
        return ExitStatus.SERVER, f"the server{at} failed: {exc}"
    if redis_errors is not None and isinstance(exc, redis_errors.RedisClusterException):
        return ExitStatus.SERVER, f"the cluster{at} failed: {exc}"
    launcher = sys.modules.get("psctl.launcher")
    if launcher is not None and isinstance(exc, launcher.ServerError):
        return ExitStatus.SERVER, f"the embedded server: {exc}"
    if isinstance(exc, ValueError):  # the library's argument checks
        return ExitStatus.USAGE, str(exc)
    if isinstance(exc, OSError):
        return ExitStatus.SERVER, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return ExitStatus.SERVER, f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def fail(
    exc: BaseException, *, debug: bool = False, where: str | None = None, secrets: Iterable[str | None] = ()
) -> NoReturn:
    """Reports ``exc`` on stderr and leaves with its exit status."""
    secrets = list(secrets)
    status, message = describe(exc, where)
    for note in getattr(exc, "__notes__", ()):
        message += f" ({note})"
    if debug:
        shown = "".join(traceback.format_exception(exc))
        sys.stderr.write(redact(shown, secrets))
    first_line = " ".join(message.split()) or type(exc).__name__
    sys.stderr.write(f"psctl: {redact(first_line, secrets)}\n")
    sys.stderr.flush()
    raise typer.Exit(status)


def _session_of(ctx: Any) -> Any:
    """The global options, when they were parsed (see ``app.Session``)."""
    return getattr(ctx, "obj", None)


class CatchingGroup(TyperGroup):
    """Typer's group, with every error reported the same way (see ``fail``)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer.TyperException as exc:  # Click's usage errors
            _usage_error(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:  # Click's usage errors
            _usage_error(exc)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except KeyboardInterrupt:
            sys.stderr.write("psctl: interrupted\n")
            raise typer.Exit(130) from None
        except Exception as exc:
            session = _session_of(ctx)
            fail(
                exc,
                debug=bool(getattr(session, "debug", False)),
                where=getattr(session, "where", None),
                secrets=getattr(session, "secrets", ()),
            )


def _usage_error(exc: typer.TyperException) -> NoReturn:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `psctl` alone, `psctl server`: the help
        text = exc.format_message()  # empty when Rich has printed it already
        if text:
            typer.echo(text)
        raise typer.Exit(ExitStatus.USAGE)
    command = ctx.command_path if ctx is not None else "psctl"
    hint = f" (see '{command} --help')" if ctx is not None else ""
    # Typer validates through pydantic, which prefixes our ValueErrors' messages
    message = " ".join(exc.format_message().replace("Value error, ", "").split())
    sys.stderr.write(f"{command}: {message}{hint}\n")
    raise typer.Exit(exc.exit_code)


def _quiet_broken_pipe() -> NoReturn:
    """The reader of our output went away (``psctl values q | head``): stop quietly."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (CliRunner)
        pass
    raise typer.Exit(ExitStatus.SERVER)
