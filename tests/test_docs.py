"""The README and the documentation site: every example is run by some test,
the README's front door (its two commands, its tour) and the tutorial work as
written, and nothing a user reads cites an issue, the spec or a test's name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from . import docs
from .docs import ROOT, all_blocks, blocks, check_comments, run_lines, run_python
from .helpers import PSCTL, Home

# generated from the code, or tested by their own tests (the settings' pages)
OWN_TESTS = {"docs/reference/cli.md", "docs/reference/api.md", "docs/howto/profiles.md", "docs/reference/settings.md"}


def pages() -> list[str]:
    found = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md"))]
    return [path for path in found if path not in OWN_TESTS]


def test_every_example_is_run_by_a_test() -> None:
    """Each fenced block of README.md and docs/ is taken in by a test's
    ``blocks(page, heading, lang)`` call, and each such call finds blocks."""
    claimed = docs.claims()
    unrun = [
        f"{block.page}:{block.line} ({block.lang or 'no language'}, under {block.headings[-1]!r})"
        for path in pages()
        for block in all_blocks(path)
        if not any(page == path and lang == block.lang and heading in block.headings for page, heading, lang in claimed)
    ]
    assert not unrun, "examples no test runs: " + ", ".join(unrun)
    stale = [claim for claim in claimed if claim[0] not in OWN_TESTS and not blocks(*claim)]
    assert not stale, f"tests that look for examples that are not there: {stale}"


def test_a_block_nobody_runs_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above sees a new example under a new heading, and a call that takes it in."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "new.md").write_text("# New\n\n## Fresh\n\n```sh\npsctl len jobs\n```\n")
    (tmp_path / "tests").mkdir()
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    [block] = all_blocks("docs/new.md")
    assert (block.lang, block.headings, block.text) == ("sh", ("New", "Fresh"), "psctl len jobs\n")
    assert docs.claims(tmp_path / "tests") == set()
    (tmp_path / "tests" / "test_new.py").write_text('blocks("docs/new.md", "Fresh", "sh")\n')
    assert docs.claims(tmp_path / "tests") == {("docs/new.md", "Fresh", "sh")}


@pytest.mark.parametrize("path", pages())
def test_no_page_cites_an_issue_the_spec_or_a_test(path: str) -> None:
    text = docs.page(path)
    cited = re.findall(r"\bissues? \d+|\bSPEC\b|§ ?\d|test_\w+\.py::|\btest_\w+_\w+\b(?!\.py)", text)
    if path != "docs/contributing.md":  # (where the tests are is its subject)
        cited += re.findall(r"tests/test_\w+", text)
    allowed = {"test_my_worker", "test_with_the_fixture", "test_totals_are_summed"}  # the examples' own tests
    assert not [c for c in cited if c not in allowed], cited


def shell_env(home: Home) -> dict[str, str]:
    return home.env | {"PATH": f"{PSCTL.parent}:{home.env['PATH']}"}


def test_the_tutorial_runs_as_written(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its steps in order, on the embedded server of a fresh home: each
    command prints the JSON its comment shows. (Its installation is run by
    the test of the README's first command.)"""
    tutorial = "docs/tutorial.md"
    [fresh, pulled] = blocks(tutorial, "2. Add and pull", "sh")
    [leases] = blocks(tutorial, "3. Leases: take an item, and give it back if you fail", "sh")
    [worker] = blocks(tutorial, "4. A worker", "sh")
    env, url = shell_env(home), f"unix://{home.socket}"
    assert check_comments(run_lines(fresh + pulled + leases, env, tmp_path)) == 14
    assert check_comments(run_lines(worker, env, tmp_path), statuses={"psctl work": 123}) == 4

    [cron] = blocks(tutorial, "5. From cron", "sh")
    (tmp_path / "process-one").write_text("#!/bin/sh\ncat >> done.txt\n")
    (tmp_path / "process-one").chmod(0o755)
    check_comments(run_lines(cron, env, tmp_path, url))
    assert (tmp_path / "done.txt").read_text() == "write report"  # what step 3 left in jobs

    [library] = blocks(tutorial, "6. The library", "python")
    assert run_python(library, {}, tutorial) == 3
    assert capsys.readouterr().out == "sending to alan@example.org\n1 1\n"

    [stop] = blocks(tutorial, "7. Done for now", "sh")
    check_comments(run_lines(stop, env, tmp_path))
    assert home.servers() == []


