"""``psctl work`` (SPEC §7, issue 14): the installed command, run in
subprocesses against the session's server, running real commands."""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from psctl import Redis
from psctl.cli.status import ExitStatus
from psctl.launcher import pid_running
from psctl.layout import stream_keys
from testservers import start_server

from .docs import blocks, command_of
from .helpers import PSCTL, wait_until_blocked

# A command that records what it got: one JSON line per run, appended to the
# file named by $RECORD (one write: lines of concurrent runs never mix), then
# sleeps $SLEEP seconds and exits $EXIT (or 1 for the keys listed in $FAIL).
RECORDER = r"""
import json, os, sys, time
value = sys.stdin.buffer.read()
start = time.time()
time.sleep(float(os.environ.get("SLEEP", "0")))
environ = os.environb
record = {
    "key": environ.get(b"PSCTL_KEY", b"").decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape").hex(),
    "key_base64": environ.get(b"PSCTL_KEY_BASE64", b"").decode(),
    "value": value.hex(), "score": os.environ.get("PSCTL_SCORE"), "delivery": int(os.environ["PSCTL_DELIVERY"]),
    "stream": os.environ.get("PSCTL_STREAM"), "pid": os.getpid(), "start": start, "end": time.time(),
}
with open(os.environ["RECORD"], "a") as out:
    out.write(json.dumps(record) + "\n")
failing = os.environ.get("FAIL", "").split(",")
sys.exit(1 if os.environ.get("PSCTL_KEY") in failing else int(os.environ.get("EXIT", "0")))
"""


class Work:
    """``psctl work`` against the session's server, recording its commands' runs."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder
        self.record = folder / "record.ndjson"
        self.script = folder / "recorder.py"
        self.script.write_text(RECORDER)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_HOST", "REDIS_CLUSTER", "PSCTL_TIMEOUT")}
        return env | {"REDIS_URL": self.url, "RECORD": str(self.record)} | extra

    def argv(self, name: str, *options: str, command: tuple[str, ...] | None = None) -> list[str]:
        return [str(PSCTL), "work", name, *options, "--", *(command or (sys.executable, str(self.script)))]

    def run(self, name: str, *options: str, command: tuple[str, ...] | None = None, timeout: float = 60,
            **extra: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run(
            self.argv(name, *options, command=command), env=self.env(**extra), capture_output=True, text=True,
            timeout=timeout, cwd=self.folder, check=False,
        )  # fmt: skip

    def start(self, name: str, *options: str, command: tuple[str, ...] | None = None, **extra: str) -> Any:
        return subprocess.Popen(
            self.argv(name, *options, command=command), env=self.env(**extra), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=self.folder,
        )  # fmt: skip

    def runs(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def wait_for_runs(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.runs()) < n:
            assert time.monotonic() < deadline, f"{len(self.runs())} runs, not {n}"
            time.sleep(0.02)
        return self.runs()


@pytest.fixture
def work(redis_url: str, r: Any, tmp_path: Path) -> Work:
    return Work(redis_url, tmp_path)


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The --json summary of a work that ended as asked: exit 0 when every
    command succeeded, 123 when any failed (SPEC §10, as xargs)."""
    found = json.loads(done.stdout.splitlines()[-1])
    assert set(found) == {"done", "failed", "dead", "seconds"}
    assert done.returncode == (123 if found["failed"] + found["dead"] else 0), (done.returncode, done.stderr)
    return found


def gone(pid: int, timeout: float = 10) -> bool:
    """Whether the process ``pid`` is gone, ended and reaped, within ``timeout``
    seconds (the init process that reaps an orphan may be slow on a loaded
    machine; a command that was not stopped sleeps far longer)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def started(work: Work, process: Any, n: int = 1) -> list[dict[str, Any]]:
    """Waits until ``n`` commands have started (they write a pid file first)."""
    deadline = time.monotonic() + 30
    while len(list(work.folder.glob("started-*"))) < n:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return [json.loads(p.read_text()) for p in work.folder.glob("started-*")]


# a command that notes it started (pid and key), then sleeps $SLEEP and records itself;
# the note is renamed into place whole, so that a test never reads it half written
SLOW = r"""
import json, os, subprocess, sys
note = os.path.join(os.environ["FOLDER"], f"started-{os.getpid()}")
with open(os.path.join(os.environ["FOLDER"], f".started-{os.getpid()}"), "w") as f:
    f.write(json.dumps({"pid": os.getpid(), "key": os.environ["PSCTL_KEY"], "delivery": os.environ["PSCTL_DELIVERY"]}))
