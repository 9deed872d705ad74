"""``psctl work`` against an adversarial tester's findings: processes that
leave their command's process group (GNU ``timeout`` does) still end with it;
a reader that goes away (``| head``) ends the work quietly instead of killing
the queue; Ctrl-Z does not stop a worker whose commands go on; a command that
cannot be started stops the leasing at once; a full disk at the start is
ridden out. The installed command, run in subprocesses against real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from psctl import Redis
from psctl.launcher import pid_running
from psctl.layout import stream_keys
from testservers import start_server

from .helpers import fill_disk, refuses_writes
from .test_cli_work import Work, work  # noqa: F401 (a fixture)
from .test_work_hardening import leftovers, wait_for  # noqa: F401 (a fixture)


class Running:
    """``psctl work`` started with its stdout and stderr in files (a process
    that escaped its command may hold a pipe for as long as it lives)."""

    def __init__(self, work: Work, *args: str, command: tuple[str, ...], **extra: Any) -> None:
        self.out, self.err = work.folder / "out.txt", work.folder / "err.txt"
        popen = extra.pop("popen", {})
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(
                work.argv("q", *args, command=command), env=work.env(**extra), stdout=out, stderr=err,
                cwd=work.folder, **popen,
            )  # fmt: skip

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for one in started:
        one.kill()


# A command whose child leaves the command's process group (setpgid, as GNU
# timeout does) but not its session. The child notes it is ready, then sleeps
# 30 s and writes finished-<pid>: work done after its item was given back. The
# command writes started-<pid> ({"pid", "child"}), then waits for its child
# (as timeout does), or, with $AT_ONCE, exits 0 at once, leaving it behind.
# $STUBBORN: the child ignores SIGTERM. $BARE: the child's environment is
# empty (no PSCTL_WORKER mark).
LEAVER = r"""
import json, os, subprocess, sys, time
folder = os.environ["FOLDER"]
ready = os.path.join(folder, f"ready-{os.getpid()}")
env = {"FOLDER": folder} if os.environ.get("BARE") else dict(os.environ)
child = subprocess.Popen([sys.executable, "-c", '''
import os, signal, sys, time
os.setpgid(0, 0)
if os.environ.get("STUBBORN"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
time.sleep(30)
open(os.path.join(os.environ["FOLDER"], f"finished-{os.getpid()}"), "w").close()
''', ready], env=env)
while not os.path.exists(ready):
    time.sleep(0.01)
with open(os.path.join(folder, f"started-{os.getpid()}.tmp"), "w") as out:
    json.dump({"pid": os.getpid(), "child": child.pid}, out)
os.rename(os.path.join(folder, f"started-{os.getpid()}.tmp"), os.path.join(folder, f"started-{os.getpid()}"))
if os.environ.get("AT_ONCE"):
    sys.exit(0)
