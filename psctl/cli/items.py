"""The commands on a stream's items: add, pull, list, change and remove them.

Each command checks its arguments, calls the library once or twice and hands
plain data to the output ``@output_options`` chose (``output.py``). Arguments
are checked before any I/O, so that a mistyped command neither starts the
embedded server nor touches the data; modules that talk to a server are
imported by the commands that need them.
"""

import sys
from collections.abc import Callable, Iterator
from enum import Enum
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from psctl.cli import terminal
from psctl.cli.durations import duration_parameter, time_parameter
from psctl.cli.group import BareWait
from psctl.cli.options import (
    NUMBER_ARGUMENTS,
    ExpireIn,
    Gate,
    Key,
    Limit,
    Name,
    NoExpire,
    DryRun,
    Yes,
    argv_bytes,
    ask,
    cool_down,
    finite,
    output_options,
)
from psctl.cli.hints import did_you_mean, hint_unknown_stream
from psctl.cli.fields import iso, item, number, scored, text_field
from psctl.cli.output import TERMINAL_ROWS
from psctl.cli.session import Session, pass_session
from psctl.cli.status import BadUsage, NotFound

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
        typer.Option(
            "--in", metavar="DURATION", parser=duration_parameter, show_default=False,
            help="Delayed: the item waits (can be pulled) only once DURATION has passed, by the server's clock.",
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
            added["until"] = done.until.isoformat().replace("+00:00", "Z")
    else:
        added = {"added": False, "reason": done.reason}
        if done.until is not None:
            added["until"] = done.until.isoformat().replace("+00:00", "Z")
    session.out.show(text_field("key", key) | added, raw=done.score)


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
        if not pulled:
            hint_unknown_stream(client, name, session.quiet)
        session.out.show([item(key, value) for key, value in pulled.items()], raw=list(pulled.values()))


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
    from psctl.cli.output import Output
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
    session.out.show(found, column="name", raw=found)


@commands.command(context_settings=NUMBER_ARGUMENTS)
@output_options
def incr(
    session: Session,
    name: Name,
    key: Key,
    by: Annotated[float, typer.Argument(metavar="BY", help="Added to the score (negative to lower it).")],
) -> None:
    """Add BY to an item's score; exit status 3 when there is no such item (none is made).

    Example: psctl incr jobs job-1 10
    Example: psctl incr jobs job-1 -2.5
    """
    finite(by, "BY")
    new = session.client().psincrement(name, key, by)
    if new is None:
        raise NotFound(f"no item {key!r} in stream {name!r}")
    session.out.show(text_field("key", key) | {"score": new}, raw=new)


@commands.command()
@output_options
def prune(
    session: Session,
    name: Name,
    below: Annotated[
        float,
        typer.Option("--below", metavar="T", help="Remove the items scored strictly below T.", show_default=False),
    ],
    gate: Annotated[bool, typer.Option("--gate", help="Gate the removed keys: refused by add until --readd.")] = False,
    dry_run: DryRun = False,
    yes: Yes = False,
) -> None:
    """Remove the items scored below a threshold.

    On a terminal it asks first (unless --yes); from cron or a pipe it does not ask.

    Example: psctl prune jobs --below 0 --dry-run
    Example: psctl prune jobs --below 0 --gate --yes
    """
    finite(below, "--below")
    client = session.client()
    if dry_run:
        removed = client.pskeys(name, below=below)[::-1]  # lowest first, as prune reports them
    else:
        if not yes and terminal.stdin_is_terminal():  # (nobody to ask in cron or a pipe)
            count = len(client.pskeys(name, below=below))
            if count and not ask(f"Remove {count} items scored below {number(below)} from {name!r}?"):
                raise BadUsage(f"not pruned: {name!r} is unchanged")
        removed = client.psdeletebelowthreshold(name, below, gate=gate)
    verb = "would be removed" if dry_run else "removed"
    session.out.show({"removed": removed} | _dry(dry_run), table=removed, column="removed",
                  caption=f"{len(removed)} {verb}", raw=removed)  # fmt: skip


def _dry(dry_run: bool) -> dict[str, bool]:
    return {"dry_run": True} if dry_run else {}


@commands.command("decr-all", context_settings=NUMBER_ARGUMENTS)
@output_options
def decr_all(
    session: Session,
    name: Name,
    by: Annotated[float, typer.Argument(metavar="BY", help="Subtracted from every score.")],
    dry_run: DryRun = False,
) -> None:
    """Subtract BY from every item's score (ageing a stream, say).

    Example: psctl decr-all jobs 1
    Example: psctl decr-all jobs 0.5 --dry-run
    """
    finite(by, "BY")
    client = session.client()
    updated = client.pslen(name) if dry_run else client.psdecrement_all(name, by)
    session.out.show({"updated": updated} | _dry(dry_run), raw=updated)


@commands.command()
@output_options
def remove(
    session: Session,
    name: Name,
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="The items' keys.", show_default=False)],
    gate: Gate = False,
    dry_run: DryRun = False,
    yes: Yes = False,
) -> None:
    """Remove items by key, whole, whether waiting, held by a lease or dead: how a worker acknowledges items
    pulled with --keep.

    Each item goes with its value, score and deliveries; a held one leaves its lease (the lease's token
    skips it from then on; it never comes back), a dead one the dead items. Prints how many items there
    were, each counted once however often named; a key that is only gated or cooling down is no item and
    not counted. --gate gates every KEY. On a terminal it asks first (unless --yes); from cron or a pipe
    it does not ask.

    Example: psctl remove jobs job-1 job-2
    Example: psctl remove jobs job-1 --gate --yes
    """
    client = session.client()
    if dry_run:
        removed = client.psremove(name, keys, gate=gate, dry_run=True)
    else:
        if not yes and terminal.stdin_is_terminal():
            there = client.psremove(name, keys, dry_run=True)
            if there and not ask(f"Remove {there} item{'s' if there > 1 else ''} from {name!r}?"):
                raise BadUsage(f"not removed: {name!r} is unchanged")
        removed = client.psremove(name, keys, gate=gate)
    session.out.show({"removed": removed} | _dry(dry_run), raw=removed)


