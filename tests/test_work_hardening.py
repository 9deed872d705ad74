"""``psctl work`` hardened (issue 20, points 4, 5, 7, 8, 9 and 12): commands
never outlive their worker nor see a cut value, a stop reaches a command's
whole process group, commands have no terminal to read, SIGHUP stops work as
SIGTERM does, a server that refuses writes is ridden out, patience is
wall-clock time, and a long key or a command that cannot start is no failed
delivery. The installed command, run in subprocesses against real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from psctl import Redis
from psctl.launcher import pid_running
from psctl.layout import stream_keys
from testservers import start_server

from .helpers import blocked_clients, fill_disk, refuses_writes, wait_until_blocked
from .test_cli_work import Work, work  # noqa: F401 (a fixture)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a test started through psctl work: killed at the end if any still runs
    (the code before the fixes left them running)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_running(pid):
            os.kill(pid, signal.SIGKILL)


# A command with a child in its process group. It notes both pids in
# started-<pid> (the child's once the child is set up), then sleeps $SLEEP
# (and exits 0). The child ignores SIGTERM and, after $LATER seconds, writes
# finished-<pid>: work done after its item was given back.
FAMILY = r"""
import json, os, subprocess, sys, time
folder = os.environ["FOLDER"]
child = subprocess.Popen([sys.executable, "-c", '''
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
time.sleep(float(os.environ.get("LATER", "30")))
open(os.path.join(os.environ["FOLDER"], f"finished-{os.getpid()}"), "w").close()
''', os.path.join(folder, f"ready-{os.getpid()}")])
while not os.path.exists(os.path.join(folder, f"ready-{os.getpid()}")):
    time.sleep(0.01)
with open(os.path.join(folder, f"started-{os.getpid()}.tmp"), "w") as out:
    json.dump({"pid": os.getpid(), "child": child.pid, "delivery": int(os.environ["PSCTL_DELIVERY"]),
               "start": time.time()}, out)
os.rename(os.path.join(folder, f"started-{os.getpid()}.tmp"), os.path.join(folder, f"started-{os.getpid()}"))
time.sleep(float(os.environ.get("SLEEP", "30")))
with open(os.path.join(folder, "ended"), "a") as out:
    out.write(f"{os.getpid()} {time.time()}\n")
"""


@pytest.fixture
def family(work: Work) -> tuple[str, ...]:
    script = work.folder / "family.py"
    script.write_text(FAMILY)
    return (sys.executable, str(script))


def started(work: Work, process: Any, leftovers: list[int], n: int = 1) -> list[dict[str, Any]]:
    def runs() -> list[dict[str, Any]]:
        assert process.poll() is None, process.communicate()
        found = [json.loads(path.read_text()) for path in work.folder.glob("started-*") if path.suffix != ".tmp"]
        return found if len(found) >= n else []

    found = wait_for(runs, f"{n} command(s) to start")
    for run in found:
        leftovers += [run["pid"], run["child"]]
    return found


def alive(run: dict[str, Any]) -> list[int]:
    return [pid for pid in (run["pid"], run["child"]) if pid_running(pid)]


# -- point 4: commands never outlive their worker ---------------------------------------


def test_a_killed_worker_takes_its_commands_and_their_children_with_it(
    work: Work, r: Any, family: tuple[str, ...], leftovers: list[int]
) -> None:
    """SIGKILL of psctl work: its command and the command's child die at once,
    so that the item's next delivery (after the 2 s lease) never overlaps them."""
    r.psadd("q", "a", "v")
    process = work.start("q", "--lease", "2s", command=family, FOLDER=str(work.folder))
    try:
        (run,) = started(work, process, leftovers)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed_at = time.monotonic()
        wait_for(lambda: not alive(run), "the command and its child to die", timeout=10)
        assert time.monotonic() - killed_at < 10  # at once, not when the command is done (30 s)
        process.communicate(timeout=10)  # nothing holds psctl's stdout and stderr any more
    finally:
        process.kill()
    wait_for(lambda: r.psstats("q")["overdue"] == 1, "the lease to run out")
    done = work.run("q", "--idle-exit", "0", "--json", command=family, FOLDER=str(work.folder), SLEEP="0", LATER="0")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["done"] == 1
    (ended,) = (work.folder / "ended").read_text().splitlines()  # one run ended: the second
    assert int(ended.split()[0]) != run["pid"]  # the first was killed with its worker
    assert not (work.folder / f"finished-{run['child']}").exists()


