"""The commands that read a stream and change nothing: list its items
(``keys``, ``values``, ``dump``), one item (``get``, ``item``), its length,
and the names of the streams.

A listing other than a table streams every item as it is read, a page at a
time, in bounded memory; a table shows a screenful.
"""

from collections.abc import Callable, Iterator
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import typer

from psctl.cli.fields import iso, item, number, scored, text_field
from psctl.cli.options import Key, Limit, Name, output_options
from psctl.cli.output import TERMINAL_ROWS, Output
from psctl.cli.session import Session, pass_session
from psctl.cli.status import BadUsage, NotFound

commands = typer.Typer()


# Items read from the server at a time by a listing that is not a table: memory
# stays bounded whatever the stream's size, and the first lines come at once.
PAGE = 1000

Scores = Annotated[bool, typer.Option("--scores", help="With each item's score.")]


def _listing(
    session: Session,
    name: str,
    limit: int | None,
    page: Callable[[Any, Any, int], tuple[list[dict[str, Any]], Any]],
    raw: Callable[[dict[str, Any]], Any],
    *,
    counted: bool = True,
) -> None:
    """Shows a stream's items (``keys``, ``values``) from ``page(client, start,
    count)`` (rows, and the rank of the next page or None). A table shows a
    screenful unless ``--limit`` says, with a caption counting the ones left
    out; the other formats stream every item (or ``--limit``), a page at a time."""
    from psctl.cli.hints import hint_unknown_stream

    output = session.out
    client = session.client()
    if output.table:
        shown = limit if limit is not None else TERMINAL_ROWS
        found = page(client, 0, shown)[0] if shown else []
        if not found:
            hint_unknown_stream(client, name, session.quiet)
        if len(found) < shown:
            caption = None
        elif counted:
            caption = _more(client, name, len(found))
        else:
            caption = "… maybe more (--limit N to see more, -o ndjson for all)"
        output.show(found, caption=caption)
        return
    count = output.stream(_pages(client, page, limit), raw=raw)
    if not count:
        hint_unknown_stream(client, name, session.quiet)


def _pages(
    client: Any, page: Callable[[Any, Any, int], tuple[list[dict[str, Any]], Any]], limit: int | None
) -> Iterator[dict[str, Any]]:
    start: Any = 0  # a rank, or where the server says the next page starts
    left = limit
    while start is not None and (left is None or left > 0):
        count = PAGE if left is None else min(PAGE, left)
        rows, start = page(client, start, count)
        yield from rows
        if left is not None:
            left -= len(rows)


def _more(client: Any, name: str, shown: int) -> str | None:
    more = client.pslen(name) - shown
    if more <= 0:
        return None
    return f"… and {more} more (--limit N to see more, -o ndjson for all)"


class State(str, Enum):
    waiting = "waiting"
    delayed = "delayed"
    held = "held"
    cooling = "cooling"
    gated = "gated"
    dead = "dead"


@commands.command()
@output_options
def keys(
    session: Session,
    name: Name,
    limit: Limit = None,
    scores: Scores = False,
    state: Annotated[
        State | None,
        typer.Option(
            "--state", metavar="STATE", show_default=False, case_sensitive=False,
            help="The keys in STATE instead (waiting, delayed, held, cooling, gated, dead), with what applies: "
            "until, deadline and token, score, deliveries, reason, failed_at.",
        ),
    ] = None,
) -> None:  # fmt: skip
    """List item keys with their scores, highest first (the order pull takes them), or the keys in a state.

    Other than a table, every key is streamed as it is read, a page at a time: -o ndjson for a stream of any
    size. -o raw prints a key per line (with --scores, the key, a tab and the score). --state lists what is
    in flight: delayed items with when they wait, held ones with their lease's deadline and token, cooling
    and gated keys, dead items with why their last delivery failed.

    Example: psctl keys jobs --limit 10
    Example: psctl keys jobs -o raw | grep '^crawl-'
    Example: psctl keys jobs -o csv > keys.csv
    Example: psctl keys jobs --state held
    Example: psctl keys jobs --state dead -o ndjson
    """
    if state is not None:
        if scores:
            raise BadUsage("--scores goes without --state: a state's listing shows the scores that apply")
        _listing(session, name, limit, _state_pages(name, state.value), lambda row: _raw_key(row), counted=False)
        return

    def page(client: Any, start: int, count: int) -> tuple[list[dict[str, Any]], int | None]:
        found = client.pskeys(name, withscores=True, limit=count, start=start)
        return [scored(key, score) for key, score in found], (start + count if len(found) == count else None)

    def raw(row: dict[str, Any]) -> Any:
        key = _raw_key(row)
        if not scores:
            return key
        return (key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key) + b"\t" + number(
            row["score"]
        ).encode()

    _listing(session, name, limit, page, raw)


def _raw_key(row: dict[str, Any]) -> Any:
    return row["key"] if "key" in row else _unbase64(row["key_base64"])