@commands.command()
@output_options
def expire(session: Session) -> None:
    """End what is due in every stream: cool-downs, leases that ran out, delayed items; safe from cron.

    Pulls and leases do the same for their own stream as they go; this frees the memory of streams nobody
    touches. Prints the cool-downs it ended per stream ("expired"), and, when there were any, the items of
    leases that ran out ("returned") and the delayed items that started waiting ("started"); exit status 0
    when nothing was due. -q prints nothing (for cron).

    Example: psctl expire
    Example: psctl expire -q   (a crontab line: */5 * * * * /path/to/venv/bin/psctl expire -q)
    """
    from psctl.errors import StreamsFailed

    try:
        expired = session.client().psexpire()
    except StreamsFailed as failed:  # the others were done: say what was, then fail naming the rest
        _show_expired(session, failed.done)
        raise
    _show_expired(session, expired)


def _show_expired(session: Session, expired: dict[str, int]) -> None:
    total = sum(expired.values())
    returned, started = getattr(expired, "returned", {}), getattr(expired, "started", {})
    shown: dict[str, Any] = {"expired": dict(expired), "total": total}
    if returned or started:  # (fields only added: a log shows what else came due)
        shown |= {"returned": returned, "started": started}
    names = sorted({*expired, *returned, *started})
    rows = [{"name": name, "expired": expired.get(name, 0), "returned": returned.get(name, 0),
             "started": started.get(name, 0)} for name in names]  # fmt: skip
    session.out.show(
        shown,
        table=rows,
        caption=f"{total} expired" if names else "nothing was due",
        raw=total,
    )


@commands.command()
@output_options
def delete(
    session: Session,
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when stdin is not a terminal).")] = False,
    dry_run: DryRun = False,
) -> None:
    """Delete a stream: all its items, gates, cool-downs, leases, dead items and counters.

    Asks first on a terminal, naming how many items go (waiting, delayed, held and dead); elsewhere refuses (exit
    status 2) unless --yes is given. --dry-run prints that count as "items". Exit status 3 when there is no
    such stream.

    Example: psctl delete jobs --dry-run
    Example: psctl delete jobs --yes
    """
    if not yes and not dry_run and not terminal.stdin_is_terminal():
        raise BadUsage(f"not deleting {name!r}: stdin is not a terminal to confirm on; add --yes")
    client = session.client()
    if not client.psexists(name):
        raise NotFound(f"no stream {name!r}{did_you_mean(client, name)}")
    if dry_run:
        session.out.show({"deleted": True, "items": _every_item(client, name), "dry_run": True}, raw=True)
        return
    if not yes and not ask(f"Delete stream {name!r} and its {_every_item(client, name)} items?"):
        raise BadUsage(f"not deleted: {name!r} is unchanged")
    deleted = bool(client.psdelete(name))
    session.out.show({"deleted": deleted}, raw=deleted)


def _every_item(client: Any, name: str) -> int:
    """How many items a stream holds in every state: what delete takes."""
    stats = client.psstats(name)
    return stats["waiting"] + stats["delayed"] + stats["held"] + stats["dead"]
