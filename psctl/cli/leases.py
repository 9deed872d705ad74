"""The commands of leases: lease items, then acknowledge, release or
extend them by the lease's token; see and requeue the dead ones."""

from datetime import timedelta
from typing import Annotated

import typer

from psctl.cli.durations import duration_option
from psctl.cli.group import BareWait
from psctl.cli.options import (
    DryRun,
    ExpireIn,
    Gate,
    Name,
    NoExpire,
    Wait,
    argv_bytes,
    cool_down,
    finite,
    output_options,
)
from psctl.cli.fields import iso, text_field
from psctl.cli.session import Session
from psctl.cli.status import NotFound
from psctl.cli.taking import taking

commands = typer.Typer()

Token = Annotated[str, typer.Argument(metavar="TOKEN", help="The lease's token.", show_default=False)]
Keys = Annotated[
    list[str] | None,
    typer.Argument(metavar="[KEY...]", help="Some of its items (default: all it holds).", show_default=False),
]
For = Annotated[
    timedelta,
    duration_option("--for", help="How long the lease holds the items: 90s, 15m, 2h, 1h30m (by the server's clock)."),
]  # fmt: skip


@commands.command(cls=BareWait)
@output_options(raw=False)
def lease(
    session: Session,
    name: Name,
    count: Annotated[
        int, typer.Option("--count", "-n", metavar="N", min=1, max=1000, help="Lease up to N items (at most 1000).")
    ] = 1,
    length: Annotated[
        timedelta | None,
        duration_option("--for", help="How long the lease holds them: 90s, 15m, 2h (default 5m, by the server's clock)."),
    ] = None,
    max_deliveries: Annotated[
        int | None,
        typer.Option(
            "--max-deliveries", metavar="N", min=1, show_default=False,
            help="An item leased N times goes to the dead items when this lease runs out or is released.",
        ),
    ] = None,
    wait: Wait = None,
) -> None:  # fmt: skip
    """Lease the highest-scored items: hold them under a token until the lease runs out.

    A held item is in no one's pull; acknowledge it with ack (it leaves the stream), give it back with
    release, or extend the lease. An item not acknowledged in time comes back by itself, with its score.
    Prints the token, the deadline (UTC) and the items; an empty items list when nothing was waiting.

    Example: psctl lease jobs --count 10 --for 15m
    Example: psctl lease jobs --wait --max-deliveries 5   (a worker: waits until there is work)
    """
    client = session.client(waiting=wait is not None)
    from psctl.leases import DEFAULT_LEASE

    block = None if wait is None else wait.total_seconds()
    held_for = DEFAULT_LEASE if length is None else length
    with taking(lambda stop: client.pslease(name, count=count, lease=held_for, max_deliveries=max_deliveries,
                                            block=block, stop=stop)) as held:  # fmt: skip
        items = [
            text_field("key", key) | text_field("value", value)
            | {"score": held.scores[key], "deliveries": held.deliveries[key]}
            for key, value in held.items.items()
        ]  # fmt: skip
        token = held.token if held else None
        caption = f"token {token}, held until {iso(held.deadline)}" if held else "nothing to lease"
        session.out.show({"token": token, "deadline": iso(held.deadline), "items": items}, table=items, caption=caption)


@commands.command()
@output_options
def ack(
    session: Session,
    name: Name,
    token: Token,
    keys: Keys = None,
    gate: Gate = False,
    expire_in: ExpireIn = None,
    no_expire: NoExpire = False,
) -> None:
    """Acknowledge leased items: they leave the stream, gated and cooled down as a pull's would be.

    Items the token no longer holds (its lease ran out, or they were acknowledged) are skipped: running it
    twice is harmless. Prints how many were acknowledged.

    Example: psctl ack jobs TOKEN
    Example: psctl ack jobs TOKEN job-1 job-2 --expire-in 2h
    """
    expire_at = cool_down(expire_in, no_expire)
    acked = session.client().psack(name, token, keys or None, gate=gate, expire_at=expire_at)
    session.out.show({"acked": acked}, raw=acked)


