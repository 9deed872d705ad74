"""The ``psctl`` app: the global options and the commands, assembled.

The commands live in modules named for what they do to a stream
(``adding.py``, ``taking.py``, ``reading.py``, ``changing.py``, ``leases.py``,
``work.py``, ``flow.py``, ``observe.py``), ``server.py`` (the embedded server) and
``config.py`` (the settings; the config file: ``profiles.py``); this
module imports them and registers them, and none of them imports it. Each
command is built from its function only when it runs (``group.py``), and
modules that talk to a server are imported by the commands that need them, so
that ``--help``, ``--version`` and shell completion start without redis-py.
The annotations are plain objects (no ``from __future__ import
annotations``), so that Typer need not evaluate them from text at every start.
"""

import sys
from datetime import timedelta
from typing import Annotated

import typer

from psctl import __version__
from psctl.cli.profiles import profile_names, timeout_seconds
from psctl.cli.durations import duration_option
from psctl.cli.formats import FORMATS
from psctl.cli.options import AsJson, AsTable, OutputFormat, Quiet
from psctl.cli.status import INTERRUPTED
from psctl.cli.errors import fail, quiet_broken_pipe
from psctl.cli.group import check_output_options, given_by, lazy_group
from psctl.cli.global_options import GlobalOptions
from psctl.cli import adding, changing, flow, leases, observe, reading, taking, work
from psctl.cli.server import server_app
from psctl.cli.config import config_app

# The commands in the order --help lists them: the everyday ones first.
HELP_ORDER = (
    "add", "pull", "keys", "values", "dump", "get", "len", "names", "incr", "prune", "decr-all", "remove", "expire",
    "delete", "add-many", "lease", "ack", "release", "extend", "dead", "requeue", "work", "pause", "resume", "limit",
    "stats", "metrics", "item", "lift", "server", "config",
)  # fmt: skip

app = typer.Typer(
    name="psctl",
    cls=lazy_group(
        [module.commands for module in (adding, taking, reading, changing, leases, work, flow, observe)],
        [server_app, config_app], order=HELP_ORDER,
    ),
    help=(
        "Prioritized streams on Redis: add work, pull the most urgent first, from a shell, a pipe or cron.\n\n"
        f"Output is a table on a terminal and JSON otherwise; -o {'|'.join(FORMATS)} on any command chooses "
        "(--json and --table too), -q prints nothing on success. Global options may come before or after the "
        "command, but --timeout before work (after it, --time-limit is the command's own). Exit status: 0 ok, "
        "1 the server failed or could not be reached, 2 bad usage or input, 3 no such item or stream, 130 "
        "interrupted.\n\n"
        "Example: psctl add jobs job-1 'resize photo.jpg' --score 5 && psctl pull jobs\n"
        "Example: psctl len jobs -o raw\n"
        "Example: psctl --url redis://db:6379/0 values jobs -o ndjson | head"
    ),
    epilog="Manual: man psctl. One command in full: psctl COMMAND --help.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
            "--url", metavar="URL", show_default=False,
            help="The server: redis://, rediss:// or unix:// (default: $REDIS_URL, else $REDIS_HOST, "
            "else the profile's url, else the embedded server).",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", metavar="NAME", envvar="PSCTL_PROFILE", show_default=False, autocompletion=profile_names,
            help="Use the settings of profile NAME in the config file (psctl config path; default: the file's "
            "default section); flags and REDIS_* variables still win.",
        ),
    ] = None,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="The server is a Redis Cluster (env REDIS_CLUSTER=1).")
    ] = False,
    tls_ca: Annotated[
        str | None,
        typer.Option(
            "--tls-ca", metavar="FILE", show_default=False,
            help="CA certificate(s), PEM, to verify a rediss:// server with (env REDIS_SSL_CA_CERTS; "
            "default: the system's).",
        ),
    ] = None,
    timeout: Annotated[
        timedelta | None,
        duration_option(
            "--timeout", envvar="PSCTL_TIMEOUT",
            help="Longest wait for any reply from the server: 2, 2s, 0.5, 1m (default 10s; pull --wait "
            "allows a second more). Before work, not after it.",
        ),
    ] = None,
    wait_replicas: Annotated[
        int | None,
        typer.Option(
            "--wait-replicas", metavar="N", envvar="PSCTL_WAIT_REPLICAS", min=0, show_default=False,
            help="Every write returns only once N replicas have it (WAIT, for up to half the --timeout), else "
            "exits 1 saying it was done but not replicated: a failover then could undo it (work warns and goes "
            "on; default 0: no wait).",
        ),
    ] = None,
    no_embedded: Annotated[
        bool,
        typer.Option(
            "--no-embedded",
            help="Never use the embedded server: no server named is an error (env PSCTL_NO_EMBEDDED=1; for cron "
            "and services).",
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
    output_format: OutputFormat = None,
    as_json: AsJson = False,
    as_table: AsTable = False,
    quiet: Quiet = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:  # fmt: skip
    seconds = None if timeout is None else timeout_seconds(timeout.total_seconds(), "--timeout")
    ctx.obj = GlobalOptions(
        url=url, cluster=cluster or None, timeout=seconds, debug=debug, tls_ca=tls_ca,
        format=None if output_format is None else output_format.value, as_json=as_json, as_table=as_table,
        quiet=quiet, no_embedded=no_embedded, profile=profile, wait_replicas=wait_replicas,
        given={name: found for name in ("timeout", "profile", "wait_replicas") if (found := given_by(ctx, name))},
    )  # fmt: skip
    asked = [option for option, on in (("-o", output_format is not None), ("--json", as_json),
                                       ("--table", as_table)) if on]  # fmt: skip
    check_output_options(ctx, asked)


def main() -> None:
    """The ``psctl`` command."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("psctl: interrupted\n")
        raise SystemExit(INTERRUPTED) from None
    except OSError as exc:  # writing the help or the version: as a command's output would fail
        try:
            quiet_broken_pipe() if isinstance(exc, BrokenPipeError) else fail(exc)
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
    except BaseException as exc:  # outside any command: still one line, no traceback
        sys.stderr.write(f"psctl: unexpected error: {type(exc).__name__}: {exc}\n")
        raise SystemExit(1) from None
