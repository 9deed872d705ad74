"""The commands on a stream's items: add, pull, list, change and remove them.

Each command checks its arguments, calls the library once or twice and hands
plain data to the output ``@output_options`` chose (``output.py``). Arguments
are checked before any I/O, so that a mistyped command neither starts the
embedded server nor touches the data; modules that talk to a server are
imported by the commands that need them.
"""

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

import typer

from psctl.cli import terminal
from psctl.cli.durations import duration_parameter
from psctl.cli.status import BadUsage, NotFound
from psctl.cli.options import (
    NUMBER_ARGUMENTS,
    BareWait,
    ExpireIn,
    Gate,
    Key,
    Limit,
    Name,
    NoExpire,
    argv_bytes,
    cool_down,
    finite,
    out,
    output_options,
)
from psctl.cli.output import TERMINAL_ROWS, item, scored, text_field
from psctl.cli.session import Session

commands = typer.Typer()


@commands.command()
@output_options
def add(
    ctx: typer.Context,
    name: Name,
    key: Key,
    value: Annotated[
        str, typer.Argument(metavar="VALUE", help="The item's value, stored as given.", show_default=False)
    ],
    score: Annotated[
        float, typer.Option("--score", "-s", metavar="S", help="Added to the item's score (a new item starts at 0).")
    ] = 1.0,
    readd: Annotated[bool, typer.Option("--readd", help="Lift a gate or cool-down on KEY first.")] = False,
) -> None:
    """Add an item, or add S to the score of the item already there.

    Refused ("added": false, with the "reason") while KEY is gated or cooling down after a pull (--readd
    lifts both), held by a lease, or dead; "until" says when a cool-down ends.

    Example: psctl add jobs job-1 'resize photo.jpg' --score 5
    """
    finite(score, "--score")
    done = Session.of(ctx).client().psadd(name, key, argv_bytes(value), score=score, readd=readd, explain=True)
    if done.score is not None:
        added: dict[str, Any] = {"added": True, "score": done.score}
    else:
        added = {"added": False, "reason": done.reason}
        if done.until is not None:
            added["until"] = done.until.isoformat().replace("+00:00", "Z")
    out(ctx).show(text_field("key", key) | added)


@commands.command("add-many")
@output_options
def add_many(
    ctx: typer.Context,
    name: Name,
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="[FILE|-]", help="CSV, JSON or NDJSON file; - or nothing reads stdin.", show_default=False
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", metavar="csv|json|ndjson", show_default=False,
            help="The input's format (default: from the file's extension; on stdin, from its content).",
        ),
    ] = None,
    readd: Annotated[bool, typer.Option("--readd", help="Lift gates and cool-downs on the keys first.")] = False,
) -> None:  # fmt: skip
    """Add many items from a file or stdin: all of them or, on bad input, none.

    CSV has the header key,value,score (score optional, default 1); JSON is an array of objects with key,
    value and score; NDJSON one such object per line. The whole input is checked before anything is
    written: a bad line exits 2 naming it. Prints how many items were added and how many were refused.

    Example: psctl add-many jobs jobs.csv
    """
    from psctl.cli import inputs

    if format is not None and format.lower() not in inputs.FORMATS:
        raise BadUsage(f"--format must be one of {', '.join(inputs.FORMATS)}, got {format!r}")
    if file in (None, "-") and terminal.stdin_is_terminal():
        sys.stderr.write("psctl: reading items from the terminal; end with Ctrl-D\n")
    fp, head, label = inputs.open_input(file)
    with fp:
        chosen = format.lower() if format else _input_format(head, file, label)
        try:
            spool = inputs.spool_rows(fp, chosen)
        except inputs.InputError as bad:
            raise BadUsage(f"{label}: {bad}") from None
    with spool:
        total = spool.count
        counts: dict[str, Any] = {"added": 0, "refused": 0, "refused_by": {"held": 0, "dead": 0, "gated": 0, "cooling": 0}}
        if total:
            client = Session.of(ctx).client()
            with _progress(total) as advance:
                # counts, not a score per row: memory stays flat whatever the input's size
                # (a failure carries the library's note of how many items were written)
                counts = client.psaddmany(name, _Feed(spool.items(), advance), readd=readd, summary=True)
    out(ctx).show(counts)


def _input_format(head: bytes, file: str | None, label: str) -> str:
    from psctl.cli import inputs

    found = inputs.format_from_name(file) if file not in (None, "-") else None
    found = found or inputs.sniff(head)
    if found is None:
        raise BadUsage(f"cannot tell the format of {label}: give --format csv, json or ndjson")
    return found


