"""``psctl add-many``: the three formats, files and stdin, and bad input that
exits 2 naming its line with nothing written."""

from __future__ import annotations

import io
import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from psctl import readers as inputs
from psctl.readers import jsonrows
from psctl.readers import spool as spooling
from psctl.cli import terminal
from psctl.cli.errors import ExitStatus
from .helpers import DEAD, Cli, counts


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


CSV = "key,value,score\njob-1,hello,5\njob-2,\"a, b\nand a second line\",\njob-3,x,-2.5\n"
JSON = '[\n  {"key": "job-1", "value": "hello", "score": 5},\n  {"key": "job-2", "value": "a, b\\nand a second line"},\n  {"key": "job-3", "value": "x", "score": -2.5}\n]\n'  # noqa: E501
NDJSON = '{"key": "job-1", "value": "hello", "score": 5}\n{"key": "job-2", "value": "a, b\\nand a second line"}\n\n{"key": "job-3", "value": "x", "score": -2.5}\n'  # noqa: E501
EXPECTED = [("job-1", 5.0), ("job-2", 1.0), ("job-3", -2.5)]


def check_written(r: Any) -> None:
    assert r.pskeys("jobs", withscores=True) == EXPECTED
    assert r.psget("jobs", "job-2") == b"a, b\nand a second line"
    assert r.psnames() == ["jobs"]