# A command that says it started, waits for a "go" file, then records how many
# bytes its stdin held, and exits 0.
READER = r"""
import os, sys, time
folder = os.environ["FOLDER"]
open(os.path.join(folder, f"started-{os.getpid()}"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.01)
size = len(sys.stdin.buffer.read())
with open(os.path.join(folder, "sizes"), "a") as out:
    out.write(f"{size}\n")
"""


def test_a_command_never_sees_a_cut_value_as_a_whole_one(work: Work, r: Any, leftovers: list[int]) -> None:
    """Killed while a 20 MB value was on its way, psctl work once left its
    command to read the first 64 KiB and exit 0 as if that were the value."""
    script = work.folder / "reader.py"
    script.write_text(READER)
    value = os.urandom(1024) * 20 * 1024
    r.psadd("q", "big", value)
    process = work.start("q", command=(sys.executable, str(script)), FOLDER=str(work.folder))
    try:
        (path,) = wait_for(lambda: list(work.folder.glob("started-*")), "the command to start")
        pid = int(wait_for(path.read_text, "its pid"))
        leftovers.append(pid)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        (work.folder / "go").touch()
        wait_for(lambda: not pid_running(pid), "the command to end", timeout=15)
        process.communicate(timeout=10)
    finally:
        process.kill()
    sizes = (work.folder / "sizes").read_text().split() if (work.folder / "sizes").exists() else []
    assert all(int(size) == len(value) for size in sizes), sizes


def test_what_a_command_leaves_running_in_its_group_ends_with_it(
    work: Work, r: Any, leftovers: list[int], tmp_path: Path
) -> None:
    """A command that exits leaving a background process in its group: that
    process is stopped, and the item is done only then."""
    r.psadd("q", "a", "v")
    pidfile = tmp_path / "background.pid"
    background = f"sleep 30 > /dev/null 2>&1 & echo $! > {pidfile}; exit 0"  # (it holds no pipe of the test's)
    done = work.run("q", "--idle-exit", "0", "--json", command=("sh", "-c", background))
    pid = int(pidfile.read_text())
    leftovers.append(pid)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["done"] == 1
    assert not pid_running(pid)
    assert "left processes running" in done.stderr  # and it says so


# -- point 5: a stop reaches the whole group, always ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["timeout", "grace"])
def test_a_stopped_command_s_whole_group_dies_before_its_item_is_given_back(
    work: Work, r: Any, family: tuple[str, ...], leftovers: list[int], how: str
) -> None:
    """SIGTERM to the group ends the command; its child ignores SIGTERM and
    must get the SIGKILL 5 s later though the command itself is gone, before
    the item is given back (dead, or back at once after a stop)."""
    r.psadd("q", "a", "v")
    env = {"FOLDER": str(work.folder), "LATER": "12"}
    if how == "timeout":  # (2 s: the command starts a child first, which takes a loaded machine a while)
        options: tuple[str, ...] = ("--time-limit", "2s", "--max-deliveries", "1", "--idle-exit", "0", "--json")
    else:
        options = ("--grace", "0.5s")
    process = work.start("q", *options, command=family, **env)
    try:
        (run,) = started(work, process, leftovers)
        if how == "grace":
            process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert not alive(run), "psctl work ended, its command's child still running"
    assert not list(work.folder.glob("finished-*"))
    if how == "timeout":
        assert process.returncode == 123, err  # (a command failed)
        assert json.loads(out)["dead"] == 1 and r.psdead("q") == {"a": b"v"}
    else:
        assert process.returncode == 143, err
        assert r.pskeys("q") == ["a"] and r.psdead("q") == {}