class _Feed:
    """The items for ``psaddmany``, counted as it takes them for the progress
    bar: a step per ``PROGRESS_STEP`` items."""

    PROGRESS_STEP = 1000

    def __init__(self, items: Iterable[Any], advance: Callable[[int], None]) -> None:
        self._items = items
        self._advance = advance
        self.taken = 0

    def __iter__(self) -> Iterator[Any]:
        step, advance = self.PROGRESS_STEP, self._advance
        for self.taken, row in enumerate(self._items, 1):
            yield row
            if self.taken % step == 0:
                advance(step)
        if self.taken % step:
            advance(self.taken % step)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr when a person watches it; nothing otherwise."""
    if not terminal.stderr_is_terminal():
        yield lambda steps: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("adding", total=total)
        yield lambda steps: bar.advance(task, steps)


@commands.command(cls=BareWait)
@output_options
def pull(
    ctx: typer.Context,
    name: Name,
    count: Annotated[int, typer.Option("--count", "-n", metavar="N", min=1, help="Take up to N items.")] = 1,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the items in the stream, their scores lowered below all others.")
    ] = False,
    gate: Gate = False,
    expire_in: ExpireIn = None,
    no_expire: NoExpire = False,
    wait: Annotated[
        timedelta | None,
        typer.Option(
            "--wait", "-w", metavar="[DURATION]", parser=duration_parameter, show_default=False,
            help="When the stream is empty, wait up to DURATION (90, 90s, 15m, 2h) for an item; alone (or 0), "
            "for ever.",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Take the highest-scored items, atomically: no two pullers get the same one.

    Prints the items in pull order; [] when the stream is empty (exit status 0). With --wait, an empty
    stream is waited on: an add wakes the puller at once, items written by other tools are seen within
    a second; [] when the wait ends with nothing. Ctrl-C ends a wait with exit status 130, having taken
    nothing; an item already taken is always printed.

    Example: psctl pull jobs --count 5 --expire-in 2h
    Example: psctl pull jobs --wait 0   (a worker: waits until there is work)
    """
    expire_at = cool_down(expire_in, no_expire)
    client = Session.of(ctx).client(waiting=wait is not None)
    from psctl.cli import signals
    from psctl.operations import StopWaiting

    stop = StopWaiting()
    block = None if wait is None else wait.total_seconds()
    # An interrupt never cuts between the pull and the output: the items taken
    # are printed (exit status 0). Only a wait, which holds nothing, is cut short.
    with signals.held(stop) as caught:
        try:
            pulled = client.pspull(name, count=count, purge=not keep, gate=gate, expire_at=expire_at,
                                   block=block, stop=stop)  # fmt: skip
        except KeyboardInterrupt:
            raise typer.Exit(caught.status) from None
        if not pulled and caught.signal is not None:
            raise typer.Exit(caught.status)
        out(ctx).show([item(key, value) for key, value in pulled.items()])


def _listing(ctx: typer.Context, name: str, limit: int | None, rows: Callable[[Any, int | None], list[Any]]) -> None:
    """Shows ``rows(client, limit)`` of a stream (``keys``, ``values``): every
    one to a program, a screenful to a person unless ``--limit`` says, with a
    caption counting the ones left out."""
    output = out(ctx)
    shown = limit if limit is not None or not output.table else TERMINAL_ROWS
    client = Session.of(ctx).client()
    found = rows(client, shown)
    caption = _more(client, name, len(found)) if output.table and len(found) == shown else None
    output.show(found, caption=caption)


def _more(client: Any, name: str, shown: int) -> str | None:
    more = client.pslen(name) - shown
    if more <= 0:
        return None
    return f"… and {more} more (--limit N to see more, --json for all)"


@commands.command()
@output_options
def keys(ctx: typer.Context, name: Name, limit: Limit = None) -> None:
    """List item keys with their scores, highest first (the order pull takes them).

    Example: psctl keys jobs --limit 10
    """

    def rows(client: Any, shown: int | None) -> list[Any]:
        return [scored(key, score) for key, score in client.pskeys(name, withscores=True, limit=shown)]

    _listing(ctx, name, limit, rows)


@commands.command()
@output_options
def values(ctx: typer.Context, name: Name, limit: Limit = None) -> None:
    """List items with their values, highest score first; nothing is taken.

    Example: psctl values jobs --json | jq -r '.[].value'
    """

    def rows(client: Any, shown: int | None) -> list[Any]:
        return [item(key, value) for key, value in client.psvalues(name, limit=shown).items()]

    _listing(ctx, name, limit, rows)


@commands.command()
@output_options
def get(ctx: typer.Context, name: Name, key: Key) -> None:
    """Print one item's value; exit status 3 when there is no such item.

    Example: psctl get jobs job-1
    """
    value = Session.of(ctx).client().psget(name, key)
    if value is None:
        raise NotFound(f"no item {key!r} in stream {name!r}")
    out(ctx).show(item(key, value))


