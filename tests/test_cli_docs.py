"""The documentation's "Commands at a glance" (with "Leases by hand", for the
lease commands) documents every command and the JSON it prints, and its
examples are commands psctl accepts."""

from __future__ import annotations

import re
import shlex
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from psctl.cli.errors import ExitStatus
from .docs import blocks, page, pages
from .helpers import DEAD, Cli, command_paths, fake_embedded

COMMANDS = "docs/reference/commands.md"
LEASES = "docs/howto/leases.md"
OUTPUT = "docs/reference/output.md"


def section() -> str:
    """The pages that document the commands: "Commands at a glance", and
    "Leases by hand" for the lease commands."""
    return page(COMMANDS) + page(LEASES)


def sh_examples() -> list[str]:
    return [*blocks(COMMANDS, "Commands at a glance", "sh"), *blocks(LEASES, "Leases by hand", "sh"),
            *blocks(OUTPUT, "Output: a table for you, JSON for programs", "sh")]  # fmt: skip


def test_every_command_is_documented_with_an_example_and_its_json() -> None:
    text = section()
    examples = "\n".join(sh_examples())
    for path in command_paths():
        command = "psctl " + " ".join(path)
        assert f"| `{command}" in text, f"{command} is missing from the command table"
        assert re.search(rf"^{re.escape(command)}\b", examples, re.MULTILINE), f"no example of {command}"


def documented_shapes() -> dict[str, list[Any]]:
    """The JSON each command prints, by the README's command table: every
    backticked alternative of the last column, as a skeleton (``shape``)."""
    import json

    found: dict[str, list[Any]] = {}
    for row in re.findall(r"^\| `psctl ([a-z-]+(?: [a-z]+)?)\b.*\| (.+) \|$", section(), re.MULTILINE):
        command, column = row
        shapes = []
        for text in re.findall(r"`([\[{][^`]*)`", column):
            literal = re.sub(r"…|\bn\b|\bm\b|\bs\b", "0", text).replace('"0"', '"x"')
            shapes.append(shape(json.loads(literal)))
        found[command] = shapes
    return found


def shape(data: Any) -> Any:
    """A documented JSON value as a shape: an object's keys with their shapes
    (the README's ``{"NAME": n}`` or ``{"COUNTER": n}`` for an object of any
    keys), a list's first element's shape, "bool" or "scalar"."""
    if isinstance(data, dict):
        if len(data) == 1 and next(iter(data)).isupper():
            return "object of scalars"
        return {key: shape(value) for key, value in data.items()}
    if isinstance(data, list):
        return [shape(data[0])] if data else []
    return "bool" if isinstance(data, bool) else "scalar"


def fits(data: Any, documented: Any) -> bool:
    """True when printed JSON has the documented shape (an empty list fits any list)."""
    if documented == "object of scalars":
        return isinstance(data, dict) and all(not isinstance(v, (dict, list)) for v in data.values())
    if isinstance(documented, dict):
        return isinstance(data, dict) and data.keys() == documented.keys() and all(
            fits(data[key], documented[key]) for key in data
        )
    if isinstance(documented, list):
        return isinstance(data, list) and all(fits(item, documented[0]) for item in data)
    if documented == "bool":
        return isinstance(data, bool)
    return not isinstance(data, (dict, list, bool))


