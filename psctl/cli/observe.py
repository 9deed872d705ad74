"""The commands that observe many streams: ``stats`` (and ``stats
--watch``), ``metrics`` (stdout, ``--textfile``, ``--serve``)."""

import signal
import sys
import time
from datetime import timedelta
from typing import Annotated, Any

import typer

from psctl.cli.durations import duration_option
from psctl.cli.fields import iso, plain, text_field
from psctl.cli.flow import limits_summary
from psctl.cli.options import complete_names, output_options
from psctl.cli.session import Session, pass_session
from psctl.cli.status import BadUsage, CliError
from psctl.cli.terminal import one_line
from psctl.wording import counted

commands = typer.Typer()


def _complete_more_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Stream names for one more NAME: the registered ones not given yet."""
    given = set(ctx.params.get("names") or ())
    return [name for name in complete_names(ctx, incomplete) if name not in given]


Names = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[NAME...]", help="Streams (default: every registered stream).", show_default=False,
        autocompletion=_complete_more_names,
    ),
]  # fmt: skip
WATCH_INTERVAL = timedelta(seconds=2)
# the counters the live table shows as rates
RATES = ("added", "pulled", "leased", "acked", "released", "dead")
# the columns of the tables beside the stream's name, those a narrow terminal keeps first
TABLE_PRIORITY = (
    "waiting", "held", "dead", "top", "limits", "delayed", "gated", "cooling", "overdue", "next end",
)  # fmt: skip
LIVE_PRIORITY = (
    "waiting", "held", "dead", "top", "limits", "added/s", "pulled/s", "leased/s", "acked/s", "delayed", "overdue", "cooling",
    "released/s", "dead/s",
)  # fmt: skip


def stats_json(stats: dict[str, Any]) -> dict[str, Any]:
    """A stream's stats as ``stats`` prints them: times in ISO 8601 (UTC), durations in seconds."""
    shown = text_field("name", stats["name"])
    for field, value in stats.items():
        if field != "name":
            shown[field] = plain(value)
    return shown


def _row(stats: dict[str, Any]) -> dict[str, Any]:
    next_end = stats["next_cool_down_end"]
    return text_field("stream", stats["name"]) | {
        "waiting": stats["waiting"], "delayed": stats["delayed"], "held": stats["held"], "overdue": stats["overdue"],
        "gated": stats["gated"],
        "cooling": stats["cooling"], "dead": stats["dead"], "top": stats["top_score"],
        "limits": limits_summary(stats) or None,
        "next end": None if next_end is None else _after(next_end - stats["server_time"]),
    }  # fmt: skip


def _after(left: timedelta) -> str:
    """A wait as a person reads it: ``23h 59m``; ``due`` when it is over."""
    seconds = int(left.total_seconds())
    if seconds <= 0:
        return "due"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown)


def _read(client: Any, names: list[str] | None) -> tuple[list[dict[str, Any]], Any]:
    """The stats, and the ``StreamsFailed`` of the streams that could not be read (or None)."""
    from psctl.errors import StreamsFailed

    try:
        return client.psstatsmany(names), None
    except StreamsFailed as partial:  # the others are shown, then the failed ones named
        return list(partial.done.values()), partial


