"""``psctl work`` tells how it went (SPEC §10): why each delivery failed is
kept with its item, an item that goes dead is named on stderr as it happens
(``-q`` too), and the exit status says when any command failed (123)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from .test_cli_work import Work


@pytest.fixture
def work(redis_url: str, r: Any, tmp_path: Path) -> Work:
    return Work(redis_url, tmp_path)


def test_a_cron_job_whose_every_item_died_says_so_and_exits_123(work: Work, r: Any) -> None:
    """psctl work q --idle-exit 0 -q --max-deliveries 1 -- false: not 0 and silent."""
    r.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    done = work.run("q", "--idle-exit", "0", "-q", "--max-deliveries", "1", command=("false",))
    assert done.returncode == 123, done.stderr
    lines = done.stderr.splitlines()
    assert "psctl work: 'a' is dead after 1 delivery: exit status 1" in lines
    assert "psctl work: 'b' is dead after 1 delivery: exit status 1" in lines
    assert lines[-1].startswith("psctl work q: 0 done, 0 failed, 2 dead")  # the summary too: not a success
    assert r.psdead("q").reasons == {"a": "exit status 1", "b": "exit status 1"}


def test_quiet_and_all_well_is_silent_and_0(work: Work, r: Any) -> None:
    r.psadd("q", "a", "v")
    done = work.run("q", "--idle-exit", "0", "-q", command=("true",))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_failure_keeps_the_exit_status_and_the_last_line_of_stderr(work: Work, r: Any) -> None:
    r.psadd("q", "a", "v")
    script = "echo 'step 1' >&2; printf 'could not reach db:5432\\n\\n' >&2; exit 3"
    # (--idle-exit 2s: the retry, due 0.1 s after the failure, comes within it; with 0 the
    # worker ends as soon as nothing waits, and the retry is for the next run)
    done = work.run("q", "--idle-exit", "2s", "--max-deliveries", "2", "--retry-delay", "0.1s",
                    command=("sh", "-c", script))  # fmt: skip
    assert done.returncode == 123
    assert done.stderr.count("step 1\n") == 2  # its stderr passes through
    assert r.psdead("q").reasons == {"a": "exit status 3: could not reach db:5432"}
    assert "'a' is dead after 2 deliveries: exit status 3: could not reach db:5432" in done.stderr


def test_a_failed_delivery_keeps_its_reason_while_the_item_waits_again(work: Work, r: Any) -> None:
    r.psadd("q", "a", "v")
    done = work.run("q", "--idle-exit", "0", "--limit", "1", "--retry-delay", "1h",
                    command=("sh", "-c", "echo 'quota exceeded' >&2; exit 4"))  # fmt: skip
    assert done.returncode == 123
    item = r.psitem("q", "a")
    assert item["state"] == "delayed" and item["last_failure"]["reason"] == "exit status 4: quota exceeded"
    assert item["last_failure"]["delivery"] == 1
    assert r.psstats("q")["overdue"] == 0
    [listed] = r.pskeys("q", state="delayed")
    assert listed["reason"] == "exit status 4: quota exceeded"


def test_a_command_killed_by_a_signal_says_which(work: Work, r: Any) -> None:
    r.psadd("q", "a", "v")
    work.run("q", "--idle-exit", "0", "--max-deliveries", "1", command=("sh", "-c", "kill -9 $$"))
    assert r.psdead("q").reasons == {"a": "killed by SIGKILL"}


def test_a_long_last_line_is_cut_and_control_characters_never_reach_the_terminal(work: Work, r: Any) -> None:
    r.psadd("q", "a", "v")
    line = "\x1b]0;pwned\x07" + "x" * 500 + "the end"
    script = work.folder / "says.py"
    script.write_text(f"import sys\nsys.stderr.write({line!r} + '\\n')\nsys.exit(2)\n")
    done = work.run("q", "--idle-exit", "0", "--max-deliveries", "1", command=(sys.executable, str(script)))
    reason = r.psdead("q").reasons["a"]
    assert reason.startswith("exit status 2: …") and reason.endswith("xthe end") and len(reason) <= 220
    dead_line = next(text for text in done.stderr.splitlines() if "is dead after" in text)
    assert "\x1b" not in dead_line and "\x07" not in dead_line
