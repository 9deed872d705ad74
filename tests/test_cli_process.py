"""The installed ``psctl`` run as a real process against the session's server:
pipes, terminals, exit statuses, start-up imports and shell completion."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from psctl.cli import completion
from testservers import free_port

from .helpers import complete, counts

PSCTL = Path(sys.executable).with_name("psctl")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(redis_url: str, r: Any) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_", "_PSCTL"))}
    return clean | {"REDIS_URL": redis_url}


def psctl(*args: str, env: dict[str, str], input: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PSCTL), *args], env=env, input=input, capture_output=True, text=isinstance(input, (str, type(None))),
        timeout=60,
    )  # fmt: skip


def test_the_installed_command_round_trip(env: dict[str, str], r: Any) -> None:
    added = psctl("add", "task_queue", "task_1", "Process data", "--score", "10", env=env)
    assert (added.returncode, added.stderr) == (0, "")
    assert json.loads(added.stdout) == {"key": "task_1", "added": True, "score": 10.0}
    assert psctl("add", "task_queue", "task_2", "Send email", "-s", "12", env=env).returncode == 0
    pulled = psctl("pull", "task_queue", "--count", "5", env=env)
    assert json.loads(pulled.stdout) == [
        {"key": "task_2", "value": "Send email"}, {"key": "task_1", "value": "Process data"}
    ]  # fmt: skip
    assert r.pslen("task_queue") == 0
    assert psctl("pull", "task_queue", env=env).stdout == "[]\n"


def test_every_exit_status_from_a_process(env: dict[str, str], r: Any) -> None:
    r.psadd("jobs", "a", "1")
    assert psctl("get", "jobs", "a", env=env).returncode == 0
    missing = psctl("get", "jobs", "nope", env=env)
    assert (missing.returncode, missing.stdout) == (3, "")
    assert missing.stderr == "psctl: no item 'nope' in stream 'jobs'\n"
    assert psctl("incr", "jobs", "nope", "1", env=env).returncode == 3
    usage = psctl("pull", "jobs", "--expire-in", "1h", "--no-expire", env=env)
    assert (usage.returncode, usage.stdout) == (2, "")
    assert len(usage.stderr.splitlines()) == 1
    assert psctl("nonsense", env=env).returncode == 2
    assert psctl("delete", "jobs", env=env, input="y\n").returncode == 2
    assert r.pslen("jobs") == 1


def test_an_unreachable_server_fails_within_two_seconds(env: dict[str, str]) -> None:
    for url in (f"redis://user:pa55word@127.0.0.1:{free_port()}/0", "unix:///nonexistent/psctl.sock"):
        started = time.monotonic()
        done = psctl("len", "jobs", env=env | {"REDIS_URL": url})
        elapsed = time.monotonic() - started
        assert done.returncode == 1, done.stderr
        assert elapsed < 5, elapsed  # not a reply's 10 s; process start-up included (a loaded machine's)
        assert done.stderr.startswith("psctl: cannot reach the server at ") and len(done.stderr.splitlines()) == 1
        assert "pa55word" not in done.stderr and "Traceback" not in done.stderr


def test_pipes_between_psctl_commands(env: dict[str, str], r: Any) -> None:
    r.psaddmany("jobs", [("bin", b"\x00\xff", 3), ("text", "[b]é[/b]", 1)])
    exporter = subprocess.Popen([str(PSCTL), "values", "jobs"], env=env, stdout=subprocess.PIPE)
    importer = subprocess.run(
        [str(PSCTL), "add-many", "copy"], env=env, stdin=exporter.stdout, capture_output=True, text=True, timeout=60
    )
    assert exporter.wait(60) == 0
    assert (importer.returncode, json.loads(importer.stdout)) == (0, counts(2))
    assert r.psvalues("copy") == {"bin": b"\x00\xff", "text": "[b]é[/b]".encode()}


def test_a_large_stdin_with_a_bad_last_line_writes_nothing(env: dict[str, str], r: Any) -> None:
    lines = [json.dumps({"key": f"k{i}", "value": "v" * 50, "score": i}) for i in range(30_000)]
    lines[-1] = '{"key": "k-last", "value": "v", "score": NaN}'
    done = psctl("add-many", "jobs", env=env, input="\n".join(lines) + "\n")
    assert done.returncode == 2
    assert done.stderr == "psctl: standard input: line 30000: score must be a finite number, got nan\n"
    assert r.keys("*") == []


def test_a_closed_pipe_is_not_a_traceback(env: dict[str, str], r: Any) -> None:
    r.psaddmany("jobs", [(f"k{i}", "v" * 1000, i) for i in range(3000)])
    done = subprocess.run(
        f"'{PSCTL}' values jobs | head -c 10", shell=True, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout == '[{"key": "'
    assert "Traceback" not in done.stderr and "Exception" not in done.stderr


def test_the_whole_output_is_written_before_the_quick_exit(env: dict[str, str], r: Any, tmp_path: Path) -> None:
    """psctl ends with os._exit (no interpreter teardown): its buffered output
    must still all arrive, through a pipe and into a file, and the atexit
    handlers must still run."""
    r.psaddmany("jobs", [(f"k{i:05d}", "v" * 500, i) for i in range(4000)])
    piped = psctl("values", "jobs", env=env)
    assert (piped.returncode, piped.stderr) == (0, "")
    assert len(json.loads(piped.stdout)) == 4000
    with open(tmp_path / "out.json", "w") as file:
        done = subprocess.run([str(PSCTL), "values", "jobs"], env=env, stdout=file, stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 0
    assert len(json.loads((tmp_path / "out.json").read_text())) == 4000
    marker = tmp_path / "atexit-ran"
    (tmp_path / "sitecustomize.py").write_text(
        f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
    )
    site_env = env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))}
    assert psctl("len", "jobs", env=site_env).stdout == '{"name": "jobs", "length": 4000}\n'
    assert marker.exists()
    failed = psctl("get", "jobs", "nope", env=site_env)
    assert (failed.returncode, failed.stderr) == (3, "psctl: no item 'nope' in stream 'jobs'\n")


def run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Runs psctl with stdout on a pseudo-terminal; returns its status and what it showed."""
    main, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(PSCTL), *args], env=env | {"COLUMNS": "100", "TERM": "dumb"}, stdout=terminal,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(terminal)
        shown = b""
        while True:
            ready, _, _ = select.select([main], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other end closed: EIO
                break
            if not chunk:
                break
            shown += chunk
        status = process.wait(30)
        assert process.stderr is not None
        assert process.stderr.read() == b""
        process.stderr.close()
    finally:
        os.close(main)
    return status, shown.decode("utf-8", "replace")


def test_a_table_on_a_terminal_json_in_a_pipe(env: dict[str, str], r: Any) -> None:
    r.psaddmany("jobs", [(f"job-{i:02}", f"[red]value {i}[/red]", i) for i in range(30)])
    status, shown = run_on_a_terminal(["values", "jobs"], env)
    assert status == 0
    assert "key" in shown and "value" in shown and not shown.lstrip().startswith("[")
    assert "[red]value 29[/red]" in shown  # literally, not red
    assert "job-10" in shown and "job-09" not in shown  # 20 rows
    assert "10 more" in shown
    status, shown = run_on_a_terminal(["values", "jobs", "--json"], env)
    assert len(json.loads(shown)) == 30


# -- start-up: nothing imported before it is needed -----------------------------

# Runs psctl's entry point and reports on stderr which of WATCHED it imported.
WATCHED = ("redis", "rich", "json", "psctl.readers", "pydantic", "click")
PROBE = """
import atexit, sys
watched = sys.argv[1].split(",")
atexit.register(lambda: sys.stderr.write("\\nimported: %s\\n" % ",".join(
    name for name in watched if any(m == name or m.startswith(name + ".") for m in sys.modules))))
sys.argv = ["psctl", *sys.argv[2:]]
from psctl.cli import main
main()
"""


def imported(*args: str, env: dict[str, str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(WATCHED), *args], env=env, capture_output=True, text=True, timeout=60
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("imported:"), done.stderr
    return set(filter(None, last.removeprefix("imported:").strip().split(",")))


def imports_redis(*args: str, env: dict[str, str]) -> bool:
    return "redis" in imported(*args, env=env)


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["add", "--help"], ["server", "--help"], ["pull", "--help"]], ids=" ".join
)
def test_help_and_version_do_not_import_redis(env: dict[str, str], args: list[str]) -> None:
    assert not imports_redis(*args, env=env)


