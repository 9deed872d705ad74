"""The shell completion scripts in ``completions/``.

They are what ``_PSCTL_COMPLETE=source_<shell> psctl`` prints: small hooks that
call ``psctl`` back on each TAB, so commands and options always match the
installed version. Completing them imports Typer and Rich, never redis-py;
only completing a stream NAME talks to the server (``options.complete_names``).
Regenerate the scripts after upgrading Typer with::

    python -m psctl.cli.completion completions/
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

PROG = "psctl"
COMPLETE_VAR = "_PSCTL_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def script(shell: str) -> str:
    """The completion script for ``shell``, as the app itself prints it."""
    from psctl.cli.app import app
    from psctl.cli.group import click_command

    command = click_command(app)
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


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "completions")
    for path in write_scripts(folder):
        print(path)


if __name__ == "__main__":
    main()
