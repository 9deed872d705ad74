"""The psctl command line, run in-process with Typer's CliRunner against the
session's server: exit status and exact JSON first, then the state through
the library."""

from __future__ import annotations

import json
import re
import sys
import time
import types
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from psctl import __version__
from psctl.cli import app as cli_app
from psctl.cli import connection, terminal
from psctl.durations import parse_duration
from psctl.cli.errors import ExitStatus
from testservers import free_port

from .helpers import DEAD, Cli, SilentServer, command_paths, counts, fake_embedded


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


@pytest.fixture
def on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal, "stdout_is_terminal", lambda: True)


# -- every command, its JSON and its effect -----------------------------------


def test_add_prints_the_new_score_and_accumulates(cli: Cli, r: Any) -> None:
    assert cli.ok("add", "jobs", "job-1", "hello", "--score", "5") == {"key": "job-1", "added": True, "score": 5.0}
    assert cli.ok("add", "jobs", "job-1", "hello again", "-s", "2.5") == {"key": "job-1", "added": True, "score": 7.5}
    assert cli.ok("add", "jobs", "job-2", "x") == {"key": "job-2", "added": True, "score": 1.0}
    assert r.psget("jobs", "job-1") == b"hello again"
    assert r.pskeys("jobs", withscores=True) == [("job-1", 7.5), ("job-2", 1.0)]


def test_add_refused_while_cooling_down_and_readd(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "job-1", "v")
    r.pspull("jobs", expire_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert cli.ok("add", "jobs", "job-1", "v") == {
        "key": "job-1", "added": False, "reason": "cooling", "until": "2030-01-02T03:04:05Z",
    }  # fmt: skip
    assert cli.ok("add", "jobs", "job-1", "v", "--readd", "-s", "3") == {"key": "job-1", "added": True, "score": 3.0}


def test_a_refused_add_says_why(cli: Cli, r: Any) -> None:
    """SPEC §8: held, dead, gated (a key refused for several reasons gives the first of these)."""
    r.psaddmany("jobs", [("held", "v", 3), ("dead", "v", 2), ("gated", "v", 1)])
    r.pslease("jobs")
    r.psrelease("jobs", r.pslease("jobs", max_deliveries=1).token)
    r.pspull("jobs", gate=True)  # gated, and cooling down for a day
    for key in ("held", "dead", "gated"):
        assert cli.ok("add", "jobs", key, "v") == {"key": key, "added": False, "reason": key}
    assert cli.ok("add-many", "jobs", "--format", "csv", input="key,value\nheld,v\ndead,v\ngated,v\nnew,v\n") == {
        "added": 1, "refused": 3, "refused_by": {"held": 1, "dead": 1, "gated": 1, "cooling": 0},
    }  # fmt: skip


def test_add_negative_score(cli: Cli, r: Any) -> None:
    assert cli.ok("add", "jobs", "job-1", "v", "--score", "-4") == {"key": "job-1", "added": True, "score": -4.0}


def test_pull_takes_the_highest_and_cools_them_down(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 1), ("b", "2", 3), ("c", "3", 2)])
    before = r.time()[0]
    assert cli.ok("pull", "jobs", "--count", "2") == [{"key": "b", "value": "2"}, {"key": "c", "value": "3"}]
    assert r.pskeys("jobs") == ["a"]
    assert abs(r.zscore("jobs:exp", "b") - (before + 86400)) <= 2  # a day by default


def test_pull_expire_in_and_no_expire(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 3), ("b", "2", 2), ("c", "3", 1)])
    now = r.time()[0]
    assert cli.ok("pull", "jobs", "--expire-in", "15m") == [{"key": "a", "value": "1"}]
    assert abs(r.zscore("jobs:exp", "a") - (now + 900)) <= 2
    assert cli.ok("pull", "jobs", "--expire-in", "90") == [{"key": "b", "value": "2"}]
    assert abs(r.zscore("jobs:exp", "b") - (now + 90)) <= 2
    assert cli.ok("pull", "jobs", "--no-expire") == [{"key": "c", "value": "3"}]
    assert r.zscore("jobs:exp", "c") is None


def test_pull_keep_and_gate(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 4)])
    assert cli.ok("pull", "jobs", "--keep") == [{"key": "a", "value": "1"}]
    assert r.pskeys("jobs", withscores=True) == [("b", 4.0), ("a", -1.0)]
    assert cli.ok("pull", "jobs", "--gate", "--no-expire") == [{"key": "b", "value": "2"}]
    assert r.sismember("jobs:exc", "b")


