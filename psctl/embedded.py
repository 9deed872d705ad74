"""The embedded default: a private server that psctl starts for itself, like SQLite.

With no ``--url``, ``REDIS_URL`` or ``REDIS_HOST``, psctl talks to a server of
its own in the user's state folder (``$XDG_STATE_HOME/psctl``, by default
``~/.local/state/psctl``, mode 0700)::

    redis.sock                 the only way in: a unix socket, mode 0700, no TCP port
    server.pid                 the running server's pid (removed on a clean shutdown)
    server.log                 its log
    server.lock                held while a server is started or stopped
    appendonlydir/             the data: an append-only file, fsynced every second

``ensure_server()`` runs before every command that uses it, so its warm path is
one stat and one PING on the socket. Starting happens under ``flock`` on
``server.lock`` and probes again once the lock is held, so that concurrent
first commands start exactly one server. The server daemonizes itself: it
outlives the command that started it and keeps none of its files open.

This module does not import redis-py until ``status()`` / ``stop()`` need it.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psctl.launcher import (
    ServerError,
    check_socket_path,
    find_binary,
    is_server_process,
    ping_unix,
    pid_running,
    read_pid,
    server_version,
    start_daemon,
    stop_pid,
)

__all__ = ["ServerError", "ensure_server", "state_dir", "status", "stop"]

SOCKET = "redis.sock"
PIDFILE = "server.pid"
LOCKFILE = "server.lock"

LOCK_TIMEOUT = 60  # seconds to wait for another psctl starting or stopping the server
BUSY_TIMEOUT = 10  # seconds to wait for a live server that does not answer (shutting down)


def state_dir() -> Path:
    """The embedded server's folder, created private (0700) if missing and made
    private if it exists with a looser mode."""
    folder = _state_path()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
        if info.st_uid != os.geteuid():
            raise ServerError(f"{folder} belongs to another user: set XDG_STATE_HOME to a folder of your own")
        if stat.S_IMODE(info.st_mode) != 0o700:
            folder.chmod(0o700)
    except OSError as exc:
        raise ServerError(f"cannot use {folder} for the embedded server: {exc.strerror or exc}") from None
    return folder


def ensure_server() -> str:
    """The URL of the embedded server, started first if it is not running."""
    sock = _socket_path(_state_path())  # a path too long fails before anything is created
    folder = state_dir()
    url = f"unix://{quote(str(sock))}"
    if ping_unix(sock):
        return url
    with _locked(folder):
        if ping_unix(sock):  # started by another command while we waited for the lock
            return url
        _start(folder, sock)
    return url


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
    }
    info = _info(sock)
    if info is not None:
        found.update(
            running=True,
            pid=info.get("process_id"),
            binary=info.get("executable") or None,
            version=str(info.get("valkey_version") or info.get("redis_version") or "") or None,
            memory=info.get("used_memory_human"),
        )
    else:
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


def stop() -> dict[str, Any]:
    """Stops the embedded server (SIGTERM: a clean shutdown that flushes the
    append-only file) and waits for it to exit. Nothing to do is not an error."""
    folder = _state_path()
    if not folder.is_dir():
        return {"stopped": False, "pid": None}
    with _locked(folder):
        info = _info(folder / SOCKET)
        pid = info.get("process_id") if info is not None else _live_pid(folder)
        if pid is not None:
            stop_pid(int(pid), timeout=30)
        _clean(folder)
    return {"stopped": pid is not None, "pid": pid}


def _state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is ignored
        try:
            base = str(Path.home() / ".local" / "state")
        except RuntimeError:
            raise ServerError("no home folder to keep the embedded server in: set HOME or XDG_STATE_HOME") from None
    return Path(base) / "psctl"


def _socket_path(folder: Path) -> Path:
    sock = folder / SOCKET
    try:
        check_socket_path(sock)
    except ServerError as exc:
        raise ServerError(f"{exc}: set XDG_STATE_HOME to a shorter folder") from None
    return sock


def _start(folder: Path, sock: Path) -> None:
    """Starts the server; the caller holds the lock and found no server answering."""
    pid = _live_pid(folder)
    if pid is not None:  # alive but silent: shutting down, or hung
        deadline = time.monotonic() + BUSY_TIMEOUT
        while pid_running(pid) and time.monotonic() < deadline:
            if ping_unix(sock):
                return
            time.sleep(0.02)
        if pid_running(pid):
            raise ServerError(
                f"the embedded server (pid {pid}) does not answer on {sock}: stop it with `psctl server stop`"
            )
    _clean(folder)
    start_daemon(folder, unixsocket=sock, pidfile=folder / PIDFILE)


def _live_pid(folder: Path) -> int | None:
    """The pid in the pid file, when that process is still a running server."""
    pid = read_pid(folder / PIDFILE)
    return pid if pid is not None and is_server_process(pid, folder) else None


def _clean(folder: Path) -> None:
    """Removes the socket and pid file a crashed server left behind."""
    for name in (SOCKET, PIDFILE):
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            pass


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / LOCKFILE, os.O_RDWR | os.O_CREAT, 0o600)
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
    """INFO from the server on ``sock``, or None when nothing answers there."""
    if not ping_unix(sock):
        return None
    import redis

    try:
        with redis.Redis(unix_socket_path=str(sock), socket_timeout=5, decode_responses=True) as client:
            return client.info("server") | client.info("memory")
    except redis.RedisError:
        return None
