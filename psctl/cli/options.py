"""Arguments and options that many commands share, declared once.

``output_options`` is sqlite-utils' idea: the options that choose the output
are added to a command by one decorator, which decides the output once,
before the command runs, and hands it to the command in its session
(``session.out``); a command's body never decides its format itself.

The annotations are plain objects (no ``from __future__ import annotations``),
so that Typer need not evaluate them from text at every start.
"""

import functools
import inspect
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer

from psctl import defaults
from psctl.cli.durations import duration_option
from psctl.cli.status import BadUsage
from psctl.cli.formats import FORMAT_HELP, Format, instead_of_raw
from psctl.cli.output import TERMINAL_ROWS, Output
from psctl.cli.global_options import GlobalOptions
from psctl.cli.session import passing_session

DEFAULT_COOL_DOWN = defaults.COOL_DOWN


def complete_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Stream names starting with ``incomplete``, from the server the command
    would use (a profile's too): at most half a second (or the ``--timeout``
    given), and never starting the embedded server."""
    try:
        client = _completion_client(ctx)
        if client is None:
            return []
        try:
            names = client.psnames()
        finally:
            client.close()
    except Exception:  # a TAB must never print an error into the command line
        return []
    return [name for name in names if name.startswith(incomplete)]


NAMES_TIMEOUT = 0.5  # seconds a TAB may wait for the server


def _completion_client(ctx: typer.Context) -> Any:
    from psctl.cli import connection, profiles
    from psctl.settings import Settings

    params = ctx.find_root().params
    given = params.get("timeout")  # (--timeout or PSCTL_TIMEOUT: a slow link's user asks for more)
    chosen = profiles.choose(GlobalOptions(params.get("url"), params.get("cluster"), tls_ca=params.get("tls_ca"),
                                           profile=params.get("profile")))  # fmt: skip
    if connection.explicit(chosen.url, chosen.env):
        target = chosen.target()
    else:  # the embedded server, only when it already runs
        running = connection.embedded_module().running_url()
        if running is None:
            return None
        target = connection.Target(Settings.resolve({}, url=running), embedded=True)
    return connection.connect(target, timeout=given.total_seconds() if given else NAMES_TIMEOUT)


def _stream_name(name: str) -> str:
    if not name:
        raise typer.BadParameter("a stream name must not be empty")
    return name


Name = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="The stream's name.", callback=_stream_name, autocompletion=complete_names,
        show_default=False,
    ),
]  # fmt: skip
# ``psctl work``'s: the first stream (the others come with the command's words: ``group.StreamsThenCommand``)
Streams = Annotated[
    str,
    typer.Argument(
        metavar="NAME...", callback=_stream_name, autocompletion=complete_names, show_default=False,
        help="The stream, or several before --, taken from in turn by weight: NAME:N takes N items for every one "
        "of a NAME alone (N from 1 to 1000); a name that itself ends in :digits is given with its weight (jobs:2:1).",
    ),
]  # fmt: skip


def _item_key(key: str) -> str:
    if not key:  # (as add-many refuses one: a key is never empty on the command line)
        raise typer.BadParameter("an item key must not be empty")
    return key


Key = Annotated[
    str, typer.Argument(metavar="KEY", help="The item's key.", callback=_item_key, show_default=False)
]
Limit = Annotated[
    int | None,
    typer.Option(
        "--limit", "-n", metavar="N", min=0, show_default=False,
        help=f"At most N items, highest score first (on a terminal {TERMINAL_ROWS} unless given; JSON: all).",
    ),
]  # fmt: skip
Gate = Annotated[bool, typer.Option("--gate", help="Gate the keys: refused by add until --readd.")]
ExpireIn = Annotated[
    timedelta | None,
    duration_option(
        "--expire-in",
        help="Cool-down before the keys may be added again: 90, 90s, 15m, 2h, 1d (default 1d).",
    ),
]  # fmt: skip
NoExpire = Annotated[bool, typer.Option("--no-expire", help="No cool-down.")]
# pull's and lease's (``group.BareWait``: --wait alone waits for ever)
Wait = Annotated[
    timedelta | None,
    duration_option(
        "--wait", "-w", metavar="[DURATION]",
        help="When the stream is empty, wait up to DURATION (90, 90s, 15m, 2h) for an item; alone (or 0), for ever.",
    ),
]  # fmt: skip

# Commands taking a number as an argument let "-5" through as one (not an option)
NUMBER_ARGUMENTS = {"ignore_unknown_options": True}


def cool_down(expire_in: timedelta | None, no_expire: bool) -> timedelta | None:
    """The cool-down that --expire-in / --no-expire ask for (default a day)."""
    if expire_in is not None and no_expire:
        raise BadUsage("--expire-in and --no-expire cannot be used together")
    return None if no_expire else expire_in if expire_in is not None else DEFAULT_COOL_DOWN


def finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise BadUsage(f"{what} must be a finite number, got {value}")
    return value


def argv_bytes(text: str) -> bytes:
    """A command-line argument as the bytes the shell passed (not UTF-8 ones too)."""
    return text.encode("utf-8", "surrogateescape")


# -- the output options -------------------------------------------------------------

AsJson = Annotated[
    bool,
    typer.Option("--json", help="Print JSON (the default when stdout is not a terminal).", rich_help_panel="Output"),
]
AsTable = Annotated[
    bool, typer.Option("--table", help="Print a table (the default on a terminal).", rich_help_panel="Output")
]
OutputFormat = Annotated[
    Format | None,
    typer.Option("--output", "-o", help=FORMAT_HELP, rich_help_panel="Output", show_default=False),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing when it succeeds (errors still go to stderr).",
                       rich_help_panel="Output"),
]  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def output_options(command: F | None = None, *, raw: bool = True) -> Any:
    """Adds --json, --table, -o/--output and -q/--quiet to ``command`` (which
    takes its ``session`` first: ``session.pass_session``), decides the output
    from them and the same options given before the command (two that
    disagree are bad usage) once, before the command runs (bad usage before
    any I/O): ``session.out``. ``raw=False`` (``@output_options(raw=False)``):
    the command has no raw form, and ``-o raw`` is refused before it runs."""
    if command is None:
        return functools.partial(output_options, raw=raw)

    def decide(ctx: typer.Context, options: GlobalOptions, as_json: bool = False, as_table: bool = False,
               output_format: Any = None, quiet: bool = False) -> tuple[Output, bool]:  # fmt: skip
        quiet = quiet or options.quiet  # (before the client is made: no notice either)
        formats = {getattr(f, "value", f) for f in (output_format, options.format) if f is not None}
        if len(formats) > 1:
            raise BadUsage(f"-o given twice, for different outputs ({', '.join(sorted(formats))}): give one")
        out = Output.choose(as_json or options.as_json, as_table or options.as_table, next(iter(formats), None), quiet)
        if not raw and out.format == "raw":
            raise BadUsage(f"psctl {ctx.info_name} has no raw output: {instead_of_raw()}")
        return out, quiet

    return passing_session(command, OUTPUT_PARAMETERS, decide)


OUTPUT_PARAMETERS = [
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=AsJson),
    inspect.Parameter("as_table", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=AsTable),
    inspect.Parameter("output_format", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=OutputFormat),
    inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Quiet),
]


# -- safety: --dry-run and --yes ------------------------------------------------------

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print what would change (with \"dry_run\": true) and change nothing.")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first (on a terminal it asks).")]


def confirm(question: str) -> None:
    """Asks ``question [y/N]`` on stderr and reads the answer from stdin (stdout
    stays clean for the output); anything but y (or yes) declines: ``nothing
    changed`` on stderr, exit status 0, as ``rm -i`` does when told no."""
    import sys

    try:  # (the prompt too: a Ctrl-C as soon as it shows must not slip past)
        sys.stderr.write(f"{question} [y/N]: ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
    except KeyboardInterrupt:  # Ctrl-C at the prompt: nothing changed, exit status 130
        from psctl.cli.status import INTERRUPTED

        sys.stderr.write("\npsctl: interrupted: nothing changed\n")
        raise typer.Exit(INTERRUPTED) from None
    if not answer:  # Ctrl-D
        sys.stderr.write("\n")
    if answer.strip().lower() not in ("y", "yes"):
        sys.stderr.write("psctl: nothing changed\n")
        raise typer.Exit(0)