def test_empty_pull_prints_an_empty_list_and_succeeds(cli: Cli) -> None:
    done = cli("pull", "nothing-here", "-n", "5")
    assert (done.exit_code, done.stdout) == (0, "[]\n")


def test_empty_pull_on_a_terminal_says_so(cli: Cli, on_terminal: None) -> None:
    assert cli("pull", "nothing-here").stdout == "(no items)\n"


def test_keys_and_values_in_pull_order(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "x", 1), ("b", "y", 3), ("c", "z", 2)])
    assert cli.ok("keys", "jobs") == [{"key": "b", "score": 3.0}, {"key": "c", "score": 2.0}, {"key": "a", "score": 1.0}]
    assert cli.ok("keys", "jobs", "--limit", "1") == [{"key": "b", "score": 3.0}]
    assert cli.ok("values", "jobs") == [{"key": "b", "value": "y"}, {"key": "c", "value": "z"}, {"key": "a", "value": "x"}]
    assert cli.ok("values", "jobs", "-n", "2") == [{"key": "b", "value": "y"}, {"key": "c", "value": "z"}]
    assert cli.ok("values", "jobs", "--limit", "0") == []
    assert cli.ok("keys", "missing") == [] and cli.ok("values", "missing") == []
    assert r.pslen("jobs") == 3  # nothing taken


def test_json_gives_every_row_and_a_terminal_the_first_twenty(cli: Cli, r: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    r.psaddmany("jobs", [(f"k{i:02}", f"v{i}", i) for i in range(25)])
    assert len(cli.ok("keys", "jobs")) == 25
    assert len(cli.ok("values", "jobs")) == 25
    monkeypatch.setattr(terminal, "stdout_is_terminal", lambda: True)
    shown = cli("keys", "jobs").stdout
    assert "k24" in shown and "k05" in shown and "k04" not in shown
    assert "5 more" in shown
    shown = cli("values", "jobs", "--limit", "22").stdout
    assert "v3" in shown and "v2 " not in shown and "3 more" in shown
    assert "more" not in cli("values", "jobs", "--limit", "30").stdout
    assert json.loads(cli("keys", "jobs", "--json").stdout)[0] == {"key": "k24", "score": 24.0}


def test_get_and_len_and_names(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "job-1", "hello")
    r.psadd("other", "x", "y")
    assert cli.ok("get", "jobs", "job-1") == {"key": "job-1", "value": "hello"}
    assert cli.ok("len", "jobs") == {"name": "jobs", "length": 1}
    assert cli.ok("len", "missing") == {"name": "missing", "length": 0}
    assert cli.ok("names") == ["jobs", "other"]


def test_names_when_there_are_none(cli: Cli) -> None:
    assert cli.ok("names") == []


def test_get_of_a_missing_item_exits_3(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "job-1", "hello")
    assert cli.fails(ExitStatus.NOT_FOUND, "get", "jobs", "nope") == "psctl: no item 'nope' in stream 'jobs'"
    cli.fails(ExitStatus.NOT_FOUND, "get", "missing", "job-1")


def test_incr_and_its_missing_item(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "job-1", "hello", 5)
    assert cli.ok("incr", "jobs", "job-1", "10") == {"key": "job-1", "score": 15.0}
    assert cli.ok("incr", "jobs", "job-1", "-2.5") == {"key": "job-1", "score": 12.5}
    assert cli.fails(ExitStatus.NOT_FOUND, "incr", "jobs", "nope", "1") == "psctl: no item 'nope' in stream 'jobs'"
    assert r.pskeys("jobs") == ["job-1"]  # none made


def test_prune(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", -1), ("b", "2", 0), ("c", "3", 5)])
    assert cli.ok("prune", "jobs", "--below", "0.5", "--gate") == {"removed": ["a", "b"]}
    assert r.pskeys("jobs") == ["c"] and r.sismember("jobs:exc", "a")
    assert cli.ok("prune", "jobs", "--below", "-10") == {"removed": []}


def test_decr_all(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 1), ("b", "2", 5)])
    assert cli.ok("decr-all", "jobs", "2") == {"updated": 2}
    assert r.pskeys("jobs", withscores=True) == [("b", 3.0), ("a", -1.0)]
    assert cli.ok("decr-all", "jobs", "-1") == {"updated": 2}
    assert r.pskeys("jobs", withscores=True) == [("b", 4.0), ("a", 0.0)]


