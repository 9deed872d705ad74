"""``psctl server``: the embedded server psctl starts when no --url, REDIS_URL
or REDIS_HOST names one (``psctl.embedded``)."""

import os
import sys
from typing import Annotated, Any

import typer

from psctl.cli import connection
from psctl.cli.group import command_group
from psctl.cli.options import output_options
from psctl.cli.session import Session
from psctl.cli.status import BadUsage, ExitStatus

server_app = command_group(
    "server",
    "The embedded server psctl starts when no --url, REDIS_URL, REDIS_HOST or profile names one.",
)


def _embedded(session: Session) -> Any:
    if session.wants_cluster():
        raise BadUsage("psctl server manages the embedded server, which is not used in cluster mode")
    return connection.embedded_module()


@server_app.command("status")
@output_options
def status(session: Session) -> None:
    """Show whether the embedded server runs, where, and what it is; starts nothing.

    Exit status 0 when it runs, 3 when it does not (the status is printed either way). memory is in bytes.

    Example: psctl server status
    Example: psctl server status -q || psctl server start   (start it unless it runs)
    """
    output = session.out
    found = _embedded(session).status()
    output.show(found, vertical=True, raw="running" if found["running"] else "stopped")
    if output.table and connection.explicit(session.url, os.environ):
        named = "--url, REDIS_URL, REDIS_HOST or a profile"
        sys.stderr.write(f"psctl: other commands use {session.where} ({named}), not this server\n")
    if not found["running"]:
        raise typer.Exit(ExitStatus.NOT_FOUND)


@server_app.command("start")
@output_options
def start(session: Session) -> None:
    """Start the embedded server unless it runs, and wait until it answers; fine when it runs already.

    Commands start it when they need it; start it yourself to see a problem (a port, a disk) at once, or
    to have it ready before a burst of commands.

    Example: psctl server start
    """
    embedded = _embedded(session)
    started = embedded.start_server()[1]
    found = embedded.status()
    session.out.show({"started": started, "pid": found["pid"], "socket": found["socket"]}, vertical=True, raw=started)


@server_app.command("stop")
@output_options
def stop(
    session: Session,
    force: Annotated[
        bool, typer.Option("--force", help="Stop it even when it cannot save its data (what it holds is lost).")
    ] = False,
) -> None:
    """Stop the embedded server cleanly and wait until it has exited; fine when none runs.

    A server that cannot save its data to disk (a full disk) is not stopped: stopping it would lose the
    changes it holds only in memory. Free disk space and it resumes by itself; --force stops it anyway.

    Example: psctl server stop
    """
    stopped = _embedded(session).stop(force=force)
    session.out.show(stopped, raw=stopped["stopped"])
