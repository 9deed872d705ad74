"""Shell completion: the scripts in ``completions/`` and stream names from the server.

The scripts are what ``_PSCTL_COMPLETE=source_<shell> psctl`` prints: small
hooks that call ``psctl`` back on each TAB, so commands and options always
match the installed version. Completing them imports Typer and Rich, never
redis-py; only completing a stream NAME talks to the server (for at most
half a second, and never starting the embedded one). Regenerate the scripts
after upgrading Typer with::

    python -m psctl.cli.completion completions/
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROG = "psctl"
COMPLETE_VAR = "_PSCTL_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
NAMES_TIMEOUT = 0.5  # seconds a TAB may wait for the server


def script(shell: str) -> str:
    """The completion script for ``shell``, as the app itself prints it."""
    from typer.main import get_command

    from psctl.cli.app import app

    command = get_command(app)
    printed = io.StringIO()
    with _environ(COMPLETE_VAR, f"source_{shell}"), contextlib.redirect_stdout(printed):
        try:
            command.main(args=[], prog_name=PROG, complete_var=COMPLETE_VAR)
        except SystemExit as done:
            if done.code:
                raise RuntimeError(f"no completion script for {shell}") from None
    return printed.getvalue()


def write_scripts(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for shell in SHELLS:
        path = folder / f"{PROG}.{shell}"
        path.write_text(script(shell))
        written.append(path)
    return written


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def complete_names(ctx: Any, incomplete: str) -> list[str]:
    """Stream names starting with ``incomplete``, from the server the command would use."""
    try:
        client = _client(ctx)
        if client is None:
            return []
        try:
            names = client.psnames()
        finally:
            client.close()
    except Exception:  # a TAB must never print an error into the command line
        return []
    return [name for name in names if name.startswith(incomplete)]


def _client(ctx: Any) -> Any:
    from psctl.cli import connection
    from psctl.settings import Settings

    root = ctx.find_root()
    url, cluster = root.params.get("url"), root.params.get("cluster")
    if connection.explicit(url, os.environ):
        target = connection.resolve(url, cluster, tls_ca=root.params.get("tls_ca"))
    else:  # the embedded server, only when it already runs
        running = connection.embedded_module().running_url()
        if running is None:
            return None
        target = connection.Target(Settings.resolve(url=running), embedded=True)
    return connection.connect(target, timeout=NAMES_TIMEOUT)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "completions")
    for path in write_scripts(folder):
        print(path)


if __name__ == "__main__":
    main()
