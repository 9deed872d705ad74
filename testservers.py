"""Servers for the test suite and the benchmarks: a standalone server in the
foreground, and a small Redis Cluster of masters on loopback.

psctl's own launcher, ``psctl.launcher``, starts only the embedded server.
This module sits at the top of the repository so that ``tests`` and
``benchmarks`` both import it; it is in the sdist, never in the wheel (the
library never imports test code).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """True when a server answers PING there, its data loaded (``-LOADING`` is not
    up: a test would read that error next), or asks for a password (``-NOAUTH``,
    which a server still loading answers too): one attempt, no retries."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
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


@contextmanager
def stalled(server: ServerProcess) -> Iterator[None]:
    """SIGSTOP for the block: the server holds its connections and answers nothing."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def start_replicated(dir: Path, *, binary: Path | None = None, timeout: float = 10) -> tuple[ServerProcess, ServerProcess]:
    """A master and its replica on loopback TCP, in ``dir``; returns once the
    replica's link to its master is up. A full sync starts at once (no wait
    for more replicas)."""
    master = start_server(dir / "master", binary=binary, port=free_port(), extra={"repl-diskless-sync-delay": "0"})
    try:
        replica = start_server(dir / "replica", binary=binary, port=free_port(),
                               extra={"replicaof": f"127.0.0.1 {master.port}"})  # fmt: skip
    except BaseException:
        master.stop()
        raise
    deadline = time.monotonic() + timeout
    while b"master_link_status:up" not in _command(replica.port, "INFO", "replication"):
        if time.monotonic() > deadline:
            replica.stop()
            master.stop()
            raise ServerError(f"the replica did not link to its master within {timeout:g}s")
        time.sleep(0.05)
    return master, replica


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
    """A running cluster: its nodes in start order (masters first, then their
    replicas), and what a test needs to move its slots and fail its nodes over.
    The admin commands go over plain redis-py clients, one per node."""

    nodes: list[ServerProcess]
    node_timeout: int = 2000  # ms: cluster-node-timeout

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def stop(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                try:
                    os.kill(node.pid, signal.SIGCONT)  # (a stalled node stops too)
                except ProcessLookupError:
                    pass
                node.stop()

    # -- looking ------------------------------------------------------------------

    def admin(self, node: ServerProcess) -> Any:
        import redis

        return redis.Redis(port=node.port, socket_timeout=5, decode_responses=True)

    def alive(self) -> list[ServerProcess]:
        return [node for node in self.nodes if node.process.poll() is None]

    def node_id(self, node: ServerProcess) -> str:
        return str(self.admin(node).execute_command("CLUSTER", "MYID"))

    def by_port(self, port: int) -> ServerProcess:
        return next(node for node in self.nodes if node.port == port)

    def owner(self, slot: int) -> ServerProcess:
        """The master that serves ``slot`` now, as a live node sees it."""
        for node in self.alive():
            try:
                ranges = self.admin(node).execute_command("CLUSTER", "SLOTS")
            except Exception:
                continue
            for first, last, master, *_ in ranges:
                if int(first) <= slot <= int(last):
                    return self.by_port(int(master[1]))
        raise ServerError(f"no live node serves slot {slot}")

    def owner_of_key(self, key: str | bytes) -> ServerProcess:
        from redis.crc import key_slot

        return self.owner(key_slot(key.encode() if isinstance(key, str) else key))

    def masters(self) -> list[ServerProcess]:
        """The live masters that serve slots."""
        seen: dict[int, ServerProcess] = {}
        for node in self.alive():
            try:
                ranges = self.admin(node).execute_command("CLUSTER", "SLOTS")
            except Exception:
                continue
            for _first, _last, master, *_ in ranges:
                seen.setdefault(int(master[1]), self.by_port(int(master[1])))
            break
        return list(seen.values())

    def replicas_of(self, master: ServerProcess) -> list[ServerProcess]:
        wanted = self.node_id(master)
        found = []
        for node in self.alive():
            if node is master:
                continue
            info = self.admin(node).execute_command("CLUSTER", "NODES")
            for line in str(info).splitlines():
                fields = line.split()
                if "myself" in fields[2] and "slave" in fields[2] and fields[3] == wanted:
                    found.append(node)
        return found

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node reports ``cluster_state:ok`` and agrees on who
        serves every slot."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._agreed():
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"the cluster did not settle within {timeout:g}s")
            time.sleep(0.05)

    def _agreed(self) -> bool:
        views = []
        for node in self.alive():
            admin = self.admin(node)
            if "cluster_state:ok" not in str(admin.execute_command("CLUSTER", "INFO")):
                return False
            views.append(sorted((int(a), int(b), int(m[1])) for a, b, m, *_ in admin.execute_command("CLUSTER", "SLOTS")))
        return all(view == views[0] for view in views)

    # -- changing -------------------------------------------------------------------

    def migrate_slot(self, slot: int, to: ServerProcess, *, batch: int = 100, pause: float = 0.0) -> None:
        """Moves ``slot`` to ``to`` the way ``redis-cli --cluster reshard``
        does: IMPORTING and MIGRATING, its keys by MIGRATE ``batch`` at a
        time (``pause`` seconds between batches, to make the move last),
        then SETSLOT NODE on every master."""
        source = self.owner(slot)
        if source is to:
            return
        src, dst = self.admin(source), self.admin(to)
        src_id, dst_id = self.node_id(source), self.node_id(to)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while True:
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            src.execute_command("MIGRATE", "127.0.0.1", to.port, "", 0, 10000, "REPLACE", "KEYS", *keys)
            if pause:
                time.sleep(pause)
        for node in [to, source, *[m for m in self.masters() if m not in (to, source)]]:
            self.admin(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def kill(self, node: ServerProcess) -> None:
        """SIGKILL: no shutdown, nothing saved."""
        node.process.kill()
        node.process.wait()

    def failover_by_kill(self, master: ServerProcess, timeout: float = 30) -> ServerProcess:
        """SIGKILLs ``master`` and waits until one of its replicas serves its
        slots and the cluster is ok again; returns the new master."""
        replicas = self.replicas_of(master)
        if not replicas:
            raise ServerError(f"the master on port {master.port} has no replica to fail over to")
        slots = [int(a) for a, _b, m, *_ in self.admin(master).execute_command("CLUSTER", "SLOTS") if int(m[1]) == master.port]
        self.kill(master)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                owner = self.owner(slots[0])
                if owner is not master and owner.process.poll() is None:
                    self.wait_ok(max(1.0, deadline - time.monotonic()))
                    return owner
            except Exception:
                pass
            time.sleep(0.05)
        raise ServerError(f"no replica took over from port {master.port} within {timeout:g}s")

    @contextmanager
    def stalled(self, node: ServerProcess) -> Iterator[None]:
        """SIGSTOP for the block: the node holds its connections and answers nothing."""
        with stalled(node):
            yield


def start_cluster(
    dir: Path, *, masters: int = 3, replicas: int = 0, binary: Path | None = None, timeout: float = 30,
    node_timeout: int = 2000,
) -> ClusterProcess:
    """``masters`` cluster-enabled servers, the slots split evenly between them,
    each with ``replicas`` replicas, joined with CLUSTER MEET; returns once
    every node reports ``cluster_state:ok`` and knows every other.
    ``node_timeout`` (ms): how long a node may not answer before the others
    count it failed (a failover takes about twice that)."""
    binary = binary or find_binary()
    nodes: list[ServerProcess] = []
    total = masters * (1 + replicas)
    try:
        for i in range(total):
            port = _free_cluster_port()
            node_dir = dir / f"node-{i}"
            extra = {"cluster-enabled": "yes", "cluster-config-file": str(node_dir / "nodes.conf"),
                     "cluster-node-timeout": str(node_timeout),
                     "repl-diskless-sync-delay": "0"}  # (a replica syncs at once, not after 5 s)  # fmt: skip
            nodes.append(start_server(node_dir, binary=binary, port=port, extra=extra))
        bounds = [SLOTS * i // masters for i in range(masters + 1)]
        for node, first, end in zip(nodes, bounds, bounds[1:]):
            _command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(end - 1))
        for node in nodes[1:]:
            _command(node.port, "CLUSTER", "MEET", "127.0.0.1", str(nodes[0].port))
        deadline = time.monotonic() + timeout

        def known() -> bool:
            infos = [_command(node.port, "CLUSTER", "INFO") for node in nodes]
            return all(f"cluster_known_nodes:{total}".encode() in info for info in infos)

        while not known():
            if time.monotonic() > deadline:
                raise ServerError(f"the cluster's nodes did not meet within {timeout:g}s")
            time.sleep(0.05)
        if replicas:
            ids = [_command(node.port, "CLUSTER", "MYID").split(b"\r\n")[1].decode() for node in nodes[:masters]]
            for i, node in enumerate(nodes[masters:]):
                while True:  # (a node may not know the master as a master yet)
                    try:
                        _command(node.port, "CLUSTER", "REPLICATE", ids[i % masters])
                        break
                    except ServerError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
        cluster = ClusterProcess(nodes, node_timeout)
        while True:
            infos = [_command(node.port, "CLUSTER", "INFO") for node in nodes]
            if all(b"cluster_state:ok" in info for info in infos) and _replicas_linked(nodes[masters:]):
                return cluster
            if time.monotonic() > deadline:
                raise ServerError(f"the cluster did not reach cluster_state:ok within {timeout:g}s")
            time.sleep(0.05)
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def _replicas_linked(replicas: list[ServerProcess]) -> bool:
    return all(b"master_link_status:up" in _command(node.port, "INFO", "replication") for node in replicas)
