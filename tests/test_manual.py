"""The command line's manual: the reference page (docs/reference/cli.md) and
the man page psctl(1) (man/psctl.1) say what the commands' --help says, and
the man page renders without a warning."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import markdown
import pytest

from psctl.cli import manual
from psctl.cli.status import INTERRUPTED, ExitStatus
from .helpers import PSCTL, Cli, DEAD, command_paths

ROOT = Path(__file__).resolve().parent.parent
STALE = f"stale: rewrite it with {manual.REGENERATE}"
# what psctl work sets for its commands (its --help names them), not what psctl reads
WORK_VARIABLES = {"PSCTL_STREAM", "PSCTL_KEY", "PSCTL_KEY_FILE", "PSCTL_SCORE", "PSCTL_DELIVERY", "PSCTL_WORKER"}


def test_the_reference_page_is_not_stale() -> None:
    assert manual.reference() == (ROOT / manual.REFERENCE).read_text(), STALE


def test_the_man_page_is_not_stale() -> None:
    assert manual.man_page() == (ROOT / manual.MAN_PAGE).read_text(), STALE


def test_regenerating_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manual.main([str(tmp_path)])
    for path in (manual.REFERENCE, manual.MAN_PAGE):
        assert (tmp_path / path).read_text() == (ROOT / path).read_text(), STALE
    assert capsys.readouterr().out.split() == [str(tmp_path / manual.REFERENCE), str(tmp_path / manual.MAN_PAGE)]


def _section(text: str, command: str) -> str:
    return text.split(f"## `{command}`\n", 1)[1].split("\n## ", 1)[0]


def test_every_command_and_each_of_its_options_is_in_both() -> None:
    cli = Cli(DEAD)
    reference, man = manual.reference(), manual.man_page()
    checked = 0
    for path in command_paths():
        command = " ".join(("psctl", *path))
        section = _section(reference, command)
        assert f'.SS "{command.replace("-", chr(92) + "-")}"' in man, command
        helped = cli(*path, "--help", env={"COLUMNS": "200"})
        assert helped.exit_code == 0, helped.output
        options = set(re.findall(r"^│ (--[a-z][a-z-]+)", helped.stdout, re.MULTILINE)) - {"--help"}
        for option in options:
            assert f"`{option}" in section or f", {option}" in section, (command, option)
        checked += len(options)
    assert checked > 100  # (the help's panel was read)


def test_the_man_page_renders_without_a_warning(tmp_path: Path) -> None:
    page = ROOT / manual.MAN_PAGE
    checked = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True, timeout=60)
    assert (checked.returncode, checked.stderr) == (0, "")
    shown = subprocess.run(
        ["man", "-l", str(page)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "LANG": "C.UTF-8"},
    )  # fmt: skip
    assert (shown.returncode, shown.stderr) == (0, "")
    text = re.sub(r".\x08", "", shown.stdout)  # (bold and underline, were a terminal asking)
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ENVIRONMENT", "FILES",
                    "EXIT STATUS", "EXAMPLES", "SEE ALSO"):  # fmt: skip
        assert re.search(rf"^{heading}$", text, re.MULTILINE), heading
    assert "psctl - prioritized streams on Redis" in text
    assert "psctl server status [OPTIONS]" in text
    assert "sh -c 'curl -fsS -d @- https://example.com/hook'" in text  # quotes and dashes as typed
    # prose wraps to the width; only examples, kept whole, may run over it
    assert all(line.lstrip().startswith("psctl ") for line in text.splitlines() if len(line) > 80)


@pytest.mark.parametrize(
    "text",
    ["a\\b 'quoted' \"double\" `back` --option -o", ".starts with a dot", "'starts with a quote", "caf\u00e9 \u2192 done"],
)
def test_roff_text_prints_as_given(text: str, tmp_path: Path) -> None:
    page = tmp_path / "x.1"
    page.write_text(f'.TH X 1\n.SH NAME\nx\n.SH DESCRIPTION\n{manual._roff(text)}\n')
    shown = subprocess.run(
        ["groff", "-man", "-Tutf8", "-P-cbou", "-rLL=200n", "-ww", str(page)], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert shown.stderr == ""
    assert text in shown.stdout


def test_markdown_text_shows_as_given() -> None:
    text = "PSCTL_* and *stars* _under_ [link](x) <tag> & \\ `tick` [default: 1]"
    html = markdown.markdown(manual._md(text))
    assert html == "<p>" + text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") + "</p>"


def test_every_variable_psctl_reads_is_in_the_manual() -> None:
    source = "\n".join(path.read_text() for path in (ROOT / "psctl").rglob("*.py"))
    read = set(re.findall(r"""["']((?:REDIS|PSCTL|XDG)_[A-Z_]+)["']""", source)) - WORK_VARIABLES
    documented = {name for names, _ in manual.ENVIRONMENT for name in names.split(", ")}
    assert read <= documented, read - documented
    assert "XDG_CONFIG_HOME" in documented and "PSCTL_PROFILE" in documented
    work_help = Cli(DEAD)("work", "--help", env={"COLUMNS": "200"}).stdout
    assert all(name in work_help for name in WORK_VARIABLES)


def test_every_exit_status_is_described() -> None:
    assert set(manual.EXIT_STATUSES) == {*ExitStatus, INTERRUPTED}
    man = manual.man_page()
    assert all(f"\\fB{int(status)}\\fR" in man for status in manual.EXIT_STATUSES)


def test_the_manual_names_no_internal_documents() -> None:
    for text in (manual.reference(), manual.man_page()):
        assert not re.search(r"SPEC|§|\bissue \d", text)


def test_help_ends_by_saying_where_the_manual_is() -> None:
    shown = subprocess.run([str(PSCTL), "--help"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "100"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1].strip() == "Manual: man psctl. One command in full: psctl COMMAND --help."