def test_remove(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 1), ("b", "2", 5), ("c", "3", 5)])
    assert cli.ok("remove", "jobs", "a", "b", "nope") == {"removed": 2}
    assert cli.ok("remove", "jobs", "c", "--gate") == {"removed": 1}
    assert r.pslen("jobs") == 0 and r.sismember("jobs:exc", "c")


def test_expire_is_idempotent_and_cron_friendly(cli: Cli, r: Any) -> None:
    assert cli.ok("expire") == {"expired": {}, "total": 0}
    r.psaddmany("jobs", [("a", "1", 1), ("b", "2", 2)])
    r.psadd("other", "x", "y")
    r.pspull("jobs", count=2, expire_at=None)
    r.zadd("jobs:exp", {"a": 1, "b": 2})  # cool-downs that ended long ago
    r.psadd("other", "x2", "y")
    r.pspull("other", expire_at=None)
    r.zadd("other:exp", {"x2": 1})
    assert cli.ok("expire") == {"expired": {"jobs": 2, "other": 1}, "total": 3}
    assert cli.ok("expire") == {"expired": {}, "total": 0}
    assert r.psadd("jobs", "a", "again") == 1.0


def test_delete_with_yes(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "a", "1")
    assert cli.ok("delete", "jobs", "--yes") == {"deleted": True}
    assert r.psnames() == [] and r.pslen("jobs") == 0
    assert cli.fails(ExitStatus.NOT_FOUND, "delete", "jobs", "-y") == "psctl: no stream 'jobs'"


def test_delete_refuses_without_yes_when_stdin_is_not_a_terminal(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "a", "1")
    message = cli.fails(ExitStatus.USAGE, "delete", "jobs", input="y\n")
    assert "--yes" in message
    assert r.pslen("jobs") == 1


def test_a_prompt_counts_one_item_in_the_singular(cli: Cli, r: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal, "stdin_is_terminal", lambda: True)
    r.psaddmany("jobs", [("a", "1", 1), ("b", "2", 9)])
    assert "Remove 1 item scored below 5 from 'jobs'?" in cli("prune", "jobs", "--below", "5", input="n\n").stderr
    assert "Remove 1 item from 'jobs'?" in cli("remove", "jobs", "a", input="n\n").stderr
    r.psremove("jobs", ["a"])
    assert "Delete stream 'jobs' and its 1 item?" in cli("delete", "jobs", input="n\n").stderr
    assert r.pslen("jobs") == 1


@pytest.mark.parametrize("answer, deleted", [("y\n", True), ("n\n", False), ("\n", False), ("", False)])
def test_delete_asks_on_a_terminal(
    cli: Cli, r: Any, monkeypatch: pytest.MonkeyPatch, answer: str, deleted: bool
) -> None:
    monkeypatch.setattr(terminal, "stdin_is_terminal", lambda: True)
    r.psaddmany("jobs", [("a", "1", 1), ("b", "2", 1)])
    done = cli("delete", "jobs", input=answer)
    assert "Delete stream 'jobs' and its 2 items?" in done.stderr
    if deleted:  # (CliRunner echoes the answer to stdout, as a terminal would)
        assert (done.exit_code, json.loads(done.stdout.splitlines()[-1])) == (0, {"deleted": True})
        assert r.psnames() == []
    else:
        assert done.exit_code == 0 and "{" not in done.stdout  # declined: as rm -i, no error
        assert done.stderr.endswith("psctl: nothing changed\n")
        assert r.pslen("jobs") == 2


# -- output ------------------------------------------------------------------


def test_json_and_table_force_the_format(cli: Cli, r: Any, on_terminal: None) -> None:
    r.psadd("jobs", "job-1", "hello", 5)
    table = cli("keys", "jobs")
    assert table.exit_code == 0 and "job-1" in table.stdout and not table.stdout.startswith("[")
    assert cli.ok("keys", "jobs", "--json") == [{"key": "job-1", "score": 5.0}]
    assert "job-1" in cli("keys", "jobs", "--table").stdout


def test_table_without_a_terminal(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "job-1", "hello", 5)
    shown = cli("len", "jobs", "--table").stdout
    assert "length" in shown and "jobs" in shown and "{" not in shown
    shown = cli("add", "jobs", "job-2", "x", "--table").stdout
    assert "added" in shown and "yes" in shown


def test_json_and_table_together_are_refused_before_any_io(cli: Cli) -> None:
    message = cli.fails(ExitStatus.USAGE, "len", "jobs", "--json", "--table", env={"REDIS_URL": DEAD})
    assert "--json, --table and -o ask for different outputs (json, table)" in message


