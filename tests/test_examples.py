"""The documentation's examples run as written (against the test server): the
library's, the workers', flow control's, and the shell examples that hand item
text to a command, with values no shell or ``xargs`` could carry."""

from __future__ import annotations

import ast
import asyncio
import io
import os
import re
import signal
import subprocess
import time
import tokenize
from pathlib import Path

import pytest

from .docs import blocks, command_of, shell_env
from .helpers import blocked_clients

LIBRARY = "docs/howto/library.md"
LEASES = "docs/howto/leases.md"
CRON = "docs/howto/cron.md"
WORKERS = "docs/howto/python-workers.md"
FLOW = "docs/howto/flow-control.md"


def library_blocks() -> list[str]:
    return blocks(LIBRARY, "Use the library from Python", "python")


def run_block(code: str, redis_url: str, monkeypatch) -> dict:
    monkeypatch.setenv("REDIS_URL", redis_url)
    code = re.sub(r"redis://(localhost|queue-host):6379/0", redis_url, code)
    namespace: dict = {}
    exec(compile(code, LIBRARY, "exec"), namespace)
    return namespace


def test_quick_example_returns_what_its_comments_say(redis_url, r, monkeypatch):
    """Each ``# -> value`` or ``# {...}`` comment is the statement's result."""
    quick, _, _ = library_blocks()  # (then Async's and Dependency injection's)
    code = re.sub(r"redis://localhost:6379/0", redis_url, quick)
    comments = {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(code).readline)
        if token.type == tokenize.COMMENT
    }
    namespace: dict = {}
    checked = 0
    for node in ast.parse(code).body:
        source = ast.get_source_segment(code, node)
        if not isinstance(node, ast.Expr):
            exec(source, namespace)
            continue
        result = eval(source, namespace)
        expected = re.match(r"#\s*(?:-> )?(\{.*?\}|\[.*?\]|[\d.]+|None)", comments.get(node.end_lineno, ""))
        if expected:
            assert result == ast.literal_eval(expected[1]), source
            checked += 1
    assert checked >= 5
    assert r.psnames() == ["task_queue"]


def test_async_and_injection_examples_run(redis_url, r, monkeypatch):
    blocks = library_blocks()
    asyncio_ns = run_block(next(b for b in blocks if "async def main" in b), redis_url, monkeypatch)
    asyncio.run(asyncio_ns["main"]())
    assert r.pslen("task_queue") == 0 and r.zscore("task_queue:exp", "task_1")
    r.flushdb()

    di = run_block(next(b for b in blocks if "@inject" in b), redis_url, monkeypatch)
    di["add_items_to_stream"]()
    assert r.pskeys("task_queue") == ["task_3", "task_1", "task_2"]
    di["process_items"]()
    assert r.pskeys("task_queue") == []
    r.psaddmany("task_queue", [("task_2", "x", 3), ("keep", "y", 20)], readd=True)
    asyncio.run(di["boost"]())
    assert r.pskeys("task_queue", withscores=True) == [("keep", 18.0)]


def test_the_leases_example_runs(redis_url, r, monkeypatch):
    """The Python block of "Leases by hand", with a handle() of the test's own:
    what it says happens, happens."""
    [code] = blocks(LEASES, "Leases by hand", "python")
    code = re.sub(r"redis://localhost:6379/0", redis_url, code)
    handled = []
    namespace = {"handle": lambda key, value: handled.append((key, value))}
    exec(compile(code, LEASES, "exec"), namespace)
    assert handled == [("job-2", b"send mail")]
    assert r.psadd("jobs", "job-2", "again") is None  # acknowledged: cooling down
    assert r.hget("jobs:held", "job-1") is None and r.psadd("jobs", "job-1", "x") is None  # acked with 2 h
    assert r.zscore("jobs:exp", "job-1") is not None


# -- the shell examples that hand item text to a command -----------------------------------

# what a shell example must hand over exactly: quotes, runs of spaces, a
# newline (a trailing one too), a backslash, a value that is not UTF-8, an empty one
AWKWARD = {
    "quoted": b"it's \"quoted\"  with  spaces\nand a second line\n",
    "shell": b"$(touch pwned) `touch pwned` ; rm -rf * \\ %s",
    "binary": b"\xff\x00\xfe bytes\n",
    "empty": b"",
}
# records what it was given: its stdin, and its arguments (there should be none)
PROCESS_ONE = '#!/bin/sh\nn=$(date +%s%N)$$\nprintf "%s" "$*" > "args.$n"\ncat > "part.$n"\nmv "part.$n" "got.$n"\n'

# the "From cron" loop as it once was: xargs splits the value into
# words, and fails on a quote after the pull has taken the item
OLD_CRON_LOOP = """while item=$(psctl pull jobs --json) && [ "$item" != "[]" ]; do
    printf '%s\\n' "$item" | jq -r '.[0].value' | xargs -r ./process-one
done
"""


