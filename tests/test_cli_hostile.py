"""Hostile input and hostile servers, on the command line.

The ``add-many`` readers (CSV, JSON, NDJSON) are given any bytes, random or
built from the pieces of each format: they yield good rows or raise one
``InputError`` naming an existing line, and through the CLI the input is
either added whole (exit 0) or refused with one line naming the line (exit 2)
with nothing written, never a traceback. Servers that accept a connection and
then never answer, hang up, talk nonsense or stop halfway through a reply make
the CLI exit 1 within its timeouts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from psctl.cli.errors import ExitStatus
from psctl.readers import InputError, rows_from_file
from psctl.operations import POLL

from .helpers import Cli, Misbehaving, SilentServer, counts, hangs_up, stops_halfway, talks_nonsense

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# pieces that make inputs reach past the first check of each reader
CSV_PIECES = [
    b"key", b"value", b"score", b"key,value,score\n", b"key,value\n", b",", b'"', b'""', b"\n", b"\r\n", b"\r",
    b"a", b"b", b"1", b"-2.5", b"nan", b"inf", b"1e400", b"1_0", b" ", b"\t", b"\x00", b"\xff", b"\xef\xbb\xbf",
    b"\xc3\xa9", b"\xe2\x80\xa8",
]  # fmt: skip
JSON_PIECES = [
    b"[", b"]", b"{", b"}", b":", b",", b" ", b"\n", b"\r\n", b'"key"', b'"value"', b'"score"', b'"value_base64"',
    b'"other"', b'"a"', b'""', b'"AA=="', b'"=="', b"1", b"-0", b"2.5", b"1e400", b"1" * 4400, b"null", b"true",
    b"NaN", b"Infinity", b'"\\u00e9"', b'"\\ud800"', b'"\\udcff"', b'"\\n"', b"\xff", b"\xef\xbb\xbf", b"[[[[",
    b'{"key": "k", "value": "v"}', b'{"key": "k", "value": "v", "score": 2}\n',
]  # fmt: skip


def built_from(pieces: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(pieces), max_size=40).map(b"".join)


@st.composite
def damaged(draw: st.DrawFn, inputs: st.SearchStrategy[bytes], pieces: list[bytes]) -> bytes:
    """A well-formed input, often left as it is, else with a piece put in, a cut or a byte changed."""
    data = draw(inputs)
    how = draw(st.sampled_from(["as it is", "as it is", "piece", "cut", "byte"]))
    at = draw(st.integers(0, len(data)))
    if how == "piece":
        return data[:at] + draw(st.sampled_from(pieces)) + data[at:]
    if how == "cut":
        return data[:at]
    if how == "byte" and data:
        at = min(at, len(data) - 1)
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=8)
numbers_as_text = st.sampled_from(["", "1", "-2.5", " 3 ", "nan", "inf", "-Infinity", "1e400", "1_0", "0x10", "١٢"])
finite = st.one_of(st.integers(-(10**30), 10**30), st.floats(allow_nan=False, allow_infinity=False))
json_values = st.one_of(
    st.none(), st.booleans(), finite, st.floats(), text, numbers_as_text, st.sampled_from(["AA==", "==", "//4A"]),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip
good_item = st.fixed_dictionaries(
    {"key": st.text(min_size=1, max_size=8), "value": st.one_of(text, finite)},
    optional={"score": st.one_of(finite, numbers_as_text)},
)
any_item = st.one_of(
    st.fixed_dictionaries(
        {"key": st.one_of(text, st.integers(), st.none())},
        optional={"value": json_values, "score": json_values, "value_base64": json_values, "other": json_values},
    ),
    json_values,
)


@st.composite
def mostly_good(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> list[Any]:
    """Good things, and maybe one bad one among them: reading gets past the first."""
    found = draw(st.lists(good, max_size=5))
    if draw(st.booleans()):
        found.insert(draw(st.integers(0, len(found))), draw(bad))
    return found


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    good = [["key", "value", "score"], ["key", "value"], ["value", "key"], ["score", "key", "value"],
            [" key ", " value "], ["Key", "Value"], ["KEY", "Value", "Score"]]  # fmt: skip
    bad = [["key"], ["key", "value", "other"], ["key", "key", "value"], ["Key", "KEY", "value"]]
    columns = draw(st.sampled_from(good) if draw(st.integers(0, 4)) else st.sampled_from(bad))
    cells = {"key": st.text(min_size=1, max_size=8), "value": text, "score": st.one_of(numbers_as_text,
             finite.map(repr))}  # fmt: skip
    good_row = st.tuples(*(cells.get(name.strip(), text) for name in columns)).map(list)
    bad_row = st.lists(st.one_of(text, numbers_as_text), max_size=4)
    rows = draw(mostly_good(good_row, bad_row))
    out = io.StringIO()
    csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows([columns, *rows])
    return out.getvalue().encode()


json_arrays = mostly_good(good_item, any_item).map(lambda items: json.dumps(items, indent=1).encode())
ndjson_files = mostly_good(good_item, any_item).map(lambda items: "".join(json.dumps(i) + "\n" for i in items).encode())

INPUTS = {
    "csv": st.one_of(st.binary(max_size=200), built_from(CSV_PIECES), damaged(csv_files(), CSV_PIECES)),
    "json": st.one_of(st.binary(max_size=200), built_from(JSON_PIECES), damaged(json_arrays, JSON_PIECES)),
    "ndjson": st.one_of(st.binary(max_size=200), built_from(JSON_PIECES), damaged(ndjson_files, JSON_PIECES)),
}


def physical_lines(data: bytes, format: str) -> int:
    """How many lines an editor shows: CSV ends lines at \\r, \\n or \\r\\n (as Python's csv does),
    JSON and NDJSON at \\n only."""
    breaks = re.findall(rb"\r\n|\r|\n", data) if format == "csv" else data.split(b"\n")[1:]
    return len(breaks) + 1


def read(data: bytes, format: str) -> list[Any] | InputError:
    """The reader's rows, or its error: any other exception fails the test."""
    try:
        return list(rows_from_file(io.BytesIO(data), format))
    except InputError as exc:
        return exc


def check_reading(data: bytes, format: str) -> None:
    found = read(data, format)
    lines = physical_lines(data, format)
    if isinstance(found, InputError):
        assert 1 <= found.line <= lines, (found, lines)
        assert str(found).startswith(f"line {found.line}: ")
        assert len(str(found).splitlines()) == 1
        return
    for row in found:
        assert 1 <= row.line <= lines
        assert isinstance(row.key, bytes) and row.key
        assert isinstance(row.value, (bytes, int, float)) and not isinstance(row.value, bool)
        assert isinstance(row.score, float) and math.isfinite(row.score)


@FAST
@given(data=INPUTS["csv"])
@example(data=b"key,value,score\r\na,b,1\rc,\"d\r\ne\",nan")
@example(data=b"key,value\n\x00,b\n")
def test_any_bytes_as_csv(data: bytes) -> None:
    check_reading(data, "csv")


@FAST
@given(data=INPUTS["json"])
@example(data=b'[{"key": "a", "value": ' + b"1" * 5000 + b"}]")  # past Python's limit on digits
@example(data=b'[{"key": "\\ud800", "value": "v"}]')  # a lone surrogate
@example(data=b"[" * 100_000)  # nested too deeply
def test_any_bytes_as_a_json_array(data: bytes) -> None:
    check_reading(data, "json")


@FAST
@given(data=INPUTS["ndjson"])
@example(data=b'\n{"key": "a", "value": "v", "score": ' + b"9" * 5000 + b"}\n")
@example(data=b"{" * 100_000)
def test_any_bytes_as_ndjson(data: bytes) -> None:
    check_reading(data, "ndjson")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(format=st.sampled_from(sorted(INPUTS)), data=st.data())
def test_any_bytes_through_the_cli_add_all_or_exit_2_writing_nothing(
    redis_url: str, r: Any, format: str, data: st.DataObject
) -> None:
    raw = data.draw(INPUTS[format], label="input")
    r.flushdb()
    done = Cli(redis_url)("add-many", "jobs", "--format", format, input=raw)
    assert "Traceback" not in done.stdout + done.stderr
    expected = read(raw, format)
    if isinstance(expected, InputError):
        assert (done.exit_code, done.stdout) == (ExitStatus.USAGE, "")
        # (the message's runs of white space come out as one space: it is one line)
        assert done.stderr == " ".join(f"psctl: standard input: {expected}".split()) + "\n"
        assert r.dbsize() == 0
    else:
        assert done.exit_code == ExitStatus.OK, done.stderr
        assert json.loads(done.stdout) == counts(len(expected))
        assert r.pslen("jobs") == len({row.key for row in expected})


# -- servers that misbehave --------------------------------------------------------


SERVERS: dict[str, Callable[[], Any]] = {
    "silent": SilentServer,
    "hangs up": lambda: Misbehaving(hangs_up),
    "talks nonsense": lambda: Misbehaving(talks_nonsense),
    "stops halfway": lambda: Misbehaving(stops_halfway),
}


@pytest.fixture(params=sorted(SERVERS))
def bad_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    server = SERVERS[request.param]()
    yield request.param, server.port
    server.close()


TIMEOUT = 0.2
# a script, a pipeline of scripts, plain commands
COMMANDS = [["add", "jobs", "a", "v"], ["pull", "jobs"], ["names"], ["expire"]]
EXPECTED = {
    "silent": "did not answer in time",
    "stops halfway": "did not answer in time",
    "hangs up": "cannot reach the server",
    "talks nonsense": "failed: Protocol error",
}


def fails_in_time(port: int, args: list[str], per_reply: float) -> str:
    url = f"redis://127.0.0.1:{port}"
    started = time.monotonic()
    message = Cli(url).fails(ExitStatus.SERVER, "--timeout", str(TIMEOUT), "--url", url, *args)
    elapsed = time.monotonic() - started
    # within its timeout, not the default 10 s (loose: the scheduler of a loaded machine)
    assert elapsed < 3 * per_reply + 2.0, elapsed
    return message


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_misbehaving_server_is_an_error_within_the_timeout(bad_server: tuple[str, int], args: list[str]) -> None:
    kind, port = bad_server
    assert EXPECTED[kind].lower() in fails_in_time(port, args, TIMEOUT).lower()  # hiredis or not


def test_waiting_for_ever_on_a_silent_server_is_still_an_error() -> None:
    silent = SilentServer()
    try:
        per_reply = POLL + max(TIMEOUT, POLL)  # a waiting pull's reply timeout: see connection.connect
        message = fails_in_time(silent.port, ["pull", "jobs", "--wait", "0"], per_reply)
        assert EXPECTED["silent"] in message
    finally:
        silent.close()


def test_a_tls_handshake_that_never_ends_times_out() -> None:
    silent = SilentServer()
    try:
        url = f"rediss://127.0.0.1:{silent.port}"
        started = time.monotonic()
        message = Cli(url).fails(ExitStatus.SERVER, "--timeout", str(TIMEOUT), "len", "jobs",
                                 env={"REDIS_URL": url, "REDIS_SSL_CA_CERTS": None})  # fmt: skip
        assert time.monotonic() - started < 3 * TIMEOUT + 2.0  # not the default 10 s
        assert "did not answer in time" in message
    finally:
        silent.close()


def test_a_real_process_never_hangs_on_a_silent_server() -> None:
    silent = SilentServer()
    psctl = Path(sys.executable).with_name("psctl")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))}
    try:
        started = time.monotonic()
        done = subprocess.run([str(psctl), "--timeout", "0.5", "len", "jobs"], capture_output=True, text=True,
                              env=env | {"REDIS_URL": f"redis://127.0.0.1:{silent.port}"}, timeout=30)  # fmt: skip
        elapsed = time.monotonic() - started
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith("psctl: the server at ") and "did not answer in time" in done.stderr
        assert len(done.stderr.splitlines()) == 1
        assert elapsed < 0.5 + 5.0, elapsed  # not the default 10 s; process start-up included (a loaded machine's)
    finally:
        silent.close()
