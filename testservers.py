"""Servers for the test suite and the benchmarks: a standalone server in the
foreground, and a small Redis Cluster of masters on loopback.

psctl's own launcher, ``psctl.launcher``, starts only the embedded server.
This module sits at the top of the repository so that ``tests`` and
``benchmarks`` both import it; it is in the sdist, never in the wheel (the
library never imports test code).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from psctl.errors import ServerError
from psctl.launcher import find_binary, last_log_line, server_args, stop_pid

SLOTS = 16384


@dataclass
class ServerProcess:
    """A running server. ``url`` connects to it (unix socket, else TCP)."""

    process: subprocess.Popen[bytes]
    binary: Path
    dir: Path
    unixsocket: Path | None
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        if self.unixsocket is not None:
            return f"unix://{self.unixsocket}"
        return f"redis://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        stop_pid(self.process.pid, timeout, self.process)


def answers(family: int, address: object, timeout: float = 0.5) -> bool:
    """True when a server answers PING there: one attempt, no retries."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH", b"-LOADING"))
    except OSError:
        return False


def start_server(
    dir: Path,
    *,
    binary: Path | None = None,
    unixsocket: Path | None = None,
    port: int = 0,
    appendonly: bool = False,
    extra: dict[str, str] | None = None,
    timeout: float = 10,
    ready: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Starts a server with its data and log in ``dir`` and waits until it answers.

    ``port=0`` with a ``unixsocket`` means no TCP listener at all. ``ready``
    replaces the PING on the socket or port as the test that the server is up:
    for a listener PING cannot reach, such as a TLS-only port
    (``extra={"tls-port": ...}``). ``env``: the server's environment (the
    caller's when None).
    """
    binary = binary or find_binary()
    dir.mkdir(parents=True, exist_ok=True)
    log = dir / "server.log"
    args = server_args(binary, dir, log, unixsocket=unixsocket, port=port, appendonly=appendonly, extra=extra)
    process = subprocess.Popen(
        [*args, "--daemonize", "no"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        close_fds=True, env=env,
    )  # fmt: skip
    server = ServerProcess(process, binary, dir, unixsocket, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{binary.name} exited with status {process.returncode}: {last_log_line(log)}")
        if ready is not None:
            up = ready()
        elif unixsocket is not None:
            up = answers(socket.AF_UNIX, str(unixsocket), 0.2)
        else:
            up = answers(socket.AF_INET, ("127.0.0.1", port), 0.2)
        if up:
            return server
        time.sleep(0.01)
    server.stop()
    raise ServerError(f"{binary.name} did not answer within {timeout:g}s: {last_log_line(log)}")


def free_port() -> int:
    """A TCP port nothing listens on (at this moment)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- a cluster ----------------------------------------------------------------------


def _command(port: int, *args: str, timeout: float = 5) -> bytes:
    """One RESP command over a raw socket: no client library, no retries."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = sock.recv(65536)
        if reply.startswith(b"$"):
            size = int(reply[1 : reply.index(b"\r\n")])
            while len(reply) < size + len(str(size)) + 5:
                reply += sock.recv(65536)
        if reply.startswith(b"-"):
            raise ServerError(f"{' '.join(args[:2])} on port {port}: {reply.decode().strip()}")
        return reply


def _free_cluster_port() -> int:
    """A port free for both the server and its cluster bus (port + 10000)."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as b, socket.socket() as c:
                b.bind(("127.0.0.1", port))
                c.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise ServerError("no free port pair for a cluster node")


@dataclass
class ClusterProcess:
    nodes: list[ServerProcess]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(dir: Path, *, masters: int = 3, binary: Path | None = None, timeout: float = 30) -> ClusterProcess:
    """``masters`` cluster-enabled servers, the slots split evenly between them,
    joined with CLUSTER MEET; returns once every node reports ``cluster_state:ok``."""
    binary = binary or find_binary()
    nodes: list[ServerProcess] = []
    try:
        for i in range(masters):
            port = _free_cluster_port()
            node_dir = dir / f"node-{i}"
            extra = {"cluster-enabled": "yes", "cluster-config-file": str(node_dir / "nodes.conf"),
                     "cluster-node-timeout": "2000"}  # fmt: skip
            nodes.append(start_server(node_dir, binary=binary, port=port, extra=extra))
        bounds = [SLOTS * i // masters for i in range(masters + 1)]
        for node, first, end in zip(nodes, bounds, bounds[1:]):
            _command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(end - 1))
        for node in nodes[1:]:
            _command(node.port, "CLUSTER", "MEET", "127.0.0.1", str(nodes[0].port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [_command(node.port, "CLUSTER", "INFO") for node in nodes]
            if all(b"cluster_state:ok" in info and f"cluster_known_nodes:{masters}".encode() in info for info in infos):
                return ClusterProcess(nodes)
            time.sleep(0.05)
        raise ServerError(f"the cluster did not reach cluster_state:ok within {timeout:g}s")
    except BaseException:
        for node in nodes:
            node.stop()
        raise
