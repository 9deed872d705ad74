"""The commands that change a stream's items in place or remove them:
``incr``, ``decr-all``, ``lift``, ``prune``, ``remove``, ``expire`` and
``delete``. Those that remove items take ``--dry-run`` and ask on a terminal
unless ``--yes``; they never ask when stdin is not a terminal (cron, pipes).
"""

from typing import Annotated, Any

import typer

from psctl.cli import terminal
from psctl.cli.fields import number, text_field
from psctl.cli.options import NUMBER_ARGUMENTS, DryRun, Gate, Key, Name, Yes, confirm, finite, output_options
from psctl.cli.session import Session
from psctl.cli.status import BadUsage, NotFound
from psctl.wording import counted

commands = typer.Typer()


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
    gate: Gate = False,
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
            if count:
                confirm(f"Remove {counted(count, 'item')} scored below {number(below)} from {name!r}?")
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
            if there:
                confirm(f"Remove {counted(there, 'item')} from {name!r}?")
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
    yes: Yes = False,
    dry_run: DryRun = False,
) -> None:
    """Delete a stream: all its items, gates, cool-downs, leases, dead items and counters.

    Asks first on a terminal, naming how many items go (waiting, delayed, held and dead); elsewhere refuses (exit
    status 2) unless --yes is given. --dry-run prints that count as "items". Exit status 3 when there is no
    such stream.

    Example: psctl delete jobs --dry-run
    Example: psctl delete jobs --yes
    """
    from psctl.cli.hints import did_you_mean

    if not yes and not dry_run and not terminal.stdin_is_terminal():
        raise BadUsage(f"not deleting {name!r}: stdin is not a terminal to confirm on; add --yes")
    client = session.client()
    if not client.psexists(name):
        raise NotFound(f"no stream {name!r}{did_you_mean(client, name)}")
    if dry_run:
        session.out.show({"deleted": True, "items": _every_item(client, name), "dry_run": True}, raw=True)
        return
    if not yes:
        confirm(f"Delete stream {name!r} and its {counted(_every_item(client, name), 'item')}?")
    deleted = bool(client.psdelete(name))
    session.out.show({"deleted": deleted}, raw=deleted)


def _every_item(client: Any, name: str) -> int:
    """How many items a stream holds in every state: what delete takes."""
    stats = client.psstats(name)
    return stats["waiting"] + stats["delayed"] + stats["held"] + stats["dead"]


@commands.command()
@output_options
def lift(
    session: Session,
    name: Name,
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="The keys.", show_default=False)],
    dry_run: DryRun = False,
) -> None:
    """End the gates and cool-downs of keys, without adding anything: add takes them again at once.

    Prints how many of the keys had a gate or a cool-down, each counted once however often named.

    Example: psctl lift jobs job-1 job-2
    Example: psctl lift jobs job-1 --dry-run
    """
    lifted = session.client().pslift(name, keys, dry_run=dry_run)
    session.out.show({"lifted": lifted} | _dry(dry_run), raw=lifted)