MARKUP = "[bold red]x[/bold red] :smile: [link=http://e.vil]y[/link]"


def test_text_is_printed_literally_never_as_markup(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "[b]k[/b]", MARKUP, 1)
    assert cli.ok("values", "jobs") == [{"key": "[b]k[/b]", "value": MARKUP}]
    shown = cli("values", "jobs", "--table").stdout
    assert "[b]k[/b]" in shown and MARKUP in shown
    assert "\x1b" not in shown
    shown = cli("get", "jobs", "[b]k[/b]", "--table").stdout
    assert MARKUP in shown
    r.psadd("[red]name[/red]", "k", "v")
    assert "[red]name[/red]" in cli("names", "--table").stdout


def test_control_characters_are_escaped_on_a_terminal(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "k", "\x1b[2Jgone\x07", 1)
    assert cli.ok("get", "jobs", "k") == {"key": "k", "value": "\x1b[2Jgone\x07"}
    shown = cli("get", "jobs", "k", "--table").stdout
    assert "\x1b" not in shown and "\\x1b[2Jgone\\x07" in shown


def test_values_that_are_not_utf8_come_out_as_base64(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("bin", b"\xff\xfe\x00", 2), ("text", "é", 1)])
    assert cli.ok("values", "jobs") == [{"key": "bin", "value_base64": "//4A"}, {"key": "text", "value": "é"}]
    assert cli.ok("get", "jobs", "bin") == {"key": "bin", "value_base64": "//4A"}
    assert cli.ok("pull", "jobs", "-n", "2") == [{"key": "bin", "value_base64": "//4A"}, {"key": "text", "value": "é"}]
    r.psadd("jobs", "bin2", b"\x80")
    assert "(base64) gA==" in cli("get", "jobs", "bin2", "--table").stdout


def test_keys_that_are_not_utf8_come_out_as_base64(cli: Cli, r: Any) -> None:
    r.psadd("jobs", b"\xff", "v", 1)
    assert cli.ok("keys", "jobs") == [{"key_base64": "/w==", "score": 1.0}]
    assert cli.ok("values", "jobs") == [{"key_base64": "/w==", "value": "v"}]


def test_arguments_that_are_not_utf8_are_stored_byte_for_byte(cli: Cli, r: Any) -> None:
    value = b"\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of such argv bytes
    assert cli.ok("add", "jobs", "k", value) == {"key": "k", "added": True, "score": 1.0}
    assert r.psget("jobs", "k") == b"\xff\xfe"


def test_scores_on_a_table_read_as_numbers(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 0.25)])
    shown = cli("keys", "jobs", "--table").stdout
    assert " 5\n" in shown and "0.25" in shown and "5.0" not in shown


# -- bad usage and input: exit 2, before any I/O -------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        (["pull", "jobs", "--expire-in", "1h", "--no-expire"], "--expire-in and --no-expire"),
        (["pull", "jobs", "--expire-in", "soon"], "'soon' is not a duration"),
        (["pull", "jobs", "--count", "0"], "--count"),
        (["pull", "jobs", "--count", "many"], "--count"),
        (["add", "jobs", "k", "v", "--score", "nan"], "--score must be a finite number"),
        (["add", "jobs", "k", "v", "--score", "inf"], "--score must be a finite number"),
        (["add", "jobs", "k", "v", "--score", "ten"], "--score"),
        (["add", "jobs", "k"], "VALUE"),
        (["incr", "jobs", "k", "nan"], "BY must be a finite number"),
        (["decr-all", "jobs", "-inf"], "BY must be a finite number"),
        (["prune", "jobs"], "--below"),
        (["prune", "jobs", "--below", "nan"], "--below must be a finite number"),
        (["keys", "jobs", "--limit", "-1"], "--limit"),
        (["remove", "jobs"], "KEY"),
        (["delete", "jobs"], "--yes"),
        (["len", ""], "a stream name must not be empty"),
        (["frobnicate"], "No such command"),
        (["len", "jobs", "--bogus"], "--bogus"),
        (["--cluster", "len", "jobs"], "cluster"),  # needs --url or REDIS_URL
    ],
)
def test_bad_usage_exits_2_before_any_io(cli: Cli, args: list[str], expected: str) -> None:
    environ = {"REDIS_URL": None} if args[0] == "--cluster" else {"REDIS_URL": DEAD}
    message = cli.fails(ExitStatus.USAGE, *args, env=environ)
    assert expected in message


