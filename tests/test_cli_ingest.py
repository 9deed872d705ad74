"""``psctl add-many`` as a real process (issue 16): Ctrl-C while reading and
while writing, ``--replace``, CSV delimiters and columns, the NDJSON error
column, and ``key_base64`` for an exact copy of a stream; and the library's
``stop`` underneath, driven without a server."""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import re
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from psctl import StopWaiting
from psctl import operations as op
from psctl import readers as inputs
from psctl.cli import signals, terminal
from psctl.cli.errors import ExitStatus

from .docs import blocks
from .helpers import DEAD, Cli, counts
from .test_plans import KEYS, describe

PSCTL = Path(sys.executable).with_name("psctl")
RERUN = "run the same command again with --replace to finish without adding any score twice"


@pytest.fixture
def env(redis_url: str, r: Any) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_", "_PSCTL"))}
    return clean | {"REDIS_URL": redis_url}


def psctl(*args: str, env: dict[str, str], input: str | bytes = b"") -> subprocess.CompletedProcess[bytes]:
    data = input.encode() if isinstance(input, str) else input
    return subprocess.run([str(PSCTL), *args], env=env, input=data, capture_output=True, timeout=120)


def added(done: subprocess.CompletedProcess[bytes]) -> Any:
    assert (done.returncode, done.stderr) == (0, b""), (done.returncode, done.stderr)
    return json.loads(done.stdout)


def usage_error(done: subprocess.CompletedProcess[bytes]) -> str:
    assert (done.returncode, done.stdout) == (ExitStatus.USAGE, b""), (done.returncode, done.stderr)
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- Ctrl-C ------------------------------------------------------------------------


ROWS = 200_000


def write_csv(path: Path, rows: int) -> dict[str, float]:
    """``rows`` items, unique keys, scores that differ; returns each key's score."""
    scores = {f"key-{i}": float(i % 97 + 1) + 0.25 for i in range(rows)}
    with path.open("w") as out:
        out.write("key,value,score\n")
        out.writelines(f"{key},value of {key},{score}\n" for key, score in scores.items())
    return scores


