"""The commands of flow control: ``pause``, ``resume`` and
``limit``; and how a stream's limits read in a table, for them and for
``stats``. The limits are enforced inside the scripts (``lua/includes/flow.lua``);
these commands only set and show them, through the library.

A limit's fields are shown as the library's ``Limits`` has them, whatever
they are: one more field there is one more row here.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import typer

from psctl.cli.durations import duration_option, shown_duration
from psctl.cli.fields import number, plain, text_field
from psctl.cli.options import Name, output_options
from psctl.cli.session import Session
from psctl.cli.status import BadUsage

commands = typer.Typer()

MAX_RATE = MAX_HELD = 10**9  # (psctl.flow's: the library checks them again)
_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*", re.ASCII)


@dataclass(frozen=True)
class Rate:
    """``--rate N/DURATION``: ``count`` items per ``per``."""

    count: float
    per: timedelta


def rate_parameter(text: str) -> Rate:
    """``N/DURATION`` (``50/s``, ``100/1m``, ``3/2h``, ``0.5/s``) as a ``Rate``,
    as a Typer ``parser``: a DURATION that is a unit alone means one of it."""
    from psctl.durations import UNITS, parse_duration

    count, slash, period = text.partition("/")
    found = _NUMBER.fullmatch(count)
    if not slash or found is None or not period.strip():
        raise typer.BadParameter(f"{text!r} is not a rate: give N/DURATION, e.g. 50/s, 100/1m, 3/2h, 0.5/s")
    items = float(found[1])
    if not 0 < items <= MAX_RATE:
        raise typer.BadParameter(f"{text!r}: N must be above 0 and at most {MAX_RATE:,}")
    period = period.strip()
    try:
        per = parse_duration("1" + period if period.lower() in UNITS else period)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}") from None
    if per < timedelta(milliseconds=1):
        raise typer.BadParameter(f"{text!r}: the DURATION must be at least 0.001s (1 ms)")
    return Rate(items, per)


def rate_text(rate: float, per: timedelta) -> str:
    """A rate as ``--rate`` takes it: ``50/s``, ``100/m``, ``3/2h``, ``0.5/90s``."""
    period = shown_duration(per)
    return f"{number(rate)}/{period[1:] if re.fullmatch(r'1[a-z]', period) else period}"


def limit_fields() -> tuple[str, ...]:
    """The fields of a stream's limits, as the library's ``Limits`` has them."""
    from psctl.types import Limits

    return tuple(Limits.__annotations__)


def limits_json(name: str, limits: Mapping[str, Any]) -> dict[str, Any]:
    """A stream's limits as ``limit`` prints them: each field of ``Limits``
    (durations in seconds), and ``tokens`` when ``limits`` has them."""
    fields = (*limit_fields(), "tokens") if "tokens" in limits else limit_fields()
    return text_field("name", name) | {field: plain(limits[field]) for field in fields}


def _cell(field: str, value: Any) -> Any:
    """A field of the limits in a field/value table: durations as DURATION
    (``1s``), tokens whole or to a tenth, the rest as tables show them."""
    if isinstance(value, timedelta):
        return shown_duration(value)
    if field == "tokens" and value is not None:
        return f"{math.floor(value * 10) / 10:g}"
    return value


def limits_summary(stats: Mapping[str, Any]) -> str:
    """A stream's flow control in a few words, for one cell of ``stats``:
    ``paused · 50/s (12 left) · max 4 held``; empty with none."""
    parts = ["paused"] if stats["paused"] else []
    if stats["rate"] is not None:
        tokens = stats.get("tokens")
        left = "" if tokens is None else f" ({math.floor(tokens)} left)"
        parts.append(rate_text(stats["rate"], stats["per"]) + left)
    if stats["max_held"] is not None:
        parts.append(f"max {stats['max_held']} held")
    if stats.get("aging") is not None:
        parts.append(f"aging +1 per {shown_duration(stats['aging'])}")
    return " · ".join(parts)


def _hint(session: Session, client: Any, name: str) -> None:
    from psctl.cli.hints import hint_unknown_stream

    hint_unknown_stream(client, name, session.quiet)


@commands.command()
@output_options
def pause(session: Session, name: Name) -> None:
    """Pause a stream: pulls and leases hand nothing out until resume, for every client; waiting ones wait.

    Adds, acknowledgements and releases go on. Kept in the stream's own keys (NAME:limits), so a pause
    holds for every worker and survives a restart; it outlives the items, and limit --clear keeps it.
    Prints whether it changed anything ("changed": false when it was paused already); -o raw prints
    true or false.

    Example: psctl pause jobs
    Example: psctl pause jobs -q   (from cron: 0 9 * * 1-5)
    """
    client = session.client()
    changed = client.pspause(name)
    _hint(session, client, name)
    session.out.show(text_field("name", name) | {"paused": True, "changed": changed}, raw=changed)


@commands.command()
@output_options
def resume(session: Session, name: Name) -> None:
    """Resume a paused stream: pulls and leases hand items out again, and waiting ones wake at once.

    Prints whether it changed anything ("changed": false when it was not paused); -o raw prints true or
    false. Its rate limit and max held, if any, stay as they are.

    Example: psctl resume jobs
    """
    changed = session.client().psresume(name)
    session.out.show(text_field("name", name) | {"paused": False, "changed": changed}, raw=changed)


@commands.command()
@output_options(raw=False)
def limit(
    session: Session,
    name: Name,
    rate: Annotated[
        Rate | None,
        typer.Option(
            "--rate", metavar="N/DURATION", parser=rate_parameter, show_default=False,
            help="Hand out at most N items per DURATION, by a token bucket on the server's clock: 50/s, "
            "100/1m, 3/2h, 0.5/s.",
        ),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(
            "--burst", metavar="N", min=1, max=MAX_RATE, show_default=False,
            help="The most items handed out at once after a quiet spell (with --rate; default N of --rate, "
            "rounded up).",
        ),
    ] = None,
    max_held: Annotated[
        int | None,
        typer.Option(
            "--max-held", metavar="N", min=1, max=MAX_HELD, show_default=False,
            help="At most N items held by leases at once, across every worker and client.",
        ),
    ] = None,
    aging: Annotated[
        timedelta | None,
        duration_option(
            "--aging", help="A waiting item gains one point of priority per DURATION waited, so none starves "
            "behind newer urgent items (scores shown are effective: score + points gained). At least 0.001 (1 ms).",
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the rate limit, max held and aging (a pause stays).")
    ] = False,
) -> None:  # fmt: skip
    """Show a stream's limits, or set them: a rate limit, a cap on the items held by leases at once, aging.

    With no option it shows them: paused, rate (items per "per" seconds), burst, max_held, aging
    (seconds a point) and the tokens left in the bucket now. With options it sets the limits to exactly
    those given: an option left out is no limit (as from a config file: running the same line again,
    from cron say, changes nothing and keeps the bucket's tokens), and it prints them all, so what was
    cleared shows as null. --clear removes them all (the points aging gave so far stay in the scores). A
    pause is never changed here: see pause and resume. Enforced inside the scripts, for every client at
    once: a pull or lease gets at most the tokens left, and waiting ones wait for the next token or for
    a held item to leave.

    Example: psctl limit jobs
    Example: psctl limit scraper --rate 50/s
    Example: psctl limit jobs --rate 100/1m --burst 10 --max-held 4
    Example: psctl limit crawl --aging 1m   (+1 point of priority per minute waited)
    Example: psctl limit jobs --clear
    """
    options = (("--rate", rate), ("--burst", burst), ("--max-held", max_held), ("--aging", aging))
    given = [option for option, value in options if value is not None]
    if clear and given:
        raise BadUsage(f"--clear removes every limit: give it alone, not with {', '.join(given)}")
    if burst is not None and rate is None:
        raise BadUsage("--burst applies to a rate limit: give --rate N/DURATION too")
    client = session.client()
    if not given and not clear:
        _show(session, name, client.psstats(name), caption=None)
        return
    limits = client.pslimit(
        name, rate=None if rate is None else rate.count, per=timedelta(seconds=1) if rate is None else rate.per,
        burst=burst, max_held=max_held, aging=aging,
    )  # fmt: skip
    _hint(session, client, name)
    _show(session, name, limits, caption="set: a limit not given is none (null); a pause is kept")


def _show(session: Session, name: str, limits: Mapping[str, Any], caption: str | None) -> None:
    shown = limits_json(name, limits)
    table = {field: _cell(field, limits[field]) for field in shown if field in limits}
    session.out.show(shown, table=text_field("name", name) | table, vertical=True, caption=caption, csv=shown)