os.rename(f.name, note)
sys.stdout.flush()
os.execv(sys.executable, [sys.executable, os.environ["RECORDER"]])
"""


@pytest.fixture
def slow(work: Work) -> tuple[str, ...]:
    script = work.folder / "slow.py"
    script.write_text(SLOW)
    return (sys.executable, str(script))


def slow_env(work: Work, seconds: float) -> dict[str, str]:
    return {"FOLDER": str(work.folder), "RECORDER": str(work.script), "SLEEP": str(seconds)}


# -- what the command gets ------------------------------------------------------------


def test_values_reach_the_command_byte_for_byte_and_never_a_shell(work: Work, r: Any) -> None:
    values = {
        "nul": b"a\x00b\x00",
        "quotes": b"it's \"quoted\"\n\tand on two lines\n",
        "shell": b"$(touch pwned) `touch pwned2`; touch pwned3",
        "binary": bytes(range(256)),
        "empty": b"",
        "big": b"x" * 300_000,  # more than a pipe holds
    }
    r.psaddmany("q", [(key, value, i) for i, (key, value) in enumerate(values.items())])
    found = summary(work.run("q", "--idle-exit", "0", "--json"))
    assert found["done"] == len(values) and found["failed"] == found["dead"] == 0
    got = {bytes.fromhex(run["key"]).decode(): bytes.fromhex(run["value"]) for run in work.runs()}
    assert got == values
    assert not list(work.folder.glob("pwned*"))
    assert r.pslen("q") == 0 and r.hlen(stream_keys("q").held) == 0


def test_the_item_is_in_the_environment(work: Work, r: Any) -> None:
    r.psadd("stream one", "kéy", "v", 2.5)
    r.psadd("stream one", "with\x00nul", "v", 1)
    summary(work.run("stream one", "--idle-exit", "0", "--json"))
    first, second = work.runs()
    assert (bytes.fromhex(first["key"]).decode(), first["score"], first["delivery"], first["stream"]) == (
        "kéy", "2.5", 1, "stream one")  # fmt: skip
    assert second["key"] == "" and second["key_base64"] == "d2l0aABudWw="  # "with\0nul": no variable holds a NUL


PROBE = r"""
import json, os
links = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        links[fd] = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # (the listing's own)
        pass
