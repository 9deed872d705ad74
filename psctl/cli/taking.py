"""The commands that take items from a stream: ``pull``; and ``taking``, the
one way a command takes items (``pull``, ``lease``) under Ctrl-C and SIGTERM.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from psctl.cli.fields import item
from psctl.cli.group import BareWait
from psctl.cli.options import ExpireIn, Gate, Name, NoExpire, Wait, cool_down, output_options
from psctl.cli.session import Session

commands = typer.Typer()

T = TypeVar("T")


@contextmanager
def taking(take: Callable[[Any], T]) -> Iterator[T]:
    """What ``take(stop)`` took (``stop``: the library's ``StopWaiting``), for
    the command to print inside the ``with``.

    An interrupt never cuts between the take and the output: the items taken
    are printed (exit status 0); SIGINT and SIGTERM only set ``stop``
    (``signals.held``). Only a wait, which holds nothing, is cut short: the
    command exits with the signal's status (130, 143), having taken nothing.
    Items taken whose take no replica had in time (``--wait-replicas``) are
    printed too, then the error (exit status 1)."""
    from psctl.cli import signals
    from psctl.errors import NotReplicated
    from psctl.operations import StopWaiting

    stop = StopWaiting()
    unreplicated = None
    with signals.held(stop) as caught:
        try:
            taken = take(stop)
        except KeyboardInterrupt:
            raise typer.Exit(caught.status) from None
        except NotReplicated as exc:  # taken all the same: printed, then the error
            taken, unreplicated = exc.result, exc
        if not taken and caught.signal is not None:
            raise typer.Exit(caught.status)
        yield taken
    if unreplicated is not None:
        raise unreplicated


@commands.command(cls=BareWait)
@output_options
def pull(
    session: Session,
    name: Name,
    count: Annotated[int, typer.Option("--count", "-n", metavar="N", min=1, help="Take up to N items.")] = 1,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the items in the stream, their scores lowered below all others.")
    ] = False,
    gate: Gate = False,
    expire_in: ExpireIn = None,
    no_expire: NoExpire = False,
    wait: Wait = None,
) -> None:  # fmt: skip
    """Take the highest-scored items, atomically: no two pullers get the same one.

    Prints the items in pull order; when the stream is empty, [] (a table: (no items)), exit status 0.
    With --wait, an empty stream is waited on: an add wakes the puller at once, items written by other
    tools are seen within a second; [] when the wait ends with nothing. Ctrl-C ends a wait with exit status 130, having taken
    nothing; an item already taken is always printed.

    Example: psctl pull jobs --count 5 --expire-in 2h
    Example: psctl pull jobs --wait 0   (a worker: waits until there is work)
    """
    from psctl.cli.hints import hint_unknown_stream

    expire_at = cool_down(expire_in, no_expire)
    client = session.client(waiting=wait is not None)
    block = None if wait is None else wait.total_seconds()
    with taking(lambda stop: client.pspull(name, count=count, purge=not keep, gate=gate, expire_at=expire_at,
                                           block=block, stop=stop)) as pulled:  # fmt: skip
        if not pulled:
            hint_unknown_stream(client, name, session.quiet)
        session.out.show([item(key, value) for key, value in pulled.items()], raw=list(pulled.values()))