@commands.command()
@output_options(raw=False)
def stats(
    session: Session,
    names: Names = None,
    watch: Annotated[
        timedelta | None,
        duration_option(
            "--watch", metavar="[INTERVAL]",
            help="Keep watching: a live table with rates per second (JSON lines when piped), every INTERVAL "
            "(default 2s), until Ctrl-C.",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Show each stream's state: waiting, delayed, held (and overdue), gated, cooling, dead; scores; limits; counters.

    One row per stream (every registered stream when no NAME is given), read in one round trip per server,
    by the server's clock: overdue counts held items whose lease ran out (never delayed ones), cooling the
    cool-downs still to end; limits the flow control (paused, the rate with the tokens left, max held: see
    limit). JSON gives every field and the counters. --watch keeps a live table with rates
    per second computed from the counters, or writes one JSON line per stream per interval when stdout is
    not a terminal.

    Example: psctl stats
    Example: psctl stats jobs mail --json
    Example: psctl stats --watch 5s
    """
    if watch is not None and session.quiet:
        raise BadUsage("--watch and -q cannot be used together: watching is printing")
    client = session.client()
    chosen = names or None
    if watch is None:
        found, failed = _read(client, chosen)
        data = [stats_json(s) for s in found]
        rows, caption = [_row(s) for s in found], None if found else "(no streams)"
        if found and session.out.table:
            from psctl.cli.tables import table_width

            rows, caption = _fitted(rows, TABLE_PRIORITY, table_width())
        session.out.show(data, table=rows, caption=caption, csv=data)
        _hint_mistyped(client, found, session.quiet)
        if failed is not None:
            raise failed  # (exit 1, naming each stream that failed)
        return
    interval = watch.total_seconds() or WATCH_INTERVAL.total_seconds()
    if interval < 0.1:
        raise BadUsage("--watch: the interval must be at least 0.1s")
    if chosen:  # (said once, before the live table takes the screen)
        _hint_mistyped(client, _read(client, chosen)[0])
    _watch(client, chosen, interval, live=session.out.table)


def _hint_mistyped(client: Any, found: list[dict[str, Any]], quiet: bool = False) -> None:
    """The 'did you mean' hint for each named stream that shows nothing at all
    (no item in any state, no counter): one read of the registry, only then."""
    from psctl.cli.hints import hint_unknown_streams

    empty = [
        s["name"] for s in found
        if not any(v for v in s.values() if type(v) is int) and not any(s["counters"].values())
    ]  # fmt: skip
    hint_unknown_streams(client, empty, quiet)


def _rates(before: dict[str, Any] | None, now: dict[str, Any]) -> dict[str, float] | None:
    if before is None:
        return None
    seconds = (now["server_time"] - before["server_time"]).total_seconds()
    if seconds <= 0:
        return None
    return {
        counter: max(now["counters"][counter] - before["counters"][counter], 0) / seconds
        for counter in now["counters"]
    }


class _Stopped(Exception):
    pass


def _watch(client: Any, names: list[str] | None, interval: float, *, live: bool) -> None:
    """Reads the stats every ``interval`` seconds until SIGINT or SIGTERM (exit 0)."""

    def stop(signum: int, frame: Any) -> None:
        raise _Stopped()

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    last: dict[str, dict[str, Any]] = {}
    try:
        if live:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=sys.stdout, markup=False, emoji=False, highlight=False)
            with Live(console=console, auto_refresh=False) as screen:
                while True:
                    found, failed = _read(client, names)
                    _complain(failed)
                    screen.update(_live_table(found, last, interval, console.width), refresh=True)
                    last = {s["name"]: s for s in found}
                    time.sleep(interval)
        else:
            while True:
                started = time.monotonic()
                found, failed = _read(client, names)
                _complain(failed)
                from psctl.cli.formats import json_text

                lines = [
                    json_text(stats_json(s) | {"rates": _rates(last.get(s["name"]), s)}) for s in found
                ]
                if lines:
                    _write_lines(lines)
                last = {s["name"]: s for s in found}
                time.sleep(max(interval - (time.monotonic() - started), 0))
    except _Stopped:
        return
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _complain(failed: Any) -> None:
    """While watching: a line on stderr for each stream that could not be read, and on."""
    if failed is not None:
        for name, error in failed.failed.items():
            line = one_line(f"stream {name!r}: {error}")
            sys.stderr.write(f"psctl: {line}\n")
        sys.stderr.flush()


def _write_lines(lines: list[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _fitted(rows: list[dict[str, Any]], priority: tuple[str, ...], width: int) -> tuple[list[Any], str | None]:
    """The rows with the columns that fit, and a caption naming the others."""
    from psctl.cli.tables import fitted

    rows, left_out = fitted(rows, priority, width)
    return rows, f"left out, too narrow: {', '.join(left_out)} (--json shows all)" if left_out else None


def _live_table(found: list[dict[str, Any]], last: dict[str, dict[str, Any]], interval: float, width: int) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from rich.cells import cell_len

    from psctl.cli.tables import NAME_WIDTH, fitted, row_text

    rows = []
    for s in found:
        per_second = _rates(last.get(s["name"]), s)
        row = text_field("stream", s["name"]) | {
            state: s[state] for state in ("waiting", "delayed", "held", "overdue", "cooling")
        }
        row |= {"dead": s["dead"], "top": s["top_score"], "limits": limits_summary(s) or None}
        row |= {f"{c}/s": "-" if per_second is None else _rate(per_second[c]) for c in RATES}
        rows.append(row)
    rows, left_out = fitted(rows, LIVE_PRIORITY, width) if rows else ([{"stream": "(no streams)"}], [])
    moment = iso(found[0]["server_time"]) if found else ""
    note = f" · {counted(len(left_out), 'column')} left out (too narrow)" if left_out else ""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  caption=f"every {interval:g} s · {moment}{note} · Ctrl-C to stop")  # fmt: skip
    name, *others = dict.fromkeys(field.removesuffix("_base64") for field in rows[0])
    longest = max(cell_len(row_text(row, name)) for row in rows)
    table.add_column(name, overflow="fold", width=max(min(longest, NAME_WIDTH, width), len(name)))
    for heading in others:
        table.add_column(heading, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(row_text(row, heading)) for heading in (name, *others)))
    return table


def _rate(per_second: float) -> str:
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.1f}"


@commands.command()
@pass_session
def metrics(
    session: Session,
    names: Names = None,
    textfile: Annotated[
        str | None,
        typer.Option(
            "--textfile", metavar="PATH", show_default=False,
            help="Write the metrics to PATH (for node_exporter's textfile collector: end it in .prom), "
            "atomically, instead of printing them.",
        ),
    ] = None,
    serve: Annotated[
        str | None,
        typer.Option(
            "--serve", metavar="[HOST:]PORT", show_default=False,
            help="Serve /metrics over HTTP on HOST (default 127.0.0.1) and PORT until Ctrl-C or SIGTERM; each "
            "scrape reads the streams afresh.",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Print the streams' metrics in the Prometheus text format (gauges by state, counters by event).

    psctl_up, psctl_stream_items{stream,state}, psctl_items_total{stream,event}, psctl_top_score,
    psctl_bottom_score, psctl_next_cool_down_end_timestamp_seconds, psctl_next_delayed_due_timestamp_seconds,
    psctl_stream_failed. Exit status 1
    when the server cannot be reached (--textfile still writes psctl_up 0).

    Example: psctl metrics
    Example: psctl metrics --textfile /var/lib/prometheus/node-exporter/psctl.prom   (from cron)
    Example: psctl metrics --serve 127.0.0.1:9808
    """
    if textfile and serve:
        raise BadUsage("--textfile and --serve cannot be used together")
    address = _address(serve) if serve else None
    from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile

    from psctl.metrics import SERVER_DOWN, StreamsCollector

    try:
        client = session.client()
    except SERVER_DOWN:  # (a cluster none of whose nodes answers): psctl_up 0, and tried again at each collection
        client = None
    collector = StreamsCollector(client, names or None, connect=session.client)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if address is not None:
        _serve(registry, address)
        return
    if textfile:
        try:
            write_to_textfile(textfile, registry)
        except OSError as exc:
            raise CliError(f"cannot write {textfile}: {exc.strerror or exc}") from None
    elif not session.quiet:
        text = generate_latest(registry)
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
    if names and collector.client is not None:
        _hint_mistyped(collector.client, collector.found, session.quiet)
    if collector.error is not None:
        raise collector.error


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BadUsage(f"--serve {text!r}: give [HOST:]PORT, e.g. 127.0.0.1:9808")
    return host, int(port)


def _serve(registry: Any, address: tuple[str, int]) -> None:
    from psctl.metrics import MetricsServer

    host, port = address
    try:
        server = MetricsServer(registry, host, port)
    except OSError as exc:
        raise CliError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"psctl: serving metrics on http://{shown}:{port}/metrics; Ctrl-C to stop\n")
    sys.stderr.flush()

    def stop(signum: int, frame: Any) -> None:
        server.stop()

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
