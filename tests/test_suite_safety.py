"""The suite itself: it flushes no database it was not given with --redis-url."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