def _state_pages(name: str, state: str) -> Callable[[Any, Any, int], tuple[list[dict[str, Any]], Any]]:
    """The ``page`` of ``_listing`` for the keys in ``state``: times in ISO 8601."""

    def page(client: Any, start: Any, count: int) -> tuple[list[dict[str, Any]], Any]:
        rows, following = client.pskeyspage(name, state, start, count)
        shown = []
        for row in rows:
            found = text_field("key", row.pop("key"))
            for field, value in row.items():
                found.update(text_field(field, value) if field == "reason" and value is not None else
                             {field: iso(value) if isinstance(value, datetime) else value})  # fmt: skip
            shown.append(found)
        return shown, following

    return page


@commands.command()
@output_options
def values(session: Session, name: Name, limit: Limit = None, scores: Scores = False) -> None:
    """List items with their values, highest score first; nothing is taken.

    Other than a table, every item is streamed as it is read, a page at a time: -o ndjson for a stream of any
    size. -o raw prints each value as it is (bytes), one per line. To copy a stream exactly, use dump.

    Example: psctl values jobs --limit 5
    Example: psctl values jobs -o ndjson | head -3
    Example: psctl values jobs -o raw --limit 1
    """

    def raw(row: dict[str, Any]) -> Any:
        return row["value"] if "value" in row else _unbase64(row["value_base64"])

    _listing(session, name, limit, _value_pages(name, scores), raw)


def _value_pages(name: str, scores: bool) -> Callable[[Any, int, int], tuple[list[dict[str, Any]], int | None]]:
    """The ``page`` of ``_listing`` for items with their values (and scores)."""

    def page(client: Any, start: int, count: int) -> tuple[list[dict[str, Any]], int | None]:
        found, following = client.psvaluespage(name, start, count, withscores=scores)
        if scores:
            return [item(key, value) | {"score": score} for key, (value, score) in found.items()], following
        return [item(key, value) for key, value in found.items()], following

    return page


@commands.command()
@pass_session
def dump(session: Session, name: Name) -> None:
    """Write every waiting item as NDJSON (key, value, score), streamed: what add-many --replace reads back.

    Keys and values that are not UTF-8 come as key_base64 / value_base64, so that a copy is exact. Items
    taken or added while it runs may be missed or shown twice: dump a stream nobody changes for an exact
    copy. Gates, cool-downs, leases, dead items and counters are not dumped.

    Example: psctl dump jobs > jobs.ndjson
    Example: psctl dump jobs | psctl add-many jobs-copy --replace
    """
    from psctl.cli.hints import hint_unknown_stream

    client = session.client()
    if not Output("ndjson", quiet=session.quiet).stream(_pages(client, _value_pages(name, True), None)):
        hint_unknown_stream(client, name, session.quiet)


def _unbase64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


@commands.command()
@output_options
def get(session: Session, name: Name, key: Key) -> None:
    """Print one item's value; exit status 3 when there is no such item.

    -o raw writes the value's bytes exactly as stored (no newline added).

    Example: psctl get jobs job-1
    Example: psctl get jobs job-1 -o raw > job-1.bin
    """
    from psctl.cli.hints import did_you_mean

    client = session.client()
    value = client.psget(name, key)
    if value is None:
        raise NotFound(f"no item {key!r} in stream {name!r}{did_you_mean(client, name)}")
    session.out.show(item(key, value), raw=value)


@commands.command("len")
@output_options
def length(session: Session, name: Name) -> None:
    """Print how many items the stream holds (waiting to be pulled).

    Example: psctl len jobs
    Example: psctl len jobs -o raw   (the bare number, for a shell variable)
    """
    from psctl.cli.hints import hint_unknown_stream

    client = session.client()
    count = client.pslen(name)
    if not count:
        hint_unknown_stream(client, name, session.quiet)
    session.out.show({"name": name, "length": count}, raw=count)


@commands.command()
@output_options
def names(session: Session) -> None:
    """List the names of all streams, sorted.

    Example: psctl names
    Example: psctl names -o raw | xargs -n 1 psctl len
    """
    found = session.client().psnames()
    session.out.show(found, column="name", raw=found, empty="(no streams)")


@commands.command("item")
@output_options
def show_item(session: Session, name: Name, key: Key) -> None:
    """Show where an item stands: waiting, delayed, held (by a lease), dead, cooling down, gated; exit 3 when absent.

    With what applies: its score, until (the lease's deadline, when a delayed item starts waiting, or the
    cool-down's end), its deliveries, whether it is gated too, and its last failure (reason, at, delivery).
    By the server's clock: a cool-down whose time has come is over.

    Example: psctl item jobs job-1
    Example: psctl item jobs job-1 -o raw   (just the state: waiting, held, dead, cooling or gated)
    """
    found = session.client().psitem(name, key)
    if found["state"] == "absent":
        raise NotFound(f"no item {key!r} in stream {name!r}: not waiting, delayed, held, dead, gated or cooling down")
    shown = text_field("key", key) | {
        field: iso(value) if isinstance(value, datetime) else value for field, value in found.items()
    }
    failure = found.get("last_failure")
    if failure is not None:
        reason = failure["reason"]
        shown["last_failure"] = (text_field("reason", reason) if reason is not None else {"reason": None}) | {
            "at": iso(failure["at"]), "delivery": failure["delivery"]
        }
    session.out.show(shown, vertical=True, raw=found["state"])
