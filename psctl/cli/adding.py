"""The commands that add items to a stream: ``add`` one, ``add-many`` from a
CSV, JSON or NDJSON file or stdin, all or none.

``add-many`` reads and checks the whole input (``psctl.readers`` spools it)
before the first write; the writes then go in chunks of the library's
``psaddmany``. Ctrl-C while reading writes nothing; while writing, it lets the
chunk in flight end, sends no other, and says how many rows were written
(``--replace`` makes running the same command again finish the job without
adding a score twice).
"""

import dataclasses
import enum
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from psctl.cli import terminal
from psctl.cli.durations import duration_option, time_parameter
from psctl.cli.fields import iso, text_field
from psctl.cli.options import Key, Name, argv_bytes, finite, output_options
from psctl.cli.session import Session
from psctl.cli.status import INTERRUPTED, BadUsage
from psctl.wording import counted

commands = typer.Typer()


@commands.command()
@output_options
def add(
    session: Session,
    name: Name,
    key: Key,
    value: Annotated[
        str,
        typer.Argument(
            metavar="VALUE", help="The item's value, stored as given; - reads it from stdin, bytes as they are.",
            show_default=False,
        ),
    ],
    score: Annotated[
        float, typer.Option("--score", "-s", metavar="S", help="Added to the item's score (a new item starts at 0).")
    ] = 1.0,
    readd: Annotated[bool, typer.Option("--readd", help="Lift a gate or cool-down on KEY first.")] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Set the score to S instead of adding S to it (safe to run twice).")
    ] = False,
    delay_in: Annotated[
        timedelta | None,
        duration_option(
            "--in", help="Delayed: the item waits (can be pulled) only once DURATION has passed, by the server's clock."
        ),
    ] = None,
    delay_at: Annotated[
        datetime | None,
        typer.Option(
            "--at", metavar="TIME", parser=time_parameter, show_default=False,
            help="Delayed until TIME: ISO 8601 (UTC unless it says; 2026-12-24T03:00) or Unix seconds.",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Add an item, or add S to the score of the item already there.

    Refused ("added": false, with the "reason") while KEY is gated or cooling down after a pull (--readd
    lifts both), held by a lease, or dead; "until" says when a cool-down ends (it ends by itself then). With
    --in or --at the item is delayed: kept now, pulled only from then on ("until" says when); adding to a
    delayed item without them keeps its time. -o raw prints the new score (nothing when refused).

    Example: psctl add jobs job-1 'resize photo.jpg' --score 5
    Example: psctl add jobs job-2 - < payload.bin   (the value from stdin, bytes as they are)
    Example: psctl add jobs job-1 'resize photo.jpg' --score 9 --replace   (the score becomes 9)
    Example: psctl add reports daily-7 'build the report' --at 2030-01-01T03:00   (not before 03:00 UTC)
    """
    finite(score, "--score")
    if delay_in is not None and delay_at is not None:
        raise BadUsage("--in and --at cannot be used together: give one time")
    if value == "-":
        if terminal.stdin_is_terminal():
            sys.stderr.write("psctl: reading the value from the terminal; end with Ctrl-D\n")
        data = sys.stdin.buffer.read()
    else:
        data = argv_bytes(value)
    client = session.client()
    delay = delay_in if delay_in is not None else delay_at
    done = client.psadd(name, key, data, score=score, readd=readd, replace=replace, explain=True, delay=delay)
    if done.score is not None:
        added: dict[str, Any] = {"added": True, "score": done.score}
        if done.until is not None:  # delayed until then
            added["until"] = iso(done.until)
    else:
        added = {"added": False, "reason": done.reason}
        if done.until is not None:
            added["until"] = iso(done.until)
    session.out.show(text_field("key", key) | added, raw=done.score)


class InputFormat(str, enum.Enum):
    """The input formats, as a choice Typer lists and completes."""

    csv = "csv"
    json = "json"
    ndjson = "ndjson"


RERUN = "run the same command again with --replace to finish without adding any score twice"


@commands.command("add-many")
@output_options
def add_many(
    session: Session,
    name: Name,
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="[FILE|-]", show_default=False,
            help="CSV (or TSV), JSON or NDJSON file; - or nothing reads stdin.",
        ),
    ] = None,
    format: Annotated[
        InputFormat | None,
        typer.Option(
            "--format", "-f", case_sensitive=False, show_default=False,
            help="The input's format (default: from the file's extension; on stdin, from its content).",
        ),
    ] = None,
    readd: Annotated[bool, typer.Option("--readd", help="Lift gates and cool-downs on the keys first.")] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Set each item's score to the one given instead of adding to it (safe to run again).",
        ),
    ] = False,
    delimiter: Annotated[
        str | None,
        typer.Option(
            "--delimiter", "-d", metavar="CHAR", show_default=False, rich_help_panel="CSV",
            help="CSV field separator: one character, or \\t (or tab) for TSV (default: told from the header: "
            "comma, tab, ; or |; without a header, a comma; a tab for a .tsv file).",
        ),
    ] = None,
    no_header: Annotated[
        bool,
        typer.Option(
            "--no-header", rich_help_panel="CSV",
            help="The CSV has no header line: its columns are key,value,score (or as --columns says).",
        ),
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns", metavar="key,value[,score]", show_default=False, rich_help_panel="CSV",
            help="The CSV's columns in order, for an input without a header line (implies --no-header).",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Add many items from a file or stdin: all of them or, on bad input, none.

    CSV has the header key,value,score (any case and order; score optional, default 1), or none with
    --no-header / --columns; JSON is an array of objects with key, value and score; NDJSON one such object
    per line (key_base64 and value_base64 for bytes that are not UTF-8, as dump writes them). The whole
    input is checked before anything is written: a bad line exits 2 naming it. Prints how many items were
    added and how many were refused. Ctrl-C while writing ends after the chunk in flight and says how many
    rows were written (exit 130): run the same command again with --replace to finish.

    Example: psctl add-many jobs jobs.csv
    Example: psctl dump jobs | psctl add-many jobs-copy --replace
    """
    layout = _csv_layout(format, delimiter, no_header, columns)
    if file in (None, "-") and terminal.stdin_is_terminal():
        sys.stderr.write("psctl: reading items from the terminal; end with Ctrl-D\n")
    try:
        spool = _spooled(file, format, layout)
    except KeyboardInterrupt:
        label = "standard input" if file in (None, "-") else file
        sys.stderr.write(f"psctl: interrupted while reading {label}: nothing was written\n")
        raise typer.Exit(INTERRUPTED) from None
    with spool:
        total = spool.count
        counts: dict[str, Any] = {"added": 0, "refused": 0, "refused_by": {"held": 0, "dead": 0, "gated": 0, "cooling": 0}}
        caught = None
        if total:
            try:
                counts, caught = _write(session, name, spool, readd, replace)
            except KeyboardInterrupt:  # before the writes' own handler was in place
                sys.stderr.write("psctl: interrupted before writing: nothing was written\n")
                raise typer.Exit(INTERRUPTED) from None
    session.out.show(counts, raw=counts["added"])
    written = counts["added"] + counts["refused"]
    if caught is not None and caught.signal is not None and written < total:
        done = f"wrote {written} of {counted(total, 'row')}; {RERUN}" if written else f"wrote 0 of {counted(total, 'row')}: nothing was written"
        sys.stderr.write(f"psctl: interrupted: {done}\n")
        raise typer.Exit(caught.status)


def _spooled(file: str | None, format: InputFormat | None, layout: Any) -> Any:
    """The input read whole and checked, in a ``readers.ItemSpool``."""
    from psctl import readers

    with readers.open_input(file) as source:
        chosen = format.value if format is not None else _input_format(source.head, file, source.label, layout)
        if chosen != "csv" and layout != readers.CsvLayout():
            raise BadUsage(f"--delimiter, --no-header and --columns are for CSV, but {source.label} reads as {chosen}")
        if chosen == "csv" and layout.delimiter is None and file not in (None, "-"):
            layout = dataclasses.replace(layout, delimiter=readers.delimiter_for(file))
        typing = file in (None, "-") and terminal.stdin_is_terminal()  # no bar over what one types
        with _reading_progress(source, shown=not typing) as progress:
            return readers.spool_input(source, chosen, layout, progress)


def _csv_layout(format: InputFormat | None, delimiter: str | None, no_header: bool,
                columns: str | None) -> Any:  # fmt: skip
    """The ``readers.CsvLayout`` the options ask for; bad usage before any I/O."""
    from psctl import readers

    given = delimiter is not None or no_header or columns is not None
    if given and format not in (None, InputFormat.csv):
        raise BadUsage(f"--delimiter, --no-header and --columns are for CSV, not --format {format.value}")  # type: ignore[union-attr]
    found = readers.delimiter_option(delimiter) if delimiter is not None else None
    names = readers.columns_option(columns) if columns is not None else None
    if no_header and names is None:
        names = readers.NO_HEADER
    return readers.CsvLayout(found, names)


def _input_format(head: bytes, file: str | None, label: str, layout: Any) -> str:
    from psctl import readers

    found = readers.format_from_name(file) if file not in (None, "-") else None
    if found is None and layout != readers.CsvLayout():
        return "csv"  # CSV's options say so
    found = found or readers.sniff(head)
    if found is None:
        raise BadUsage(f"cannot tell the format of {label}: give --format csv, json or ndjson")
    return found


def _write(session: Session, name: str, spool: Any, readd: bool, replace: bool) -> tuple[Any, Any]:
    """Writes the spooled items: their counts, and the signal caught meanwhile
    (a ``signals.Caught``), which stopped the writes after the chunk in flight.
    (An interrupt after the last chunk went out stopped nothing.)"""
    from psctl.cli.signals import held
    from psctl.operations import StopWaiting

    stop = StopWaiting()
    # the first SIGINT or SIGTERM only sets stop: the writes end after the chunk
    # in flight; a second one interrupts at once
    with held(stop, twice=True) as caught:
        try:
            client = session.client()
            with _progress(spool.count) as advance:
                # counts, not a score per row: memory stays flat whatever the input's size
                # (a failure carries the library's note of how many items were written)
                counts = client.psaddmany(
                    name, _Feed(spool.items(), advance), readd=readd, summary=True, replace=replace, stop=stop
                )
        except KeyboardInterrupt:  # a second Ctrl-C: at once, whatever was in flight
            sys.stderr.write(f"psctl: interrupted again: stopped at once, some rows may have been written; {RERUN}\n")
            raise typer.Exit(caught.status) from None
    return counts, caught


class _Feed:
    """The items for ``psaddmany``, counted as it takes them for the progress
    bar: a step per ``PROGRESS_STEP`` items."""

    PROGRESS_STEP = 1000

    def __init__(self, items: Iterable[Any], advance: Callable[[int], None]) -> None:
        self._items = items
        self._advance = advance

    def __iter__(self) -> Iterator[Any]:
        step, advance = self.PROGRESS_STEP, self._advance
        taken = 0
        for taken, row in enumerate(self._items, 1):
            yield row
            if taken % step == 0:
                advance(step)
        if taken % step:
            advance(taken % step)


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


@contextmanager
def _reading_progress(source: Any, shown: bool = True) -> Iterator[Callable[[int], None] | None]:
    """While the input is read and checked, on stderr when a person watches:
    the bytes read of the file's size when it is known, else the rows so far."""
    if not shown or not terminal.stderr_is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    rows = TextColumn("{task.fields[rows]:,} rows")
    if source.size:
        columns: tuple[Any, ...] = (TextColumn("checking"), BarColumn(), DownloadColumn(), rows, TimeRemainingColumn())
    else:
        columns = (SpinnerColumn(), TextColumn("checking"), rows)
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("checking", total=source.size or None, rows=0)
        yield lambda count: bar.update(task, completed=source.consumed, rows=count)