@pytest.mark.slow
def test_ctrl_c_while_writing_ends_after_the_chunk_in_flight(env: dict[str, str], r: Any, tmp_path: Path) -> None:
    """The first chunk is written, then SIGINT: the chunk in flight ends, no
    other is sent, the counts print as usual and stderr says how many rows
    were written, which is what the stream holds; the same command with
    --replace then finishes with every score given exactly once."""
    path = tmp_path / "items.csv"
    scores = write_csv(path, ROWS)
    adder = subprocess.Popen([str(PSCTL), "add-many", "jobs", str(path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while r.pslen("jobs") == 0:  # the writes have started
        assert adder.poll() is None, adder.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    adder.send_signal(signal.SIGINT)
    out, err = adder.communicate(timeout=60)
    assert adder.returncode == 130, err
    written = r.pslen("jobs")
    assert 0 < written < ROWS and written % op.ADD_CHUNK == 0  # whole chunks, not all of them
    assert json.loads(out) == counts(written)
    assert err.decode() == f"psctl: interrupted: wrote {written} of {ROWS} rows; {RERUN}\n"
    [shown] = blocks("docs/howto/dump-restore.md", "Load, dump and restore", "text")  # as the page shows it
    numbers = {"37000": str(written), "200000": str(ROWS)}
    assert re.sub(r"\d+", lambda found: numbers.get(found[0], found[0]), shown) == (out + err).decode()

    assert added(psctl("add-many", "jobs", str(path), "--replace", env=env)) == counts(ROWS)
    assert dict(r.pskeys("jobs", withscores=True)) == scores  # none added twice
    assert r.psget("jobs", f"key-{ROWS - 1}") == f"value of key-{ROWS - 1}".encode()


def pipe_bytes_waiting(fd: int) -> int:
    found = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, found)
    return int.from_bytes(found, sys.byteorder)


def test_ctrl_c_while_reading_writes_nothing(env: dict[str, str], r: Any) -> None:
    read_end, write_end = os.pipe()
    adder = subprocess.Popen([str(PSCTL), "add-many", "jobs"], env=env, stdin=read_end,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    os.close(read_end)
    try:
        os.write(write_end, b"key,value,score\n" + b"".join(b"k%d,v,1\n" % i for i in range(2000)))
        deadline = time.monotonic() + 30
        while pipe_bytes_waiting(write_end):  # psctl has read them: it waits for more
            assert adder.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        adder.send_signal(signal.SIGINT)
        out, err = adder.communicate(timeout=30)
    finally:
        os.close(write_end)
    assert (adder.returncode, out) == (130, b"")
    assert err == b"psctl: interrupted while reading standard input: nothing was written\n"
    assert r.keys("*") == []


def test_a_second_signal_interrupts_at_once() -> None:
    """The first SIGINT only asks the writes to stop; the second raises, and
    the handlers before are back afterwards."""
    stop = StopWaiting()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with signals.held(stop, twice=True) as caught:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            assert stop.is_set() and caught.signal == signal.SIGINT and caught.status == 130
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is before


# -- the library's stop, driven without a server ---------------------------------------


class Counted:
    """Items, counting how many were taken (encoded) by the plan."""

    def __init__(self, n: int) -> None:
        self.n, self.taken = n, 0

    def __iter__(self) -> Iterator[tuple[str, str, int]]:
        for i in range(self.n):
            self.taken += 1
            yield f"k{i}", "v", 1


def drive_until(plan: Any, replies: list[Any], stop: StopWaiting, after: int) -> tuple[list[Any], Any]:
    """Runs ``plan`` with ``replies``, setting ``stop`` once ``after`` requests were answered."""
    requests: list[Any] = []
    answers = iter(replies)
    try:
        request = plan.send(None)
        while True:
            requests.append(request)
            reply = next(answers)
            if len(requests) == after:
                stop.set()
            request = plan.send(reply)
    except StopIteration as done:
        assert next(answers, None) is None, "replies left over"
        return requests, done.value


@pytest.mark.parametrize("after, sent", [(0, []), (1, ["call"]), (3, ["call", "send", "receive"])])
def test_stop_sends_no_further_chunk_not_even_one_encoded(after: int, sent: list[str]) -> None:
    items = Counted(4 * op.ADD_CHUNK)
    stop = StopWaiting()
    if after == 0:
        stop.set()
    plan = op.add(KEYS, items, False, summary=True, stop=stop)
    requests, found = drive_until(plan, [[0], None, [0]][: len(sent)], stop, after)
    assert [describe(request)[0] for request in requests] == sent
    chunks = sent.count("call") + sent.count("receive")
    assert found == counts(chunks * op.ADD_CHUNK)
    assert items.taken >= (chunks + 1) * op.ADD_CHUNK or items.taken == items.n  # the next chunk was encoded


def test_stop_unset_changes_nothing() -> None:
    plan = op.add(KEYS, Counted(2 * op.ADD_CHUNK), False, stop=StopWaiting())
    requests, scores = drive_until(plan, [[0], None, [0]], StopWaiting(), 0)
    assert [describe(request)[0] for request in requests] == ["call", "send", "receive"]
    assert scores == [1.0] * (2 * op.ADD_CHUNK)


def test_psaddmany_stop_on_a_server(r: Any) -> None:
    stop = StopWaiting()

    def items() -> Iterator[tuple[str, str, int]]:
        for i in range(5 * op.ADD_CHUNK):
            if i == 2 * op.ADD_CHUNK + 10:
                stop.set()  # while the third chunk is encoded: it is never sent
            yield f"k{i}", "v", 1

    assert r.psaddmany("jobs", items(), summary=True, stop=stop) == counts(2 * op.ADD_CHUNK)
    assert r.pslen("jobs") == 2 * op.ADD_CHUNK


# -- --replace -------------------------------------------------------------------------


def test_replace_sets_scores_that_add_adds_to(env: dict[str, str], r: Any) -> None:
    r.psadd("jobs", "a", "old", 100)
    text = "key,value,score\na,x,2\nb,y,-1.5\n"
    assert added(psctl("add-many", "jobs", env=env, input=text)) == counts(2)
    assert r.pskeys("jobs", withscores=True) == [("a", 102.0), ("b", -1.5)]
    assert added(psctl("add-many", "jobs", "--replace", env=env, input=text)) == counts(2)
    assert added(psctl("add-many", "jobs", "--replace", env=env, input=text)) == counts(2)
    assert r.pskeys("jobs", withscores=True) == [("a", 2.0), ("b", -1.5)]
    assert r.psvalues("jobs") == {"a": b"x", "b": b"y"}


def test_replace_still_refuses_a_cooling_key_unless_readd(env: dict[str, str], r: Any) -> None:
    r.psadd("jobs", "a", "v", 5)
    r.pspull("jobs")  # a cools down
    text = '{"key": "a", "value": "w", "score": 3}\n'
    assert added(psctl("add-many", "jobs", "--replace", env=env, input=text)) == counts(0, cooling=1)
    assert added(psctl("add-many", "jobs", "--replace", "--readd", env=env, input=text)) == counts(1)
    assert r.pskeys("jobs", withscores=True) == [("a", 3.0)]


# -- CSV: delimiters, header names, no header --------------------------------------------


SNIFFED = {
    "tsv": "Key\tValue\tScore\na\tx, with a comma\t2\nb\ty;z\t3\n",
    "semicolon": "key;value;score\na;x, with a comma;2\nb;\"y;z\";3\n",
    "pipe": "KEY|VALUE|SCORE\na|x, with a comma|2\nb|y;z|3\n",
    "capitalised comma": 'Key,Value,Score\na,"x, with a comma",2\nb,y;z,3\n',
    "header spaced": " key ;\tvalue ; score\na;x, with a comma;2\nb;\"y;z\";3\n",
}


@pytest.mark.parametrize("name", SNIFFED)
@pytest.mark.parametrize("where", ["stdin", "file"])
def test_csv_delimiter_and_header_case_are_told_from_the_header(
    env: dict[str, str], r: Any, tmp_path: Path, name: str, where: str
) -> None:
    if where == "stdin":
        done = psctl("add-many", "jobs", env=env, input=SNIFFED[name])
    else:
        path = tmp_path / "items.csv"
        path.write_text(SNIFFED[name])
        done = psctl("add-many", "jobs", str(path), env=env)
    assert added(done) == counts(2)
    assert r.pskeys("jobs", withscores=True) == [("b", 3.0), ("a", 2.0)]
    assert r.psvalues("jobs") == {"b": b"y;z", "a": b"x, with a comma"}


def test_key_value_header_without_score(env: dict[str, str], r: Any) -> None:
    """Issue 16: 'Key,Value' was "cannot tell the format"."""
    assert added(psctl("add-many", "jobs", env=env, input="Key,Value\na,x\n")) == counts(1)
    assert r.pskeys("jobs", withscores=True) == [("a", 1.0)]


@pytest.mark.parametrize(
    "args, text",
    [
        (["--delimiter", "\\t"], "key\tvalue\tscore\na\tx,y\t2\n"),
        (["--delimiter", "tab"], "key\tvalue\tscore\na\tx,y\t2\n"),
        (["-d", ";"], "key;value;score\na;x,y;2\n"),
        (["-d", ":"], "key:value:score\na:x,y:2\n"),
        (["--no-header"], 'a,"x,y",2\n'),
        (["--no-header", "-d", "|"], "a|x,y|2\n"),
        (["--columns", "score,key,value"], '2,a,"x,y"\n'),
        (["--columns", "Value, Key", "-d", "tab"], "x,y\ta\n"),
        (["--no-header", "--columns", "key,value,score"], 'a,"x,y",2\n'),
        (["--format", "csv", "--no-header"], 'a,"x,y",2\n'),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_csv_options(env: dict[str, str], r: Any, args: list[str], text: str) -> None:
    assert added(psctl("add-many", "jobs", *args, env=env, input=text)) == counts(1)
    score = 1.0 if "Value, Key" in args else 2.0
    assert r.pskeys("jobs", withscores=True) == [("a", score)]
    assert r.psget("jobs", "a") == b"x,y"


def test_no_header_reads_the_first_line_as_an_item(env: dict[str, str], r: Any, tmp_path: Path) -> None:
    assert added(psctl("add-many", "jobs", "--no-header", env=env, input="key,value,3\n")) == counts(1)
    path = tmp_path / "items.tsv"  # a .tsv file is tab-separated
    path.write_text("b\tx,y\t4\n")
    assert added(psctl("add-many", "jobs", str(path), "--no-header", env=env)) == counts(1)
    assert r.pskeys("jobs", withscores=True) == [("b", 4.0), ("key", 3.0)]
    assert r.psget("jobs", "b") == b"x,y"


@pytest.mark.parametrize(
    "args, text, message",
    [
        (["--delimiter", "ab"], "", "--delimiter must be one character"),
        (["--delimiter", '"'], "", "--delimiter must be one character"),
        (["--columns", "key,valu"], "", "--columns must name key and value"),
        (["--columns", "key,key,value"], "", "--columns must name key and value"),
        (["--columns", "value,score"], "", "--columns must name key and value"),
        (["--format", "json", "--no-header"], "", "are for CSV, not --format json"),
        (["--columns", "key,value"], "a,b,3\n", "line 1: expected 2 fields (key,value), got 3"),
        (["--no-header"], "a\tb\t3\n", "line 1: expected 3 fields (key,value,score), got 1"),
        ([], "key,value,score\na;b;3\n", "line 2: expected 3 fields (key,value,score), got 1"),
        (["-f", "csv"], "key,KEY,value\n", "line 1: the CSV header must name the columns key,value"),
        (["--format", "csv"], "a,b,3\n", ("line 1: the CSV header must name the columns key,value and optionally "
                                          "score and not_before; got 'a,b,3' (no header? give --no-header or "
                                          "--columns)")),
    ],
)
def test_csv_option_errors(env: dict[str, str], r: Any, args: list[str], text: str, message: str) -> None:
    found = usage_error(psctl("add-many", "jobs", *args, env=env | {"REDIS_URL": DEAD}, input=text))
    assert message in found, found
    assert r.keys("*") == []


def test_csv_options_on_a_json_file_are_bad_usage(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('[{"key": "a", "value": "b"}]')
    found = usage_error(psctl("add-many", "jobs", str(path), "--no-header", env=env | {"REDIS_URL": DEAD}))
    assert found == f"psctl: --delimiter, --no-header and --columns are for CSV, but {path} reads as json"


# -- NDJSON: the column of an error ---------------------------------------------------


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"key": "a", "value": "b", "score": 1\n', "invalid JSON: Expecting ',' delimiter (column 38)"),
        ('{"key": "a", "value": "b", "score": 1\r\n', "invalid JSON: Expecting ',' delimiter (column 38)"),
        ('   {"key": "a", "value": "b", "score": 1\n', "invalid JSON: Expecting ',' delimiter (column 41)"),
        ('{"key": "a", "value": "b"} x\n', "invalid JSON: Extra data (column 28)"),
        ('\t{"key": "a", "value": "b",}\n', ("invalid JSON: Expecting property name enclosed in double quotes "
                                             "(column 28)")),
        ('{"key": "é", "value": "b" "score": 1}\n', "invalid JSON: Expecting ',' delimiter (column 27)"),
        ('{"key": "a", "value": "b"}\ufeff\n', "invalid JSON: Extra data (column 27)"),
        ('\ufeff{"key": "a", "value": "b"}\n', "invalid JSON: a byte order mark (BOM) inside the input (column 1)"),
    ],
)
def test_an_ndjson_error_names_its_line_and_column(env: dict[str, str], r: Any, line: str, message: str) -> None:
    text = '{"key": "first", "value": "x"}\n' + line + '{"key": "last", "value": "x"}\n'
    found = usage_error(psctl("add-many", "jobs", env=env, input=text))
    assert found == f"psctl: standard input: line 2: {message}"
    assert r.keys("*") == []


# -- key_base64: an exact copy ---------------------------------------------------------

BINARY = [
    (b"\xff\x00key", b"\x00\x01\xfe\xff", 2.5),
    (b"plain", b"\x80 not utf-8", -1.25),
    (b"\xc3\xa9t\xc3\xa9", "text, é".encode(), 0.1),
    (b"\xed\xa0\x80", b"", 1e300),  # a UTF-8-encoded surrogate: not valid UTF-8
    (b"tab\tand\nnewline", b"[b]x[/b]", -0.0),
    (b"num", b"12", 3.0),
]


def dump_lines(r: Any, name: str) -> str:
    """The NDJSON ``psctl dump`` writes (SPEC §9), made here from the raw keys."""
    lines = []
    for key, score in r.zrange(f"{name}:s", 0, -1, withscores=True):
        value = r.hget(f"{name}:t", key)
        row: dict[str, Any] = {}
        try:
            row["key"] = key.decode()
        except UnicodeDecodeError:
            row["key_base64"] = base64.b64encode(key).decode()
        try:
            row["value"] = value.decode()
        except UnicodeDecodeError:
            row["value_base64"] = base64.b64encode(value).decode()
        row["score"] = score
        lines.append(json.dumps(row) + "\n")
    return "".join(lines)


def raw_stream(r: Any, name: str) -> tuple[list[Any], dict[bytes, bytes]]:
    return r.zrange(f"{name}:s", 0, -1, withscores=True), r.hgetall(f"{name}:t")


def test_key_base64_copies_binary_keys_and_values_exactly(env: dict[str, str], r: Any) -> None:
    r.psaddmany("a", BINARY)
    original = raw_stream(r, "a")
    assert len(original[0]) == len(BINARY) and sorted(original[1]) == sorted(key for key, _, _ in BINARY)
    dumped = dump_lines(r, "a")
    assert '"key_base64"' in dumped and '"value_base64"' in dumped
    for _ in range(2):  # and again: --replace changes nothing the second time
        assert added(psctl("add-many", "b", "--replace", env=env, input=dumped)) == counts(len(BINARY))
        assert raw_stream(r, "b") == original


def test_dump_piped_into_add_many_replace_copies_a_stream(env: dict[str, str], r: Any) -> None:
    r.psaddmany("a", BINARY + [(b"k%d" % i, b"v" * (i % 50), i / 7) for i in range(2500)])
    done = subprocess.run(
        f"'{PSCTL}' dump a | '{PSCTL}' add-many b --replace", shell=True, env=env, capture_output=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, b""), done.stderr
    assert json.loads(done.stdout) == counts(len(BINARY) + 2500)
    assert raw_stream(r, "b") == raw_stream(r, "a")


@pytest.mark.parametrize(
    "item, message",
    [
        ({"key": "a", "key_base64": "YQ==", "value": "v"}, "give either key or key_base64, not both"),
        ({"key_base64": "not base64!", "value": "v"}, "key_base64 is not valid base64"),
        ({"key_base64": 5, "value": "v"}, "key_base64 must be a string, got a number"),
        ({"key_base64": "", "value": "v"}, "key is empty"),
        ({"value": "v"}, "missing field 'key'"),
        ({"key_base64": "YQ=="}, "missing field 'value'"),
    ],
)
def test_bad_key_base64(item: dict[str, Any], message: str) -> None:
    text = '{"key": "first", "value": "x"}\n' + json.dumps(item) + "\n"
    with pytest.raises(inputs.InputError) as raised:
        list(inputs.rows_from_file(io.BytesIO(text.encode()), "ndjson"))
    assert raised.value.line == 2 and message in str(raised.value), str(raised.value)


# -- progress while reading ------------------------------------------------------------


class Recorded:
    """The reading progress bar's task and updates."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import rich.progress

        self.totals: list[float | None] = []
        self.updates: list[tuple[Any, Any]] = []
        add_task, update = rich.progress.Progress.add_task, rich.progress.Progress.update

        def recording_add_task(bar: Any, description: str, **kwargs: Any) -> Any:
            if description == "checking":
                self.totals.append(kwargs.get("total"))
            return add_task(bar, description, **kwargs)

        def recording_update(bar: Any, task: Any, **kwargs: Any) -> None:
            if "rows" in kwargs:
                self.updates.append((kwargs["completed"], kwargs["rows"]))
            update(bar, task, **kwargs)

        monkeypatch.setattr(rich.progress.Progress, "add_task", recording_add_task)
        monkeypatch.setattr(rich.progress.Progress, "update", recording_update)


def test_reading_shows_progress_on_a_terminal(redis_url: str, r: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    cli = Cli(redis_url)
    path = tmp_path / "items.csv"
    write_csv(path, 3_500)
    monkeypatch.setattr(terminal, "stderr_is_terminal", lambda: True)
    recorded = Recorded(monkeypatch)
    assert json.loads(cli("add-many", "jobs", str(path)).stdout) == counts(3_500)
    size = path.stat().st_size
    assert recorded.totals == [size]  # a bar of the file's bytes
    assert [rows for _, rows in recorded.updates] == [1000, 2000, 3000, 3500]
    done = [completed for completed, _ in recorded.updates]
    assert done == sorted(done) and done[-1] == size

    recorded = Recorded(monkeypatch)
    assert json.loads(cli("add-many", "other", input=path.read_bytes()).stdout) == counts(3_500)
    assert recorded.totals == [None]  # stdin of unknown size: a spinner and the rows counted
    assert [rows for _, rows in recorded.updates] == [1000, 2000, 3000, 3500]


def test_no_reading_progress_off_a_terminal(redis_url: str, r: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    recorded = Recorded(monkeypatch)
    path = tmp_path / "items.csv"
    write_csv(path, 1_500)
    done = Cli(redis_url)("add-many", "jobs", str(path))
    assert (done.exit_code, done.stderr, recorded.totals, recorded.updates) == (0, "", [], [])


def test_the_size_of_an_input_is_known_only_for_a_file(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("key,value\na,b\n")
    with inputs.open_input(str(path)) as source:
        assert source.size == path.stat().st_size and source.consumed == 0
        assert source.fp.read() == path.read_bytes() and source.consumed == source.size
    read_end, write_end = os.pipe()
    os.write(write_end, b"key,value\na,b\n")
    os.close(write_end)
    with open(read_end, "rb", buffering=0) as pipe, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdin", io.TextIOWrapper(pipe))
        with inputs.open_input("-") as source:
            assert source.size is None and source.fp.read() == b"key,value\na,b\n"


def test_a_csv_reader_closed_after_its_input_is_quiet() -> None:
    """Ctrl-C while reading closes the input first; the reader, collected
    after, must not print "Exception ignored in: <generator _csv_rows>" with
    a traceback (ValueError from detaching a closed file)."""
    fp = io.BytesIO(b"key,value\na,1\nb,2\n")
    rows = inputs.rows_from_file(fp, "csv")
    assert next(rows).key == b"a"
    fp.close()
    rows.close()  # raised ValueError: I/O operation on closed file
