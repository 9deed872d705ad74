"""The suite itself: it flushes no database it was not given with --redis-url."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from psctl import Redis
from psctl.launcher import find_binary
from testservers import start_server

from .conftest import ROOT

FLUSHING = "tests/test_model.py::test_an_add_registers_a_stream_that_held_only_gates"  # takes the flushed `r`


def test_a_redis_url_in_the_environment_is_not_the_suites_server(tmp_path: Path) -> None:
    binary = find_binary(os.environ.get("PSCTL_TEST_SERVER") or None)
    mine = start_server(tmp_path / "mine", binary=binary, unixsocket=tmp_path / "mine.sock")
    try:
        client = Redis.from_url(mine.url)
        client.set("precious", "kept")
        env = dict(os.environ) | {"REDIS_URL": mine.url}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", FLUSHING],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr
        assert client.get("precious") == b"kept"
        client.close()
    finally:
        mine.stop()


def test_a_restarted_server_is_up_only_once_its_data_is_loaded(tmp_path: Path) -> None:
    """start_server returns when the server serves its data, not while it still
    answers LOADING: a test reading right after a restart read that error (CI,
    test_limits_survive_a_server_restart[aof])."""
    binary = find_binary(os.environ.get("PSCTL_TEST_SERVER") or None)
    slow = {"key-load-delay": "100", "loading-process-events-interval-bytes": "1024"}  # 100 µs a key: 0.5 s
    options: dict[str, Any] = {"binary": binary, "unixsocket": tmp_path / "s.sock", "appendonly": True, "extra": slow}
    server = start_server(tmp_path / "data", **options)
    try:
        with Redis.from_url(server.url) as client:
            client.mset({f"k{n}": "v" for n in range(5_000)})
            client.bgrewriteaof()  # into the base file, which the key-load-delay slows
            while any(client.info("persistence")[f"aof_rewrite_{what}"] for what in ("in_progress", "scheduled")):
                time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait(10)
        server = start_server(tmp_path / "data", **options)
        with Redis.from_url(server.url) as client:
            assert client.dbsize() == 5_000  # not LOADING
    finally:
        server.stop()