# -- the README --------------------------------------------------------------------------

FRONT = "Install, and the first job"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    """The README's second command (and the contributors' page) is what .ci/run
    runs, in a fresh venv: pip's editable install of the test extra, then pytest."""
    [commands] = blocks("README.md", FRONT, "sh")
    first, second = commands.splitlines()
    assert second == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    [contributing] = blocks("docs/contributing.md", "Running the tests", "sh")
    assert contributing.splitlines()[0] == second
    ci = (ROOT / ".ci" / "run").read_text()
    for step in ("\npython3 -m venv .venv\n. .venv/bin/activate\n", "\npython -m pip install -q -e '.[test]'\n",
                 "\nPSCTL_TEST_SERVER=redis python -m pytest -q -p no:cacheprovider\n"):  # fmt: skip
        assert step in ci, step


def test_the_readme_tour_runs_as_written(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The five-minute tour, in order, on the embedded server of a fresh home."""
    tour = "A five-minute tour"
    adding, working, cron = blocks("README.md", tour, "sh")
    env, url = shell_env(home), f"unix://{home.socket}"
    assert check_comments(run_lines(adding, env, tmp_path)) == 6
    ran = run_lines(working, env, tmp_path)
    assert check_comments(ran) == 2
    assert ran[1].stdout == "job-1: resize photo.jpg\njob-3: write report\n"  # as the text says
    assert check_comments(run_lines(cron, env, tmp_path, url)) == 1
    [library] = blocks("README.md", tour, "python")
    assert run_python(library, {}, "README.md") == 2
    assert capsys.readouterr().out == "sending mail-1 to: ada@example.org\nsending mail-2 to: alan@example.org\n2\n"


@pytest.mark.slow
def test_the_readme_first_command_works_in_a_fresh_venv_with_an_empty_home() -> None:
    """The README's first line as written, in a copy of the source tree, with
    HOME and the XDG folders empty and no server named: it installs psctl
    (pip may fetch from the package index) and prints the item it pulled, as
    the README shows. Then the tutorial's first step, on that venv."""
    [commands] = blocks("README.md", FRONT, "sh")
    [shown] = blocks("README.md", FRONT, "text")
    [install] = blocks("docs/tutorial.md", "1. Install", "sh")
    first = commands.splitlines()[0]
    assert first.startswith(install.splitlines()[0] + " && ")  # the tutorial installs as the README does
    root = Path(tempfile.mkdtemp(prefix="psctl-"))  # short: the socket's path must fit in 107 bytes
    try:
        shutil.copytree(ROOT, root / "src", ignore=shutil.ignore_patterns(
            ".git", ".venv*", "site", "__pycache__", ".pytest_cache", "*.egg-info", "build", "dist"))  # fmt: skip
        (root / "home").mkdir()
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("REDIS_", "PSCTL_", "_PSCTL", "XDG_", "PIP_", "VIRTUAL_ENV"))}  # fmt: skip
        env |= {"HOME": str(root / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin"}
        python = Path(sys.executable).resolve()
        if not shutil.which("python3", path=env["PATH"]):  # (a python3 elsewhere: put it first)
            env["PATH"] = f"{python.parent}:{env['PATH']}"
        done = subprocess.run(["bash", "-c", first], cwd=root / "src", env=env, capture_output=True, text=True,
                              timeout=900, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.endswith("\n" + shown)  # (after pip's progress)
        assert "started the embedded server" in done.stderr
        then = subprocess.run(["bash", "-c", install.split("\n", 1)[1]], cwd=root / "src", env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert then.returncode == 0 and re.fullmatch(r"psctl \S+\n", then.stdout), then.stderr
    finally:
        subprocess.run([str(root / "src" / ".venv" / "bin" / "psctl"), "server", "stop", "--force"],
                       env=env, capture_output=True, timeout=60, check=False)  # fmt: skip
        from .helpers import servers_in

        left = servers_in(root / "home" / ".local" / "state" / "psctl")
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"the embedded server was left running: {left}"
