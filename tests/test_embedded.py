"""The embedded default server (SPEC §5): library calls and the installed CLI.

Every test gets a fresh HOME and XDG_STATE_HOME and no REDIS_* variables; the
``home`` fixture's finalizer stops the embedded server and fails the test if
any server process is left running in its state folder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from psctl import AsyncRedis, Redis, embedded
from psctl.errors import ServerError
from psctl.launcher import pid_running
from testservers import free_port, start_server

from .helpers import PSCTL, Home, kill9, server_pid, tcp_listeners, wait_until_in_the_aof


# -- the library -------------------------------------------------------------


def test_first_call_starts_a_server_that_keeps_its_data(home: Home) -> None:
    assert not home.state.exists()
    url = embedded.ensure_server()
    assert url == f"unix://{home.socket}"
    pid = server_pid()
    assert home.servers() == [pid]
    with Redis.from_url(url) as client:
        assert client.psadd("demo", "job-1", "hello", score=5) == 5.0

    assert embedded.ensure_server() == url  # reused, not restarted
    assert server_pid() == pid

    assert embedded.stop() == {"stopped": True, "pid": pid}
    embedded.ensure_server()
    assert server_pid() != pid
    with Redis.from_url(url, decode_responses=True) as client:
        assert client.psvalues("demo") == {"job-1": "hello"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("dir") == {"dir": str(home.state)}
    assert (home.state / "appendonlydir").is_dir()
    assert (home.state / "server.log").stat().st_size > 0


def test_socket_folder_is_private_and_there_is_no_tcp_listener(home: Home) -> None:
    url = embedded.ensure_server()
    assert stat.S_IMODE(home.state.stat().st_mode) == 0o700
    assert stat.S_IMODE(home.socket.stat().st_mode) & 0o077 == 0
    with Redis.from_url(url, decode_responses=True) as client:
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("unixsocketperm") == {"unixsocketperm": "700"}
    if Path("/proc/net/tcp").exists():
        assert tcp_listeners(server_pid()) == []


def test_a_state_dir_that_is_not_private_is_refused_and_left_as_it_is(home: Home) -> None:
    home.state.mkdir(parents=True, mode=0o755)
    home.state.chmod(0o755)
    with pytest.raises(ServerError, match="mode 0755"):
        embedded.state_dir()
    assert stat.S_IMODE(home.state.stat().st_mode) == 0o755
    home.state.chmod(0o700)  # the user's decision
    assert embedded.state_dir() == home.state


def test_default_state_dir_is_under_home(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_STATE_HOME")
    assert embedded.state_dir() == home.root / ".local" / "state" / "psctl"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert embedded.state_dir() == home.root / ".local" / "state" / "psctl"


def test_a_socket_path_too_long_is_a_clear_error(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(home.root / ("x" * 100)))
    with pytest.raises(ServerError, match="shorter"):
        embedded.ensure_server()
    assert not (home.root / ("x" * 100)).exists()


def _add_one(barrier: multiprocessing.synchronize.Barrier, i: int) -> None:  # type: ignore[name-defined]
    barrier.wait()
    with Redis.from_url(embedded.ensure_server()) as client:
        client.psadd("demo", f"job-{i}", "hello")


def test_concurrent_first_calls_start_exactly_one_server(home: Home) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    workers = [context.Process(target=_add_one, args=(barrier, i)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * 8
    assert len(home.servers()) == 1
    with Redis.from_url(embedded.ensure_server()) as client:
        assert client.pslen("demo") == 8


def test_after_sigkill_the_next_call_restarts_with_the_data(home: Home) -> None:
    url = embedded.ensure_server()
    with Redis.from_url(url) as client:
        client.psadd("demo", "job-1", "hello", score=5)
        wait_until_in_the_aof(client)
    pid = server_pid()
    kill9(pid)
    assert home.socket.exists() and (home.state / "server.pid").exists()  # left behind
    assert embedded.status()["running"] is False

    assert embedded.ensure_server() == url
    assert server_pid() != pid
    assert len(home.servers()) == 1
    with Redis.from_url(url, decode_responses=True) as client:
        assert client.psvalues("demo") == {"job-1": "hello"}
        assert client.pskeys("demo", withscores=True) == [("job-1", 5.0)]


def test_a_stale_pid_file_naming_another_process_is_ignored(home: Home) -> None:
    home.state.mkdir(parents=True, mode=0o700)
    (home.state / "server.pid").write_text(f"{os.getpid()}\n")  # a live process, not a server
    with socket.socket(socket.AF_UNIX) as stale:  # a socket file nothing listens on
        stale.bind(str(home.socket))
    assert embedded.status()["pid"] is None
    assert embedded.stop() == {"stopped": False, "pid": None}
    embedded.ensure_server()
    assert server_pid() != os.getpid()


def test_a_stale_pid_file_naming_another_server_leaves_it_alone(home: Home) -> None:
    other = start_server(home.root / "other", unixsocket=home.root / "other" / "redis.sock")
    try:
        home.state.mkdir(parents=True, mode=0o700)
        (home.state / "server.pid").write_text(f"{other.pid}\n")
        assert embedded.stop() == {"stopped": False, "pid": None}
        embedded.ensure_server()
        assert server_pid() != other.pid
        assert embedded.stop()["stopped"] is True
        assert other.process.poll() is None
    finally:
        other.stop()


def test_status_and_stop(home: Home) -> None:
    nothing = embedded.status()
    assert nothing["running"] is False and nothing["pid"] is None and nothing["memory"] is None
    assert nothing["socket"] == str(home.socket) and nothing["data_dir"] == str(home.state)
    assert nothing["binary"] and nothing["version"]
    assert not home.state.exists()  # status creates nothing
    assert embedded.stop() == {"stopped": False, "pid": None}

    embedded.ensure_server()
    running = embedded.status()
    assert running["running"] is True
    assert running["pid"] == home.servers()[0]
    assert Path(running["binary"]).name.endswith("-server")
    assert running["version"] and isinstance(running["memory"], int) and running["memory"] > 0

    assert embedded.stop() == {"stopped": True, "pid": running["pid"]}
    assert not pid_running(running["pid"])
    assert not home.socket.exists() and not (home.state / "server.pid").exists()
    assert embedded.status()["running"] is False
    assert embedded.stop() == {"stopped": False, "pid": None}


def test_the_server_outlives_its_caller_and_holds_none_of_its_files(home: Home) -> None:
    code = "import sys, psctl.embedded as e; e.ensure_server(); print('redis' in sys.modules)"
    # communicate() returns only once every holder of the pipes has closed them
    done = subprocess.run([sys.executable, "-c", code], env=home.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # the warm path never imports redis-py
    pid = server_pid()
    assert os.getsid(pid) == pid  # a session of its own: no SIGHUP from the caller's terminal


def test_redis_embedded(home: Home) -> None:
    with Redis.embedded(decode_responses=True) as client:
        assert client.psadd("demo", "job-1", "hello") == 1.0
        assert client.connection_pool.connection_kwargs["path"] == str(home.socket)


async def test_async_redis_embedded(home: Home) -> None:
    client = AsyncRedis.embedded(decode_responses=True)
    try:
        assert await client.psadd("demo", "job-1", "hello") == 1.0
        assert await client.psget("demo", "job-1") == "hello"
    finally:
        await client.aclose()


# -- the installed command line ----------------------------------------------


def test_cli_first_command_starts_the_server(home: Home) -> None:
    added = home.psctl("add", "demo", "job-1", "hello", "--score", "5")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"key": "job-1", "added": True, "score": 5.0}
    assert len(home.servers()) == 1
    pulled = home.psctl("pull", "demo")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout) == [{"key": "job-1", "value": "hello"}]


def _stderr_on_a_terminal(home: Home, *args: str) -> str:
    """What psctl writes to stderr when stderr is a terminal (a pty), stdout a pipe."""
    main, terminal = os.openpty()
    try:
        done = subprocess.run(
            [str(PSCTL), *args], env=home.env, stdout=subprocess.PIPE, stderr=terminal, timeout=60,
        )  # fmt: skip
        os.close(terminal)
        terminal = -1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the pty's other end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(main)
    assert done.returncode == 0
    return b"".join(chunks).decode()


def test_cli_notice_follows_spec_9(home: Home) -> None:
    """On a terminal, the notice shows only when psctl starts the server; off a
    terminal (cron's mail, a log) always; with --quiet only when it starts
    the server (tests/test_settings_loud.py)."""
    started = _stderr_on_a_terminal(home, "add", "demo", "job-1", "hello")
    assert started.startswith("psctl: started the embedded server at unix://"), started
    assert _stderr_on_a_terminal(home, "add", "demo", "job-2", "hello") == ""  # running already: quiet

    piped = home.psctl("add", "demo", "job-3", "hello")
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.startswith("psctl: using the embedded server at unix://"), piped.stderr
    assert len(piped.stderr.splitlines()) == 1

    quiet = home.psctl("-q", "add", "demo", "job-4", "hello")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_cli_concurrent_first_commands_start_exactly_one_server(home: Home) -> None:
    commands = [
        subprocess.Popen(
            [str(PSCTL), "add", "demo", f"job-{i}", "hello", "--score", "5"],
            env=home.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for i in range(8)
    ]
    results = [(c.wait(60), *c.communicate()) for c in commands]
    assert [rc for rc, _, _ in results] == [0] * 8, results
    assert len(home.servers()) == 1
    length = home.psctl("len", "demo")
    assert json.loads(length.stdout) == {"name": "demo", "length": 8}


def test_cli_after_sigkill_the_next_command_has_the_data(home: Home) -> None:
    assert home.psctl("add", "demo", "job-1", "hello", "--score", "5").returncode == 0
    pid = home.servers()[0]
    with Redis.from_url(f"unix://{home.socket}") as client:
        wait_until_in_the_aof(client)
    kill9(pid)
    pulled = home.psctl("pull", "demo")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout) == [{"key": "job-1", "value": "hello"}]
    assert len(home.servers()) == 1 and home.servers() != [pid]


def test_cli_server_status_and_stop(home: Home) -> None:
    before = home.psctl("server", "status")
    assert before.returncode == 3, before.stderr  # not running: exit 3, the status printed all the same
    assert json.loads(before.stdout)["running"] is False
    assert home.psctl("server", "stop").returncode == 0  # nothing to stop is fine
    assert not home.servers()

    assert home.psctl("add", "demo", "job-1", "hello").returncode == 0
    running = json.loads(home.psctl("server", "status").stdout)
    [pid] = home.servers()
    assert running["running"] is True and running["pid"] == pid
    assert running["socket"] == str(home.socket)

    stopped = home.psctl("server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_running(pid) and not home.servers()
    assert json.loads(home.psctl("server", "status").stdout)["running"] is False

    started = home.psctl("server", "start")
    assert started.returncode == 0, started.stderr
    [pid] = home.servers()
    assert json.loads(started.stdout) == {"started": True, "pid": pid, "socket": str(home.socket)}
    again = home.psctl("server", "start")
    assert json.loads(again.stdout) == {"started": False, "pid": pid, "socket": str(home.socket)}
    assert home.psctl("server", "status", "-q").returncode == 0
    raw = home.psctl("server", "status", "-o", "raw")
    assert (raw.returncode, raw.stdout) == (0, "running\n")
    assert home.psctl("server", "stop").returncode == 0


@pytest.mark.parametrize(
    "variables, args",
    [
        ({"REDIS_URL": "redis://127.0.0.1:{port}/0"}, []),
        ({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "{port}"}, []),
        ({}, ["--url", "redis://127.0.0.1:{port}/0"]),
        ({"REDIS_URL": "unix:///nonexistent/redis.sock"}, []),
    ],
    ids=["REDIS_URL", "REDIS_HOST", "--url", "unix-REDIS_URL"],
)
def test_cli_an_explicit_server_never_starts_the_embedded_one(
    home: Home, variables: dict[str, str], args: list[str]
) -> None:
    port = str(free_port())  # nothing listens there
    env = home.env | {k: v.format(port=port) for k, v in variables.items()}
    done = home.psctl(*[a.format(port=port) for a in args], "add", "demo", "job-1", "hello", env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not home.socket.exists() and not home.servers()
