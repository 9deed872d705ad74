"""The documentation site builds with ``mkdocs build --strict`` (a broken link,
a page missing from the nav, a docstring mkdocstrings cannot render: each
fails it), offline, and its reference pages hold the whole public API and
every command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psctl
from .helpers import command_paths

ROOT = Path(__file__).resolve().parent.parent


def test_the_site_builds_strictly_with_the_whole_api_and_every_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(site)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    api = set(re.findall(r'id="(psctl\.[\w.]+)"', (site / "reference" / "api" / "index.html").read_text()))
    shown = {name.rsplit(".", 1)[1] for name in api}
    missing = [name for name in psctl.__all__ if name != "__version__" and name not in shown]
    assert not missing, missing
    assert {"psctl.commands.ItemCommands.psadd", "psctl.commands.LeaseCommands.pslease"} <= api
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for path in command_paths():
        assert f'id="psctl-{"-".join(path)}"' in cli, path
