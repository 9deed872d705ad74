"""What the tests share: the CLI run in-process, servers that misbehave, the
embedded server's private home, and checks that hold across redis-py versions.
Fixtures live in ``conftest.py``; this module holds plain helpers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from psctl import embedded
from psctl.cli.app import app
from psctl.cli.errors import ExitStatus
from psctl.launcher import pid_running

PSCTL = Path(sys.executable).with_name("psctl")  # the installed command


def retries(retry: Any) -> int:
    """How many times a redis-py ``Retry`` resends (``get_retries`` came in 5.3)."""
    get = getattr(retry, "get_retries", None)
    return get() if get is not None else retry._retries


def blocked_clients(r: Any) -> int:
    """Clients waiting in BLPOP (on a cluster: on any node)."""
    if hasattr(r, "get_nodes"):  # a cluster client
        per_node = r.client_list(target_nodes=r.ALL_NODES).values()
    else:
        per_node = [r.client_list()]
    return sum("b" in client["flags"] for clients in per_node for client in clients)


def wait_until_blocked(
    r: Any, process: subprocess.Popen[Any] | None = None, timeout: float = 30, more_than: int = 0
) -> None:
    """Returns once more than ``more_than`` clients wait in BLPOP (a psctl pull --wait)."""
    deadline = time.monotonic() + timeout
    while blocked_clients(r) <= more_than:
        assert process is None or process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no client ever blocked"
        time.sleep(0.02)


def server_ms(r: Any) -> float:
    """The server's clock (TIME), in ms: what the scripts read theirs from."""
    seconds, micros = r.time()
    return seconds * 1000 + micros / 1000


def counts(added: int, **refused_by: int) -> dict[str, Any]:
    """What ``add-many`` (and ``psaddmany(summary=True)``) reports: ``added``
    items, and the refused ones by reason (held, dead, gated, cooling)."""
    by = {"held": 0, "dead": 0, "gated": 0, "cooling": 0} | refused_by
    return {"added": added, "refused": sum(by.values()), "refused_by": by}


# -- the command line, in-process ------------------------------------------------------

DEAD = "unix:///nonexistent/psctl-test.sock"  # commands that reach for the server fail with 1


def complete(words: str, env: dict[str, str], patience: str | None = "30") -> list[str]:
    """What TAB offers after ``words`` in bash. A TAB waits half a second for
    the server unless ``--timeout``/``PSCTL_TIMEOUT`` says otherwise: the tests
    give it ``patience``, so that a loaded machine cannot make an answer empty
    (``patience=None`` keeps the half second)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = env | {"_PSCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    if patience is not None:
        env.setdefault("PSCTL_TIMEOUT", patience)
    done = subprocess.run([str(PSCTL)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.split()


class Cli:
    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | bytes | None = None, env: dict[str, str | None] | None = None) -> Any:
        environ = {"REDIS_URL": self.url, "REDIS_HOST": None, "REDIS_CLUSTER": None, "PSCTL_TIMEOUT": None,
                   "PSCTL_WAIT_REPLICAS": None}  # fmt: skip
        return self.runner.invoke(app, list(args), input=input, env=environ | (env or {}))

    def ok(self, *args: str, **kwargs: Any) -> Any:
        """The parsed JSON of a command that must succeed."""
        done = self(*args, **kwargs)
        assert done.exit_code == 0, (done.exit_code, done.stderr)
        assert done.stderr == ""
        return json.loads(done.stdout)

    def fails(self, status: ExitStatus, *args: str, **kwargs: Any) -> str:
        """The one-line message of a command that must fail with ``status``."""
        done = self(*args, **kwargs)
        assert done.exit_code == status, (done.exit_code, done.stdout, done.stderr)
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        return lines[0]



def fake_embedded(url: str) -> types.ModuleType:
    module = types.ModuleType("psctl.embedded")
    module.started = 0  # type: ignore[attr-defined]
    module.fresh = False  # type: ignore[attr-defined]  # whether start_server says it started the server

    def ensure_server() -> str:
        module.started += 1  # type: ignore[attr-defined]
        return url

    def start_server() -> tuple[str, bool]:
        return ensure_server(), module.fresh  # type: ignore[attr-defined]

    module.ensure_server = ensure_server  # type: ignore[attr-defined]
    module.start_server = start_server  # type: ignore[attr-defined]
    module.status = lambda: {  # type: ignore[attr-defined]
        "running": True, "pid": 42, "socket": "/s/redis.sock", "data_dir": "/s", "binary": "/b/valkey-server",
        "version": "9.1.2", "memory": 1048576,
    }  # fmt: skip
    module.stop = lambda force=False: {"stopped": True, "pid": 42}  # type: ignore[attr-defined]
    module.problem = lambda: None  # type: ignore[attr-defined]
    module.missing_home = lambda: None  # type: ignore[attr-defined]
    return module



def command_paths() -> list[tuple[str, ...]]:
    """Every command, as the words that run it: ("add",), ("server", "status"), ..."""
    from typer.main import get_command

    found: list[tuple[str, ...]] = []

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk(command, (*prefix, name))
            else:
                found.append((*prefix, name))

    walk(get_command(app), ())
    return found




# -- servers that misbehave ------------------------------------------------------------

class CuttingProxy:
    def __init__(self, upstream: str | tuple[str, int]) -> None:
        self.upstream = upstream  # a unix socket path, or a TCP (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_next_reply = threading.Event()
        self.replies_swallowed = 0
        self._replies_to_pass: int | None = None  # see cut_reply
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if isinstance(self.upstream, tuple):
                server = socket.create_connection(self.upstream)
            else:
                server = socket.socket(socket.AF_UNIX)
                server.connect(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def cut_reply(self, n: int) -> None:
        """Swallows the ``n``-th reply from now (1: the next) and cuts that
        connection: one request at a time, each reply arrives as one chunk."""
        with self._lock:
            self._replies_to_pass = n - 1

    def _cut_now(self) -> bool:
        if self.cut_next_reply.is_set():
            self.cut_next_reply.clear()
            return True
        with self._lock:
            if self._replies_to_pass is None:
                return False
            if self._replies_to_pass == 0:
                self._replies_to_pass = None
                return True
            self._replies_to_pass -= 1
            return False

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if replies and self._cut_now():
                    self.replies_swallowed += 1
                    break
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closing = True
        self.listener.close()


class SilentServer:
    """Accepts connections and never answers: a hung server."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                self.held.append(self.listener.accept()[0])

    def close(self) -> None:
        self.listener.close()
        for sock in self.held:
            sock.close()