print(json.dumps({"links": links, "environ": {k: v for k, v in os.environ.items() if k.startswith("PSCTL_")}}))
"""


def test_the_command_gets_none_of_psctls_descriptors_nor_its_item_variables(work: Work, r: Any) -> None:
    """What psctl's parent gave it open beyond stdin, stdout and stderr does
    not reach the command (as subprocess's close_fds), nor the item's
    variables of a psctl work that runs this one: the command's are its own."""
    r.psadd("q", "k", "v", 1)
    read, write = os.pipe()
    try:
        done = subprocess.run(
            work.argv("q", "--idle-exit", "0", "--json", command=(sys.executable, "-c", PROBE)), pass_fds=(write,),
            env=work.env(PSCTL_KEY="outer", PSCTL_SCORE="99", PSCTL_DELIVERY="7", PSCTL_KEY_FILE="/nowhere"),
            capture_output=True, text=True, timeout=60, cwd=work.folder, check=False,
        )  # fmt: skip
        pipe = f"pipe:[{os.fstat(write).st_ino}]"
    finally:
        os.close(read)
        os.close(write)
    assert summary(done)["done"] == 1
    probe = json.loads(done.stdout.splitlines()[0])
    assert pipe not in probe["links"].values(), probe
    environ = probe["environ"]
    assert {k: environ.get(k) for k in ("PSCTL_KEY", "PSCTL_SCORE", "PSCTL_DELIVERY", "PSCTL_STREAM")} == {
        "PSCTL_KEY": "k", "PSCTL_SCORE": "1.0", "PSCTL_DELIVERY": "1", "PSCTL_STREAM": "q"}  # fmt: skip
    assert "PSCTL_KEY_FILE" not in environ


def test_it_works_on_a_cluster(work: Work, cluster: Any, rc: Any) -> None:
    rc.psaddmany("{tenant}jobs", [(f"k{i}", f"v{i}", i) for i in range(20)])
    found = summary(work.run("{tenant}jobs", "-j", "3", "--idle-exit", "0", "--json", REDIS_URL=cluster.url,
                             REDIS_CLUSTER="1"))  # fmt: skip
    assert found["done"] == 20 and rc.pslen("{tenant}jobs") == 0
    assert sorted(bytes.fromhex(run["value"]) for run in work.runs()) == sorted(f"v{i}".encode() for i in range(20))


def test_priority_order_with_one_job(work: Work, r: Any) -> None:
    r.psaddmany("q", [(f"k{i:02d}", "v", (i * 37) % 50) for i in range(50)])
    summary(work.run("q", "-j", "1", "--idle-exit", "0", "--json"))
    order = [bytes.fromhex(run["key"]).decode() for run in work.runs()]
    assert order == [key for key, _ in sorted(((f"k{i:02d}", (i * 37) % 50) for i in range(50)), key=lambda t: -t[1])]


# -- outcomes --------------------------------------------------------------------------


def test_exit_0_acknowledges_with_the_pull_cool_down_gate_or_none(work: Work, r: Any) -> None:
    keys = stream_keys("q")
    r.psaddmany("q", [("a", "v", 3)])
    summary(work.run("q", "--idle-exit", "0", "--json"))
    assert r.zscore(keys.cooling, "a") is not None and r.psadd("q", "a", "v") is None  # a day's cool-down
    r.psaddmany("q", [("b", "v", 3), ("c", "v", 2)])
    summary(work.run("q", "--idle-exit", "0", "--json", "--gate", "--no-expire"))
    assert r.sismember(keys.gated, "b") and r.zscore(keys.cooling, "b") is None
    assert r.pslen("q") == 0 and not r.exists(keys.held)


def test_failures_come_back_later_each_time_then_go_dead(work: Work, r: Any) -> None:
    r.psadd("q", "bad", "v", 1)
    r.psadd("q", "good", "v", 0)
    done = work.run("q", "--retry-delay", "0.3s", "--max-deliveries", "3", "--idle-exit", "2s", "--json", FAIL="bad")
    assert summary(done) | {"seconds": 0} == {"done": 1, "failed": 2, "dead": 1, "seconds": 0}
    bad = [run for run in work.runs() if bytes.fromhex(run["key"]) == b"bad"]
    assert [run["delivery"] for run in bad] == [1, 2, 3]
    gaps = [later["start"] - earlier["end"] for earlier, later in itertools.pairwise(bad)]
    # 0.3 s, then twice that (and a command's start, up to 2 s on a loaded machine)
    assert 0.3 <= gaps[0] < 0.6 + 2 and 0.6 <= gaps[1] < 1.2 + 2, gaps
    dead = r.psdead("q")
    assert dead == {"bad": b"v"} and dead.deliveries == {"bad": 3}
    assert dead.reasons == {"bad": "exit status 1"}
    assert "psctl work: 'bad' is dead after 3 deliveries: exit status 1" in done.stderr.splitlines()


def test_a_command_running_past_its_timeout_is_stopped_and_fails(work: Work, r: Any, slow: tuple[str, ...]) -> None:
    r.psadd("q", "a", "v")
    started_at = time.monotonic()
    # (2 s: long enough for the command to start and note it, on a loaded machine)
    done = work.run("q", "--time-limit", "2s", "--max-deliveries", "1", "--idle-exit", "0", "--json", command=slow,
                    **slow_env(work, 30))  # fmt: skip
    assert time.monotonic() - started_at < 10
    assert summary(done) | {"seconds": 0} == {"done": 0, "failed": 0, "dead": 1, "seconds": 0}
    assert "ran longer than 2 s" in done.stderr
    (pid,) = [json.loads(path.read_text())["pid"] for path in work.folder.glob("started-*")]
    assert not Path(f"/proc/{pid}").exists()  # ended, and reaped
    assert r.psdead("q") == {"a": b"v"} and r.psdead("q").reasons == {"a": "timed out after 2 s"}


def test_a_command_that_cannot_start_is_bad_usage(work: Work, r: Any) -> None:
    r.psadd("q", "a", "v")
    for command, said in [(("no-such-command-x",), "no such command on PATH"),
                          ((str(work.folder),), "not an executable file")]:  # fmt: skip
        done = work.run("q", "--idle-exit", "0", command=command)
        assert done.returncode == ExitStatus.USAGE, done.stderr
        assert said in done.stderr and "Traceback" not in done.stderr
    assert r.pskeys("q") == ["a"]  # nothing leased


@pytest.mark.parametrize(("options", "said"), [
    (("--lease", "0.5s"), "--lease must be at least 1s"),
    (("--time-limit", "0"), "--time-limit must be more than 0"),
    (("-j", "0"), "-j"),
    (("--idle-exit", "soon"), "is not a duration"),
])  # fmt: skip
def test_bad_options_exit_2(work: Work, options: tuple[str, ...], said: str) -> None:
    done = work.run("q", *options)
    assert done.returncode == ExitStatus.USAGE and said in done.stderr, done.stderr


# -- concurrency, limits, waiting ------------------------------------------------------


def test_four_jobs_run_four_commands_at_once(work: Work, r: Any) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(12)])
    summary(work.run("q", "-j", "4", "--idle-exit", "0", "--json", SLEEP="0.5"))
    runs = work.runs()
    events = sorted([(run["start"], 1) for run in runs] + [(run["end"], -1) for run in runs])
    running, most = 0, 0
    for _, change in events:
        running += change
        most = max(most, running)
    assert most == 4