@commands.command("len")
@output_options
def length(ctx: typer.Context, name: Name) -> None:
    """Print how many items the stream holds.

    Example: psctl len jobs
    """
    out(ctx).show({"name": name, "length": Session.of(ctx).client().pslen(name)})


@commands.command()
@output_options
def names(ctx: typer.Context) -> None:
    """List the names of all streams, sorted.

    Example: psctl names
    """
    out(ctx).show(Session.of(ctx).client().psnames(), column="name")


@commands.command(context_settings=NUMBER_ARGUMENTS)
@output_options
def incr(
    ctx: typer.Context,
    name: Name,
    key: Key,
    by: Annotated[float, typer.Argument(metavar="BY", help="Added to the score (negative to lower it).")],
) -> None:
    """Add BY to an item's score; exit status 3 when there is no such item (none is made).

    Example: psctl incr jobs job-1 10
    """
    finite(by, "BY")
    new = Session.of(ctx).client().psincrement(name, key, by)
    if new is None:
        raise NotFound(f"no item {key!r} in stream {name!r}")
    out(ctx).show(text_field("key", key) | {"score": new})


@commands.command()
@output_options
def prune(
    ctx: typer.Context,
    name: Name,
    below: Annotated[
        float,
        typer.Option("--below", metavar="T", help="Remove the items scored strictly below T.", show_default=False),
    ],
    gate: Annotated[bool, typer.Option("--gate", help="Gate the removed keys: refused by add until --readd.")] = False,
) -> None:
    """Remove the items scored below a threshold.

    Example: psctl prune jobs --below 0 --gate
    """
    finite(below, "--below")
    removed = Session.of(ctx).client().psdeletebelowthreshold(name, below, gate=gate)
    out(ctx).show({"removed": removed}, table=removed, column="removed", caption=f"{len(removed)} removed")


@commands.command("decr-all", context_settings=NUMBER_ARGUMENTS)
@output_options
def decr_all(
    ctx: typer.Context,
    name: Name,
    by: Annotated[float, typer.Argument(metavar="BY", help="Subtracted from every score.")],
) -> None:
    """Subtract BY from every item's score (ageing a stream, say).

    Example: psctl decr-all jobs 1
    """
    finite(by, "BY")
    out(ctx).show({"updated": Session.of(ctx).client().psdecrement_all(name, by)})


@commands.command()
@output_options
def remove(
    ctx: typer.Context,
    name: Name,
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="The items' keys.", show_default=False)],
    gate: Gate = False,
) -> None:
    """Remove items by key: how a worker acknowledges items pulled with --keep.

    Example: psctl remove jobs job-1 job-2
    """
    out(ctx).show({"removed": Session.of(ctx).client().psremove(name, keys, gate=gate)})


@commands.command()
@output_options
def expire(ctx: typer.Context) -> None:
    """End every due cool-down in every stream; safe to run from cron as often as you like.

    Prints what it removed per stream; exit status 0 when nothing was due.

    Example: psctl expire   (a crontab line: */5 * * * * psctl expire >> /var/log/psctl-expire.log)
    """
    from psctl.errors import StreamsFailed

    try:
        expired = Session.of(ctx).client().psexpire()
    except StreamsFailed as failed:  # the others were done: say what was, then fail naming the rest
        _show_expired(ctx, failed.done)
        raise
    _show_expired(ctx, expired)


def _show_expired(ctx: typer.Context, expired: dict[str, int]) -> None:
    total = sum(expired.values())
    out(ctx).show(
        {"expired": expired, "total": total},
        table=[{"name": stream, "expired": count} for stream, count in expired.items()],
        caption=f"{total} expired" if total else "nothing was due",
    )


@commands.command()
@output_options
def delete(
    ctx: typer.Context,
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when stdin is not a terminal).")] = False,
) -> None:
    """Delete a stream: all its items, gates and cool-downs.

    Asks first on a terminal; elsewhere refuses (exit status 2) unless --yes is given.

    Example: psctl delete jobs --yes
    """
    if not yes and not terminal.stdin_is_terminal():
        raise BadUsage(f"not deleting {name!r}: stdin is not a terminal to confirm on; add --yes")
    client = Session.of(ctx).client()
    if not yes:
        count = client.pslen(name)
        try:
            confirmed = typer.confirm(f"Delete stream {name!r} and its {count} items?", default=False, err=True)
        except typer.Abort:
            confirmed = False
        if not confirmed:
            raise BadUsage(f"not deleted: {name!r} is unchanged")
    out(ctx).show({"deleted": bool(client.psdelete(name))})
