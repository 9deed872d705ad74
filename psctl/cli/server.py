"""``psctl server``: the embedded server psctl starts when no --url, REDIS_URL
or REDIS_HOST names one (``psctl.embedded``)."""

import os
import sys
from typing import Annotated, Any

import typer

from psctl.cli import connection
from psctl.cli.errors import CatchingGroup
from psctl.cli.options import out, output_options
from psctl.cli.session import Session
from psctl.cli.status import BadUsage

server_app = typer.Typer(
    name="server",
    cls=CatchingGroup,
    help="The embedded server psctl starts when no --url, REDIS_URL or REDIS_HOST names one.",
    no_args_is_help=True,
    add_completion=False,
)


def _embedded(ctx: typer.Context) -> Any:
    if connection.cluster_wanted(Session.of(ctx).cluster):
        raise BadUsage("psctl server manages the embedded server, which is not used in cluster mode")
    return connection.embedded_module()


@server_app.command("status")
@output_options
def status(ctx: typer.Context) -> None:
    """Show whether the embedded server runs, where, and what it is; starts nothing.

    Example: psctl server status
    """
    output = out(ctx)
    output.show(_embedded(ctx).status(), vertical=True)
    session = Session.of(ctx)
    if output.table and connection.explicit(session.url, os.environ):
        named = "--url, REDIS_URL or REDIS_HOST"
        sys.stderr.write(f"psctl: other commands use {session.where} ({named}), not this server\n")


@server_app.command("stop")
@output_options
def stop(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Stop it even when it cannot save its data (what it holds is lost).")
    ] = False,
) -> None:
    """Stop the embedded server cleanly and wait until it has exited; fine when none runs.

    A server that cannot save its data to disk (a full disk) is not stopped: stopping it would lose the
    changes it holds only in memory. Free disk space and it resumes by itself; --force stops it anyway.

    Example: psctl server stop
    """
    out(ctx).show(_embedded(ctx).stop(force=force))
