"""Text from the store never reaches a terminal as bytes a terminal acts on
(issue 20): a stream name, an item key or a value holding an escape sequence
(OSC that retitles the window, CSI that clears the screen, the 8-bit CSI
U+009B, DEL) is shown escaped (``\\x1b``) in every error line, message, hint,
table and JSON document of every command, whether it went wrong or not.
``-o raw`` and ``-o csv`` print bytes as they are, by design (SPEC §9), and
are not run here."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from typing import Any

import pytest

from psctl.cli.formats import json_text
from psctl.cli.terminal import visible
from psctl.cli.status import ExitStatus

from .helpers import PSCTL, Cli

# an OSC that sets the window title, a CSI that clears the screen, the 8-bit CSI, DEL, a bidi override
EVIL = "ev\x1b]0;pwned\x07il\x1b[2J\x9b6n\x7f\u202e"
EVIL_KEY = "k\x1b]0;pwned\x07\x1b[2J\x9b31m\x85"
EVIL_VALUE = "v\x1b]0;pwned\x07\x1b[2J\x9b31m\x90"
# bytes no output may hold: ESC, BEL, C1 (as 8-bit bytes and inside UTF-8, whose
# encoding of U+0080–U+009F is C2 80–C2 9F), DEL, and U+202E (E2 80 AE)
FORBIDDEN = (b"\x1b", b"\x07", b"\x9b", b"\x85", b"\x90", b"\x7f", "\u202e".encode())


def assert_safe(*outputs: bytes) -> None:
    for output in outputs:
        for raw in FORBIDDEN:
            assert raw not in output, (raw, output)


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


def healthy(r: Any, k: Any) -> None:
    """An evil stream that works: an evil key holding an evil value, a dead one, a held one."""
    r.psaddmany(EVIL, [(EVIL_KEY, EVIL_VALUE, 2), (EVIL_KEY + "2", EVIL_VALUE, 1), ("plain", "x", 0)])
    r.pslease(EVIL, max_deliveries=1)
    r.psadd("jobs", "a", "b")


def broken(r: Any, k: Any) -> None:
    """An evil stream registered, with an item, and a key of the wrong type: every
    command on it fails, with an error line that names the key."""
    keys = k(EVIL)
    r.sadd(":ps:keys", EVIL)
    r.hset(str(keys.values), EVIL_KEY, EVIL_VALUE)
    r.set(str(keys.cooling), "not a sorted set")
    r.psadd("jobs", "a", "b")


COMMANDS = [
    ["stats"], ["stats", EVIL], ["expire"], ["metrics"], ["metrics", EVIL], ["names"], ["len", EVIL],
    ["keys", EVIL, "--scores"], ["values", EVIL, "--scores"], ["keys", EVIL, "--state", "held"],
    ["get", EVIL, EVIL_KEY], ["item", EVIL, EVIL_KEY], ["item", EVIL, "nope"], ["incr", EVIL, EVIL_KEY, "1"],
    ["dead", EVIL], ["dump", EVIL], ["pull", EVIL, "--keep"], ["lease", EVIL], ["add", EVIL, EVIL_KEY, "v"],
    ["add", EVIL, "new", EVIL_VALUE], ["prune", EVIL, "--below", "1", "--dry-run"],
    ["remove", EVIL, EVIL_KEY, "--dry-run"], ["lift", EVIL, EVIL_KEY], ["requeue", EVIL, "--dry-run"],
    ["delete", EVIL, "--dry-run"], ["len", EVIL[:-3]], ["keys", EVIL[:-3]], ["ack", EVIL, EVIL_KEY],
    ["release", EVIL, EVIL_KEY], ["extend", EVIL, EVIL_KEY, "--for", "1m"],
]  # fmt: skip


@pytest.mark.parametrize("output", ["--json", "--table", "-ondjson"])
@pytest.mark.parametrize("state", [healthy, broken], ids=["healthy", "broken"])
@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(visible(a) for a in args))
def test_no_command_prints_the_stores_escape_sequences(cli: Cli, r: Any, k: Any, args: list[str], state: Any,
                                                       output: str) -> None:  # fmt: skip
    state(r, k)
    done = cli(*args, output)
    if done.exit_code == ExitStatus.USAGE and "output" in done.stderr:  # (metrics, dump: an output of their own)
        done = cli(*args)
    assert "Traceback" not in done.stderr
    assert_safe(done.stdout_bytes, done.stderr_bytes)


@pytest.mark.parametrize("args", [["stats"], ["expire"], ["metrics"], ["stats", EVIL], ["pull", EVIL]])
def test_the_error_line_names_the_broken_stream_escaped(cli: Cli, r: Any, k: Any, args: list[str]) -> None:
    broken(r, k)
    done = cli(*args)
    assert done.exit_code == ExitStatus.SERVER
    assert_safe(done.stdout_bytes, done.stderr_bytes)
    [line] = done.stderr.splitlines()
    assert "\\x1b]0;pwned\\x07il\\x1b[2J\\x9b6n\\x7f\\u202e" in line  # the name, still recognisable


def test_the_traceback_of_debug_is_escaped_too(cli: Cli, r: Any, k: Any) -> None:
    broken(r, k)
    done = cli("--debug", "stats")
    assert done.exit_code == ExitStatus.SERVER and "Traceback" in done.stderr
    assert_safe(done.stdout_bytes, done.stderr_bytes)


def test_json_escapes_every_control_character_and_stays_the_same_data(cli: Cli, r: Any, k: Any) -> None:
    healthy(r, k)
    import json

    done = cli("values", EVIL, "--json")
    assert_safe(done.stdout_bytes)
    assert {"key": EVIL_KEY + "2", "value": EVIL_VALUE} in json.loads(done.stdout)  # (the first is leased)
    assert json.loads(json_text({"x": "\x7f\x80\x9f\u202e"})) == {"x": "\x7f\x80\x9f\u202e"}


def _read_until(fd: int, done: Any, timeout: float = 20) -> bytes:
    shown, deadline = b"", time.monotonic() + timeout
    while not done(shown) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                shown += os.read(fd, 65536)
            except OSError:  # the other end closed
                break
    return shown


def _env(url: str, **more: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))}
    return clean | {"REDIS_URL": url, "TERM": "xterm"} | more


def test_on_a_terminal_stats_watch_and_errors_show_nothing_raw(redis_url: str, r: Any, k: Any) -> None:
    """The live table and the lines about a stream that cannot be read, on a
    real terminal (a pty for stdout and stderr alike)."""
    healthy(r, k)
    broken_name = EVIL + "!"
    r.sadd(":ps:keys", broken_name)
    r.set(str(k(broken_name).cooling), "not a sorted set")
    main, terminal = os.openpty()
    try:
        watcher = subprocess.Popen([str(PSCTL), "stats", "--watch", "0.2s"], env=_env(redis_url, COLUMNS="100"),
                                   stdout=terminal, stderr=terminal, stdin=subprocess.DEVNULL)  # fmt: skip
        os.close(terminal)
        shown = _read_until(main, lambda text: text.count(b"added/s") >= 2 and text.count(b"psctl: stream") >= 2)
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(10) == 0
        shown += _read_until(main, lambda text: False, timeout=0.2)
    finally:
        os.close(main)
    assert shown.count(b"psctl: stream") >= 2 and b"\\x1b]0;pwned\\x07" in shown
    # the live display's own cursor moves are ESC [ … with letters Rich uses; no
    # OSC (ESC ]), no BEL, no clear screen (ESC [2J) and no 8-bit CSI came from the store
    assert b"\x1b]" not in shown and b"\x07" not in shown and b"\x1b[2J" not in shown
    assert_safe(shown.replace(b"\x1b[", b""))


def test_stats_watch_json_lines_and_their_complaints_are_safe(redis_url: str, r: Any, k: Any) -> None:
    broken(r, k)
    watcher = subprocess.Popen([str(PSCTL), "stats", "--watch", "0.2s"], env=_env(redis_url),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        first = watcher.stderr.readline()
        line = watcher.stdout.readline()
        watcher.send_signal(signal.SIGINT)
        _, rest = watcher.communicate(timeout=10)
    finally:
        watcher.kill()
    assert b"psctl: stream" in first and b"\\x1b]0;pwned\\x07" in first
    assert_safe(first, line, rest)


def test_metrics_labels_escape_as_the_terminal_does() -> None:
    """The library's metrics escape stream names as the CLI's ``visible`` does
    (the library does not import the CLI, so the two are checked to agree)."""
    from psctl.metrics import _label

    every = "".join(chr(code) for code in range(0x2100)) + "\udcff\udc9b"
    assert _label(every) == visible(every)
    assert_safe(_label(EVIL).encode())