def handed_over(folder: Path) -> list[tuple[bytes, str]]:
    """What ./process-one was given, run by run: (stdin, arguments)."""
    runs = sorted(path.name.split(".", 1)[1] for path in folder.glob("got.*"))
    return [((folder / f"got.{n}").read_bytes(), (folder / f"args.{n}").read_text()) for n in runs]


def add_awkward(r) -> None:
    r.psaddmany("jobs", [(key, value, score) for score, (key, value) in enumerate(AWKWARD.items())])


def check_handed_over_exactly(folder: Path) -> None:
    assert sorted(handed_over(folder)) == sorted((value, "") for value in AWKWARD.values())
    assert not (folder / "pwned").exists()


def run_to_the_end(loop: str, redis_url: str, folder: Path) -> None:
    (folder / "process-one").write_text(PROCESS_ONE)
    (folder / "process-one").chmod(0o755)
    subprocess.run(["bash", "-c", loop], cwd=folder, env=shell_env(redis_url), timeout=120, check=False,
                   capture_output=True)  # fmt: skip


def test_the_cron_loop_hands_any_value_over_exactly(redis_url, r, tmp_path):
    """The "From cron" worker loop, run by bash with jq, over values with quotes,
    spaces, newlines, shell syntax, bytes that are not UTF-8 and nothing at all:
    ./process-one gets each value on stdin, byte for byte, and nothing else."""
    _, _, loop = blocks(CRON, "Feed and drain from cron", "sh")  # (after the crontab lines)
    assert loop.startswith("while ")
    add_awkward(r)
    run_to_the_end(loop, redis_url, tmp_path)
    check_handed_over_exactly(tmp_path)
    assert r.pslen("jobs") == 0


def test_the_old_cron_loop_fails_that_check(redis_url, r, tmp_path):
    """The check above is no formality: the loop the page once had lost items."""
    add_awkward(r)
    run_to_the_end(OLD_CRON_LOOP, redis_url, tmp_path)
    assert r.pslen("jobs") == 0  # (every item was taken)
    try:
        check_handed_over_exactly(tmp_path)
    except AssertionError:
        return
    raise AssertionError("the old loop passed the check")


def test_the_cron_work_line_hands_any_value_over_exactly(redis_url, r, tmp_path):
    """The crontab line of "From cron": psctl work, until the stream is empty."""
    _, [line], _ = (block.splitlines() for block in blocks(CRON, "Feed and drain from cron", "sh"))
    command = command_of(line)  # (the crontab's time fields, folder, server and path off)
    assert command == "PSCTL_NO_EMBEDDED=1 psctl work jobs --idle-exit 0 -q -- ./process-one"
    add_awkward(r)
    run_to_the_end(command, redis_url, tmp_path)
    check_handed_over_exactly(tmp_path)
    assert r.pslen("jobs") == 0