sys.exit(child.wait())
"""


def leaver(work: Work) -> tuple[str, ...]:
    script = work.folder / "leaver.py"
    script.write_text(LEAVER)
    return (sys.executable, str(script))


def started_run(work: Work, run: Running, leftovers: list[int]) -> dict[str, Any]:
    def found() -> list[dict[str, Any]]:
        assert run.process.poll() is None or list(work.folder.glob("started-*")), run.stderr
        return [json.loads(path.read_text()) for path in work.folder.glob("started-*") if path.suffix != ".tmp"]

    (first,) = wait_for(found, "the command to start")
    leftovers += [first["pid"], first["child"]]
    return first


# -- 1: the command's session, not only its process group ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["timeout", "grace", "exit"])
def test_a_process_that_left_the_command_s_group_ends_with_the_command(
    work: Work, r: Any, leftovers: list[int], running: list[Running], how: str
) -> None:
    """GNU timeout in a command (`sh -c 'timeout 60 ...'`) moves itself and its
    child to a process group of their own: --time-limit, the end of --grace and
    the command's exit must reach them too (they stay in the command's
    session), before the item is given back or acknowledged."""
    r.psadd("q", "a", "v")
    env: dict[str, str] = {"FOLDER": str(work.folder)}
    if how == "timeout":  # (a child that ignores SIGTERM: SIGKILL 5 s later must reach it too; 2 s: long
        # enough for the command to start its child and note both, on a loaded machine)
        options: tuple[str, ...] = ("--time-limit", "2s", "--max-deliveries", "1", "--idle-exit", "0", "--json")
        env["STUBBORN"] = "1"
    elif how == "grace":
        options = ("--grace", "0.5s")
    else:
        options = ("--idle-exit", "0", "--json")
        env["AT_ONCE"] = "1"
    run = Running(work, *options, command=leaver(work), **env)
    running.append(run)
    first = started_run(work, run, leftovers)
    if how == "grace":
        run.process.send_signal(signal.SIGTERM)
    status = run.wait()
    assert not pid_running(first["child"]), "psctl work ended, the command's child still running"
    assert not list(work.folder.glob("finished-*"))
    if how == "timeout":
        assert status == 123, run.stderr
        assert json.loads(run.out.read_text())["dead"] == 1 and r.psdead("q").reasons == {"a": "timed out after 2 s"}
    elif how == "grace":
        assert status == 143, run.stderr
        assert r.pskeys("q") == ["a"] and r.psdead("q") == {}
    else:
        assert status == 0, run.stderr
        assert json.loads(run.out.read_text())["done"] == 1
        assert "left processes running" in run.stderr


def test_what_left_the_group_is_stopped_while_the_next_command_runs(
    work: Work, r: Any, leftovers: list[int], running: list[Running]
) -> None:
    """Two items, one runner: the first command's leftover (in another group,
    holding its stderr) is found once the second command has started, and
    stopped; both items are done, nothing of either is left."""
    r.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    run = Running(work, "--idle-exit", "0", "--json", command=leaver(work), FOLDER=str(work.folder), AT_ONCE="1")
    running.append(run)
    status = run.wait()
    runs = [json.loads(path.read_text()) for path in work.folder.glob("started-*") if path.suffix != ".tmp"]
    leftovers += [pid for each in runs for pid in (each["pid"], each["child"])]
    assert status == 0, run.stderr
    assert len(runs) == 2 and not any(pid_running(each["child"]) for each in runs)
    assert json.loads(run.out.read_text())["done"] == 2
    assert run.stderr.count("left processes running") == 2


def test_the_literal_gnu_timeout_case(work: Work, r: Any, running: list[Running]) -> None:
    """The tester's repro: `sh -c 'timeout 60 sh -c "sleep 44; ..."'` with
    --time-limit: the sleep must be gone when psctl work is."""
    marker = f"{os.getpid() % 97 + 1}.{time.monotonic_ns() % 10**9}"  # a sleep of its own, found by its argument
    r.psadd("q", "a", "v")
    run = Running(work, "--idle-exit", "0", "--time-limit", "0.5s", "--max-deliveries", "1",
                  command=("sh", "-c", f'timeout 60 sh -c "sleep {marker}; echo still-working"'))  # fmt: skip
    running.append(run)

    def sleeping() -> list[int]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == f"sleep\0{marker}\0".encode():
                    found.append(int(pid))
            except OSError:
                pass
        return found

    try:
        assert run.wait() == 123, run.stderr
        assert sleeping() == [], "the command's sleep outlived its timeout and its worker"
    finally:
        for pid in sleeping():
            os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_takes_along_what_left_the_group_without_its_mark(
    work: Work, r: Any, leftovers: list[int], running: list[Running]
) -> None:
    """psctl work SIGKILLed: the watcher kills what is left of each command's
    session, even a process in another group that carries no PSCTL_WORKER."""
    r.psadd("q", "a", "v")
    run = Running(work, command=leaver(work), FOLDER=str(work.folder), BARE="1")
    running.append(run)
    first = started_run(work, run, leftovers)
    run.process.send_signal(signal.SIGKILL)
    run.wait()
    wait_for(lambda: not pid_running(first["child"]), "the escaped child to die", timeout=15)


# -- 2: a reader that goes away ------------------------------------------------------------


def test_a_reader_that_goes_away_ends_the_work_quietly_and_kills_nothing(work: Work, r: Any) -> None:
    """`psctl work q -j2 --max-deliveries 1 -- sh -c 'echo out' | head -2`: the
    commands that die of SIGPIPE once head is gone are not failed deliveries
    (48 dead items, exit 123, before); the work stops as a stop would, and
    ends quietly with exit status 0."""
    r.psaddmany("q", [(f"k{i:02}", "v", 100 - i) for i in range(50)])
    # k00 and k01 say so at once; every other waits for "go", sent once the reader is gone
    script = ('case "$PSCTL_KEY" in k00|k01) ;; *) while [ ! -e go ]; do sleep 0.01; done;; esac; '
              'echo "out $PSCTL_KEY"')  # fmt: skip
    read, write = os.pipe()
    with open(work.folder / "err.txt", "wb") as err:
        process = subprocess.Popen(
            work.argv("q", "--idle-exit", "0", "-j2", "--max-deliveries", "1", command=("sh", "-c", script)),
            env=work.env(), stdout=write, stderr=err, cwd=work.folder,
        )  # fmt: skip
    os.close(write)
    try:
        with os.fdopen(read, "rb") as reader:  # head -2
            lines = [reader.readline(), reader.readline()]
        (work.folder / "go").touch()
        status = process.wait(30)
    finally:
        process.kill()
    stderr = (work.folder / "err.txt").read_text()
    assert sorted(lines) == [b"out k00\n", b"out k01\n"]
    assert status == 0, stderr
    assert "dead" not in stderr.replace("0 dead", "") and "SIGPIPE" not in stderr and "Traceback" not in stderr
    assert "2 done, 0 failed, 0 dead" in stderr
    assert r.psdead("q") == {} and r.hlen(stream_keys("q").held) == 0
    left = r.pslease("q", count=100)
    assert len(left.items) == 48 and set(left.deliveries.values()) == {1}  # given back uncounted


# -- 3: Ctrl-Z -------------------------------------------------------------------------------


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0].decode()


def test_ctrl_z_does_not_stop_the_worker(work: Work, r: Any, running: list[Running]) -> None:
    """A worker stopped by Ctrl-Z (its commands, in sessions of their own, go
    on) would no longer extend its leases: its items would run again beside
    the first run. It ignores SIGTSTP, SIGTTIN and SIGTTOU, and says so once."""
    r.psadd("q", "a", "v")
    wait = f'touch started; while [ ! -e "{work.folder}/go" ]; do sleep 0.01; done'
    # (in a process group of its own, in the test's session: a group that is not
    # orphaned, which the system would not let SIGTSTP stop anyway)
    run = Running(work, "--idle-exit", "0", "--json", command=("sh", "-c", wait), popen={"process_group": 0})
    running.append(run)
    wait_for(lambda: (work.folder / "started").exists(), "the command to start")
    pid = run.process.pid
    for number in (signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP, signal.SIGTSTP):
        os.kill(pid, number)
    wait_for(lambda: state(pid) == "T" or "Ctrl-Z" in run.stderr, "the worker to stop or to say it will not")
    assert state(pid) != "T", "psctl work was stopped"
    (work.folder / "go").touch()
    assert run.wait() == 0, run.stderr
    assert run.stderr.count("Ctrl-Z") == 1  # said once
    assert json.loads(run.out.read_text())["done"] == 1


# -- 4: a command that cannot be started ----------------------------------------------------------


def test_a_command_that_cannot_start_stops_the_leasing_at_once(work: Work, r: Any, running: list[Running]) -> None:
    """The program loses its x bit while one command runs for long: the worker
    says so once, leases nothing more (the queued items go back once, not
    leased and given back for the whole grace), lets the running command
    finish and exits 126."""
    program = work.folder / "slow"
    program.write_text(
        "#!/bin/sh\ncat > /dev/null\ntouch \"$FOLDER/started-$PSCTL_KEY\"\n"
        "case \"$PSCTL_KEY\" in k01) file=release;; *) file=go;; esac\n"
        "while [ ! -e \"$FOLDER/$file\" ]; do sleep 0.01; done\n"
    )
    program.chmod(0o755)
    r.psaddmany("q", [(f"k{i:02}", "v", 100 - i) for i in range(1, 11)])
    run = Running(work, "-j2", "--idle-exit", "0", "--json", command=(str(program),), FOLDER=str(work.folder))
    running.append(run)
    wait_for(lambda: (work.folder / "started-k01").exists() and (work.folder / "started-k02").exists(),
             "two commands to start")  # fmt: skip
    program.chmod(0o644)
    (work.folder / "go").touch()  # k02 ends; its runner cannot start the next
    wait_for(lambda: "cannot start" in run.stderr, "the worker to say it cannot start the command")
    (work.folder / "release").touch()  # k01 ends, within the grace
    assert run.wait() == 126, run.stderr
    assert run.stderr.count("cannot start") == 1, run.stderr
    assert json.loads(run.out.read_text())["done"] == 2
    counters = r.psstats("q")["counters"]
    assert counters["leased"] <= 10, counters  # each item leased once at most
    assert r.psdead("q") == {} and r.hlen(stream_keys("q").held) == 0
    left = r.pslease("q", count=100)
    assert len(left.items) == 8 and set(left.deliveries.values()) == {1}


# -- 5: a full disk at the start --------------------------------------------------------------------


@pytest.mark.root
def test_a_full_disk_at_the_start_is_ridden_out(work: Work, tmp_path: Path, running: list[Running]) -> None:
    """A server whose RDB save failed refuses writes, and PING too (MISCONF),
    before psctl work starts: it rides that out for --patience, saying why,
    as it does mid-run, instead of exiting 1 at once."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run it as root, or leave it out with -m 'not root'")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(disk)], check=True)
    server = None
    try:
        server = start_server(disk, unixsocket=disk / "redis.sock", extra={"save": "3600 1"})
        url = f"unix://{disk / 'redis.sock'}"
        client = Redis.from_url(url)
        client.psadd("q", "a", "v")
        fill_disk(disk / "filler")
        client.bgsave()  # it fails: the server refuses writes from then on
        wait_for(lambda: refuses_writes(client), "the server to refuse writes")
        run = Running(work, "--idle-exit", "0", "--patience", "30s", "--json", command=("true",), REDIS_URL=url)
        running.append(run)
        wait_for(lambda: "MISCONF" in run.stderr or run.process.poll() is not None, "the worker to say why it waits")
        assert run.process.poll() is None, run.stderr  # it waits
        (disk / "filler").unlink()  # room again
        client.bgsave()
        assert run.wait(60) == 0, run.stderr
        assert "refuses commands for now (MISCONF" in run.stderr and "answers again" in run.stderr
        assert "Traceback" not in run.stderr
        assert json.loads(run.out.read_text())["done"] == 1
        assert client.pslen("q") == 0
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)
