"""Exit statuses, and the one place where exceptions become them.

Every failure leaves ``psctl`` as one line on stderr and a status from
``ExitStatus``; the traceback is shown only with ``--debug``, and neither ever
holds a password. The app's group (``group.CatchingGroup``) runs every command
inside ``reported``: parsing errors, the commands' own errors and the
library's all pass through it, whether ``psctl`` runs from the shell or from
``typer.testing.CliRunner``.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from psctl.cli.status import INTERRUPTED, BadUsage, CliError, ExitStatus, NotFound, ServerUnavailable
from psctl.cli.terminal import one_line, visible
from psctl.wording import counted

__all__ = ["INTERRUPTED", "BadUsage", "CliError", "ExitStatus", "NotFound", "ServerUnavailable", "describe", "fail", "reported", "usage_error"]


def describe(
    exc: BaseException,
    where: str | None = None,
    *,
    command: str | None = None,
    user: str | None = None,
    keys: str | None = None,
) -> tuple[ExitStatus, str]:
    """The exit status and the one-line message for an exception. ``command``
    (``psctl add``), ``user`` and the ``keys`` it needs name what an ACL denied."""
    from psctl import errors

    if isinstance(exc, CliError):
        return exc.status, str(exc)
    if isinstance(exc, errors.InvalidArgument):  # (bad input too: psctl.readers names the line)
        return ExitStatus.USAGE, str(exc)
    # imported here, on the way out: psctl --help must not import redis-py
    import redis.exceptions as redis_errors

    server = "the server"
    if where and isinstance(exc, (redis_errors.ConnectionError, redis_errors.TimeoutError)) and _another_node(
        str(exc), where
    ):
        server, where = "a node of the cluster", None  # named in the error: not the URL's
    at = f" at {where}" if where else ""
    if isinstance(exc, errors.ServerError):
        return ExitStatus.SERVER, f"the embedded server: {exc}"
    if isinstance(exc, errors.WrongType):
        return ExitStatus.SERVER, (
            f"the server{at} holds a key psctl cannot use: {exc}. Another tool wrote it; "
            "move or delete that key to use the stream"
        )
    if isinstance(exc, errors.NotReplicated):
        return ExitStatus.SERVER, (
            f"the write was done on the server{at}, but only {exc.acknowledged} of "
            f"{counted(exc.wanted, 'replica')} had it within {exc.timeout:g}s (--wait-replicas): "
            "a failover now could undo it"
        )
    if isinstance(exc, errors.StreamsFailed):
        failures = []
        for names, error in errors.grouped(exc.failed):
            _, message = describe(error, where, command=command, user=user, keys=_stream_keys(names[0]))
            listed = ", ".join(repr(name) for name in names)
            failures.append(f"{'stream' if len(names) == 1 else 'streams'} {listed}: {message}")
        done = "; every other stream was done" if exc.done else ""
        return ExitStatus.SERVER, "; ".join(failures) + done
    if isinstance(exc, redis_errors.AuthenticationError):
        if "invalid" not in str(exc).lower():  # NOAUTH: no password was given
            needs = "needs a password: give one in the URL, REDIS_PASSWORD or a profile's password_file"
            return ExitStatus.SERVER, f"the server{at} {needs} ({exc})"
        of = f" of user {user!r}" if user else ""
        return ExitStatus.SERVER, f"the server{at} refused the credentials{of}: {exc}"
    if errors.acl_denied(exc):
        return ExitStatus.SERVER, _denied(exc, at, command, user, keys)
    if isinstance(exc, redis_errors.ConnectionError):
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            hint = "; give the CA that signed the server's certificate with --tls-ca FILE or REDIS_SSL_CA_CERTS"
        return ExitStatus.SERVER, f"cannot reach {server}{at}: {_joined(exc, hint)}"
    if isinstance(exc, redis_errors.TimeoutError):
        return ExitStatus.SERVER, f"{server}{at} did not answer in time ({exc}); see --timeout"
    if isinstance(exc, redis_errors.ResponseError):
        if str(exc).startswith("MISCONF"):
            reason = str(exc).split(" script: ")[0]  # (inside a script: which line says nothing here)
            return ExitStatus.SERVER, (
                f"the server{at} cannot save its data to disk, so it refuses every change ({reason}). "
                "Free disk space where it keeps its data (or mend the disk): it resumes by itself. "
                "Keep it running meanwhile: it holds changes that are not on disk yet"
            )
        return ExitStatus.SERVER, f"the server{at} refused the command: {exc}"
    if isinstance(exc, redis_errors.RedisClusterException):
        return ExitStatus.SERVER, f"the cluster{at} failed: {exc}"
    if isinstance(exc, redis_errors.RedisError):
        return ExitStatus.SERVER, f"the server{at} failed: {exc}"
    if isinstance(exc, OSError):
        return ExitStatus.SERVER, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return ExitStatus.SERVER, f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"


_ADDRESS = re.compile(r"\S:\d+\b")  # host:port


def _another_node(message: str, where: str) -> bool:
    """Whether ``message`` names a host:port other than ``where``'s (a URL)."""
    from urllib.parse import urlsplit

    if "://" not in where or not _ADDRESS.search(message):
        return False
    try:
        address = urlsplit(where).netloc.rpartition("@")[2]
    except ValueError:
        return False
    return bool(address) and address not in message


