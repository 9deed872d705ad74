"""How ``psctl work`` starts a command (``psctl.work.spawning``): glibc's
``posix_spawnp`` through ctypes, and ``subprocess.Popen`` where that is not
at hand, give a command the same start: a session of its own, its stdin and
stderr, SIGPIPE at its default, none of psctl's other descriptors, the same
errors when it cannot start. No server."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from psctl.work import spawning

PATHS = ["glibc", "popen"]

# what a command finds itself started with, as JSON on its stdout
PROBE = r"""
import json, os, sys
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
print(json.dumps({
    "pid": os.getpid(), "sid": os.getsid(0), "pgid": os.getpgid(0), "stdin": sys.stdin.buffer.read().decode(),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")), "variable": os.environ.get("EXTRA_ONE"),
    "blocked": status["SigBlk"].strip(),
}), file=sys.stderr)
"""


def spawner(path: str, command: list[str], closed: tuple[int, ...] = ()) -> spawning.SpawnLane:
    made = spawning.Spawner(command, dict(os.environb), closed)
    if path == "glibc":
        if made._glibc is None:
            pytest.skip("no glibc 2.26 or later here")
    else:
        made._glibc = None
    return made.lane()


def run(lane: spawning.SpawnLane, value: bytes = b"", extra: dict[bytes, bytes] | None = None) -> tuple[int, Any]:
    """Starts the lane's command with ``value`` on stdin; its process number
    and what it wrote to its stderr (JSON, or the raw bytes)."""
    read, write = os.pipe()
    os.write(write, value)
    os.close(write)
    err_read, err_write = os.pipe()
    try:
        pid = lane.spawn(extra or {}, read, err_write)
    finally:
        os.close(read)
        os.close(err_write)
    lane.reaped(pid, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    with os.fdopen(err_read, "rb") as err:
        written = err.read()
    try:
        return pid, json.loads(written)
    except ValueError:
        return pid, written


@pytest.mark.parametrize("path", PATHS)
def test_a_command_leads_a_session_of_its_own_with_its_stdin(path: str) -> None:
    pid, found = run(spawner(path, [sys.executable, "-c", PROBE]), b"the value", {b"EXTRA_ONE": b"1"})
    assert found["pid"] == found["sid"] == found["pgid"] == pid
    assert found["stdin"] == "the value" and found["variable"] == "1"
    assert int(found["blocked"], 16) == 0


@pytest.mark.parametrize("path", PATHS)
def test_none_of_psctls_descriptors_reaches_a_command(path: str) -> None:
    given = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(given, True)  # (as one psctl's parent gave it open)
    mine = os.open(os.devnull, os.O_RDONLY)  # (Python's own: close-on-exec)
    try:
        lane = spawner(path, [sys.executable, "-c", PROBE], closed=spawning.inherited())
        _, found = run(lane)
    finally:
        os.close(given)
        os.close(mine)
    assert given not in found["fds"] and mine not in found["fds"]
    assert set(found["fds"]) <= {0, 1, 2, 3}  # (3: the probe's own listing)


@pytest.mark.parametrize("path", PATHS)
def test_sigpipe_is_at_its_default_in_a_command(path: str) -> None:
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # (Python's, in psctl)
    _, written = run(spawner(path, ["sh", "-c", "grep SigIgn /proc/self/status >&2"]))
    ignored = int(written.split()[-1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)) and not ignored & (1 << (signal.SIGXFSZ - 1))


@pytest.mark.parametrize("path", PATHS)
def test_a_command_that_cannot_start_raises_as_popen_did(path: str, tmp_path: Path) -> None:
    no_shebang = tmp_path / "no-shebang"
    no_shebang.write_text("echo hi\n")
    no_shebang.chmod(0o755)
    not_executable = tmp_path / "not-executable"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    cases = {"psctl-no-such-command": FileNotFoundError, str(not_executable): PermissionError,
             str(tmp_path): PermissionError, str(no_shebang): OSError}  # fmt: skip
    for program, error in cases.items():
        lane = spawner(path, [program])
        read, write = os.pipe()
        try:
            with pytest.raises(error) as raised:
                lane.spawn({}, read, None)
        finally:
            os.close(read)
            os.close(write)
        assert raised.value.filename == program and raised.value.strerror