# A command that handles SIGTERM (noting it got it) and stops itself, as a
# command stopped by the terminal (SIGTTIN) or by someone's SIGSTOP would be.
STOPS_ITSELF = r"""
import os, signal, sys, time
folder = os.environ["FOLDER"]
def on_term(signum, frame):
    open(os.path.join(folder, "terminated"), "w").close()
    sys.exit(1)
signal.signal(signal.SIGTERM, on_term)
open(os.path.join(folder, f"started-{os.getpid()}"), "w").write(str(os.getpid()))
os.kill(os.getpid(), signal.SIGSTOP)
time.sleep(30)
"""


def test_a_stopped_command_is_timed_out_on_time_and_continued_to_end(
    work: Work, r: Any, leftovers: list[int]
) -> None:
    """--time-limit counts wall time for a stopped command (state T) too, and its
    SIGTERM comes with a SIGCONT, so that it ends as it chooses, at once."""
    script = work.folder / "stops.py"
    script.write_text(STOPS_ITSELF)
    r.psadd("q", "a", "v")
    process = work.start("q", "--time-limit", "2s", "--max-deliveries", "1", "--idle-exit", "0", "--json",
                         command=(sys.executable, str(script)), FOLDER=str(work.folder))  # fmt: skip
    try:
        (path,) = wait_for(lambda: list(work.folder.glob("started-*")), "the command to start")
        began = time.monotonic()
        leftovers.append(int(wait_for(path.read_text, "its pid")))
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 123, err  # (its command failed: timed out)
    # 2 s from the command's start (--time-limit: long enough for it to start on a loaded
    # machine), not the SIGKILL 5 s after the SIGTERM
    assert time.monotonic() - began < 5.5
    assert (work.folder / "terminated").exists()
    assert json.loads(out)["dead"] == 1


# -- point 7 and SIGHUP: no terminal for commands; a closed terminal stops work gracefully ---------


# Makes its stdin (a pseudo-terminal) its controlling terminal, then runs its arguments.
ON_A_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
)


def on_a_terminal(
    work: Work, *args: str, command: tuple[str, ...], **extra: str
) -> tuple[subprocess.Popen[bytes], int]:
    """psctl work as a session leader whose controlling terminal is a new
    pseudo-terminal (stdin and stderr; stdout goes to out.json): as in a
    terminal window. Returns the process and the terminal's other end."""
    main, terminal = os.openpty()
    with open(work.folder / "out.json", "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", ON_A_TERMINAL, *work.argv("q", *args, command=command)], env=work.env(**extra),
            stdin=terminal, stdout=out, stderr=terminal, cwd=work.folder, start_new_session=True,
        )  # fmt: skip
    os.close(terminal)
    return process, main


READS_THE_TERMINAL = r"""
import os
try:
    with open("/dev/tty", "rb", buffering=0) as tty:
        said = "read " + repr(tty.read(1))
except OSError as exc:
    said = f"error {exc.errno}"
open(os.path.join(os.environ["FOLDER"], "said"), "w").write(said)
"""


def test_a_command_that_reads_the_terminal_does_not_hang_the_worker(work: Work, r: Any) -> None:
    script = work.folder / "asks.py"
    script.write_text(READS_THE_TERMINAL)
    r.psadd("q", "a", "v")
    process, main = on_a_terminal(work, "--idle-exit", "0", "--json", command=(sys.executable, str(script)),
                                  FOLDER=str(work.folder))  # fmt: skip
    try:
        status = process.wait(15)
    finally:
        process.kill()
        os.close(main)
    assert status == 0
    said = (work.folder / "said").read_text()
    assert said.startswith("error"), said  # no terminal to open (ENXIO), at once
    assert json.loads((work.folder / "out.json").read_text())["done"] == 1


@pytest.mark.parametrize("within_grace", [True, False])
def test_sighup_stops_work_as_sigterm_does(
    work: Work, r: Any, family: tuple[str, ...], leftovers: list[int], within_grace: bool
) -> None:
    r.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    options = ("--grace", "30s", "--json") if within_grace else ("--grace", "0.5s")
    process = work.start("q", *options, command=family, FOLDER=str(work.folder), SLEEP="1" if within_grace else "30",
                         LATER="0")  # fmt: skip
    try:
        started(work, process, leftovers)
        process.send_signal(signal.SIGHUP)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    if within_grace:  # (what ran: "a", or, on a slow machine, "b" too)
        assert process.returncode == 0, err
        ran = len((work.folder / "ended").read_text().splitlines())
        assert json.loads(out)["done"] == ran and r.pskeys("q") == ["a", "b"][ran:]
    else:
        assert process.returncode == 129, err
        assert "stopped by SIGHUP, running commands ended" in err
        assert sorted(r.pskeys("q")) == ["a", "b"]
        assert r.pslease("q", count=2).deliveries == {"a": 1, "b": 1}  # given back uncounted


