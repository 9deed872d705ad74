"""A command line that fits a person's habits: one meaning per option name,
an empty result said in words on a terminal, a closed pipe is a normal end
(but an answer that cannot be written at all is a failure), declining a prompt changes nothing and exits 0, stream names complete for
every command that takes one, and no help text cites the project's own
papers (specs, issues, tests)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import defaultdict
from typing import Any

import pytest
from typer.main import get_command

from psctl.cli.app import app
from psctl.cli.status import ExitStatus

from .helpers import PSCTL, Cli, command_paths, complete
from .test_cli import cli  # noqa: F401  (the fixtures: the CLI in-process, and a real process's environment)
from .test_cli_config import Setup, setup  # noqa: F401  (a HOME with a config file)
from .test_cli_process import env  # noqa: F401


# -- one meaning per option name ---------------------------------------------------------

# Names worded for each command that mean one thing wherever they are; every
# other option name has one help text across psctl (the global options are
# one object each, given before or after any command).
SAME_MEANING = {
    "--count": "how many items to take (pull) or lease (lease)",
    "-n": "at most N items: --count where items are taken, --limit where they are listed (as head -n)",
    "--limit": "at most N items: listed (keys, values, dead) or run (work)",
    "--for": "how long a lease holds its items (lease, extend)",
    "--json": "print JSON: work's is its summary",
    "--max-deliveries": "the deliveries after which an item is dead (lease, work)",
    "--readd": "lift a gate or cool-down first (one key or many)",
    "--replace": "set the score instead of adding to it (one item or many)",
    "--score": "the score the item has after the command (add adds to it, as add does)",
    "-s": "--score",
}


def _option_meanings() -> tuple[dict[str, dict[str, list[str]]], dict[str, set[str]]]:
    """Each visible option name: its help texts, each with the commands that
    have it; each short name: the long names it stands for."""
    helps: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    longs: dict[str, set[str]] = defaultdict(set)

    def visit(command: Any, path: tuple[str, ...]) -> None:
        for param in command.params:
            if getattr(param, "param_type_name", "") != "option" or param.hidden:
                continue
            names = (*param.opts, *param.secondary_opts)
            for name in names:
                helps[name][param.help or ""].append(" ".join(path) or "psctl")
                if not name.startswith("--"):
                    longs[name].update(n for n in names if n.startswith("--"))
        for name, sub in getattr(command, "commands", {}).items():
            visit(sub, (*path, name))

    visit(get_command(app), ())
    return helps, longs


def test_each_option_name_has_one_meaning_across_psctl() -> None:
    helps, longs = _option_meanings()
    assert "--timeout" in helps and "--time-limit" in helps and "-w" in helps  # (the walk sees them)
    twice = {name: dict(texts) for name, texts in helps.items() if len(texts) > 1 and name not in SAME_MEANING}
    assert twice == {}, "an option name with two help texts: one meaning, or say why in SAME_MEANING"
    shorts = {name: names for name, names in longs.items() if len(names) > 1 and name not in SAME_MEANING}
    assert shorts == {}, "a short option standing for two long ones"
    # the allow-list holds no stale entry
    assert all(len(helps[name]) > 1 for name in SAME_MEANING), [n for n in SAME_MEANING if len(helps[n]) < 2]


def test_timeout_is_the_reply_timeout_everywhere_and_time_limit_works() -> None:
    helps, _ = _option_meanings()
    assert list(helps["--timeout"].values()) == [["psctl"]]
    assert list(helps["--time-limit"].values()) == [["work"]]
    assert set(next(iter(helps["-w"].values()))) == {"pull", "lease"}  # (stats --watch has no -w)


@pytest.mark.parametrize("args", [
    ("work", "q", "--timeout", "5m", "--", "true"),
    ("work", "q", "--timeout=5m", "--", "true"),
    ("work", "--timeout", "5m", "q", "--", "true"),
    ("work", "q", "--idle-exit", "0", "--timeout", "5", "--", "true"),
])  # fmt: skip
def test_an_old_work_timeout_is_refused_not_reread(cli: Cli, r: Any, args: tuple[str, ...]) -> None:
    """An old cron line's ``work Q --timeout D`` (the command's time limit,
    once) must not silently become the server's reply timeout."""
    r.psadd("q", "a", "v")
    message = cli.fails(2, *args)
    assert message == ("psctl: work takes --time-limit D for the command's time limit; --timeout (the server's "
                       "reply timeout) goes before work: psctl --timeout D work ...")  # (no history: no "now")
    assert r.pslen("q") == 1  # nothing was taken