def _stream_keys(name: str) -> str:
    """A stream's keys, for a message about permissions."""
    from psctl.layout import REGISTRY, stream_keys

    keys = stream_keys(name)
    return ", ".join(str(key) for key in (*keys.every, REGISTRY))


def _joined(exc: BaseException, hint: str) -> str:
    return f"{str(exc).rstrip('.')}{hint}" if hint else str(exc)


def _denied(exc: BaseException, at: str, command: str | None, user: str | None, keys: str | None) -> str:
    """What an ACL refused, and to whom, from the server's message, which names a
    command (``… to run the 'evalsha' command``), or only "a key", or neither."""
    from psctl.errors import ACL_IN_SCRIPT

    text = str(exc)
    who = f"user {user!r}" if user else "the default user"
    named = re.search(r"'([^']+)' command", text)
    if named:
        what = f"run {named[1].replace('|', ' ').upper()}"
    elif "key" in text.lower():
        what = f"access the keys it needs ({keys})" if keys else "access a key it needs"
    elif "channel" in text.lower():
        what = "use a channel it needs"
    elif ACL_IN_SCRIPT.search(text):
        what = "run a command that psctl's Lua scripts use"
    else:
        what = "do what it asked"
    prefix = "" if ACL_IN_SCRIPT.search(text) else "NOPERM "
    return f"the server{at} denied {command or 'the command'}: {who} may not {what} ({prefix}{text})"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def fail(
    exc: BaseException,
    *,
    debug: bool = False,
    where: str | None = None,
    secrets: Iterable[str | None] = (),
    **running: str | None,
) -> NoReturn:
    """Reports ``exc`` on stderr and leaves with its exit status; ``running``
    (``command``, ``user``, ``keys``) goes to ``describe``."""
    secrets = list(secrets)
    status, message = describe(exc, where, **running)
    for note in getattr(exc, "__notes__", ()):
        message += f" ({note})"
    # a message may quote the store (a stream name, a key, in the server's words):
    # what a terminal would act on is shown escaped, after the secrets are gone
    if debug:
        shown = "".join(traceback.format_exception(exc))
        sys.stderr.write(visible(redact(shown, secrets)))
    first_line = one_line(redact(message, secrets)) or type(exc).__name__
    sys.stderr.write(f"psctl: {first_line}\n")
    sys.stderr.flush()
    raise typer.Exit(status)




@contextmanager
def reported(ctx: Any) -> Iterator[None]:
    """Every error inside (a command's, the library's, Click's usage errors)
    reported as ``fail`` says, with what the command's session knows."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except typer.TyperException as exc:  # Click's usage errors
        usage_error(exc)
    except BrokenPipeError:
        quiet_broken_pipe()
    except KeyboardInterrupt:
        sys.stderr.write("psctl: interrupted\n")
        raise typer.Exit(INTERRUPTED) from None
    except Exception as exc:
        from psctl.cli.session import Session

        session = Session.recorded(ctx)
        fail(
            exc,
            debug=session.debug,
            where=session.where,
            secrets=session.secrets,
            command=session.command,
            user=session.user,
            keys=session.needed_keys(),
        )


def usage_error(exc: typer.TyperException) -> NoReturn:
    """Click's usage error (or the help of ``psctl`` alone) as one line, its status."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `psctl` alone, `psctl server`: the help
        text = exc.format_message()  # empty when Rich has printed it already
        if text:
            typer.echo(text)
        raise typer.Exit(ExitStatus.USAGE)
    command = ctx.command_path if ctx is not None else "psctl"
    hint = f" (see '{command} --help')" if ctx is not None else ""
    # Typer 0.29+ (not allowed by pyproject.toml) validates through pydantic, which
    # prefixes our ValueErrors' messages with "Value error, "
    message = one_line(exc.format_message().replace("Value error, ", ""))
    sys.stderr.write(f"{command}: {message}{hint}\n")
    raise typer.Exit(exc.exit_code)


def quiet_broken_pipe() -> NoReturn:
    """The reader of our output went away (``psctl values q | head``): stop
    quietly, exit status 0 (what it read was right; a table and JSON alike)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (CliRunner)
        pass
    raise typer.Exit(ExitStatus.OK)
