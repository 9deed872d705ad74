"""The ``psctl`` commands: each checks its arguments, calls the library once or
twice and hands plain data to the renderer (``output.py``).

Arguments are checked before any I/O, so that a mistyped command neither
starts the embedded server nor touches the data. Modules that talk to a
server are imported by the commands that need them, so that ``--help``,
``--version`` and shell completion start without redis-py, and nothing
else is imported or built before a command needs it: a command is built from
its function when it runs (``group.py``), Rich is imported to draw a table or a
progress bar, the ``add-many`` readers by ``add-many``. The annotations are
plain objects (no ``from __future__ import annotations``), so that Typer need
not evaluate them from text at every start.
"""

import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

import typer

from psctl import __version__
from psctl.cli import connection, terminal
from psctl.cli.completion import complete_names
from psctl.cli.durations import duration_parameter
from psctl.cli.errors import INTERRUPTED, BadUsage, CatchingGroup, NotFound
from psctl.cli.group import lazy_group
from psctl.cli.output import TERMINAL_ROWS, Output, item, scored, text_field

DEFAULT_COOL_DOWN = timedelta(days=1)

# psctl's commands, built one by one when first used by the group of ``app``
commands = typer.Typer()
server_app = typer.Typer(
    name="server",
    cls=CatchingGroup,
    help="The embedded server psctl starts when no --url, REDIS_URL or REDIS_HOST names one.",
    no_args_is_help=True,
    add_completion=False,
)
app = typer.Typer(
    name="psctl",
    cls=lazy_group(commands, [server_app]),
    help=(
        "Prioritized streams on Redis: add work, pull the most urgent first, from a shell, a pipe or cron.\n\n"
        "Output is a table on a terminal and JSON otherwise (--json / --table on any command force one). "
        "Exit status: 0 ok, 1 the server failed or could not be reached, 2 bad usage or input, 3 no such item, "
        "130 interrupted.\n\n"
        "Example: psctl add jobs job-1 'resize photo.jpg' --score 5 && psctl pull jobs"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Session:
    """The global options, the command being run (for messages), and the client
    once the command asks for it."""

    def __init__(
        self, url: str | None, cluster: bool | None, timeout: float, debug: bool, tls_ca: str | None = None
    ) -> None:
        self.url, self.cluster, self.timeout, self.debug, self.tls_ca = url, cluster, timeout, debug, tls_ca
        self.where = ""
        self.secrets: tuple[str, ...] = ()
        self.user: str | None = None
        self.command = "psctl"
        self.stream: str | None = None
        self._client: Any = None

    def client(self, *, waiting: bool = False) -> Any:
        """The client; ``waiting`` for a pull that blocks (longer reply timeouts)."""
        if self._client is None:
            target = connection.resolve(self.url, self.cluster, tls_ca=self.tls_ca)
            self.where = target.where
            self._client = connection.connect(target, self.timeout, waiting=waiting)
        return self._client

    def needed_keys(self) -> str:
        """The keys the command touches, for a message about permissions."""
        from psctl.layout import REGISTRY, stream_keys

        if not self.stream:
            return f"{REGISTRY} and the keys of every stream"
        try:
            cluster = connection.cluster_wanted(self.cluster)
        except ValueError:  # REDIS_PORT=abc: reported already
            cluster = bool(self.cluster)
        keys = stream_keys(self.stream, cluster=cluster)
        return ", ".join([*keys.all_and_wake, REGISTRY])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _session(ctx: typer.Context) -> Session:
    """The session, told which command runs and on which stream (for messages)."""
    session: Session = ctx.find_root().obj
    session.command = ctx.command_path
    session.stream = ctx.params.get("name")
    return session


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"psctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="The server: redis://, rediss:// or unix:// (default: $REDIS_URL, else $REDIS_HOST, "
            "else the embedded server).",
            show_default=False,
        ),
    ] = None,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="The server is a Redis Cluster (env REDIS_CLUSTER=1).")
    ] = False,
    tls_ca: Annotated[
        str | None,
        typer.Option(
            "--tls-ca",
            metavar="FILE",
            help="CA certificate(s), PEM, to verify a rediss:// server with (env REDIS_SSL_CA_CERTS; "
            "default: the system's).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=0.01,
            envvar="PSCTL_TIMEOUT",
            help="Longest wait for any reply from the server (pull --wait allows a second more).",
        ),
    ] = connection.DEFAULT_TIMEOUT,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    session = Session(url=url, cluster=cluster or None, timeout=timeout, debug=debug, tls_ca=tls_ca)
    session.where = connection.where(url)
    session.secrets = connection.secrets(url)
    session.user = connection.user(url)
    ctx.obj = session
    ctx.call_on_close(session.close)