def test_a_usage_error_is_one_line_naming_the_command(cli: Cli) -> None:
    message = cli.fails(ExitStatus.USAGE, "add", "jobs", "k")
    assert message.startswith("psctl add: ") and "psctl add --help" in message


def test_no_command_shows_the_help(cli: Cli) -> None:
    done = cli()
    assert done.exit_code == ExitStatus.USAGE
    assert "add-many" in done.stdout + done.stderr


def test_cluster_mode_without_the_cluster_module(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psctl.cluster", None)  # as if it were not installed
    dead = f"redis://127.0.0.1:{free_port()}/0"  # (a cluster is never a unix:// socket's)
    message = cli.fails(ExitStatus.USAGE, "--cluster", "len", "jobs", env={"REDIS_URL": dead})
    assert "cluster mode is not available" in message
    cli.fails(ExitStatus.USAGE, "len", "jobs", env={"REDIS_URL": dead, "REDIS_CLUSTER": "1"})


def test_cluster_mode_refuses_the_server_commands(cli: Cli) -> None:
    assert "cluster mode" in cli.fails(ExitStatus.USAGE, "--cluster", "server", "status", env={"REDIS_URL": DEAD})
    cli.fails(ExitStatus.USAGE, "server", "stop", env={"REDIS_URL": DEAD, "REDIS_CLUSTER": "1"})


def test_durations() -> None:
    forms = ("90", "90s", "15m", "2h", "1d", "1.5h", " 2H ", "1w", "1h30m", "2d12h", "1h 30m", "1m30s", ".5s")
    assert [parse_duration(t).total_seconds() for t in forms] == [
        90, 90, 900, 7200, 86400, 5400, 7200, 604800, 5400, 216000, 5400, 90, 0.5
    ]
    for bad in ("", "x", "-5", "5y", "nan", "1e3", "1 2", "٣", "1h1h", "1h30", "h"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


# -- the server failing: exit 1, one line, no password ---------------------------


def test_an_unreachable_server_exits_1_quickly(cli: Cli) -> None:
    port = free_port()
    started = time.monotonic()
    message = cli.fails(ExitStatus.SERVER, "--url", f"redis://127.0.0.1:{port}/0", "len", "jobs")
    assert time.monotonic() - started < 5  # refused at once (loose: a loaded machine; a reply waits 10 s)
    assert message.startswith(f"psctl: cannot reach the server at redis://127.0.0.1:{port}/0")


def test_the_password_never_appears_even_with_debug(cli: Cli) -> None:
    url = f"redis://someone:hunter2-secret@127.0.0.1:{free_port()}/0"
    for args in (["--url", url, "len", "jobs"], ["--debug", "--url", url, "len", "jobs"]):
        done = cli(*args)
        assert done.exit_code == ExitStatus.SERVER
        assert "hunter2" not in done.stdout + done.stderr
        assert "someone:***@" in done.stderr
    done = cli("--debug", "len", "jobs", env={"REDIS_URL": url})
    assert "Traceback" in done.stderr and "hunter2" not in done.stderr
    done = cli("len", "jobs", env={"REDIS_URL": None, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(free_port()),
                                   "REDIS_PASSWORD": "hunter2-secret"})  # fmt: skip
    assert done.exit_code == ExitStatus.SERVER and "hunter2" not in done.stderr


def test_a_traceback_only_with_debug(cli: Cli) -> None:
    plain = cli("len", "jobs", env={"REDIS_URL": DEAD})
    assert plain.exit_code == ExitStatus.SERVER and "Traceback" not in plain.stderr
    debug = cli("--debug", "len", "jobs", env={"REDIS_URL": DEAD})
    assert debug.exit_code == ExitStatus.SERVER and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.strip()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    """A TCP server that accepts connections and never answers."""
    server = SilentServer()
    yield server
    server.close()


def test_a_server_that_never_answers_times_out(cli: Cli, silent: SilentServer) -> None:
    port, accepted = silent.port, silent.held
    started = time.monotonic()
    message = cli.fails(ExitStatus.SERVER, "--timeout", "0.5", "--url", f"redis://127.0.0.1:{port}", "len", "jobs")
    assert time.monotonic() - started < 6  # its 0.5 s, not the default 10 s (loose: a loaded machine)
    assert "did not answer in time" in message
    assert len(accepted) == 1  # one attempt: nothing is re-sent


def test_the_timeout_comes_from_the_environment_too(cli: Cli, silent: SilentServer) -> None:
    port = silent.port
    started = time.monotonic()
    cli.fails(ExitStatus.SERVER, "--url", f"redis://127.0.0.1:{port}", "len", "jobs", env={"PSCTL_TIMEOUT": "0.3"})
    assert time.monotonic() - started < 6  # its 0.3 s, not the default 10 s (loose: a loaded machine)


def test_a_server_error_exits_1(cli: Cli, r: Any) -> None:
    r.set("jobs:s", "not a sorted set")
    message = cli.fails(ExitStatus.SERVER, "len", "jobs")
    assert "refused the command" in message and "WRONGTYPE" in message


# -- --version, resolution, the embedded server ----------------------------------


def test_version(cli: Cli) -> None:
    done = cli("--version", env={"REDIS_URL": DEAD})
    assert (done.exit_code, done.stdout) == (0, f"psctl {__version__}\n")


def test_url_beats_redis_url(cli: Cli, redis_url: str, r: Any) -> None:
    r.psadd("jobs", "a", "1")
    assert cli.ok("--url", redis_url, "len", "jobs", env={"REDIS_URL": DEAD}) == {"name": "jobs", "length": 1}


@pytest.fixture
def embedded(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = fake_embedded(redis_url)
    monkeypatch.setitem(sys.modules, "psctl.embedded", module)
    return module


NO_SERVER_NAMED = {"REDIS_URL": None, "REDIS_HOST": None}


def test_no_server_named_uses_the_embedded_one_and_says_so(cli: Cli, r: Any, embedded: types.ModuleType) -> None:
    r.psadd("jobs", "a", "1")
    done = cli("len", "jobs", env=NO_SERVER_NAMED)
    assert (done.exit_code, json.loads(done.stdout)) == (0, {"name": "jobs", "length": 1})
    [notice] = done.stderr.splitlines()
    assert notice.startswith("psctl: using the embedded server at") and "REDIS_URL" in notice
    assert embedded.started == 1


def test_no_notice_on_a_terminal(cli: Cli, r: Any, embedded: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # stdout a pipe, stderr a terminal, the server running already: nothing to say
    monkeypatch.setattr(terminal, "stderr_is_terminal", lambda: True)
    done = cli("len", "jobs", env=NO_SERVER_NAMED)
    assert done.exit_code == 0 and done.stderr == ""


def test_a_terminal_is_told_when_psctl_starts_the_server(
    cli: Cli, r: Any, embedded: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(terminal, "stderr_is_terminal", lambda: True)
    embedded.fresh = True  # type: ignore[attr-defined]
    done = cli("len", "jobs", env=NO_SERVER_NAMED)
    assert done.exit_code == 0 and done.stderr.startswith("psctl: started the embedded server at")


def test_quiet_silences_the_notice_even_for_cron(cli: Cli, r: Any, embedded: types.ModuleType) -> None:
    """-q silences the notice of a server that runs already; one the command
    starts is always said (a cron job that lost its REDIS_URL is noticed)."""
    for fresh in (False, True):
        embedded.fresh = fresh  # type: ignore[attr-defined]
        for args in (("-q", "len", "jobs"), ("len", "jobs", "--quiet"), ("expire", "-q")):
            done = cli(*args, env=NO_SERVER_NAMED)
            assert (done.exit_code, done.stdout) == (0, ""), args
            if fresh:
                assert done.stderr.startswith("psctl: started the embedded server at "), args
            else:
                assert done.stderr == "", args


def test_a_named_server_never_starts_the_embedded_one(cli: Cli, embedded: types.ModuleType) -> None:
    cli.fails(ExitStatus.SERVER, "len", "jobs", env={"REDIS_URL": DEAD})
    cli.fails(ExitStatus.SERVER, "len", "jobs", env={"REDIS_URL": None, "REDIS_HOST": "127.0.0.1",
                                                    "REDIS_PORT": str(free_port())})  # fmt: skip
    assert embedded.started == 0


def test_bad_usage_does_not_start_the_embedded_server(cli: Cli, embedded: types.ModuleType) -> None:
    cli.fails(ExitStatus.USAGE, "pull", "jobs", "--expire-in", "1h", "--no-expire", env=NO_SERVER_NAMED)
    cli.fails(ExitStatus.USAGE, "delete", "jobs", env=NO_SERVER_NAMED)
    assert embedded.started == 0


def test_server_status_and_stop(cli: Cli, embedded: types.ModuleType) -> None:
    status = cli.ok("server", "status", env=NO_SERVER_NAMED)
    assert status == embedded.status()
    assert cli.ok("server", "stop", env=NO_SERVER_NAMED) == {"stopped": True, "pid": 42}
    shown = cli("server", "status", "--table", env=NO_SERVER_NAMED).stdout
    assert "running" in shown and "yes" in shown and "/s/redis.sock" in shown
    assert embedded.started == 0


def test_server_status_on_a_terminal_says_which_server_commands_use(
    cli: Cli, embedded: types.ModuleType, on_terminal: None
) -> None:
    done = cli("server", "status", env={"REDIS_URL": "redis://u:pw-secret@db.example:6379/0"})
    assert done.exit_code == 0
    assert "redis://u:***@db.example:6379/0" in done.stderr and "pw-secret" not in done.stderr


def test_when_the_embedded_server_cannot_start(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from psctl.launcher import ServerError

    module = types.ModuleType("psctl.embedded")

    def start_server() -> tuple[str, bool]:
        raise ServerError("no Redis-compatible server binary")

    module.start_server = start_server  # type: ignore[attr-defined]
    module.missing_home = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "psctl.embedded", module)
    message = cli.fails(ExitStatus.SERVER, "len", "jobs", env=NO_SERVER_NAMED)
    assert "no Redis-compatible server binary" in message


def test_where_and_secrets_know_every_password() -> None:
    env = {"REDIS_URL": "redis://:a-secret@h:1/0", "REDIS_PASSWORD": "b-secret"}
    assert set(connection.secrets("unix:///s.sock?password=c-secret", env)) == {"a-secret", "b-secret", "c-secret"}
    assert connection.where("unix:///s.sock?password=c-secret", env) == "unix:///s.sock?password=***"
    assert connection.where(None, {}) == "the embedded server"


@pytest.mark.parametrize("on_cluster", [False, True], ids=["standalone", "cluster"])
def test_the_client_names_itself_without_reading_package_metadata(
    on_cluster: bool, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLIENT SETINFO reports what redis-py would, but redis-py is told its
    version instead of looking it up (costly at every start)."""
    import redis
    import redis.utils

    from psctl.settings import Settings

    url = request.getfixturevalue("cluster").url if on_cluster else request.getfixturevalue("redis_url")
    monkeypatch.setattr(redis.utils, "get_lib_version", lambda: pytest.fail("redis-py looked its version up"))
    target = connection.Target(Settings.resolve({}, url=url, cluster=on_cluster), embedded=False)
    client = connection.connect(target, timeout=2)
    try:
        info = client.client_info(target_nodes="random") if on_cluster else client.client_info()
    finally:
        client.close()
    # servers before Redis 7.2 have no CLIENT SETINFO: then only the lookup is checked
    assert (info.get("lib-name", "redis-py"), info.get("lib-ver", redis.__version__)) == ("redis-py", redis.__version__)


def test_every_command_has_a_summary_and_an_example(cli: Cli) -> None:
    for path in command_paths():
        done = cli(*path, "--help", env={"REDIS_URL": DEAD})
        assert done.exit_code == 0, path
        text = " ".join(done.stdout.split())
        assert f"Example: psctl {' '.join(path)}" in text, path


def test_the_command_list_is_complete() -> None:
    assert {" ".join(p) for p in command_paths()} == {
        "add", "add-many", "pull", "keys", "values", "get", "len", "names", "incr", "prune", "decr-all",
        "remove", "expire", "delete", "lease", "ack", "release", "extend", "dead", "requeue", "work", "stats", "metrics",
        "item", "lift", "dump", "pause", "resume", "limit", "server status", "server start",
        "server stop", "config show", "config path",
    }  # fmt: skip


def test_main_turns_a_stray_exception_into_one_line(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_app, "app", broken)
    with pytest.raises(SystemExit) as done:
        cli_app.main()
    assert done.value.code == 1
    assert capsys.readouterr().err == "psctl: unexpected error: RuntimeError: boom\n"



def test_cluster_mode_end_to_end(cluster: Any) -> None:
    from psctl import RedisCluster

    client = RedisCluster.from_url(cluster.url)
    client.flushdb()
    try:
        cli = Cli(cluster.url)
        assert cli.ok("--cluster", "add", "jobs", "a", "x", "-s", "2") == {"key": "a", "added": True, "score": 2.0}
        assert cli.ok("add-many", "mail", "--format", "csv", input="key,value\nm,y\n", env={"REDIS_CLUSTER": "1"}) == counts(1)
        assert client.hget("{jobs}:t", "a") == b"x"  # the cluster layout
        assert cli.ok("--cluster", "names") == ["jobs", "mail"]
        assert cli.ok("--cluster", "pull", "jobs", "--no-expire") == [{"key": "a", "value": "x"}]
        assert cli.ok("--cluster", "expire") == {"expired": {}, "total": 0}
        assert cli.ok("--cluster", "delete", "mail", "--yes") == {"deleted": True}
    finally:
        client.flushdb()
        client.close()


# -- issue 11: passwords with characters a URL reserves (point 9) ---------------------


@pytest.mark.parametrize("password", ["Zq7#Xw9k", "Zq7?Xw9k", "Zq7/Xw9k", "Zq7#Xw9k?Vb3/Np4", "Zq7@Xw9k:Vb3"])
def test_no_fragment_of_a_password_is_ever_printed(cli: Cli, password: str) -> None:
    url = f"redis://someone:{password}@127.0.0.1:{free_port()}/0"
    fragments = [part for part in re.split(r"[#?/@:]", password) if part]
    for args, env in (
        (["--url", url, "len", "jobs"], {}),
        (["--debug", "--url", url, "len", "jobs"], {}),
        (["len", "jobs"], {"REDIS_URL": url}),
        (["--debug", "len", "jobs"], {"REDIS_URL": url}),
        (["--url", url, "server", "status"], {}),
    ):
        done = cli(*args, env=env)
        assert done.exit_code in (ExitStatus.SERVER, ExitStatus.USAGE, ExitStatus.NOT_FOUND, 0), done.stderr
        shown = done.stdout + done.stderr
        for fragment in fragments:
            assert fragment not in shown, (args, shown)


def test_a_library_error_about_a_url_holds_no_password() -> None:
    from psctl.settings import Settings

    for url in ("redis://u:Zq7#Xw9k@host:6379/0", "redis://u:Zq7/Xw9k@host:6379/0", "redis://u:Zq7Xw9k@host:port/0"):
        with pytest.raises(ValueError) as raised:
            Settings.resolve({}, url=url)
        assert "Zq7" not in str(raised.value) and "Xw9k" not in str(raised.value)


# -- issue 11: small things (point 15) ---------------------------------------------------


def test_a_url_parameter_redis_py_does_not_take_is_bad_usage(cli: Cli) -> None:
    message = cli.fails(ExitStatus.USAGE, "--url", f"redis://127.0.0.1:{free_port()}/0?ssl=true", "len", "jobs")
    assert "ssl" in message and "rediss://" in message


def test_a_count_beyond_what_the_server_takes_is_bad_usage(cli: Cli, r: Any) -> None:
    message = cli.fails(ExitStatus.USAGE, "pull", "jobs", "--count", "100000000000000")
    assert "--count" in message or "count" in message
    # a listing reads a page at a time: any limit is fine
    assert cli.ok("keys", "jobs", "--limit", "100000000000000") == []


def test_a_stream_name_that_is_not_utf8_works(cli: Cli, r: Any) -> None:
    name = b"bin\xff".decode("utf-8", "surrogateescape")  # as Python hands over such an argument
    assert cli.ok("add", name, "k", "v") == {"key": "k", "added": True, "score": 1.0}
    assert cli.ok("len", name)["length"] == 1
    assert r.hget(b"bin\xff:t", "k") == b"v"
    assert cli.ok("pull", name) == [{"key": "k", "value": "v"}]


# -- issue 11: JSON output is strict JSON (point 13) ------------------------------------


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_an_add_that_would_overflow_is_refused(cli: Cli, r: Any) -> None:
    assert cli.ok("add", "jobs", "big", "v", "--score", "1.7e308")["score"] == 1.7e308
    message = cli.fails(ExitStatus.USAGE, "add", "jobs", "big", "v", "--score", "1.7e308")
    assert "finite" in message or "overflow" in message
    assert r.zscore("jobs:s", "big") == 1.7e308


def test_infinite_scores_written_by_other_tools_still_give_strict_json(cli: Cli, r: Any) -> None:
    r.hset("jobs:t", mapping={"up": "1", "down": "2"})
    r.zadd("jobs:s", {"up": float("inf"), "down": float("-inf")})
    done = cli("keys", "jobs", "--json")
    found = strict_json(done.stdout)
    assert [row["key"] for row in found] == ["up", "down"]
    assert json.loads(done.stdout)[0]["score"] == float("inf")  # and read back as the infinity it is
