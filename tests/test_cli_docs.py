"""The README's "The command line" section documents every command, and its
examples are commands psctl accepts."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from psctl.cli.errors import ExitStatus
from .helpers import DEAD, Cli, command_paths, fake_embedded

README = Path(__file__).resolve().parent.parent / "README.md"


def section() -> str:
    text = README.read_text()
    return text.split("\n## The command line\n", 1)[1].split("\n## ", 1)[0]


def test_every_command_is_documented_with_an_example_and_its_json() -> None:
    text = section()
    examples = "\n".join(re.findall(r"```sh\n(.*?)```", text, re.DOTALL))
    for path in command_paths():
        command = "psctl " + " ".join(path)
        assert f"| `{command}" in text, f"{command} is missing from the command table"
        assert re.search(rf"^{re.escape(command)}\b", examples, re.MULTILINE), f"no example of {command}"


@pytest.mark.parametrize(
    "shape",
    [
        '[{"key": …, "value": …}]',
        '[{"key": …, "score": …}]',
        '{"key": …, "value": …}',
        '{"name": …, "length": n}',
        '["…"]',
        '{"key": …, "added": true, "score": s}',
        '{"key": …, "added": false}',
        '{"added": n, "refused": m}',
        '{"key": …, "score": s}',
        '{"removed": ["…"]}',
        '{"updated": n}',
        '{"removed": n}',
        '{"expired": {"NAME": n}, "total": n}',
        '{"deleted": true}',
        '"value_base64"',
    ],
)
def test_the_json_shapes_are_documented(shape: str) -> None:
    assert shape in section()


def test_exit_statuses_and_the_rest_are_documented() -> None:
    text = section()
    for status in ExitStatus:
        assert f"| {int(status)} |" in text
    for needle in ("--json", "--table", "--debug", "--timeout", "DURATION", "crontab", "line 3", "stdin", "--yes",
                   "python -m psctl.cli.completion completions/", "completions/psctl.bash", "jsonl", "value_base64"):  # fmt: skip
        assert needle in text, needle


def example_commands() -> list[list[str]]:
    """The psctl invocations in the section's sh blocks, pipelines split, redirections cut."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", section(), re.DOTALL):
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
                    for stop in (">", ">>", "2>&1", "&&"):
                        if stop in args:
                            args = args[: args.index(stop)]
                    found.append(args)
    return found


def test_there_are_examples() -> None:
    assert len(example_commands()) > 20


def test_every_example_is_accepted(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, r: Any
) -> None:
    """Run against a server that is not there, a well-formed command gets as far
    as connecting (exit 1); bad usage would exit 2 before that."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.csv").write_text("key,value,score\njob-1,x,5\n")
    (tmp_path / "jobs.json").write_text('[{"key": "job-1", "value": "x"}]')
    monkeypatch.setitem(sys.modules, "psctl.embedded", fake_embedded(redis_url))
    cli = Cli(DEAD)
    for args in example_commands():
        # the server commands need no server; add-many reading an empty stdin has nothing to write
        no_io = args[0] == "server" or (args[0] == "add-many" and not any(a.endswith((".csv", ".json")) for a in args))
        expected = ExitStatus.OK if no_io else ExitStatus.SERVER
        done = cli(*args)
        assert done.exit_code == expected, (args, done.stderr)
