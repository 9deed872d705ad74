"""Issue 16: the command line for operators (SPEC §9), through the installed
``psctl`` in subprocesses, a pseudo-terminal where a terminal matters: output
formats, streamed listings, dump and copy, options anywhere, --dry-run and
confirmation, cron's quiet, the mistyped-name hint, help texts, broken pipes."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cases.cli import run_child

PSCTL = Path(sys.executable).with_name("psctl")


@pytest.fixture
def env(redis_url: str, r: Any) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_", "_PSCTL"))}
    return clean | {"REDIS_URL": redis_url}


def psctl(*args: str, env: dict[str, str], input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(PSCTL), *args], env=env, input=input, capture_output=True, timeout=120)


def ok(*args: str, env: dict[str, str], input: bytes | None = None) -> Any:
    done = psctl(*args, env=env, input=input)
    assert done.returncode == 0, (args, done.returncode, done.stderr)
    return done


def everything(r: Any) -> dict[bytes, Any]:
    """Every key of the server with its type and content: a snapshot to compare."""
    found: dict[bytes, Any] = {}
    for key in sorted(r.keys("*")):
        kind = r.type(key)
        if kind == b"zset":
            found[key] = r.zrange(key, 0, -1, withscores=True)
        elif kind == b"hash":
            found[key] = sorted(r.hgetall(key).items())
        elif kind == b"set":
            found[key] = sorted(r.smembers(key))
        elif kind == b"list":
            found[key] = r.lrange(key, 0, -1)
        else:
            found[key] = r.get(key)
    return found


# -- output formats ------------------------------------------------------------


def test_raw_gives_bare_values_and_exact_bytes(env: dict[str, str], r: Any) -> None:
    binary = b"\x00\xffline one\nline two"  # a NUL, a byte that is not UTF-8, no final newline
    r.psadd("jobs", "bin", binary, 5)
    r.psadd("jobs", "text", "hello", 3)
    assert ok("len", "jobs", "-o", "raw", env=env).stdout == b"2\n"
    assert ok("get", "jobs", "bin", "-o", "raw", env=env).stdout == binary
    assert ok("get", "jobs", "text", "-o", "raw", env=env).stdout == b"hello"
    assert ok("keys", "jobs", "-o", "raw", env=env).stdout == b"bin\ntext\n"
    assert ok("keys", "jobs", "-o", "raw", "--scores", env=env).stdout == b"bin\t5\ntext\t3\n"
    assert ok("values", "jobs", "-o", "raw", env=env).stdout == binary + b"\nhello\n"
    assert ok("names", "-o", "raw", env=env).stdout == b"jobs\n"
    assert ok("incr", "jobs", "text", "1", "-o", "raw", env=env).stdout == b"4\n"
    assert ok("add", "jobs", "new", "v", "-s", "1.5", "-o", "raw", env=env).stdout == b"1.5\n"
    assert ok("pull", "jobs", "-n", "2", "-o", "raw", "--no-expire", env=env).stdout == binary + b"\nhello\n"
    assert ok("expire", "-o", "raw", env=env).stdout == b"0\n"
    no_raw = psctl("stats", "-o", "raw", env=env)
    assert no_raw.returncode == 2 and b"no raw output" in no_raw.stderr and no_raw.stdout == b""


def test_ndjson_csv_and_scores(env: dict[str, str], r: Any) -> None:
    r.psaddmany("jobs", [("a", "x", 3), ("b", 'he said "hi", then left', 2)])
    lines = ok("values", "jobs", "-o", "ndjson", "--scores", env=env).stdout.decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"key": "a", "value": "x", "score": 3.0}, {"key": "b", "value": 'he said "hi", then left', "score": 2.0},
    ]  # fmt: skip
    rows = list(csv.reader(io.StringIO(ok("values", "jobs", "-o", "csv", env=env).stdout.decode())))
    assert rows == [["key", "value"], ["a", "x"], ["b", 'he said "hi", then left']]
    rows = list(csv.reader(io.StringIO(ok("keys", "jobs", "-o", "csv", env=env).stdout.decode())))
    assert rows == [["key", "score"], ["a", "3"], ["b", "2"]]
    assert json.loads(ok("values", "jobs", "--json", env=env).stdout) == [
        {"key": "a", "value": "x"}, {"key": "b", "value": 'he said "hi", then left'},
    ]  # fmt: skip
    stats = list(csv.reader(io.StringIO(ok("stats", "jobs", "-o", "csv", env=env).stdout.decode())))
    assert "counters.added" in stats[0] and stats[1][stats[0].index("waiting")] == "2"
    assert ok("len", "jobs", "-o", "ndjson", env=env).stdout == b'{"name": "jobs", "length": 2}\n'


@pytest.mark.slow
def test_a_listing_streams_in_bounded_memory(env: dict[str, str], r: Any) -> None:
    """values -o ndjson of 200,000 items reads a page at a time: its peak RSS is
    that of a listing of 2,000 (within a few MB), where one JSON document of
    them all took 200 MB."""
    value = "v" * 100
    for start in range(0, 200_000, 50_000):
        r.psaddmany("big", [(f"key-{i:06d}", value, i) for i in range(start, start + 50_000)])
    r.psaddmany("small", [(f"key-{i:06d}", value, i) for i in range(2_000)])

    def peak(name: str) -> tuple[float, int]:
        # VmHWM polled while it runs: wait4's ru_maxrss would count this process's
        # pages, shared with the child between fork and exec
        status, out, err, mb = run_child([str(PSCTL), "values", name, "-o", "ndjson"], watch_memory=True, env=env)
        assert (status, err) == (0, ""), err
        assert mb is not None
        return mb, out.count("\n")

    small, small_lines = peak("small")
    large, large_lines = peak("big")
    print(f"\npeak RSS of values -o ndjson: {small:.1f} MB for 2,000 items, {large:.1f} MB for 200,000")
    assert (small_lines, large_lines) == (2_000, 200_000)
    assert large - small < 5, (small, large)

    # and the first line comes at once: head -1 ends it quietly, exit status 0
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{PSCTL}' values big -o ndjson | head -1"],
        env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, b"")
    assert json.loads(done.stdout)["key"] == "key-199999"
    assert time.monotonic() - started < 10


def test_a_closed_pipe_is_silent_and_exit_0_for_a_table_and_json(env: dict[str, str], r: Any) -> None:
    r.psaddmany("jobs", [(f"k{i}", "v" * 200, i) for i in range(5000)])
    for output in ("--table", "--json", "-o ndjson", "-o csv"):
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"'{PSCTL}' values jobs --limit 5000 {output} | head -c 10"],
            env=env | {"COLUMNS": "80"}, capture_output=True, timeout=60,
        )  # fmt: skip
        assert (done.returncode, done.stderr) == (0, b""), output


def test_an_output_option_for_a_command_without_output_is_bad_usage(env: dict[str, str], r: Any) -> None:
    for args in (["-o", "csv", "dump", "jobs"], ["dump", "jobs", "--json"], ["work", "jobs", "-o", "json", "--", "true"]):
        done = psctl(*args, env=env)
        assert done.returncode == 2, args
        assert b"takes no" in done.stderr and done.stdout == b"", args


# -- dump and add-many --replace: an exact copy ---------------------------------------


@pytest.mark.slow
def test_dump_then_add_many_replace_copies_a_stream_exactly(env: dict[str, str], r: Any) -> None:
    items = [
        ("plain", b"hello", 3.0),
        ("bin-value", b"\x00\xff\xfe binary", 2.5),
        (b"key-\xff".decode("utf-8", "surrogateescape"), b"value of a key that is not UTF-8", -1.0),
        ("newline", b"a\nb\r\n", 1e-7),
        ("big", b"x" * 100_000, 1e15),
    ]
    r.psaddmany("src", items)
    dumped = ok("dump", "src", env=env).stdout
    lines = [json.loads(line) for line in dumped.decode().splitlines()]
    assert lines[0] == {"key": "big", "value": "x" * 100_000, "score": 1e15}
    assert {"key_base64": base64.b64encode(b"key-\xff").decode(), "value": "value of a key that is not UTF-8",
            "score": -1.0} in lines  # fmt: skip
    assert {"key": "bin-value", "value_base64": base64.b64encode(b"\x00\xff\xfe binary").decode(), "score": 2.5} in lines

    copy = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{PSCTL}' dump src | '{PSCTL}' add-many copy --replace"],
        env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert copy.returncode == 0, copy.stderr
    for _ in range(2):  # and again: --replace sets, never adds twice
        assert ok("add-many", "copy", "--replace", env=env, input=dumped).returncode == 0
    assert r.zrange("copy:s", 0, -1, withscores=True) == r.zrange("src:s", 0, -1, withscores=True)
    assert r.hgetall("copy:t") == r.hgetall("src:t")
    assert ok("dump", "copy", env=env).stdout == dumped


def test_add_reads_the_value_from_stdin_and_replace_sets_the_score(env: dict[str, str], r: Any) -> None:
    payload = b"\x00\x01 bytes \xff as they are\n"
    assert json.loads(ok("add", "jobs", "k", "-", "-s", "4", env=env, input=payload).stdout)["score"] == 4.0
    assert r.psget("jobs", "k") == payload
    assert json.loads(ok("add", "jobs", "k", "again", "-s", "9", "--replace", env=env).stdout)["score"] == 9.0
    assert json.loads(ok("add", "jobs", "k", "again", "-s", "9", "--replace", env=env).stdout)["score"] == 9.0
    assert r.zscore("jobs:s", "k") == 9.0


# -- options anywhere, durations ---------------------------------------------------------


@pytest.mark.slow
def test_global_options_before_or_after_the_command(env: dict[str, str], r: Any, redis_url: str) -> None:
    r.psadd("jobs", "a", "1")
    no_url = {k: v for k, v in env.items() if k != "REDIS_URL"} | {"REDIS_URL": "redis://127.0.0.1:1/0"}
    expected = b'{"name": "jobs", "length": 1}\n'
    assert ok("len", "jobs", "--url", redis_url, env=no_url).stdout == expected
    assert ok("len", "--url", redis_url, "jobs", env=no_url).stdout == expected
    assert ok("--url", redis_url, "len", "jobs", env=no_url).stdout == expected
    assert ok("--json", "len", "jobs", env=env).stdout == expected
    assert ok("-o", "raw", "len", "jobs", env=env).stdout == b"1\n"
    assert ok("len", "jobs", "--timeout", "2s", env=env).stdout == expected
    assert ok("--timeout", "1h30m", "len", "jobs", env=env).stdout == expected
    assert ok("pull", "jobs", "--expire-in", "1w", "-o", "raw", env=env).stdout == b"1\n"
    assert r.zscore("jobs:exp", "a") - time.time() == pytest.approx(7 * 86400, abs=60)
    bad = psctl("len", "jobs", "--timeout", "1h1h", env=env)
    assert bad.returncode == 2 and b"each unit at most once" in bad.stderr


# -- safety: --dry-run, asking on a terminal, never elsewhere -------------------------------


@pytest.mark.slow
def test_dry_run_changes_nothing(env: dict[str, str], r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", -1), ("c", "3", -2)])
    r.pspull("jobs", count=1, gate=True)  # a gated, cooling down
    lease = r.pslease("jobs", count=1, max_deliveries=1)
    r.psrelease("jobs", lease.token)  # b: dead after its one delivery
    before = everything(r)
    checks = [
        (["prune", "jobs", "--below", "0", "--dry-run"], {"removed": ["c"], "dry_run": True}),
        (["decr-all", "jobs", "1", "--dry-run"], {"updated": 1, "dry_run": True}),
        (["remove", "jobs", "c", "nope", "--dry-run"], {"removed": 1, "dry_run": True}),
        (["delete", "jobs", "--dry-run"], {"deleted": True, "items": 2, "dry_run": True}),  # c waiting, b dead
        (["requeue", "jobs", "--dry-run"], {"requeued": 1, "dry_run": True}),
        (["lift", "jobs", "a", "c", "--dry-run"], {"lifted": 1, "dry_run": True}),
    ]
    for args, expected in checks:
        assert json.loads(ok(*args, env=env).stdout) == expected, args
    assert everything(r) == before
    # and what they said is what the real ones do (in an order where none changes another's answer)
    for args in (["decr-all", "jobs", "1"], ["lift", "jobs", "a", "c"], ["requeue", "jobs"], ["remove", "jobs", "c", "nope"]):
        expected = next(said for dry, said in checks if dry[0] == args[0])
        assert json.loads(ok(*args, env=env).stdout) == {k: v for k, v in expected.items() if k != "dry_run"}, args


def run_with_a_terminal(
    args: list[str], env: dict[str, str], answer: bytes | None, interrupt: bool = False
) -> tuple[int, bytes, bytes]:
    """psctl with stdin and stderr on a pseudo-terminal (typing ``answer``, or
    with ``interrupt`` sending SIGINT, once it asks), stdout a pipe: its
    status, stdout, and what the terminal showed."""
    main, terminal = pty.openpty()
    try:
        process = subprocess.Popen([str(PSCTL), *args], env=env, stdin=terminal, stderr=terminal,
                                   stdout=subprocess.PIPE)  # fmt: skip
        os.close(terminal)
        shown = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
                if answer is not None and b"[y/N]" in shown:
                    os.write(main, answer)
                    answer = None
                if interrupt and b"[y/N]" in shown:
                    process.send_signal(signal.SIGINT)
                    interrupt = False
            elif process.poll() is not None:
                break
        # its terminal closes as it exits, a moment before it can be waited for: it is
        # given until the deadline (then it hung: killed, the test fails, not the run)
        try:
            status = process.wait(max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait(30)
        assert process.stdout is not None
        out = process.stdout.read()
    finally:
        os.close(main)
    return status, out, shown


def test_prune_and_remove_ask_on_a_terminal_and_never_in_a_pipe(env: dict[str, str], r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", -1), ("c", "3", -2)])
    status, out, shown = run_with_a_terminal(["prune", "jobs", "--below", "0"], env, b"n\n")
    assert status == 0 and b"Remove 2 items scored below 0 from 'jobs'?" in shown and out == b""
    assert r.pslen("jobs") == 3
    status, out, shown = run_with_a_terminal(["remove", "jobs", "a", "nosuch", "a"], env, b"n\n")
    assert status == 0 and b"Remove 1 item from 'jobs'?" in shown and r.pslen("jobs") == 3  # the items there
    status, out, shown = run_with_a_terminal(["remove", "jobs", "nosuch"], env, b"n\n")
    assert status == 0 and b"[y/N]" not in shown and json.loads(out) == {"removed": 0}  # nothing to ask about
    status, out, shown = run_with_a_terminal(["prune", "jobs", "--below", "0"], env, None, interrupt=True)
    assert status == 130 and b"interrupted: nothing changed" in shown and out == b"" and r.pslen("jobs") == 3
    dry = json.loads(ok("prune", "jobs", "--below", "0", "--dry-run", env=env).stdout)["removed"]
    status, out, shown = run_with_a_terminal(["prune", "jobs", "--below", "0"], env, b"y\n")
    assert status == 0 and json.loads(out)["removed"] == dry == ["c", "b"]  # the same, in the same order
    status, out, shown = run_with_a_terminal(["remove", "jobs", "a", "--yes"], env, None)
    assert status == 0 and b"[y/N]" not in shown and json.loads(out) == {"removed": 1}
    # stdin not a terminal (cron, a pipe): nobody to ask, it acts
    r.psaddmany("jobs", [("d", "1", -5)])
    assert json.loads(ok("prune", "jobs", "--below", "0", env=env).stdout) == {"removed": ["d"]}


def test_delete_of_no_stream_is_not_found_without_asking(env: dict[str, str], r: Any) -> None:
    r.psadd("jobs", "a", "1")
    status, out, shown = run_with_a_terminal(["delete", "jbos"], env, b"y\n")
    assert status == 3 and b"[y/N]" not in shown and out == b""
    assert b"no stream 'jbos'; did you mean 'jobs'?" in shown
    assert r.pslen("jobs") == 1
    gone = psctl("delete", "nosuch", "--yes", env=env)
    assert (gone.returncode, gone.stderr) == (3, b"psctl: no stream 'nosuch'\n")


# -- cron, hints, help ------------------------------------------------------------------


@pytest.mark.slow
def test_quiet_prints_nothing_on_success_and_errors_still(env: dict[str, str], r: Any) -> None:
    r.psadd("jobs", "a", "1")
    for args in (["expire", "-q"], ["-q", "expire"], ["len", "jobs", "-q"], ["add", "jobs", "b", "2", "--quiet"],
                 ["work", "jobs", "--idle-exit", "0", "-q", "--", "true"]):  # fmt: skip
        done = ok(*args, env=env)
        assert (done.stdout, done.stderr) == (b"", b""), args
    assert r.pslen("jobs") == 0  # (work did its work)
    failed = psctl("get", "jobs", "nope", "-q", env=env)
    assert failed.returncode == 3 and failed.stderr == b"psctl: no item 'nope' in stream 'jobs'\n"


def test_a_mistyped_stream_name_gets_a_hint_on_stderr(env: dict[str, str], r: Any) -> None:
    r.psadd("jobs", "a", "1")
    for args in (["pull", "jbos"], ["values", "jbos"], ["keys", "jbos"], ["len", "jbos"], ["dump", "jbos"]):
        done = psctl(*args, env=env)
        assert done.returncode == 0, args  # a hint, not a failure
        assert done.stderr == b"psctl: no stream 'jbos'; did you mean 'jobs'?\n", args
    quiet = psctl("len", "xyzzy", env=env)
    assert (quiet.returncode, quiet.stderr) == (0, b"")  # no similar name: nothing to say
    missing = psctl("get", "jbos", "a", env=env)
    assert missing.stderr == b"psctl: no item 'a' in stream 'jbos'; did you mean 'jobs'?\n"


def test_help_reads_well(env: dict[str, str]) -> None:
    done = ok("add", "--help", env=env | {"COLUMNS": "200"})
    text = done.stdout.decode()
    assert "Usage: psctl add [OPTIONS] NAME KEY VALUE" in text
    assert "{NAME}" not in text and "<str>" not in text
    assert "(--readd lifts both), held by a lease" in text  # a docstring's line break is no break in the help
    assert text.count("Example: psctl add ") >= 2
    choices = ok("add-many", "--help", env=env | {"COLUMNS": "200"}).stdout.decode()
    assert "csv|json|ndjson" in choices.replace(" ", "")


def test_csv_rows_share_their_columns_whatever_the_bytes(env: dict[str, str], r: Any) -> None:
    """A value (or key) that is not UTF-8 is its bytes in the same column: the
    header of a streamed CSV, taken from the first row, fits every row."""
    r.psadd("jobs", "text", "plain", 1)
    r.psadd("jobs", b"bin\xff", b"\xff\x00bytes", 2)
    out = ok("values", "jobs", "-o", "csv", "--scores", env=env).stdout
    assert out == b'key,value,score\nbin\xff,\xff\x00bytes,2\ntext,plain,1\n'
    assert ok("keys", "jobs", "-o", "csv", env=env).stdout == b"key,score\nbin\xff,2\ntext,1\n"


def test_bad_output_choices_fail_before_anything_changes(env: dict[str, str], r: Any) -> None:
    r.psadd("jobs", "a", "1")
    for args in (["lease", "jobs", "-o", "raw"], ["-o", "raw", "lease", "jobs"], ["--table", "lease", "jobs", "--json"],
                 ["--json", "add-many", "jobs", "-o", "raw"], ["-o", "csv", "pull", "jobs", "-o", "raw"]):  # fmt: skip
        done = psctl(*args, env=env, input=b"key,value\nz,v\n")
        assert (done.returncode, done.stdout) == (2, b""), (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1, done.stderr
    assert r.pslen("jobs") == 1 and not r.exists("jobs:held") and r.psget("jobs", "z") is None
    assert json.loads(ok("add-many", "jobs", "-o", "raw", env=env, input=b"key,value\nz,v\n").stdout) == 1
    watch = psctl("stats", "--watch", "1", "-q", env=env)
    assert watch.returncode == 2 and b"--watch and -q" in watch.stderr
    empty = psctl("add", "jobs", "", "v", env=env)
    assert empty.returncode == 2 and b"must not be empty" in empty.stderr


def test_messages_and_help_show_no_python_reprs(env: dict[str, str], r: Any) -> None:
    zero = psctl("lease", "jobs", "--for", "0", env=env)
    assert zero.returncode == 2 and b"got 0" in zero.stderr and b"timedelta" not in zero.stderr
    for command in ("incr", "decr-all"):
        text = ok(command, "--help", env=env | {"COLUMNS": "200"}).stdout.decode()
        assert "<float>" not in text and "BY" in text, command