@commands.command()
@output_options
def release(
    session: Session,
    name: Name,
    token: Token,
    keys: Keys = None,
    score: Annotated[
        float | None,
        typer.Option("--score", "-s", metavar="S", help="Come back with score S (default: the one they had).",
                     show_default=False),
    ] = None,
    delay: Annotated[
        timedelta | None,
        duration_option("--delay", help="Come back only once DURATION has passed (delayed until then)."),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", metavar="TEXT", show_default=False,
                     help="Why they failed: kept with each item (up to 2 KiB), shown by dead, item, keys --state."),
    ] = None,
) -> None:  # fmt: skip
    """Give leased items back to the stream, at once or after a delay; say why with --reason.

    An item that has had its lease's --max-deliveries goes to the dead items instead. Each keeps this as its
    last failure: the reason, the time and the delivery. Prints how many the token gave back.

    Example: psctl release jobs TOKEN
    Example: psctl release jobs TOKEN job-1 --delay 10m --reason 'the mail server refused it'
    """
    if score is not None:
        finite(score, "--score")
    released = session.client().psrelease(
        name, token, keys or None, score=score, delay=delay, reason=None if reason is None else argv_bytes(reason)
    )
    session.out.show({"released": released}, raw=released)


@commands.command()
@output_options
def extend(session: Session, name: Name, token: Token, length: For) -> None:
    """Move a lease's deadline to DURATION from now; exit status 3 when it holds nothing any more.

    Example: psctl extend jobs TOKEN --for 10m
    Example: psctl extend jobs "$token" --for 1h -q || echo 'the lease ran out'
    """
    deadline = session.client().psextend(name, token, length)
    if deadline is None:
        raise NotFound(f"lease {token!r} of stream {name!r} holds nothing (it ran out, or its items are done)")
    session.out.show({"deadline": iso(deadline)}, raw=iso(deadline))


@commands.command()
@output_options
def dead(
    session: Session,
    name: Name,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", metavar="N", min=0, help="At most N items, highest last score first.", show_default=False),
    ] = None,
) -> None:
    """List the dead items: those leased --max-deliveries times without being acknowledged, and why.

    Each with its deliveries, the reason its last delivery failed (what the worker said, a command's exit
    status and last stderr line, or "lease expired") and when (failed_at).

    Example: psctl dead jobs
    Example: psctl dead jobs -o raw --limit 1   (the value of the most urgent dead item)
    """
    found = session.client().psdead(name, limit=limit)
    rows = []
    for key, value in found.items():
        reason = found.reasons.get(key)
        rows.append(
            text_field("key", key) | text_field("value", value) | {"deliveries": found.deliveries[key]}
            | (text_field("reason", reason) if reason is not None else {"reason": None})
            | {"failed_at": iso(found.failed_at.get(key))}
        )  # fmt: skip
    session.out.show(rows, raw=list(found.values()))


@commands.command()
@output_options
def requeue(
    session: Session,
    name: Name,
    keys: Annotated[
        list[str] | None,
        typer.Argument(metavar="[KEY...]", help="Some dead items (default: all).", show_default=False),
    ] = None,
    score: Annotated[
        float | None,
        typer.Option("--score", "-s", metavar="S", help="Come back with score S (default: the last they had).",
                     show_default=False),
    ] = None,
    dry_run: DryRun = False,
) -> None:  # fmt: skip
    """Put dead items back in the stream, their deliveries reset.

    Example: psctl requeue jobs --dry-run
    Example: psctl requeue jobs
    Example: psctl requeue jobs job-7 --score 100
    """
    if score is not None:
        finite(score, "--score")
    client = session.client()
    if dry_run:
        dead = client.psdead(name)
        count = len(dead) if not keys else sum(key in dead for key in dict.fromkeys(keys))
        session.out.show({"requeued": count, "dry_run": True}, raw=count)
        return
    requeued = client.psrequeue(name, keys or None, score=score)
    session.out.show({"requeued": requeued}, raw=requeued)
