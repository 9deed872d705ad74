"""The embedded default: a private server that psctl starts for itself, like SQLite.

With no ``--url``, ``REDIS_URL`` or ``REDIS_HOST``, psctl talks to a server of
its own in the user's state folder (``$XDG_STATE_HOME/psctl``, by default
``~/.local/state/psctl``, mode 0700)::

    redis.sock                 the only way in: a unix socket, mode 0700, no TCP port
    server.pid                 the running server's pid (removed on a clean shutdown)
    server.log                 its log
    server.lock                held while a server is started or stopped
    appendonlydir/             the data: an append-only file, fsynced every second

The folder is trusted only when it is the user's own, a real folder (not a
symbolic link) with mode 0700, and everything psctl uses in it is the user's
own and no symbolic link: otherwise another user could have planted a socket,
a log or a data folder there while it was open. psctl refuses such a folder
(as ssh and tmux refuse theirs) and never changes its mode itself. Before a
byte goes to the socket, the kernel says who listens on it (``SO_PEERCRED``);
the only process psctl ever signals is that one, or one that the pid file
names and that is a server of this user working in this folder.

``ensure_server()`` runs before every command that uses it, so its warm path
is a few ``lstat`` calls and one PING on the socket. Starting happens under
``flock`` on ``server.lock`` and probes again once the lock is held, so that
concurrent first commands start exactly one server. The server daemonizes
itself: it outlives the command that started it and keeps none of its files
open.

A server that cannot write its append-only file (a full disk) answers every
change, and even PING, with ``MISCONF``: it is running, reads work, and
stopping it would lose what it holds only in memory, so ``stop()`` refuses
unless forced. It recovers by itself once it can write again.

This module does not import redis-py until ``status()`` / ``stop()`` need it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psctl.errors import ServerError
from psctl.launcher import (
    check_socket_path,
    find_binary,
    is_server_process,
    pid_running,
    read_pid,
    server_version,
    start_daemon,
    stop_pid,
)

__all__ = ["ServerError", "ensure_server", "problem", "state_dir", "status", "stop"]

SOCKET = "redis.sock"
PIDFILE = "server.pid"
LOCKFILE = "server.lock"
LOG = "server.log"
DATA = "appendonlydir"

LOCK_TIMEOUT = 60  # seconds to wait for another psctl starting or stopping the server
BUSY_TIMEOUT = 10  # seconds to wait for a live server that does not answer (shutting down)
PROBE_TIMEOUT = 0.5  # seconds a PING on the socket may take

_problem: str | None = None  # what the last probe in this process found wrong, if anything


def state_dir() -> Path:
    """The embedded server's folder, created private (0700) if missing;
    ``ServerError`` when it exists but cannot be trusted (see the module's
    docstring)."""
    folder = _state_path()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    except OSError as exc:
        raise ServerError(f"cannot use {folder} for the embedded server: {exc.strerror or exc}") from None
    _check_folder(folder)
    return folder


def ensure_server() -> str:
    """The URL of the embedded server, started first if it is not running."""
    return start_server()[0]


def start_server() -> tuple[str, bool]:
    """The URL of the embedded server, and whether this call started it (False:
    it was running already)."""
    missing = missing_home()
    if missing is not None:
        raise ServerError(f"no place for the embedded server: {missing} (set HOME or XDG_STATE_HOME to a folder of yours)")
    sock = _socket_path(_state_path())  # a path too long fails before anything is created
    folder = state_dir()
    url = _url(sock)
    if _probe(sock).alive:
        return url, False
    with _locked(folder):
        if _probe(sock).alive:  # started by another command while we waited for the lock
            return url, False
        _start(folder, sock)
    return url, True


def url() -> str:
    """The URL the embedded server has, running or not; starts, creates and
    connects to nothing (``ServerError`` when there is no place for it)."""
    return _url(_socket_path(_state_path()))


def _url(sock: Path) -> str:
    return f"unix://{quote(str(sock))}"


def running_url() -> str | None:
    """The URL of the embedded server when it runs; starts and creates nothing."""
    folder = _state_path()
    if not folder.exists():
        return None
    _check_folder(folder)
    sock = folder / SOCKET
    return _url(sock) if _probe(sock).alive else None


def problem() -> str | None:
    """What the last check of the server in this process found wrong with it
    (it cannot save to disk, say), for a notice; None when nothing."""
    return _problem


def status() -> dict[str, Any]:
    """Where the embedded server is and whether it runs. Starts nothing, creates nothing."""
    folder = _state_path()
    sock = folder / SOCKET
    found: dict[str, Any] = {
        "running": False,
        "pid": None,
        "socket": str(sock),
        "data_dir": str(folder),
        "binary": None,
        "version": None,
        "memory": None,
        "persistence": None,
    }
    if folder.exists():
        _check_folder(folder)
        probe = _probe(sock)
        info = _info(sock) if probe.alive else None
        if probe.alive:
            found.update(running=True, pid=probe.pid, persistence="ok" if probe.problem is None else probe.problem)
        if info is not None:
            found.update(
                binary=info.get("executable") or None,
                version=str(info.get("valkey_version") or info.get("redis_version") or "") or None,
                memory=_bytes(info.get("used_memory")),
            )
        elif not probe.alive:
            found["pid"] = _live_pid(folder)  # a server that does not answer (yet), if any
    if found["binary"] is None:
        try:
            found["binary"] = str(find_binary())
        except ServerError:
            return found
    if found["version"] is None:
        try:
            found["version"] = server_version(Path(found["binary"]))
        except (OSError, ValueError):
            pass
    return found


def _bytes(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def stop(force: bool = False) -> dict[str, Any]:
    """Stops the embedded server (SIGTERM: a clean shutdown that flushes the
    append-only file) and waits for it to exit. Nothing to do is not an error.
    A server that cannot save to disk is not stopped unless ``force``: it
    holds changes that are only in its memory."""
    folder = _state_path()
    if not folder.exists():
        return {"stopped": False, "pid": None}
    _check_folder(folder)
    with _locked(folder):
        probe = _probe(folder / SOCKET)
        if probe.alive:
            if probe.problem is not None and not force:
                raise ServerError(
                    f"not stopping the embedded server: {probe.problem}, and stopping it now would lose the "
                    f"changes it holds only in memory. Free disk space in {folder} (it resumes by itself), "
                    "then stop it; or stop it anyway with --force"
                )
            pid = probe.pid
        else:
            pid = _live_pid(folder)
        if pid is not None:
            stop_pid(int(pid), timeout=30)
        _clean(folder)
    return {"stopped": pid is not None, "pid": pid}


# -- the folder ----------------------------------------------------------------


def _state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is ignored
        try:
            base = str(Path.home() / ".local" / "state")
        except RuntimeError:
            raise ServerError("no home folder to keep the embedded server in: set HOME or XDG_STATE_HOME") from None
    return Path(base) / "psctl"


def missing_home() -> str | None:
    """Why the embedded server must not be started here, or None: the folder
    its state folder would be made in is not an existing folder of this
    user's own. That folder is HOME, or with XDG_STATE_HOME set, that folder
    (or, while it does not exist yet, the one it would be made in). A service
    or a cron job with HOME=/nonexistent (or another user's HOME) that lost
    its REDIS_URL must not create folders there and write into a fresh
    private server."""
    base = os.environ.get("XDG_STATE_HOME", "")
    name = "XDG_STATE_HOME"
    if os.path.isabs(base):
        if not os.path.lexists(base):
            base = os.path.dirname(base.rstrip("/")) or "/"
            name = "the folder of XDG_STATE_HOME"
    else:
        name, base = "HOME", os.environ.get("HOME")
        if base is None:  # unset: the password database's, as for any program
            try:
                base = str(Path.home())
            except RuntimeError:
                return "HOME is not set"
        if not os.path.isabs(base):
            return "HOME is empty" if not base else f"HOME ({base}) is not an absolute path"
    try:
        info = os.stat(base)
    except OSError:
        return f"{name} ({base}) does not exist"
    if not stat.S_ISDIR(info.st_mode):
        return f"{name} ({base}) is not a folder"
    if info.st_uid != os.geteuid():
        return f"{name} ({base}) belongs to another user"
    return None


def _check_folder(folder: Path) -> None:
    """Refuses a folder, or anything psctl uses in it, that another user could
    have planted or could change (see the module's docstring)."""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        raise ServerError(f"cannot use {folder} for the embedded server: {exc.strerror or exc}") from None
    me = os.geteuid()
    if stat.S_ISLNK(info.st_mode):
        raise ServerError(
            f"{folder} is a symbolic link: psctl keeps its server only in a real folder of its own "
            "(set XDG_STATE_HOME to another place)"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise ServerError(f"{folder} is not a folder: move it away, or set XDG_STATE_HOME to another place")
    if info.st_uid != me:
        raise ServerError(
            f"{folder} belongs to another user (uid {info.st_uid}): set XDG_STATE_HOME to a folder of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o700:
        raise ServerError(
            f"{folder} has mode {mode:04o}, not 0700: while others could write there they could have planted "
            f"a socket or files for the embedded server. If you trust all that is in it, chmod 700 {folder}; "
            "else move it away"
        )
    for name, kind in ((SOCKET, stat.S_ISSOCK), (PIDFILE, stat.S_ISREG), (LOCKFILE, stat.S_ISREG),
                       (LOG, stat.S_ISREG), (DATA, stat.S_ISDIR)):  # fmt: skip
        _check_entry(folder / name, kind, me)
    data = folder / DATA
    if data.is_dir():
        if stat.S_IMODE(os.lstat(data).st_mode) & 0o022:
            raise ServerError(f"{data} may be written by others: psctl will not use it (chmod 700 it if you trust it)")
        for entry in os.scandir(data):
            _check_entry(Path(entry.path), stat.S_ISREG, me)


def _check_entry(path: Path, kind: Any, me: int) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ServerError(f"{path} is a symbolic link: psctl never follows one in its folder; remove it")
    if info.st_uid != me:
        raise ServerError(f"{path} belongs to another user (uid {info.st_uid}): psctl will not use it; remove it")
    if not kind(info.st_mode):
        raise ServerError(f"{path} is not what psctl keeps there: move it away")


def _socket_path(folder: Path) -> Path:
    sock = folder / SOCKET
    try:
        check_socket_path(sock)
    except ServerError as exc:
        raise ServerError(f"{exc}: set XDG_STATE_HOME to a shorter folder") from None
    return sock


# -- the socket ------------------------------------------------------------------


class _Probe:
    """What the socket said: ``alive`` when a server answered, the ``pid`` of
    the process listening, and ``problem`` when it answered that it cannot
    save its data."""

    __slots__ = ("alive", "pid", "problem")

    def __init__(self, alive: bool = False, pid: int | None = None, problem: str | None = None) -> None:
        self.alive, self.pid, self.problem = alive, pid, problem


def _probe(sock: Path) -> _Probe:
    """Asks the kernel who listens on ``sock`` and, when it is a process of
    this user, sends it PING. ``ServerError`` when another user's process
    listens there: it gets nothing at all."""
    global _problem
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(PROBE_TIMEOUT)
        try:
            conn.connect(str(sock))
        except OSError:
            return _Probe()
        pid, uid = _peer(conn, sock)
        if uid != os.geteuid():
            raise ServerError(
                f"{sock} is served by a process of another user (uid {uid}, pid {pid}); psctl sent it "
                "nothing. Stop that process or remove the socket"
            )
        try:
            conn.sendall(b"PING\r\n")
            answer = conn.recv(512)
        except OSError:
            return _Probe(pid=pid)
    if answer.startswith((b"+PONG", b"-NOAUTH", b"-LOADING")):
        _problem = None
        return _Probe(True, pid)
    if answer.startswith(b"-MISCONF"):  # alive, but it cannot write its data
        reason = answer[1:].split(b"\r\n", 1)[0].decode("utf-8", "replace")
        _problem = f"it cannot save its data to disk ({reason})"
        return _Probe(True, pid, _problem)
    return _Probe(pid=pid)


def _peer(conn: socket.socket, sock: Path) -> tuple[int | None, int]:
    """The pid and uid of the process listening on a connected unix socket."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        return pid, uid
    return None, os.lstat(sock).st_uid  # elsewhere: who made the socket file


# -- starting and stopping ----------------------------------------------------------


def _start(folder: Path, sock: Path) -> None:
    """Starts the server; the caller holds the lock and found no server answering."""
    pid = _live_pid(folder)
    if pid is not None:  # alive but silent: shutting down, or hung
        deadline = time.monotonic() + BUSY_TIMEOUT
        while pid_running(pid) and time.monotonic() < deadline:
            if _probe(sock).alive:
                return
            time.sleep(0.02)
        if pid_running(pid):
            raise ServerError(
                f"the embedded server (pid {pid}) runs but does not answer on {sock}; its log is {folder / LOG}"
            )
    _clean(folder)
    start_daemon(folder, unixsocket=sock, pidfile=folder / PIDFILE)


def _live_pid(folder: Path) -> int | None:
    """The pid in the pid file, when that process is a running server of this
    user working in this folder: the file's word alone is never enough."""
    pid = read_pid(folder / PIDFILE)
    if pid is None or not is_server_process(pid, folder) or _owner(pid) != os.geteuid():
        return None
    return pid


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        pass
    if sys.platform.startswith("linux"):
        return None
    import subprocess

    out = subprocess.run(["ps", "-p", str(pid), "-o", "uid="], capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else None


def _clean(folder: Path) -> None:
    """Removes the socket and pid file a crashed server left behind."""
    for name in (SOCKET, PIDFILE):
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            pass


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / LOCKFILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"another psctl has held {folder / LOCKFILE} for {LOCK_TIMEOUT}s while starting "
                        "or stopping the embedded server"
                    ) from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # releases the lock


def _info(sock: Path) -> dict[str, Any] | None:
    """INFO from the server on ``sock`` (checked by ``_probe`` first), or None."""
    import redis

    try:
        with redis.Redis(unix_socket_path=str(sock), socket_timeout=5, decode_responses=True) as client:
            return client.info("server") | client.info("memory")
    except redis.RedisError:
        return None