def test_completing_commands_does_not_import_redis(env: dict[str, str]) -> None:
    words = {"_PSCTL_COMPLETE": "complete_bash", "COMP_WORDS": "psctl pu", "COMP_CWORD": "1"}
    assert not imports_redis(env=env | words)


def test_the_probe_sees_redis_when_a_command_runs(env: dict[str, str]) -> None:
    assert imports_redis("len", "jobs", env=env)


def test_each_command_imports_only_what_it_uses(env: dict[str, str], tmp_path: Path) -> None:
    """Rich for a table or --help, JSON to print it, the add-many readers for
    add-many; never pydantic (Typer < 0.29) nor a Click of its own."""
    assert imported("--version", env=env) == set()
    assert imported("--help", env=env) == {"rich"}
    assert imported("len", "jobs", env=env) == {"redis", "json"}  # redis-py itself imports json
    assert imported("len", "jobs", "--table", env=env) == {"redis", "json", "rich"}
    empty = tmp_path / "empty.csv"
    empty.write_text("key,value\n")
    assert imported("add-many", "jobs", str(empty), env=env) == {"json", "psctl.readers"}


# -- shell completion ---------------------------------------------------------


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_completion_scripts_are_not_stale(shell: str, env: dict[str, str]) -> None:
    committed = (ROOT / "completions" / f"psctl.{shell}").read_text()
    regenerate = "regenerate with: python -m psctl.cli.completion completions/"
    assert completion.script(shell) == committed, regenerate
    printed = subprocess.run(
        [str(PSCTL)], env=env | {"_PSCTL_COMPLETE": f"source_{shell}"}, capture_output=True, text=True, timeout=60
    )
    assert printed.stdout == committed, regenerate