def test_limit_stops_after_n_items(work: Work, r: Any) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(10)])
    assert summary(work.run("q", "-j", "2", "--limit", "3", "--json"))["done"] == 3
    assert r.pslen("q") == 7 and not r.exists(stream_keys("q").held)  # nothing more held


def test_it_waits_for_work_and_an_add_wakes_it(work: Work, r: Any) -> None:
    process = work.start("q", "--json")
    try:
        wait_until_blocked(r, process)  # waiting on the blocking lease's wake-up, not polling
        r.psadd("q", "late", "v")
        work.wait_for_runs(1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err  # nothing was running: a normal stop
    assert json.loads(out)["done"] == 1


def test_idle_exit_waits_that_long_for_work(work: Work, r: Any) -> None:
    started_at = time.monotonic()
    done = work.run("q", "--idle-exit", "1s", "--json")
    assert summary(done)["done"] == 0 and 1 <= time.monotonic() - started_at < 10


# -- stopping ------------------------------------------------------------------------


def test_sigterm_lets_running_commands_finish_within_the_grace(work: Work, r: Any, slow: tuple[str, ...]) -> None:
    r.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    process = work.start("q", "--json", command=slow, **slow_env(work, 3))  # (3 s: the signal comes before it ends)
    try:
        started(work, process)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err  # the command finished within the grace
    assert json.loads(out)["done"] == 1 and "stopping" in err
    assert r.pskeys("q") == ["b"]  # the one leased but not started is back...
    assert r.pslease("q").deliveries == {"b": 1}  # ...its delivery uncounted


@pytest.mark.parametrize("second_signal", [False, True])
def test_a_stop_past_the_grace_or_a_second_ctrl_c_ends_commands_and_gives_items_back(
    work: Work, r: Any, slow: tuple[str, ...], second_signal: bool
) -> None:
    """SIGTERM with a short --grace, or Ctrl-C twice with a long one."""
    r.psadd("q", "a", "v")
    grace = "60s" if second_signal else "0.5s"
    first = signal.SIGINT if second_signal else signal.SIGTERM
    process = work.start("q", "--grace", grace, "--max-deliveries", "1", command=slow, **slow_env(work, 30))
    try:
        (run,) = started(work, process)
        began = time.monotonic()
        process.send_signal(first)
        said = ""
        if second_signal:  # a second signal once the first was handled (it says "stopping"), not one taken with it
            while "stopping" not in said:
                line = process.stderr.readline()
                assert line, said  # (the end of stderr, never told)
                said += line
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        err = said + err
    finally:
        process.kill()
    assert process.returncode == 128 + first, err  # 130 or 143
    assert time.monotonic() - began < 10
    assert f"stopped by {first.name}, running commands ended" in err
    assert gone(run["pid"])  # the command was ended (and reaped), not left to sleep its 30 s
    assert r.pskeys("q") == ["a"] and r.psdead("q") == {}  # back at once, not dead for all its max of 1
    assert r.pslease("q").deliveries == {"a": 1}


def test_a_killed_worker_s_items_come_back_to_another_after_the_lease(
    work: Work, r: Any, slow: tuple[str, ...]
) -> None:
    r.psadd("q", "a", "v")
    process = work.start("q", "--lease", "1s", command=slow, **slow_env(work, 30))
    try:
        (run,) = started(work, process)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        deadline = time.monotonic() + 15  # (it sleeps 30 s otherwise)
        while pid_running(run["pid"]):  # its command dies with it (issue 20: the lifeline)
            assert time.monotonic() < deadline, "the command outlived its worker"
            time.sleep(0.02)
        process.communicate(timeout=10)
    finally:
        process.kill()
    time.sleep(1.2)  # the lease runs out
    summary(work.run("q", "--idle-exit", "0", "--json"))
    again = [run for run in work.runs() if run["delivery"] == 2]
    assert len(again) == 1 and bytes.fromhex(again[0]["key"]) == b"a"


def test_a_command_that_outlives_the_lease_keeps_its_item(work: Work, r: Any, slow: tuple[str, ...]) -> None:
    r.psadd("q", "a", "v")
    # (a 2 s lease, extended every 0.67 s: a loaded machine may be late by more than the 0.67 s of a 1 s one)
    process = work.start("q", "--lease", "2s", "--idle-exit", "0", "--json", command=slow, **slow_env(work, 3))
    try:
        started(work, process)
        deadline = time.monotonic() + 2.8
        while time.monotonic() < deadline:  # another worker tries for as long as the command runs
            assert not r.pslease("q", lease=60), "the item was delivered again while its command ran"
            time.sleep(0.1)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert json.loads(out)["done"] == 1 and [run["delivery"] for run in work.runs()] == [1]


# -- a server that goes away ------------------------------------------------------------


def test_a_server_that_comes_back_within_the_patience_loses_nothing(
    work: Work, tmp_path: Path, slow: tuple[str, ...]
) -> None:
    folder = tmp_path / "own"
    sock = folder / "redis.sock"
    server = start_server(folder, unixsocket=sock, appendonly=True, extra={"appendfsync": "always"})
    url = f"unix://{sock}"
    client = Redis.from_url(url)
    client.psadd("q", "a", "v")
    process = work.start("q", "--idle-exit", "0", "--json", "--lease", "30s", command=slow, REDIS_URL=url,
                         **slow_env(work, 1.5))  # fmt: skip
    try:
        started(work, process)
        os.kill(server.pid, signal.SIGKILL)  # while the command runs
        server.process.wait(10)
        time.sleep(1.5)
        server = start_server(folder, unixsocket=sock, appendonly=True, extra={"appendfsync": "always"})
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        server.stop()
    assert process.returncode == 0, err
    assert "does not answer" in err and "answers again" in err
    assert json.loads(out.splitlines()[-1])["done"] == 1


def test_a_server_gone_for_longer_than_the_patience_is_exit_1(work: Work, tmp_path: Path, slow: Any) -> None:
    folder = tmp_path / "own"
    sock = folder / "redis.sock"
    server = start_server(folder, unixsocket=sock)
    Redis.from_url(f"unix://{sock}").psadd("q", "a", "v")
    process = work.start("q", "--patience", "1s", command=slow, REDIS_URL=f"unix://{sock}", **slow_env(work, 30))
    try:
        (run,) = started(work, process)
        server.stop()
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == ExitStatus.SERVER, err
    assert "did not answer for 1 s" in err and "Traceback" not in err
    assert gone(run["pid"])  # its command was stopped, not left to sleep its 30 s


def test_a_server_unreachable_at_the_start_is_exit_1_at_once(work: Work) -> None:
    started_at = time.monotonic()
    done = work.run("q", REDIS_URL="unix:///nonexistent/psctl.sock")
    assert done.returncode == ExitStatus.SERVER and time.monotonic() - started_at < 10
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


# -- what it shows ---------------------------------------------------------------------


def test_a_summary_line_always_and_a_status_line_on_a_terminal(work: Work, r: Any) -> None:
    r.psaddmany("q", [(f"k{i}", "v", i) for i in range(3)])
    done = work.run("q", "--idle-exit", "0")
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.startswith("psctl work q: 3 done, 0 failed, 0 dead in ")
    assert "\r" not in done.stderr  # no status line when stderr is no terminal
    shown, _ = blocks("docs/howto/shell-workers.md", "Shell workers: psctl work", "text")  # (and a crontab line)
    numbers = re.sub(r"\d+(?:\.\d+)?", "0", shown.strip()).replace("work jobs:", "work q:")
    assert re.fullmatch(re.escape(numbers).replace("0", r"[\d.]+") + "\n", done.stderr), (shown, done.stderr)

    r.psaddmany("q", [(f"m{i}", "v", i) for i in range(3)])  # (the k's cool down)
    main, terminal = os.openpty()
    try:
        process = subprocess.Popen(work.argv("q", "--idle-exit", "0"), env=work.env(SLEEP="0.4"),
                                   stdout=subprocess.DEVNULL, stderr=terminal, stdin=subprocess.DEVNULL)  # fmt: skip
        os.close(terminal)
        shown = b""
        while True:
            ready, _, _ = select.select([main], [], [], 30)
            try:
                chunk = os.read(main, 65536) if ready else b""
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(30) == 0
    finally:
        os.close(main)
    text = shown.decode()
    assert "\x1b[2Kpsctl work q: 1 running, 0 done, 0 failed, 0 dead" in text
    assert "psctl work q: 3 done, 0 failed, 0 dead in " in text


# -- the examples of "Shell workers" -------------------------------------------------------


def readme_work_examples() -> list[str]:
    [block] = blocks("docs/howto/shell-workers.md", "Shell workers: psctl work", "sh")
    return [line.split("  #", 1)[0].strip() for line in block.splitlines()]


def test_the_readme_work_examples_work_as_written(work: Work, r: Any) -> None:
    waiting, hook, cron = readme_work_examples()
    assert waiting.startswith("psctl work jobs -j 4 -- ./process-one") and "curl" in hook
    process_one = work.folder / "process-one"
    process_one.write_text('#!/bin/sh\nprintf "%s=%s|" "$PSCTL_KEY" "$(cat)" >> handled.txt\n')
    process_one.chmod(0o755)
    (work.folder / "send.py").write_text("import sys\nopen('sent.txt', 'ab').write(sys.stdin.buffer.read() + b'|')\n")
    env = work.env() | {"PATH": f"{PSCTL.parent}:{os.environ['PATH']}"}
    r.psaddmany("jobs", [("job-1", "resize photo.jpg", 5), ("job-2", "it's\n\"two\" lines", 8)])
    shell = subprocess.Popen(["bash", "-c", waiting], cwd=work.folder, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        handled = work.folder / "handled.txt"
        while not (handled.exists() and handled.read_text().count("|") == 2 and r.hlen(stream_keys("jobs").held) == 0):
            assert shell.poll() is None, shell.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        wait_until_blocked(r, shell)  # then it waits for more
        shell.send_signal(signal.SIGTERM)
        _, err = shell.communicate(timeout=30)
    finally:
        shell.kill()
    assert shell.returncode == 0, err
    assert sorted(handled.read_text().split("|")[:2]) == ["job-1=resize photo.jpg", "job-2=it's\n\"two\" lines"]
    r.psaddmany("mail", [(f"m{i}", f"mail {i}", i) for i in range(3)])
    done = subprocess.run(["bash", "-c", cron], cwd=work.folder, env=env, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 0 and "3 done" in done.stderr, done.stderr
    assert (work.folder / "sent.txt").read_text() == "mail 2|mail 1|mail 0|"

    _, crontab = blocks("docs/howto/shell-workers.md", "Shell workers: psctl work", "text")  # (the summary's, above)
    r.psaddmany("jobs", [("job-3", "from cron", 1)])
    done = subprocess.run(["bash", "-c", command_of(crontab.strip())], cwd=work.folder, env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0 and "1 done" in done.stderr, done.stderr
    assert handled.read_text().endswith("job-3=from cron|")