# -- shared arguments and options --------------------------------------------

def _stream_name(name: str) -> str:
    if not name:
        raise typer.BadParameter("a stream name must not be empty")
    return name


Name = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="The stream's name.",
        callback=_stream_name,
        autocompletion=complete_names,
        show_default=False,
    ),
]
Key = Annotated[str, typer.Argument(metavar="KEY", help="The item's key.", show_default=False)]
AsJson = Annotated[
    bool,
    typer.Option("--json", help="Print JSON (the default when stdout is not a terminal).", rich_help_panel="Output"),
]
AsTable = Annotated[
    bool, typer.Option("--table", help="Print a table (the default on a terminal).", rich_help_panel="Output")
]
Limit = Annotated[
    int | None,
    typer.Option(
        "--limit",
        "-n",
        metavar="N",
        min=0,
        help=f"At most N items, highest score first (on a terminal {TERMINAL_ROWS} unless given; JSON: all).",
        show_default=False,
    ),
]

# Commands taking a number as an argument let "-5" through as one (not an option)
NUMBER_ARGUMENTS = {"ignore_unknown_options": True}


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise BadUsage(f"{what} must be a finite number, got {value}")
    return value


def _argv_bytes(text: str) -> bytes:
    """A command-line argument as the bytes the shell passed (not UTF-8 ones too)."""
    return text.encode("utf-8", "surrogateescape")


def _listing(ctx: Any, name: str, limit: int | None, out: Output, rows: Callable[[Any, int | None], list[Any]]) -> None:
    """Shows ``rows(client, limit)`` of a stream (``keys``, ``values``): every
    one to a program, a screenful to a person unless ``--limit`` says, with a
    caption counting the ones left out."""
    shown = limit if limit is not None or not out.table else TERMINAL_ROWS
    client = _session(ctx).client()
    found = rows(client, shown)
    caption = _more(client, name, len(found)) if out.table and len(found) == shown else None
    out.show(found, caption=caption)


def _more(client: Any, name: str, shown: int) -> str | None:
    more = client.pslen(name) - shown
    if more <= 0:
        return None
    return f"… and {more} more (--limit N to see more, --json for all)"


# -- the stream commands -----------------------------------------------------


@commands.command()
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
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Add an item, or add S to the score of the item already there.

    Refused ("added": false) while KEY is gated or cooling down after a pull; --readd lifts both.

    Example: psctl add jobs job-1 'resize photo.jpg' --score 5
    """
    out = Output.choose(as_json, as_table)
    _finite(score, "--score")
    new = _session(ctx).client().psadd(name, key, _argv_bytes(value), score=score, readd=readd)
    added = {"added": True, "score": new} if new is not None else {"added": False}
    out.show(text_field("key", key) | added)


@commands.command("add-many")
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
            "--format",
            "-f",
            metavar="csv|json|ndjson",
            help="The input's format (default: from the file's extension; on stdin, from its content).",
            show_default=False,
        ),
    ] = None,
    readd: Annotated[bool, typer.Option("--readd", help="Lift gates and cool-downs on the keys first.")] = False,
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Add many items from a file or stdin: all of them or, on bad input, none.

    CSV has the header key,value,score (score optional, default 1); JSON is an array of objects with key,
    value and score; NDJSON one such object per line. The whole input is checked before anything is
    written: a bad line exits 2 naming it. Prints how many items were added and how many were refused.

    Example: psctl add-many jobs jobs.csv
    """
    from psctl.cli import inputs

    out = Output.choose(as_json, as_table)
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
        counts = {"added": 0, "refused": 0}
        if total:
            client = _session(ctx).client()
            with _progress(total) as advance:
                # counts, not a score per row: memory stays flat whatever the input's size
                # (a failure carries the library's note of how many items were written)
                counts = client.psaddmany(name, _Feed(spool.items(), advance), readd=readd, summary=True)
    out.show(counts)


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
        for self.taken, item in enumerate(self._items, 1):
            yield item
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