@pytest.mark.slow
def test_the_lease_loop_hands_any_value_over_exactly(redis_url, r, tmp_path):
    """The shell loop of "Leases by hand" (it waits for more work: stopped with Ctrl-C once done)."""
    loop, _ = blocks(LEASES, "Leases by hand", "sh")  # (then the lease commands)
    assert loop.startswith("while ")
    (tmp_path / "process-one").write_text(PROCESS_ONE)
    (tmp_path / "process-one").chmod(0o755)
    add_awkward(r)
    shell = subprocess.Popen(["bash", "-c", loop], cwd=tmp_path, env=shell_env(redis_url), start_new_session=True,
                             stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (len(handed_over(tmp_path)) >= len(AWKWARD) and r.pslen("jobs") == 0 and blocked_clients(r)):
            assert shell.poll() is None, shell.communicate()
            assert time.monotonic() < deadline, handed_over(tmp_path)
            time.sleep(0.05)
        os.killpg(shell.pid, signal.SIGINT)
        shell.communicate(timeout=10)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    check_handed_over_exactly(tmp_path)
    assert r.psdead("jobs") == {} and r.hlen("jobs:held") == 0  # (each acknowledged)


# -- Python workers ----------------------------------------------------------------------


def worker_blocks() -> list[str]:
    return blocks(WORKERS, "Python workers", "python")


def test_the_aging_example_does_what_it_says(r, k):
    [block] = blocks(FLOW, "Aging", "python")
    exec(compile(block, FLOW, "exec"), {"r": r})
    assert r.pskeys("jobs") == ["alert", "report"]
    assert r.pslimit("jobs")["aging"] is None  # turned off at its end
    assert set(r.hgetall(k("jobs").limits)) <= {b"base"}  # the points gained, while items wait


def test_the_workers_examples_do_what_they_say(redis_url, r, monkeypatch, capsys):
    first, second, third, fourth, fifth, sixth = worker_blocks()
    delivered: list[bytes] = []
    monkeypatch.setenv("REDIS_URL", redis_url)
    namespace: dict = {"deliver": delivered.append}
    exec(compile(re.sub(r"redis://localhost:6379/0", redis_url, first), WORKERS, "exec"), namespace)
    assert sorted(delivered) == [b"to: ada@example.org", b"to: alan@example.org"]
    printed = capsys.readouterr().out
    assert re.fullmatch(r"WorkSummary\(done=2, failed=0, dead=0, seconds=[\d.]+, outcome='idle'\)\n", printed)

    r.psaddmany("urls", [("https://a.example", "", 1), ("https://b.example", "", 2)])
    crawled: list[str] = []

    async def crawl(url: str) -> None:
        crawled.append(url)

    namespace = {"crawl": crawl}
    exec(compile(re.sub(r"redis://localhost:6379/0", redis_url, second), WORKERS, "exec"), namespace)
    assert sorted(crawled) == ["https://a.example", "https://b.example"]

    # Retry and Dead: what the comments say
    quota = [True]
    namespace = {"over_quota": lambda: quota[0], "deliver": delivered.append}
    exec(compile(third, WORKERS, "exec"), namespace)
    from psctl import Redis, Worker

    r.psaddmany("mail", [("m1", "to: x", 1)])
    redis = Redis.from_url(redis_url)
    Worker(redis, "mail", namespace["send"], idle_exit=0).run()
    later = r.psitem("mail", "m1")
    assert later["state"] == "delayed" and 890 < (later["until"] - later["last_failure"]["at"]).total_seconds() <= 901
    quota[0] = False
    r.psaddmany("mail2", [("m2", "garbage", 1)])
    Worker(redis, "mail2", namespace["send"], idle_exit=0).run()
    assert r.psdead("mail2").reasons == {"m2": "no recipient"}

    # a batch: the rejected keys fail, the rest are acknowledged
    class Database:
        def insert_many(self, rows: list[tuple[str, bytes]]) -> list[str]:
            return [key for key, value in rows if value == b"bad"]

    r.psaddmany("rows", [("r1", "good", 1), ("r2", "bad", 2), ("r3", "good", 3)])
    namespace = {"redis": redis, "database": Database(), "Worker": Worker}
    exec(compile(fourth, WORKERS, "exec"), namespace)
    assert r.psitem("rows", "r2")["last_failure"]["reason"] == "rejected by the database"
    assert r.psitem("rows", "r1")["state"] == "cooling"

    # injection: the handler gets a client from REDIS_URL
    namespace = {}
    exec(compile(fifth, WORKERS, "exec"), namespace)
    r.psaddmany("injected", [("i1", "v", 1)])
    assert Worker(redis, "injected", namespace["handle"], idle_exit=0).run().done == 1
    assert r.psget("done", "i1") == b"v"
    redis.close()


def test_the_workers_testing_example_runs(psctl_redis):
    *_, sixth = worker_blocks()
    namespace: dict = {}
    exec(compile(sixth, WORKERS, "exec"), namespace)
    namespace["test_totals_are_summed"](psctl_redis)


def test_the_flow_control_python_example_does_what_it_says(redis_url, r, monkeypatch, capsys):
    code, _, _ = blocks(FLOW, "Flow control", "python")  # (then Several streams' and Aging's)
    fetched: list[str] = []
    namespace: dict = {"download": fetched.append}
    exec(compile(re.sub(r"redis://localhost:6379/0", redis_url, code), FLOW, "exec"), namespace)
    assert capsys.readouterr().out == "60 True\n"
    assert len(set(fetched)) == 60
    stats = r.psstats("scraper")
    assert (stats["rate"], stats["max_held"], stats["counters"]["leased"]) == (50.0, 8, 60)
    assert r.psstats("reports")["paused"] is False


def test_the_flow_control_shell_examples_print_what_they_say(redis_url, r):
    """Each psctl line of the section's sh block, in order, prints the JSON of its comment."""
    import json
    import shlex

    from .helpers import Cli

    cli = Cli(redis_url)
    [block] = blocks(FLOW, "Flow control", "sh")
    checked = 0
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        done = cli(*shlex.split(command)[1:], "--json")
        assert done.exit_code == 0, (line, done.stderr)
        if comment.strip().startswith("{"):
            assert json.loads(done.stdout) == json.loads(comment.strip()), line
            checked += 1
    assert checked == 3
    assert r.psstats("scraper")["tokens"] == 50.0 and r.psstats("jobs")["rate"] is None


def test_the_several_streams_example_prints_what_it_says(redis_url, r, monkeypatch, capsys):
    [several] = blocks(FLOW, "Several streams", "python")
    exec(compile(re.sub(r"redis://localhost:6379/0", redis_url, several), FLOW, "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "{'mail': 2, 'mail:urgent': 8}"
    assert sorted(line.split()[0] for line in printed[:-1]) == ["mail"] * 2 + ["mail:urgent"] * 8