class Misbehaving:
    """A TCP server whose every connection is handed to ``handle``."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handle = handle
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self.open.append(conn)
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with suppress(OSError):
            self.handle(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.open:
            conn.close()


def hangs_up(conn: socket.socket) -> None:
    conn.close()


def talks_nonsense(conn: socket.socket) -> None:
    while conn.recv(65536):
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def stops_halfway(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"$10\r\nabc")  # a reply that never ends
    time.sleep(60)



# -- the embedded server's home --------------------------------------------------------


@dataclass
class Home:
    root: Path
    state: Path  # $XDG_STATE_HOME/psctl
    env: dict[str, str]  # for subprocesses

    @property
    def socket(self) -> Path:
        return self.state / "redis.sock"

    def servers(self) -> list[int]:
        return servers_in(self.state)

    def psctl(self, *args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PSCTL), *args], env=env or self.env, capture_output=True, text=True, timeout=60, **kwargs
        )  # type: ignore[call-overload]


def servers_in(folder: Path) -> list[int]:
    """Live server processes working in ``folder``."""
    if not Path("/proc/self/cwd").exists():  # no /proc: match the command line
        out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
        rows = [line.split(None, 2) for line in out.splitlines()]
        return [int(r[0]) for r in rows if len(r) == 3 and "Z" not in r[1] and str(folder) in r[2] and "-server" in r[2]]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == os.path.realpath(folder) and b"-server" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if pid_running(pid)]


def tcp_listeners(pid: int) -> list[str]:
    """The process's listening TCP sockets, from /proc/net/tcp{,6}."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since it was listed (a client gone, a file the server is done with)
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                listening.append(fields[1])
    return listening


def server_pid() -> int:
    pid = embedded.status()["pid"]
    assert isinstance(pid, int)
    return pid


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_running(pid)


def wait_until_in_the_aof(client: Any, timeout: float = 30) -> None:
    """Returns once the server has written every change it made to its
    append-only file (the OS has them: a SIGKILL of the server loses none). A
    busy disk can make it hold them back for seconds (appendfsync everysec)."""
    deadline = time.monotonic() + timeout
    while client.info("persistence")["aof_buffer_length"]:
        assert time.monotonic() < deadline, "never written to the append-only file"
        time.sleep(0.02)


def fill_disk(path: Path) -> None:
    """Writes zeros to the file ``path`` until its file system is full."""
    filler = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(filler, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(filler)


def refuses_writes(client: Any, probe: str = "x") -> bool:
    """True when the server answers a write with MISCONF (it cannot save)."""
    try:
        client.set("probe", probe)
    except Exception as exc:  # noqa: BLE001
        return "MISCONF" in str(exc)
    return False