@commands.command()
def pull(
    ctx: typer.Context,
    name: Name,
    count: Annotated[int, typer.Option("--count", "-n", metavar="N", min=1, help="Take up to N items.")] = 1,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the items in the stream, their scores lowered below all others.")
    ] = False,
    gate: Annotated[bool, typer.Option("--gate", help="Gate the keys: refused by add until --readd.")] = False,
    expire_in: Annotated[
        timedelta | None,
        typer.Option(
            "--expire-in",
            metavar="DURATION",
            parser=duration_parameter,
            help="Cool-down before the keys may be added again: 90, 90s, 15m, 2h, 1d (default 1d).",
            show_default=False,
        ),
    ] = None,
    no_expire: Annotated[bool, typer.Option("--no-expire", help="No cool-down.")] = False,
    wait: Annotated[
        timedelta | None,
        typer.Option(
            "--wait",
            "-w",
            metavar="SECONDS",
            parser=duration_parameter,
            help="When the stream is empty, wait up to SECONDS (or a DURATION: 90s, 15m, 2h) for an item; "
            "0 waits for ever.",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Take the highest-scored items, atomically: no two pullers get the same one.

    Prints the items in pull order; [] when the stream is empty (exit status 0). With --wait, an empty
    stream is waited on: an add wakes the puller at once, items written by other tools are seen within
    a second; [] when the wait ends with nothing. Ctrl-C ends a wait with exit status 130, having taken
    nothing; an item already taken is always printed.

    Example: psctl pull jobs --count 5 --expire-in 2h
    Example: psctl pull jobs --wait 0   (a worker: waits until there is work)
    """
    out = Output.choose(as_json, as_table)
    if expire_in is not None and no_expire:
        raise BadUsage("--expire-in and --no-expire cannot be used together")
    expire_at = None if no_expire else expire_in if expire_in is not None else DEFAULT_COOL_DOWN
    session = _session(ctx)
    client = session.client(waiting=wait is not None)
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
        out.show([item(key, value) for key, value in pulled.items()])


@commands.command()
def keys(
    ctx: typer.Context,
    name: Name,
    limit: Limit = None,
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """List item keys with their scores, highest first (the order pull takes them).

    Example: psctl keys jobs --limit 10
    """

    def rows(client: Any, shown: int | None) -> list[Any]:
        return [scored(key, score) for key, score in client.pskeys(name, withscores=True, limit=shown)]

    _listing(ctx, name, limit, Output.choose(as_json, as_table), rows)


@commands.command()
def values(
    ctx: typer.Context,
    name: Name,
    limit: Limit = None,
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """List items with their values, highest score first; nothing is taken.

    Example: psctl values jobs --json | jq -r '.[].value'
    """

    def rows(client: Any, shown: int | None) -> list[Any]:
        return [item(key, value) for key, value in client.psvalues(name, limit=shown).items()]

    _listing(ctx, name, limit, Output.choose(as_json, as_table), rows)


@commands.command()
def get(ctx: typer.Context, name: Name, key: Key, as_json: AsJson = False, as_table: AsTable = False) -> None:
    """Print one item's value; exit status 3 when there is no such item.

    Example: psctl get jobs job-1
    """
    out = Output.choose(as_json, as_table)
    value = _session(ctx).client().psget(name, key)
    if value is None:
        raise NotFound(f"no item {key!r} in stream {name!r}")
    out.show(item(key, value))


@commands.command("len")
def length(ctx: typer.Context, name: Name, as_json: AsJson = False, as_table: AsTable = False) -> None:
    """Print how many items the stream holds.

    Example: psctl len jobs
    """
    out = Output.choose(as_json, as_table)
    out.show({"name": name, "length": _session(ctx).client().pslen(name)})


@commands.command()
def names(ctx: typer.Context, as_json: AsJson = False, as_table: AsTable = False) -> None:
    """List the names of all streams, sorted.

    Example: psctl names
    """
    out = Output.choose(as_json, as_table)
    out.show(_session(ctx).client().psnames(), column="name")


@commands.command(context_settings=NUMBER_ARGUMENTS)
def incr(
    ctx: typer.Context,
    name: Name,
    key: Key,
    by: Annotated[float, typer.Argument(metavar="BY", help="Added to the score (negative to lower it).")],
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Add BY to an item's score; exit status 3 when there is no such item (none is made).

    Example: psctl incr jobs job-1 10
    """
    out = Output.choose(as_json, as_table)
    _finite(by, "BY")
    new = _session(ctx).client().psincrement(name, key, by)
    if new is None:
        raise NotFound(f"no item {key!r} in stream {name!r}")
    out.show(text_field("key", key) | {"score": new})


@commands.command()
def prune(
    ctx: typer.Context,
    name: Name,
    below: Annotated[
        float,
        typer.Option("--below", metavar="T", help="Remove the items scored strictly below T.", show_default=False),
    ],
    gate: Annotated[bool, typer.Option("--gate", help="Gate the removed keys: refused by add until --readd.")] = False,
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Remove the items scored below a threshold.

    Example: psctl prune jobs --below 0 --gate
    """
    out = Output.choose(as_json, as_table)
    _finite(below, "--below")
    removed = _session(ctx).client().psdeletebelowthreshold(name, below, gate=gate)
    out.show({"removed": removed}, table=removed, column="removed", caption=f"{len(removed)} removed")


@commands.command("decr-all", context_settings=NUMBER_ARGUMENTS)
def decr_all(
    ctx: typer.Context,
    name: Name,
    by: Annotated[float, typer.Argument(metavar="BY", help="Subtracted from every score.")],
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Subtract BY from every item's score (ageing a stream, say).

    Example: psctl decr-all jobs 1
    """
    out = Output.choose(as_json, as_table)
    _finite(by, "BY")
    out.show({"updated": _session(ctx).client().psdecrement_all(name, by)})


@commands.command()
def remove(
    ctx: typer.Context,
    name: Name,
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="The items' keys.", show_default=False)],
    gate: Annotated[bool, typer.Option("--gate", help="Gate the keys: refused by add until --readd.")] = False,
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Remove items by key: how a worker acknowledges items pulled with --keep.

    Example: psctl remove jobs job-1 job-2
    """
    out = Output.choose(as_json, as_table)
    out.show({"removed": _session(ctx).client().psremove(name, keys, gate=gate)})


@commands.command()
def expire(ctx: typer.Context, as_json: AsJson = False, as_table: AsTable = False) -> None:
    """End every due cool-down in every stream; safe to run from cron as often as you like.

    Prints what it removed per stream; exit status 0 when nothing was due.

    Example: psctl expire   (a crontab line: */5 * * * * psctl expire >> /var/log/psctl-expire.log)
    """
    out = Output.choose(as_json, as_table)
    expired = _session(ctx).client().psexpire()
    total = sum(expired.values())
    out.show(
        {"expired": expired, "total": total},
        table=[{"name": stream, "expired": count} for stream, count in expired.items()],
        caption=f"{total} expired" if total else "nothing was due",
    )


@commands.command()
def delete(
    ctx: typer.Context,
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when stdin is not a terminal).")] = False,
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Delete a stream: all its items, gates and cool-downs.

    Asks first on a terminal; elsewhere refuses (exit status 2) unless --yes is given.

    Example: psctl delete jobs --yes
    """
    out = Output.choose(as_json, as_table)
    if not yes and not terminal.stdin_is_terminal():
        raise BadUsage(f"not deleting {name!r}: stdin is not a terminal to confirm on; add --yes")
    client = _session(ctx).client()
    if not yes:
        count = client.pslen(name)
        try:
            confirmed = typer.confirm(f"Delete stream {name!r} and its {count} items?", default=False, err=True)
        except typer.Abort:
            confirmed = False
        if not confirmed:
            raise BadUsage(f"not deleted: {name!r} is unchanged")
    out.show({"deleted": bool(client.psdelete(name))})


# -- the embedded server -----------------------------------------------------


def _embedded_only(ctx: typer.Context) -> Any:
    session = _session(ctx)
    if connection.cluster_wanted(session.cluster):
        raise BadUsage("psctl server manages the embedded server, which is not used in cluster mode")
    return connection.embedded_module()


@server_app.command("status")
def server_status(ctx: typer.Context, as_json: AsJson = False, as_table: AsTable = False) -> None:
    """Show whether the embedded server runs, where, and what it is; starts nothing.

    Example: psctl server status
    """
    out = Output.choose(as_json, as_table)
    found = _embedded_only(ctx).status()
    out.show(found, vertical=True)
    session = _session(ctx)
    if out.table and connection.explicit(session.url, os.environ):
        named = "--url, REDIS_URL or REDIS_HOST"
        sys.stderr.write(f"psctl: other commands use {session.where} ({named}), not this server\n")


@server_app.command("stop")
def server_stop(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Stop it even when it cannot save its data (what it holds is lost).")
    ] = False,
    as_json: AsJson = False,
    as_table: AsTable = False,
) -> None:
    """Stop the embedded server cleanly and wait until it has exited; fine when none runs.

    A server that cannot save its data to disk (a full disk) is not stopped: stopping it would lose the
    changes it holds only in memory. Free disk space and it resumes by itself; --force stops it anyway.

    Example: psctl server stop
    """
    out = Output.choose(as_json, as_table)
    out.show(_embedded_only(ctx).stop(force=force))


def main() -> None:
    """The ``psctl`` command."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("psctl: interrupted\n")
        raise SystemExit(INTERRUPTED) from None
    except BaseException as exc:  # outside any command: still one line, no traceback
        sys.stderr.write(f"psctl: unexpected error: {type(exc).__name__}: {exc}\n")
        raise SystemExit(1) from None