def test_closing_the_terminal_stops_work_gracefully(
    work: Work, r: Any, family: tuple[str, ...], leftovers: list[int]
) -> None:
    """The terminal window closes: SIGHUP. Running commands finish (within
    the grace), their items are acknowledged, and writing to the closed
    terminal is no traceback and no lost summary."""
    r.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    process, main = on_a_terminal(work, "--json", command=family, FOLDER=str(work.folder), SLEEP="1", LATER="0")
    try:
        started(work, process, leftovers)
        os.close(main)  # the window closes
        status = process.wait(30)
    finally:
        process.kill()
    assert status == 0
    ran = len((work.folder / "ended").read_text().splitlines())  # "a", or, on a slow machine, "b" too
    assert json.loads((work.folder / "out.json").read_text())["done"] == ran
    assert r.pskeys("q") == ["a", "b"][ran:] and r.hlen(stream_keys("q").held) == 0


# -- point 8: a server that refuses writes is ridden out --------------------------------------


@pytest.mark.slow
@pytest.mark.root
def test_a_full_disk_is_ridden_out_and_nothing_runs_twice(
    work: Work, tmp_path: Path, family: tuple[str, ...], leftovers: list[int]
) -> None:
    """The server's disk fills while a command runs: the server refuses its
    acknowledgement (MISCONF). psctl work says why and tries again; once the
    disk has room it acknowledges, and every item ran once."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run it as root, or leave it out with -m 'not root'")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(disk)], check=True)
    server = None
    try:
        server = start_server(disk, unixsocket=disk / "redis.sock", appendonly=True)
        url = f"unix://{disk / 'redis.sock'}"
        client = Redis.from_url(url)
        client.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
        process = work.start("q", "--idle-exit", "0", "--json", command=family, REDIS_URL=url,
                             FOLDER=str(work.folder), SLEEP="2", LATER="0")  # fmt: skip
        try:
            started(work, process, leftovers)
            fill_disk(disk / "filler")
            wait_for(lambda: refuses_writes(client, "x" * 100_000), "the server to refuse writes")
            wait_for(lambda: (work.folder / "ended").exists(), "the command to end")
            time.sleep(1)  # its acknowledgement is refused meanwhile
            (disk / "filler").unlink()  # room again
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 0, err
        assert "MISCONF" in err and "answers again" in err and "Traceback" not in err
        assert json.loads(out)["done"] == 2
        ended = (work.folder / "ended").read_text().splitlines()
        assert len(ended) == 2  # each item ran once
        assert client.pslen("q") == 0 and client.hlen(stream_keys("q").held) == 0
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)


# -- point 9: patience is wall-clock time ---------------------------------------------------------


def test_patience_is_wall_clock_time_against_a_frozen_server(
    work: Work, tmp_path: Path, family: tuple[str, ...], leftovers: list[int]
) -> None:
    """The server stops answering (SIGSTOP) while a command runs: --patience 2s
    ends the work about 2 s after the first request that got no answer, not
    after a reply timeout (10 s) per try."""
    folder = tmp_path / "own"
    server = start_server(folder, unixsocket=folder / "redis.sock")
    url = f"unix://{folder / 'redis.sock'}"
    Redis.from_url(url).psadd("q", "a", "v")
    process = work.start("q", "--patience", "2s", command=family, REDIS_URL=url, FOLDER=str(work.folder),
                         SLEEP="1.5", LATER="0")  # fmt: skip
    try:
        started(work, process, leftovers)
        os.kill(server.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        _, err = process.communicate(timeout=60)
        took = time.monotonic() - frozen_at
    finally:
        process.kill()
        os.kill(server.pid, signal.SIGCONT)
        server.stop()
    assert process.returncode == 1, err
    assert "did not answer for 2 s" in err and "Traceback" not in err
    assert took < 9, took  # 1.5 s of the command, 2 s of patience, the rest to stop; not a 10 s reply timeout


@pytest.mark.slow
def test_patience_is_wall_clock_time_for_an_idle_worker_too(work: Work, tmp_path: Path) -> None:
    """Nothing runs, the worker waits for work (a blocked lease) when the server
    freezes: --patience 2s ends it in about 2 s, not after the 10 s reply
    timeout and the patience on top of it."""
    folder = tmp_path / "own"
    server = start_server(folder, unixsocket=folder / "redis.sock")
    url = f"unix://{folder / 'redis.sock'}"
    process = work.start("q", "--patience", "2s", command=("true",), REDIS_URL=url)
    try:
        wait_for(lambda: blocked_clients(Redis.from_url(url)) > 0, "the worker to wait for work")
        os.kill(server.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        _, err = process.communicate(timeout=60)
        took = time.monotonic() - frozen_at
    finally:
        process.kill()
        os.kill(server.pid, signal.SIGCONT)
        server.stop()
    assert process.returncode == 1, err
    assert "did not answer for 2 s" in err and "Traceback" not in err
    assert took < 9, took  # a blocked wait's second, 2 s of patience, the rest to stop; not a 10 s reply timeout


# -- point 12: a long key; a command that cannot start ----------------------------------------------


KEY_READER = r"""
import json, os
key_file = os.environ.get("PSCTL_KEY_FILE")
record = {"key": os.environ.get("PSCTL_KEY"), "key_base64": os.environ.get("PSCTL_KEY_BASE64"), "file": key_file,
          "from_file": open(key_file, "rb").read().hex() if key_file else None,
          "mode": oct(os.stat(key_file).st_mode & 0o777) if key_file else None}
