"""Starts a small Redis Cluster of masters on loopback (tests and benchmarks)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from psctl.launcher import ServerError, ServerProcess, find_binary, start_server

SLOTS = 16384


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
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
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
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

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
            nodes.append(
                start_server(
                    node_dir,
                    binary=binary,
                    port=port,
                    extra={
                        "cluster-enabled": "yes",
                        "cluster-config-file": str(node_dir / "nodes.conf"),
                        "cluster-node-timeout": "2000",
                    },
                )
            )
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