def test_the_global_help_names_the_option_that_goes_before_work() -> None:
    """Global options may come after the command, but --timeout not after work."""
    group = get_command(app)
    [timeout] = [param for param in group.params if param.name == "timeout"]
    assert "but --timeout before work" in " ".join((group.help or "").split())
    assert (timeout.help or "").endswith("Before work, not after it.")


def test_timeout_before_work_and_time_limit_after_it(env: dict[str, str], r: Any) -> None:
    r.psadd("q", "a", "v")
    done = subprocess.run(
        [str(PSCTL), "--timeout", "5s", "work", "q", "--time-limit", "0.3s", "--max-deliveries", "1", "--idle-exit",
         "0", "--json", "--", "sleep", "30"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 123, done.stderr  # the command ran past its time limit: a failure
    assert "ran longer than 0.3 s" in done.stderr
    assert '"dead": 1' in done.stdout


def test_a_timeout_among_the_commands_words_is_the_commands(env: dict[str, str], r: Any) -> None:
    """``--`` ends psctl's options: a --timeout after it is the command's own word."""
    r.psadd("q", "a", "v")
    done = subprocess.run(
        [str(PSCTL), "work", "q", "--idle-exit", "0", "-q", "--", "sh", "-c", 'cat >/dev/null; echo "$1"', "sh",
         "--timeout"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "--timeout\n", "")


# -- declining a prompt --------------------------------------------------------------------

ASKING = [  # every command that asks on a terminal: what it asks, and what it would change
    (["prune", "jobs", "--below", "0"], b"Remove 2 items scored below 0 from 'jobs'?"),
    (["remove", "jobs", "a", "b"], b"Remove 2 items from 'jobs'?"),
    (["delete", "jobs"], b"Delete stream 'jobs' and its 3 items?"),
]


def test_the_asking_commands_are_those_that_take_yes() -> None:
    """Every command with --yes is in ASKING (a new one is tested here too)."""
    with_yes = {" ".join(path) for path in command_paths()
                if any("--yes" in p.opts for p in _command(path).params if hasattr(p, "opts"))}  # fmt: skip
    assert with_yes == {args[0] for args, _ in ASKING}


@pytest.mark.parametrize("answer", [b"n\n", b"\n", b"nope\n", b"\x04"])
@pytest.mark.parametrize("args, question", ASKING)
def test_declining_a_prompt_changes_nothing_and_exits_0(
    env: dict[str, str], r: Any, args: list[str], question: bytes, answer: bytes
) -> None:
    """As ``rm -i``: told no (or Enter, or Ctrl-D), nothing changes, exit status 0."""
    from .test_cli_operators import run_with_a_terminal

    r.psaddmany("jobs", [("a", "1", -5), ("b", "2", -1), ("c", "3", 2)])
    status, out, shown = run_with_a_terminal(args, env, answer)
    assert question in shown
    assert (status, out) == (0, b"")
    assert shown.rstrip().endswith(b"psctl: nothing changed")
    assert b"Traceback" not in shown
    assert r.pskeys("jobs") == ["c", "b", "a"]


def _command(path: tuple[str, ...]) -> Any:
    command = get_command(app)
    for word in path:
        command = command.commands[word]
    return command


# -- an empty result on a terminal -------------------------------------------------------

EMPTY = [  # a command with nothing to show, and what a terminal says of it
    (["pull", "q"], "(no items)"),
    (["keys", "q"], "(no items)"),
    (["values", "q"], "(no items)"),
    (["dead", "q"], "(no items)"),
    (["names"], "(no streams)"),
    (["stats"], "(no streams)"),
    (["lease", "q"], "nothing to lease"),
    (["expire"], "nothing was due"),
]


@pytest.mark.parametrize("args, said", EMPTY)
def test_an_empty_result_on_a_terminal_says_so(env: dict[str, str], args: list[str], said: str) -> None:
    """A person reads words, not ``[]``; a program still reads ``[]`` (or its JSON)."""
    from .test_cli_process import run_on_a_terminal

    status, shown = run_on_a_terminal(args, env)
    assert (status, shown.replace("\r\n", "\n")) == (0, f"{said}\n")
    piped = subprocess.run([str(PSCTL), *args], env=env, capture_output=True, text=True, timeout=60)
    assert (piped.returncode, piped.stderr) == (0, "")
    assert json.loads(piped.stdout) is not None and said not in piped.stdout  # (JSON: expire's is an object)
    if args[0] in ("pull", "keys", "values", "dead", "names"):
        assert piped.stdout == "[]\n"
    table = subprocess.run([str(PSCTL), *args, "--table"], env=env, capture_output=True, text=True, timeout=60)
    assert (table.returncode, table.stdout, table.stderr) == (0, f"{said}\n", "")


def test_the_empty_note_is_dim_where_colours_show(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from psctl.cli import terminal

    monkeypatch.setattr(terminal, "stdout_is_terminal", lambda: True)
    done = cli("keys", "q", env={"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": None})
    assert done.exit_code == 0
    assert done.stdout == "\x1b[2m(no items)\x1b[0m\n"
    assert cli("keys", "q", "-o", "json").stdout == "[]\n"


# -- a reader that goes away ---------------------------------------------------------------


def _into_a_closed_pipe(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """psctl writing to a pipe nobody reads any more: its status and stderr."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([str(PSCTL), *args], env=env, stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=60)  # fmt: skip
    finally:
        os.close(write)
    return done.returncode, done.stderr


def test_every_help_read_in_part_ends_quietly(env: dict[str, str]) -> None:
    """``psctl CMD --help | head -1``: exit 0, nothing on stderr (Rich exited 1)."""
    for path in [(), ("server",), *command_paths()]:
        assert _into_a_closed_pipe([*path, "--help"], env) == (0, ""), path
    assert _into_a_closed_pipe(["--version"], env) == (0, "")


def test_help_into_head_exits_0_under_pipefail(env: dict[str, str]) -> None:
    for words in ("--help", "work --help", "stats --help", "server --help"):
        done = subprocess.run(["bash", "-o", "pipefail", "-c", f"'{PSCTL}' {words} | head -1"], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert (done.returncode, done.stderr) == (0, ""), words
        assert len(done.stdout.splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["keys", "q"], ["values", "q"], ["dump", "q"], ["values", "q", "-o", "ndjson"], ["keys", "q", "-o", "csv"],
    ["keys", "q", "-o", "raw"], ["keys", "q", "--table", "--limit", "3000"], ["names"], ["stats", "--table"],
])  # fmt: skip
def test_a_big_output_read_in_part_ends_quietly(env: dict[str, str], r: Any, args: list[str]) -> None:
    """``psctl keys Q | head -1``: a closed stdout is a normal end, exit 0, no Broken pipe."""
    r.psaddmany("q", [(f"key-{i:05}", "v" * 50, i) for i in range(3000)])
    for i in range(300):
        r.psadd(f"stream-{i:03}", "a", "v")
    assert _into_a_closed_pipe(args, env) == (0, "")
    words = " ".join(args)
    done = subprocess.run(["bash", "-o", "pipefail", "-c", f"'{PSCTL}' {words} | head -1"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), words
    assert r.pslen("q") == 3000


# -- an answer that cannot be written, messages that cannot be -----------------------------

WRITE_FAILED = {">&-": "psctl: standard output is closed\n", ">/dev/full": "psctl: No space left on device\n"}


def _in_bash(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("redirect", list(WRITE_FAILED))
@pytest.mark.parametrize("words", ["len q", "keys q --table", "--help", "len --help", "--version", "server"])
def test_an_answer_that_cannot_be_written_fails_in_one_line(env: dict[str, str], words: str, redirect: str) -> None:
    """A closed stdout or a full disk: status 1, one line on stderr, no traceback (the
    help and the version too, which are written outside any command)."""
    done = _in_bash(f"'{PSCTL}' {words} {redirect}", env)
    assert (done.returncode, done.stderr) == (1, WRITE_FAILED[redirect]), words
    debugged = _in_bash(f"'{PSCTL}' --debug {words} {redirect}", env)
    assert debugged.returncode == 1 and debugged.stderr.endswith(WRITE_FAILED[redirect]), words


def test_a_closed_stderr_loses_the_messages_not_the_answer(env: dict[str, str], r: Any) -> None:
    """``2>&-``: the answer is written, and the status is the command's own,
    also where a message (the worker's summary) had nowhere to go."""
    r.psadd("q", "k", "v")
    done = _in_bash(f"'{PSCTL}' len q 2>&-", env)
    assert (done.returncode, done.stdout) == (0, '{"name": "q", "length": 1}\n')
    worked = _in_bash(f"'{PSCTL}' work q --idle-exit 0 -- cat 2>&-", env)
    assert (worked.returncode, worked.stdout) == (0, "v") and r.pslen("q") == 0
    both = _in_bash(f"'{PSCTL}' len q >&- 2>&-", env)
    assert (both.returncode, both.stdout, both.stderr) == (1, "", "")


def test_a_worker_with_its_stdout_closed_gives_its_commands_none(env: dict[str, str], r: Any) -> None:
    """psctl's closed stdout stays closed for the commands it runs: their
    output fails (the item comes back) and lands in no socket of psctl's."""
    r.psadd("q", "k", "v")
    done = _in_bash(f"'{PSCTL}' work q --idle-exit 0 --max-deliveries 1 -- sh -c 'echo out' >&-", env)
    assert done.returncode == 123, done.stderr
    assert list(r.psdead("q")) == ["k"]


# -- a message quotes a value as it was typed ----------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [
    (True, "true"), (1e12, "1e12"), (1234567.5, "1234567.5"), (0.001, "0.001"), (7, "7"), ("5x", '"5x"'),
])  # fmt: skip
def test_a_value_is_quoted_as_it_is_typed_and_exactly(value: Any, shown: str) -> None:
    from psctl.wording import typed

    assert typed(value) == shown


@pytest.mark.parametrize(("written", "said"), [("true", "a DURATION (\"5s\"), got true"),
                                               ("1e12", "from 0.01 to 1,000,000,000 seconds, got 1e12")])  # fmt: skip
def test_a_config_files_bad_value_is_quoted_as_it_is_typed(setup: Setup, written: str, said: str) -> None:
    """TOML's spelling (true, 1e12), not Python's (True, 1e+12, 10**9)."""
    setup.write(f"[default]\ntimeout = {written}\n")
    message = setup.cli().fails(ExitStatus.USAGE, "len", "q", env=setup.clean())
    assert message == f"psctl: {setup.path}: [default]: timeout must be {said}"


# -- stream names complete everywhere ----------------------------------------------------

NO_STREAM = {"names", "expire", "server status", "server start", "server stop", "config show", "config path"}  # (none)


def _takes_a_stream(path: tuple[str, ...]) -> bool:
    """Whether the command's first argument is a stream's name (NAME, NAME..., [NAME...])."""
    arguments = [p for p in _command(path).params if getattr(p, "param_type_name", "") == "argument"]
    return bool(arguments) and "NAME" in (arguments[0].metavar or "")


def test_tab_completes_stream_names_for_every_command_that_takes_one(env: dict[str, str], r: Any) -> None:
    for name in ("jobs", "journal", "mail"):
        r.psadd(name, "a", "v")
    paths = command_paths()
    taking = [path for path in paths if _takes_a_stream(path)]
    assert {" ".join(path) for path in paths if path not in taking} == NO_STREAM
    for path in taking:
        words = " ".join(path)
        assert complete(f"psctl {words} ", env) == ["jobs", "journal", "mail"], words
        assert complete(f"psctl {words} jo", env) == ["jobs", "journal"], words
    # after the global options too, before or after the command
    assert complete("psctl --table keys ma", env) == ["mail"]
    assert complete("psctl keys --table ma", env) == ["mail"]


# -- what users read cites no project papers ------------------------------------------------

PAPERS = re.compile(r"\bSPEC\b|§|\b[Ii]ssues?\b|test_")


def test_no_help_text_cites_specs_issues_or_tests(cli: Cli) -> None:
    """``psctl stats --help`` once cited "SPEC §8", a file no user has."""
    for path in [(), ("server",), *command_paths()]:
        done = cli(*path, "--help", env={"COLUMNS": "250"})
        assert done.exit_code == 0 and "Usage" in done.stdout, path
        assert PAPERS.findall(done.stdout) == [], (path, [line for line in done.stdout.splitlines() if PAPERS.search(line)])


def test_no_public_docstring_cites_specs_issues_or_tests() -> None:
    """What the library's reference shows: the docstrings of what ``psctl`` exports, and of their methods."""
    import inspect

    import psctl

    checked = 0
    for name in psctl.__all__:
        exported = getattr(psctl, name)
        if not (inspect.isclass(exported) or inspect.isfunction(exported) or inspect.ismodule(exported)):
            continue
        members = [exported, *(m for _, m in inspect.getmembers(exported) if inspect.isfunction(m) or isinstance(m, property))]
        for member in members:
            if not getattr(getattr(member, "fget", member), "__module__", "psctl").startswith("psctl"):
                continue  # (redis-py's own, inherited)
            text = inspect.getdoc(member) or ""
            checked += bool(text)
            assert PAPERS.findall(text) == [], (name, getattr(member, "__name__", member), text)
    assert checked > 50