def test_each_example_prints_the_json_its_command_documents(redis_url: str, r: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs each example of the section, on a stream holding a few items, and
    checks that what it prints has one of the shapes the command table gives."""
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.csv").write_text("key,value,score\njob-4,x,5\n")
    (tmp_path / "jobs.json").write_text('[{"key": "job-5", "value": "x"}]')
    shapes = documented_shapes()
    cli = Cli(redis_url)
    checked = set()
    for args in example_commands():
        command = " ".join(args[:2]) if args[0] in ("server", "config") else args[0]
        if command.startswith(("server", "config show")) or command in ("work", "metrics", "dump") or {
            "--wait", "--watch", "--table", "-o", "--output", "-q", "--quiet"
        } & set(args):
            continue  # the embedded server's, waits, other formats and no JSON: their own tests run them for real
        r.flushdb()
        r.psaddmany("jobs", [("job-1", "resize", 5), ("job-2", "mail", 8), ("job-3", "report", -1)])
        r.pspull("other", expire_at=None)
        r.psadd("done", "old", "v")
        r.pspull("done", expire_at=timedelta(seconds=-1))
        r.psadd("jobs", "job-7", "x", 100)
        r.psrelease("jobs", r.pslease("jobs", max_deliveries=1).token)  # job-7: dead
        held = r.pslease("jobs", count=2)  # job-2 and job-1, for the examples that name a TOKEN
        args = [held.token if arg == "TOKEN" else arg for arg in args]
        done = cli(*args, "--json")
        assert done.exit_code == 0, (args, done.stderr)
        printed = json.loads(done.stdout)
        assert any(fits(printed, documented) for documented in shapes[command]), (args, printed, shapes[command])
        checked.add(command)
    # (config show's values are strings, numbers and booleans: test_cli_config.py checks its output exactly)
    assert checked == set(shapes) - {"server status", "server start", "server stop", "config show", "work", "metrics",
                                     "dump"}, (
        "a command without a runnable example"
    )


def test_exit_statuses_and_the_rest_are_documented() -> None:
    statuses = page("docs/reference/exit-statuses.md")
    for status in ExitStatus:
        assert f"| {int(status)} |" in statuses
    text = "".join(page(path) for path in pages())
    for needle in ("--json", "--table", "--debug", "--timeout", "DURATION", "crontab", "line 3", "stdin", "--yes",
                   "python -m psctl.cli.completion completions/", "completions/psctl.bash", "jsonl", "value_base64"):  # fmt: skip
        assert needle in text, needle


def example_commands() -> list[list[str]]:
    """The psctl invocations in the section's sh blocks, pipelines split, redirections cut."""
    found = []
    for block in sh_examples():
        for line in block.splitlines():
            if not line.startswith(("psctl ", "printf ")):
                continue
            words = shlex.split(line, comments=True)
            segments: list[list[str]] = [[]]
            for word in words:
                if word == "|":
                    segments.append([])
                else:
                    segments[-1].append(word)
            for segment in segments:
                if segment and segment[0] == "psctl":
                    args = segment[1:]
                    for stop in (">", ">>", "<", "2>&1", "&&"):
                        if stop in args:
                            args = args[: args.index(stop)]
                    found.append(args)
    return found


def test_every_example_is_accepted(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, r: Any
) -> None:
    """Run against a server that is not there, a well-formed command gets as far
    as connecting (exit 1); bad usage would exit 2 before that."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.csv").write_text("key,value,score\njob-1,x,5\n")
    (tmp_path / "jobs.json").write_text('[{"key": "job-1", "value": "x"}]')
    (tmp_path / "process-one").write_text("#!/bin/sh\ncat > /dev/null\n")
    (tmp_path / "process-one").chmod(0o755)
    monkeypatch.setitem(sys.modules, "psctl.embedded", fake_embedded(redis_url))
    cli = Cli(DEAD)
    for args in example_commands():
        # the server commands need no server; add-many reading an empty stdin has nothing to write
        no_io = args[0] in ("server", "config") or (args[0] == "add-many" and not any(a.endswith((".csv", ".json")) for a in args))
        expected = ExitStatus.OK if no_io else ExitStatus.SERVER
        done = cli(*args)
        assert done.exit_code == expected, (args, done.stderr)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(1.5, "1.5s"), (10, "10s"), (30, "30s"), (60, "60s"), (90, "90s"), (300, "5m"), (5400, "1h30m"),
     (3600, "1h"), (86400, "1d"), (604800, "1w"), (864000, "10d")],
)  # fmt: skip
def test_a_default_duration_is_shown_as_people_write_it(seconds: float, shown: str) -> None:
    from psctl.durations import parse_duration, shown_duration

    assert shown_duration(timedelta(seconds=seconds)) == shown
    assert parse_duration(shown) == timedelta(seconds=seconds)


def test_the_work_help_shows_the_shared_defaults() -> None:
    """The defaults live in psctl.defaults; the help shows them as before."""
    from typer.testing import CliRunner

    from psctl.cli.app import app

    text = " ".join(CliRunner().invoke(app, ["work", "--help"], env={"COLUMNS": "200"}).stdout.split())
    for option, shown in (("--lease", "5m"), ("--retry-delay", "10s"), ("--grace", "30s"), ("--patience", "60s")):
        assert re.search(rf"{option} .*?\[default: \({shown}\)\]", text), option
    assert "(at most 1h)" in text and "[default: 5]" in text