@pytest.mark.parametrize("suffix, text", [(".csv", CSV), (".json", JSON), (".ndjson", NDJSON), (".jsonl", NDJSON)])
def test_a_file_in_each_format(cli: Cli, r: Any, tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"items{suffix}"
    path.write_text(text)
    assert cli.ok("add-many", "jobs", str(path)) == counts(3)
    check_written(r)


@pytest.mark.parametrize("text", [CSV, JSON, NDJSON], ids=["csv", "json", "ndjson"])
@pytest.mark.parametrize("dash", [True, False], ids=["dash", "no-file"])
def test_stdin_with_the_format_sniffed(cli: Cli, r: Any, text: str, dash: bool) -> None:
    args = ["add-many", "jobs", "-"] if dash else ["add-many", "jobs"]
    assert cli.ok(*args, input=text) == counts(3)
    check_written(r)


@pytest.mark.parametrize("format, text", [("csv", CSV), ("json", JSON), ("ndjson", NDJSON)])
def test_format_option_beats_the_extension(cli: Cli, r: Any, tmp_path: Path, format: str, text: str) -> None:
    path = tmp_path / "items.txt"
    path.write_text(text)
    assert cli.ok("add-many", "jobs", str(path), "--format", format) == counts(3)
    check_written(r)


def test_refused_items_are_counted(cli: Cli, r: Any) -> None:
    r.psadd("jobs", "job-1", "v")
    r.pspull("jobs")  # job-1 cools down
    assert cli.ok("add-many", "jobs", "--format", "csv", input=CSV) == counts(2, cooling=1)
    assert cli.ok("add-many", "jobs", "--format", "csv", "--readd", input=CSV) == counts(3)


def test_a_key_repeated_adds_up_in_order(cli: Cli, r: Any) -> None:
    text = "key,value,score\na,first,1\na,second,2\n"
    assert cli.ok("add-many", "jobs", "--format", "csv", input=text) == counts(2)
    assert r.pskeys("jobs", withscores=True) == [("a", 3.0)] and r.psget("jobs", "a") == b"second"


def test_csv_columns_in_any_order_and_score_optional(cli: Cli, r: Any) -> None:
    assert cli.ok("add-many", "jobs", "--format", "csv", input="score,value,key\n2,v,a\n") == counts(1)
    assert cli.ok("add-many", "jobs", "--format", "csv", input="key,value\nb,w\n") == counts(1)
    assert r.pskeys("jobs", withscores=True) == [("a", 2.0), ("b", 1.0)]


def test_empty_input_adds_nothing(cli: Cli, r: Any) -> None:
    for text, format in [("", None), ("", "csv"), ("key,value,score\n", "csv"), ("[]", "json"), ("\n\n", "ndjson")]:
        args = ["add-many", "jobs"] + (["--format", format] if format else [])
        assert cli.ok(*args, input=text) == counts(0)
    assert r.psnames() == []


def test_json_numbers_and_base64_values(cli: Cli, r: Any) -> None:
    text = '[{"key": 7, "value": 12, "score": "3"}, {"key": "b", "value": 1.5}, {"key": "c", "value_base64": "//4A"}]'
    assert cli.ok("add-many", "jobs", "--format", "json", input=text) == counts(3)
    assert r.psvalues("jobs") == {"7": b"12", "b": b"1.5", "c": b"\xff\xfe\x00"}


def test_values_output_feeds_back_in(cli: Cli, r: Any) -> None:
    r.psaddmany("jobs", [("bin", b"\xff\x00", 2), ("text", "é [b]x[/b]", 1)])
    exported = cli("values", "jobs").stdout
    assert cli.ok("add-many", "copy", input=exported) == counts(2)
    assert r.psvalues("copy") == r.psvalues("jobs")


def test_bytes_that_are_not_utf8_pass_through(cli: Cli, r: Any) -> None:
    text = b"key,value,score\nk\xff,v\xfe\x00,1\n"
    assert cli.ok("add-many", "jobs", "--format", "csv", input=text) == counts(1)
    assert r.hgetall("jobs:t") == {b"k\xff": b"v\xfe\x00"}


def test_a_utf8_byte_order_mark_is_skipped(cli: Cli, r: Any) -> None:
    assert cli.ok("add-many", "jobs", input="\ufeffkey,value\na,b\n".encode()) == counts(1)
    assert cli.ok("add-many", "jobs", "--format", "json", input='\ufeff[{"key":"c","value":"d"}]'.encode())["added"] == 1
    assert sorted(r.pskeys("jobs")) == ["a", "c"]


NDJSON_LINES = [
    # (line, the (key, value, score) read, or the error's message): the usual
    # item takes a shorter path than the rest; both must read every line alike
    ('{"key": "a", "value": "b", "score": 2}\n', (b"a", b"b", 2.0)),
    ('  {"key": "a", "value": "b", "score": 2.5}  \r\n', (b"a", b"b", 2.5)),
    ('{"key": "a", "value": "b", "score": -0.0}', (b"a", b"b", -0.0)),
    ('{"score": 3, "value": "b", "key": "a"}', (b"a", b"b", 3.0)),
    ('{"key": 7, "value": 5, "score": 1}', (b"7", 5, 1.0)),  # the spool encodes 5 as the library does
    ('{"key": "a", "value": "b"}', (b"a", b"b", 1.0)),
    ('{"key": "a", "value": "b", "score": null}', (b"a", b"b", 1.0)),
    ('{"key": "a", "value": "b", "score": "4"}', (b"a", b"b", 4.0)),
    ('{"key": "\u00e9", "value": "\u00fc", "score": 1}', ("é".encode(), "ü".encode(), 1.0)),
    ('{"key": "a", "value": "b", "score": 1} x', "invalid JSON: Extra data"),
    ('{"key": "a", "value": "b", "score": 1}{}', "invalid JSON: Extra data"),
    ('{"key": "a", "value": "b", "score": ' + "9" * 400 + "}", "score is too large"),
    ('{"key": "a", "value": "b", "score": 1e400}', "finite number"),
    ('{"key": "a", "value": "b", "score": true}', "score must be a number, got a boolean"),
    ('{"key": "\\ud800", "value": "b", "score": 1}', "key is not valid Unicode"),
    ('{"key": "a", "value": "\\ud800", "score": 1}', "value is not valid Unicode"),
    ('{"key": "a", "value": "\\udc80", "score": 1}', (b"a", b"\x80", 1.0)),  # surrogateescape: byte 0x80
    ('{"key": "", "value": "b", "score": 1}', "key is empty"),
    ('{"key": "a", "value": "b", "extra": 1}', "unknown field 'extra'"),
    ('{"key": "a", "value": "b", "score": 1', "invalid JSON: Expecting ',' delimiter"),
    ('"a"', "expected an object"),
]


@pytest.mark.parametrize("line, expected", NDJSON_LINES)
def test_every_ndjson_line_reads_as_json_loads_would(line: str, expected: Any) -> None:
    text = '{"key": "first", "value": "x"}\n' + line  # the line is line 2
    reading = inputs.rows_from_file(io.BytesIO(text.encode("utf-8", "surrogatepass")), "ndjson")
    if isinstance(expected, tuple):
        rows = list(reading)
        assert [row.item() for row in rows[1:]] == [expected]
        assert str(rows[1].score) == str(expected[2])  # -0.0 stays -0.0, as the library expects it
    else:
        with pytest.raises(inputs.InputError) as raised:
            list(reading)
        assert raised.value.line == 2 and expected in str(raised.value), str(raised.value)


def test_a_byte_order_mark_after_the_first_line_is_an_error() -> None:
    text = '{"key": "a", "value": "b"}\n\ufeff{"key": "c", "value": "d"}\n'
    with pytest.raises(inputs.InputError) as raised:
        list(inputs.rows_from_file(io.BytesIO(text.encode()), "ndjson"))
    assert raised.value.line == 2 and "BOM" in str(raised.value)


# -- bad input: exit 2, the line named, nothing written ------------------------

BAD = [
    # (format, input, line, message)
    ("csv", "key,value,score\na,b,1\nc,d\n", 3, "expected 3 fields (key,value,score), got 2"),
    ("csv", "key,value,score\na,b,1,extra\n", 2, "expected 3 fields"),
    ("csv", "key,value,score\na,b,ten\n", 2, "score 'ten' is not a number"),
    ("csv", "key,value,score\na,b,nan\n", 2, "score must be a finite number, got 'nan'"),
    ("csv", "key,value,score\na,b,NaN\n", 2, "finite number"),
    ("csv", "key,value,score\na,b,-inf\n", 2, "finite number"),
    ("csv", "key,value,score\na,b,1_000\n", 2, "not a number"),
    ("csv", "key,value,score\n,b,1\n", 2, "key is empty"),
    ("csv", "key,value,score\na,\"b\nc\",1\nd,e,f\n", 4, "score 'f' is not a number"),  # a quoted newline
    ("csv", 'key,value,score\na,"unterminated,1\n', 2, "malformed CSV"),
    ("csv", 'key,value,score\na,"b"c,1\n', 2, "malformed CSV"),
    ("csv", "a,b,1\n", 1, "the CSV header must name the columns key,value"),
    ("csv", "key,valu,score\na,b,1\n", 1, "the CSV header"),
    ("csv", "key,key,value\na,b,1\n", 1, "the CSV header"),
    ("csv", "\n\nkey,value\na\n", 4, "expected 2 fields"),  # blank lines still count
    ("json", '[{"key": "a", "value": "b"},\n {"key": "c"}]', 2, "missing field 'value'"),
    ("json", '[{"key": "a", "value": "b"},\n {"value": "c"}]', 2, "missing field 'key'"),
    ("json", '[\n{"key": "a", "value": "b", "score": NaN}]', 2, "finite number"),
    ("json", '[\n{"key": "a", "value": "b", "score": Infinity}]', 2, "finite number"),
    ("json", '[\n{"key": "a", "value": "b", "score": "x"}]', 2, "score 'x' is not a number"),
    ("json", '[\n{"key": "a", "value": "b", "score": true}]', 2, "score must be a number, got a boolean"),
    ("json", '[\n{"key": "a", "value": "b", "score": 1e999}]', 2, "finite number"),
    ("json", '[\n{"key": "a", "value": "b", "scor": 1}]', 2, "unknown field 'scor'"),
    ("json", '[\n{"key": "a", "value": {"x": 1}}]', 2, "value must be a string or a number, got an object"),
    ("json", '[\n{"key": "a", "value": null}]', 2, "value must be a string or a number, got null"),
    ("json", '[\n{"key": "a", "value": NaN}]', 2, "finite number"),
    ("json", '[\n{"key": ["a"], "value": "b"}]', 2, "key must be a string"),
    ("json", '[\n{"key": "a", "value": "b", "value_base64": "Yg=="}]', 2, "either value or value_base64"),
    ("json", '[\n{"key": "a", "value_base64": "not base64!"}]', 2, "not valid base64"),
    ("json", '[\n{"key": "\\ud800", "value": "b"}]', 2, "key is not valid Unicode"),
    ("json", '[\n"a"]', 2, "expected an object"),
    ("json", '[\n{"key": "a", "value": "b"}\n{"key": "c", "value": "d"}]', 3, "expected ',' or ']'"),
    ("json", '[\n{"key": "a", "value": "b"},\n]', 3, "a ',' with no item after it"),
    ("json", '[\n{"key": "a", "value": "b"}', 2, "not closed"),
    ("json", '[\n{"key": "a", "value": "b"}] []', 2, "unexpected data after the JSON array"),
    ("json", '{"key": "a", "value": "b"}', 1, "expected a JSON array"),
    ("json", '[\n{"key": "a",\n "value": "b\nc"}]', 3, "invalid JSON"),
    ("json", "[" * 100_000, 1, "nested too deeply"),
    ("ndjson", '{"key": "a", "value": "b"}\n{"key": "c", "value": "d"\n', 2, "invalid JSON"),
    ("ndjson", '{"key": "a", "value": "b"}\n\n[1, 2]\n', 3, "expected an object"),
    ("ndjson", '{"key": "a", "value": "b", "score": NaN}\n', 1, "finite number"),
    ("ndjson", '{"key": "", "value": "b"}\n', 1, "key is empty"),
]


@pytest.mark.parametrize("format, text, line, message", BAD)
def test_bad_input_names_the_line_and_writes_nothing(
    cli: Cli, r: Any, format: str, text: str, line: int, message: str
) -> None:
    found = cli.fails(ExitStatus.USAGE, "add-many", "jobs", "--format", format, input=text)
    assert found.startswith(f"psctl: standard input: line {line}: "), found
    assert message in found
    assert r.keys("*") == []


@pytest.mark.parametrize("format, text, line, message", BAD)
def test_the_readers_raise_a_typed_error(format: str, text: str, line: int, message: str) -> None:
    with pytest.raises(inputs.InputError) as raised:
        list(inputs.rows_from_file(io.BytesIO(text.encode()), format))
    assert (raised.value.line, message in str(raised.value)) == (line, True)
    assert isinstance(raised.value, ValueError)


def write_items(path: Path, format: str, count: int, last: str | None = None) -> None:
    """``count`` good items in ``format``, the last one replaced by ``last`` when given."""
    rows = [{"key": f"key-{i}", "value": f"value {i}", "score": i % 7} for i in range(count)]
    with path.open("w") as out:
        if format == "csv":
            out.write("key,value,score\n")
            out.writelines(f"{row['key']},{row['value']},{row['score']}\n" for row in rows[:-1])
            out.write(last if last is not None else f"{rows[-1]['key']},{rows[-1]['value']},1\n")
        elif format == "json":
            out.write("[\n")
            out.writelines(json.dumps(row) + ",\n" for row in rows[:-1])
            out.write(last if last is not None else json.dumps(rows[-1]))
            out.write("\n]\n")
        else:
            out.writelines(json.dumps(row) + "\n" for row in rows[:-1])
            out.write(last if last is not None else json.dumps(rows[-1]) + "\n")


BAD_LAST = {
    "csv": "key-last,value,NaN\n",
    "json": '{"key": "key-last", "value": "v", "score": "NaN"}',
    "ndjson": '{"key": "key-last", "value": "v", "score": "high"}\n',
}


@pytest.mark.parametrize("format", inputs.FORMATS)
def test_an_error_on_the_last_line_of_a_large_file_writes_nothing(
    cli: Cli, r: Any, tmp_path: Path, format: str
) -> None:
    count = 12_000  # a dozen write chunks, many read windows
    path = tmp_path / f"items.{format}"
    write_items(path, format, count, last=BAD_LAST[format])
    last_line = count + 1 if format in ("csv", "json") else count
    found = cli.fails(ExitStatus.USAGE, "add-many", "jobs", str(path))
    assert found.startswith(f"psctl: {path}: line {last_line}: "), found
    assert r.keys("*") == []
    write_items(path, format, count)
    assert cli.ok("add-many", "jobs", str(path)) == counts(count)
    assert r.pslen("jobs") == count


def test_a_large_stdin_is_spooled_and_written_in_chunks(cli: Cli, r: Any, tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    write_items(path, "ndjson", 5_000)
    assert cli.ok("add-many", "jobs", input=path.read_bytes()) == counts(5_000)
    assert r.pslen("jobs") == 5_000


@pytest.mark.parametrize("format", inputs.FORMATS)
def test_reading_holds_one_item_at_a_time(tmp_path: Path, format: str) -> None:
    path = tmp_path / f"items.{format}"
    write_items(path, format, 40_000)
    size = path.stat().st_size
    with path.open("rb") as fp:
        tracemalloc.start()
        try:
            assert sum(1 for _ in inputs.rows_from_file(fp, format)) == 40_000
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < size / 5, (peak, size)


def test_json_array_elements_cut_by_the_read_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every split of the input between two reads parses the same, lines included."""
    rng = random.Random(7)
    items = [
        {"key": f"k{i}é", "value": rng.choice(["x" * rng.randint(0, 200), 'ü\n"q', 5, 1.5e10]), "score": rng.choice([1, -2.5, "3"])}  # noqa: E501
        for i in range(40)
    ]
    text = json.dumps(items, indent=2, ensure_ascii=False)
    starts = [number for number, line in enumerate(text.splitlines(), 1) if line.strip() == "{"]
    for size in (1, 2, 3, 7, 63, 64, 65, 1000):
        monkeypatch.setattr(jsonrows, "READ_SIZE", size)
        rows = list(inputs.rows_from_file(io.BytesIO(text.encode()), "json"))
        assert [row.key.decode() for row in rows] == [item["key"] for item in items], size
        assert [row.line for row in rows] == starts, size
        broken = text.replace('"k30é"', '"k30é" oops', 1)
        with pytest.raises(inputs.InputError) as raised:
            list(inputs.rows_from_file(io.BytesIO(broken.encode()), "json"))
        assert raised.value.line == text[: text.find('"k30é"')].count("\n") + 1, size


# -- formats and files ----------------------------------------------------------


def test_stdin_that_cannot_be_told_apart_needs_format(cli: Cli, r: Any) -> None:
    found = cli.fails(ExitStatus.USAGE, "add-many", "jobs", input="hello world\n")
    assert "cannot tell the format of standard input" in found and "--format" in found


def test_a_file_with_an_unknown_extension_is_sniffed_too(cli: Cli, r: Any, tmp_path: Path) -> None:
    path = tmp_path / "items.txt"
    path.write_text(NDJSON)
    assert cli.ok("add-many", "jobs", str(path)) == counts(3)
    path.write_text("just words\n")
    assert f"cannot tell the format of {path}" in cli.fails(ExitStatus.USAGE, "add-many", "jobs", str(path))


def test_unknown_format_and_missing_file_are_bad_usage(cli: Cli, tmp_path: Path) -> None:
    found = cli.fails(ExitStatus.USAGE, "add-many", "jobs", "--format", "xml", input="", env={"REDIS_URL": DEAD})
    assert "'xml' is not one of 'csv', 'json', 'ndjson'" in found
    missing = tmp_path / "nope.csv"
    assert f"cannot read {missing}" in cli.fails(ExitStatus.USAGE, "add-many", "jobs", str(missing))
    assert f"cannot read {tmp_path}" in cli.fails(ExitStatus.USAGE, "add-many", "jobs", str(tmp_path))


def test_bad_input_does_not_reach_for_the_server(cli: Cli) -> None:
    found = cli.fails(ExitStatus.USAGE, "add-many", "jobs", "--format", "csv", input="key,value\n,x\n",
                      env={"REDIS_URL": DEAD})  # fmt: skip
    assert "line 2: key is empty" in found


def test_no_progress_bar_unless_stderr_is_a_terminal(
    cli: Cli, r: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "items.csv"
    write_items(path, "csv", 3_000)
    done = cli("add-many", "jobs", str(path))
    assert done.exit_code == 0 and done.stderr == ""
    monkeypatch.setattr(terminal, "stderr_is_terminal", lambda: True)
    steps: list[float] = []
    import rich.progress

    advance = rich.progress.Progress.advance
    monkeypatch.setattr(rich.progress.Progress, "advance", lambda self, task, n: steps.append(n) or advance(self, task, n))
    done = cli("add-many", "other", str(path))
    assert (done.exit_code, json.loads(done.stdout)) == (0, counts(3_000))
    assert steps == [1000, 1000, 1000]


def test_a_server_failure_midway_says_how_far_it_got(
    cli: Cli, r: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection fails as the reply to the third chunk's script call is
    read: two chunks are known to be written, the third ran but its reply was
    lost. (The first call of a new stream writes nothing and asks for the
    name to be registered first: it is the fourth call.)"""
    from redis.connection import AbstractConnection
    from redis.exceptions import ConnectionError

    path = tmp_path / "items.csv"
    write_items(path, "csv", 5_000)
    r.psaddmany("warm", [("a", "v", 1)])  # the script is loaded: no NOSCRIPT round to count
    r.psdelete("warm")
    sent: list[Any] = []
    send, read = AbstractConnection.send_packed_command, AbstractConnection.read_response

    def send_packed_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        packed = command if isinstance(command, bytes) else b"".join(command)
        sent.append("EVALSHA" if b"\r\nEVALSHA\r\n" in packed[:32] else "other")
        return send(self, command, *args, **kwargs)

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = read(self, *args, **kwargs)
        if sent[-1] == "EVALSHA" and sent.count("EVALSHA") == 4:
            raise ConnectionError("Connection reset by peer")
        return reply

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
    monkeypatch.setattr(AbstractConnection, "read_response", read_response)
    message = cli.fails(ExitStatus.SERVER, "add-many", "jobs", str(path))
    assert "Connection reset by peer" in message
    assert message.endswith("(psaddmany wrote 2000 items before the failure; the 1000 after them may have been written too)")
    assert r.pslen("jobs") == 3000


def test_each_row_is_parsed_once_and_written_by_one_call(
    cli: Cli, r: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One psaddmany call, given one stream of items (so that the library
    prepares each chunk while the server runs the one before)."""
    from psctl.client import Redis

    path = tmp_path / "items.ndjson"
    write_items(path, "ndjson", 2_500)
    parsed: list[int] = []
    json_row = inputs.json_row
    monkeypatch.setattr(jsonrows, "json_row", lambda line, found: parsed.append(line) or json_row(line, found))
    calls: list[Any] = []
    real = Redis.psaddmany
    monkeypatch.setattr(Redis, "psaddmany", lambda self, name, items, **kw: calls.append(items) or real(self, name, items, **kw))
    assert cli.ok("add-many", "jobs", str(path)) == counts(2_500)
    assert parsed == list(range(1, 2_501))
    assert len(calls) == 1 and not isinstance(calls[0], (list, tuple))
    assert r.pslen("jobs") == 2_500


def test_the_spool_gives_back_what_was_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records cut by the read blocks, empty and large fields, every byte value."""
    monkeypatch.setattr(spooling, "SPOOL_BLOCK", 64)
    items = [
        (b"k", b"", 1.0),
        (bytes(range(256)), b"v" * 1000, -0.5),
        (b"\xff\xfe", bytes(range(256)) * 3, 1e300),
        *((b"key-%d" % i, b"x" * (i % 50), float(i)) for i in range(500)),
    ]
    with inputs.ItemSpool() as spool:
        for item in items:
            spool.add(*item)
        assert spool.count == len(items)
        assert list(spool.items()) == items
        assert list(spool.items()) == items  # read again from the start


def test_a_pipe_given_as_a_file_is_read_without_seeking(cli: Cli, r: Any, tmp_path: Path) -> None:
    """``psctl add-many jobs <(cmd)``: a FIFO, sniffed by peeking (issue 11, point 15)."""
    import os
    import threading

    fifo = tmp_path / "items"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as pipe:
            pipe.write(NDJSON)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        assert cli.ok("add-many", "jobs", str(fifo)) == counts(3)
    finally:
        writer.join(10)
    check_written(r)
