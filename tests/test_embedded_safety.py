"""The embedded server's folder under attack, and on a full disk (issue 11,
points 7, 8 and 15).

Another user is played by uid 65534 (``nobody``), so these tests need root
(CI runs as root); the full disk is a small tmpfs mounted for the test.
Leave them out with ``-m "not root"``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from psctl import Redis, embedded, launcher
from psctl.launcher import pid_running
from testservers import start_server


from .helpers import Home

pytestmark = pytest.mark.root

OTHER = 65534  # nobody
SYSTEM_PYTHON = "/usr/bin/python3"  # one that user may run (this venv's may live in root's home)


@pytest.fixture(autouse=True)
def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests play another user and mount a tmpfs: run them as root, or leave them out "
                    "with -m 'not root'")  # fmt: skip


def open_to_all(home: Home) -> None:
    """The state folder as a careless setup left it: every user may write there."""
    home.root.chmod(0o755)
    home.state.parent.mkdir(parents=True, exist_ok=True)
    home.state.parent.chmod(0o755)
    home.state.mkdir(exist_ok=True)
    home.state.chmod(0o777)


def refused(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


# -- a folder that is not private, or not ours --------------------------------------


def test_a_folder_open_to_others_is_refused_not_chmodded(home: Home) -> None:
    open_to_all(home)
    message = refused(home.psctl("add", "demo", "k", "v"))
    assert str(home.state) in message and "700" in message
    assert (home.state.stat().st_mode & 0o777) == 0o777  # left as it was: the user decides
    assert not home.servers() and not home.socket.exists()


def test_a_folder_of_another_user_is_refused(home: Home) -> None:
    home.state.mkdir(parents=True, mode=0o700)
    os.chown(home.state, OTHER, OTHER)
    message = refused(home.psctl("len", "demo"))
    assert "another user" in message or "belongs" in message
    assert not home.servers()


# -- what was planted while it was open ---------------------------------------------

IMPOSTOR = textwrap.dedent(
    """
    import os, socket, sys
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(sys.argv[1])
    os.chmod(sys.argv[1], 0o777)
    listener.listen(8)
    print("ready", flush=True)
    with open(sys.argv[2], "ab") as got:
        while True:
            conn, _ = listener.accept()
            while data := conn.recv(65536):
                got.write(data)
                got.flush()
                conn.sendall(b"+PONG\\r\\n")
            conn.close()
    """
)


@pytest.fixture
def impostor(home: Home) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another user's process serving the socket path, recording what it is sent."""
    open_to_all(home)
    received = home.root / "received"
    received.touch()
    os.chown(received, OTHER, OTHER)
    process = subprocess.Popen([SYSTEM_PYTHON, "-c", IMPOSTOR, str(home.socket), str(received)], user=OTHER,
                               group=OTHER, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    home.state.chmod(0o700)  # the user tightened the folder since
    yield process, received
    process.kill()
    process.wait()


def test_a_socket_served_by_another_user_gets_nothing(home: Home, impostor) -> None:
    process, received = impostor
    message = refused(home.psctl("add", "demo", "secret-key", "secret value"))
    assert "another user" in message or str(OTHER) in message
    assert received.read_bytes() == b""  # not even a PING
    stopped = home.psctl("server", "stop")
    assert stopped.returncode == 1 and process.poll() is None  # never signalled


@pytest.mark.parametrize("planted", ["server.log", "appendonlydir"])
def test_a_symlink_in_the_folder_is_never_followed(home: Home, planted: str) -> None:
    elsewhere = home.root / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / planted
    if planted == "appendonlydir":
        target.mkdir()
    else:
        target.write_text("")
    home.state.mkdir(parents=True, mode=0o700)
    (home.state / planted).symlink_to(target)
    message = refused(home.psctl("add", "demo", "k", "v"))
    assert planted in message
    assert not home.servers()
    assert not any(target.iterdir()) if target.is_dir() else target.read_text() == ""


def test_a_file_planted_by_another_user_is_refused(home: Home) -> None:
    open_to_all(home)
    log = home.state / "server.log"
    log.write_text("")
    os.chown(log, OTHER, OTHER)
    home.state.chmod(0o700)
    message = refused(home.psctl("add", "demo", "k", "v"))
    assert "server.log" in message
    assert not home.servers()


def test_a_planted_pid_of_another_users_server_is_never_signalled(home: Home) -> None:
    """Another user runs a server working in our folder and names it in server.pid."""
    open_to_all(home)
    binary = home.root / "their-server"  # a copy that user can run, wherever this venv lives
    shutil.copy(launcher.find_binary(os.environ.get("PSCTL_TEST_SERVER") or None), binary)
    binary.chmod(0o755)
    theirs = subprocess.Popen([str(binary), "--port", "0", "--unixsocket", str(home.state / "their.sock"),
                               "--save", "", "--dir", str(home.state)], user=OTHER,
                              group=OTHER, cwd=str(home.state), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.3)
        assert theirs.poll() is None, "their server did not start"
        pidfile = home.state / "server.pid"
        pidfile.write_text(f"{theirs.pid}\n")
        home.state.chmod(0o700)
        home.psctl("server", "stop")
        embedded_status = home.psctl("server", "status")
        assert embedded_status.returncode in (0, 1, 3)
        time.sleep(0.3)
        assert theirs.poll() is None, "another user's server was signalled"
    finally:
        theirs.kill()
        theirs.wait()


def test_a_symlink_at_the_socket_path_is_not_followed(home: Home) -> None:
    other = start_server(home.root / "other", unixsocket=home.root / "other" / "redis.sock")
    try:
        home.state.mkdir(parents=True, mode=0o700)
        home.socket.symlink_to(home.root / "other" / "redis.sock")
        message = refused(home.psctl("add", "demo", "k", "v"))
        assert "redis.sock" in message
        with Redis.from_url(other.url) as client:
            assert client.dbsize() == 0  # nothing went to the other server
        home.psctl("server", "stop")
        assert other.process.poll() is None  # and it was not stopped
    finally:
        other.stop()


# -- a full disk (point 7) ---------------------------------------------------------


@pytest.fixture
def small_disk(home: Home) -> Iterator[Path]:
    """The state folder on a 3 MB tmpfs."""
    mount = home.root / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        embedded.stop()
        for pid in home.servers():
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_named_reads_go_on_and_nothing_is_lost(home: Home, small_disk: Path) -> None:
    written = 0
    with Redis.embedded() as client:
        try:
            for i in range(10_000):
                client.psadd("demo", f"k{i}", "x" * 500)
                written += 1
        except Exception as exc:  # the server refuses writes once the AOF cannot grow
            assert "MISCONF" in str(exc) or "disk" in str(exc).lower(), exc
    assert 0 < written < 10_000
    started = time.monotonic()
    length = home.psctl("len", "demo")
    assert length.returncode == 0, length.stderr
    assert json.loads(length.stdout)["length"] == written
    assert time.monotonic() - started < 8  # at once, not after a wait (10 s for a busy server; start-up included)
    assert "disk" in length.stderr.lower()  # and it says what is wrong

    add = home.psctl("add", "demo", "more", "x")
    assert add.returncode == 1 and "Traceback" not in add.stderr
    message = add.stderr.strip().splitlines()[-1]
    assert "disk" in message.lower() and "server stop" not in add.stderr

    stop = home.psctl("server", "stop")
    assert stop.returncode == 1 and "disk" in stop.stderr.lower()
    [pid] = home.servers()  # still running: stopping now would lose what is not on disk

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    deadline = time.monotonic() + 30  # (each try a psctl process: seconds on a loaded machine)
    while home.psctl("add", "demo", "more", "x").returncode != 0:
        assert time.monotonic() < deadline, "the server did not recover once the disk had room"
        time.sleep(0.2)
    assert home.psctl("server", "stop").returncode == 0
    assert not pid_running(pid)
    again = home.psctl("len", "demo")
    assert json.loads(again.stdout)["length"] == written + 1  # everything acknowledged survived


def test_status_reports_a_persistence_failure(home: Home, small_disk: Path) -> None:
    with Redis.embedded() as client:
        try:
            for i in range(10_000):
                client.psadd("demo", f"k{i}", "x" * 500)
        except Exception:
            pass
    status = home.psctl("server", "status")
    found = json.loads(status.stdout)
    assert found["running"] is True
    assert found.get("persistence") not in (None, "ok")
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
