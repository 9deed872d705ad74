"""The ``psctl`` command line (Typer + Rich) on top of the library.

``app.py`` holds the commands, ``output.py`` the renderer (table or JSON),
``errors.py`` the exit statuses, ``connection.py`` the choice of server,
``inputs.py`` the ``add-many`` readers, ``durations.py`` DURATION arguments,
``completion.py`` shell completion and ``terminal.py`` the terminal checks.
"""

from __future__ import annotations


def main() -> None:
    """The ``psctl`` entry point (imported lazily: see ``app.py``)."""
    from psctl.cli.app import main as run

    run()