def test_regenerating_writes_the_three_scripts(tmp_path: Path) -> None:
    completion.main([str(tmp_path)])
    for shell in completion.SHELLS:
        assert (tmp_path / f"psctl.{shell}").read_text() == (ROOT / "completions" / f"psctl.{shell}").read_text()



def test_completion_of_commands_options_and_stream_names(env: dict[str, str], r: Any) -> None:
    r.psadd("jobs", "a", "1")
    r.psadd("journal", "a", "1")
    r.psadd("other", "a", "1")
    assert complete("psctl pu", env) == ["pull"]
    assert "add-many" in complete("psctl ad", env)
    assert "--expire-in" in complete("psctl pull jobs --", env)
    assert complete("psctl pa", env) == ["pause"]
    assert {"--rate", "--burst", "--max-held", "--clear"} <= set(complete("psctl limit jobs --", env))
    assert complete("psctl limit jo", env) == ["jobs", "journal"]
    assert complete("psctl len jo", env) == ["jobs", "journal"]
    assert complete("psctl pull ", env) == ["jobs", "journal", "other"]


def test_completion_of_names_when_the_server_is_down(env: dict[str, str]) -> None:
    started = time.monotonic()
    assert complete("psctl len ", env | {"REDIS_URL": f"redis://127.0.0.1:{free_port()}"}) == []
    assert time.monotonic() - started < 10  # refused at once, not the 30 s the test's TAB may wait


def add_many_peak_rss(rows: int, env: dict[str, str]) -> float:
    """Peak RSS (MB) of ``psctl add-many`` fed ``rows`` NDJSON rows on stdin by another process."""
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys\nw = sys.stdout.write\n"
         f"for i in range({rows}): w('{{\"key\": \"k%d\", \"value\": \"v\", \"score\": %d}}\\n' % (i, i % 7))"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    adder = subprocess.Popen([str(PSCTL), "add-many", f"mem{rows}"], stdin=writer.stdout, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)  # fmt: skip
    assert writer.stdout is not None
    writer.stdout.close()
    out = adder.stdout.read()  # type: ignore[union-attr]
    adder.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(adder.pid, 0)
    adder.returncode = os.waitstatus_to_exitcode(status)
    writer.wait()
    assert adder.returncode == 0 and json.loads(out) == counts(rows)
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_add_many_memory_does_not_grow_with_the_input(env: dict[str, str], r: Any) -> None:
    """Issue 11, point 5: counts, not a score per row."""
    small = add_many_peak_rss(50_000, env)
    large = add_many_peak_rss(1_000_000, env)
    assert large - small < 5, (small, large)