with open(os.path.join(os.environ["FOLDER"], "keys.ndjson"), "a") as out:
    out.write(json.dumps(record) + "\n")
"""


def test_a_long_key_comes_in_a_file(work: Work, r: Any) -> None:
    """A key the environment cannot hold (over 128 KiB) comes in a private file
    named by PSCTL_KEY_FILE, removed once the command ended."""
    script = work.folder / "keys.py"
    script.write_text(KEY_READER)
    long_key = "k" * 200_000
    with_nul = "\x00" + "n" * 150_000
    r.psaddmany("q", [(long_key, "v", 3), (with_nul, "v", 2), ("short", "v", 1)])
    done = work.run("q", "--idle-exit", "0", "--json", "--max-deliveries", "1", command=(sys.executable, str(script)),
                    FOLDER=str(work.folder))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["done"] == 3 and r.psdead("q") == {}
    first, second, third = [json.loads(line) for line in (work.folder / "keys.ndjson").read_text().splitlines()]
    assert first["key"] is None and bytes.fromhex(first["from_file"]).decode() == long_key
    assert second["key"] is None and second["key_base64"] is None
    assert bytes.fromhex(second["from_file"]).decode() == with_nul
    assert third == {"key": "short", "key_base64": None, "file": None, "from_file": None, "mode": None}
    assert first["mode"] == second["mode"] == "0o600"  # private
    assert not os.path.exists(first["file"]) and not os.path.exists(second["file"])  # removed after


def test_a_command_that_cannot_start_stops_the_worker_and_blames_no_item(work: Work, r: Any) -> None:
    """The command's program vanishes while psctl work waits (a deploy, say):
    the item it was leased for is given back uncounted, and the worker stops
    (127, as xargs), saying why and for which item, instead of failing every
    item to death."""
    program = work.folder / "process-one"
    program.write_text("#!/bin/sh\ncat > /dev/null\n")
    program.chmod(0o755)
    process = work.start("q", "--max-deliveries", "1", command=(str(program),))
    try:
        wait_until_blocked(r, process)
        program.unlink()
        r.psadd("q", "a", "v")
        out, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 127, err
    assert "cannot start" in err and "'a'" in err and "Traceback" not in err
    assert r.psdead("q") == {} and r.pskeys("q") == ["a"]
    assert r.pslease("q").deliveries == {"a": 1}  # its delivery was not counted
