"""Items from CSV, a JSON array or NDJSON, read as a stream (what ``psctl
add-many`` reads; sqlite-utils keeps its ``rows_from_file`` in the library too).

``rows_from_file(fp, format)`` yields one ``Row`` per item from a binary file
and raises ``InputError`` (an ``InvalidArgument``) naming the line (physical lines, counted from 1; a
CSV header is line 1) at the first thing wrong. It holds one item at a time.
CSV is read as its ``CsvLayout`` says: the delimiter (by default told from the
header: comma, tab, semicolon or pipe) and the columns (by default named by the
header, in any order and case).

``add-many`` reads its input once: ``spool_input`` checks every row and writes
it, already encoded as the library sends it, to an ``ItemSpool`` (a temporary
file of length-prefixed records), so that the whole input is checked before
anything is written; the spool is then read back as one stream of items for
one ``psaddmany`` call. Memory stays constant whatever the size of the input.
The input is read once, from its start: to tell its format, the first line is
peeked at and then read again from memory (``open_input``), so that standard
input, a pipe or ``<(cmd)`` work as well as a file.

Every format carries the same fields: ``key`` (required, not empty), ``value``
(required: text, or a number in JSON), ``score`` (optional, default 1; a
finite number) and ``not_before`` (optional: the item is delayed until then;
ISO 8601, UTC unless it says, or Unix seconds). JSON items may give ``key_base64`` instead of ``key`` and
``value_base64`` instead of ``value``, so that the output of ``psctl dump``,
``psctl values`` and ``psctl pull`` can be fed back in, keys and values that
are not UTF-8 included. Text that is not UTF-8 passes through byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import io
import itertools
import json
import math
import os
import re
import stat
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from psctl.errors import InvalidArgument

FORMATS = ("csv", "json", "ndjson")
EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}
FIELDS = ("key", "value", "score", "not_before")
NO_HEADER = ("key", "value", "score")  # the columns of a CSV without a header, unless --columns says
JSON_FIELDS = frozenset({"key", "key_base64", "value", "value_base64", "score", "not_before"})
# the CSV delimiters told from a header, in the order tried
DELIMITERS = (",", "\t", ";", "|")
DELIMITER_NAMES = {"\\t": "\t", "tab": "\t"}

READ_SIZE = 1 << 16  # bytes read at a time from the file
SNIFF_SIZE = 1 << 16  # bytes looked at, at most, to tell an input's format
# CSV's default limit of 128 KiB per field would refuse large values
CSV_FIELD_LIMIT = (1 << 31) - 1
TOO_MANY_DIGITS = f"invalid JSON: a number with more than {sys.get_int_max_str_digits()} digits"


class InputError(InvalidArgument):
    """Bad input, at a line of the file; ``source`` names the input, when known."""

    def __init__(self, line: int, message: str, source: str | None = None) -> None:
        super().__init__(f"{source}: line {line}: {message}" if source else f"line {line}: {message}")
        self.line = line
        self.reason = message
        self.source = source


@dataclass(slots=True)
class Row:
    line: int
    key: bytes
    value: bytes | int | float
    score: float
    not_before: float | None = None  # unix seconds: delayed until then

    def item(self) -> tuple[Any, ...]:
        """The ``(key, value, score)`` that ``psaddmany`` takes, with a 4th
        field, a ``datetime``, for a delayed item."""
        if self.not_before is None:
            return self.key, self.value, self.score
        return self.key, self.value, self.score, _moment(self.not_before)


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """How a CSV input is laid out. ``delimiter``: None to tell it from the
    header (``DELIMITERS``; a comma when none fits). ``columns``: the fields of
    each record, in order, for an input without a header line; None when its
    first line is a header naming them."""

    delimiter: str | None = None
    columns: tuple[str, ...] | None = None


def delimiter_option(text: str) -> str:
    """``--delimiter``'s value as the character it means: ``\\t`` and ``tab`` are
    a tab; anything else must be one character, not a quote or a line end."""
    found = DELIMITER_NAMES.get(text.lower(), text)
    if len(found) != 1 or found in '"\r\n':
        raise InvalidArgument(f"--delimiter must be one character (or \\t or tab for a tab), got {text!r}")
    return found


def columns_option(text: str) -> tuple[str, ...]:
    """``--columns``' value (``key,value,score,not_before`` in any order;
    ``score`` and ``not_before`` may be left out) as the column names, in order."""
    names = tuple(name.strip().lower() for name in text.split(","))
    if _header_names(names) is None:
        raise InvalidArgument(
            "--columns must name key and value, and optionally score and not_before, each once (e.g. "
            f"key,value,score), got {text!r}"
        )
    return names


def delimiter_for(path: str | Path | None) -> str | None:
    """The delimiter a file's name implies: a tab for ``.tsv``."""
    return "\t" if path is not None and Path(path).suffix.lower() == ".tsv" else None


# -- choosing the format -----------------------------------------------------


def format_from_name(path: str | Path) -> str | None:
    return EXTENSIONS.get(Path(path).suffix.lower())


def sniff(head: bytes) -> str | None:
    """The format of an input starting with ``head``, when that makes it
    unambiguous: a JSON array starts with ``[``, NDJSON with ``{``, CSV with a
    header naming ``key`` and ``value`` (separated by one of ``DELIMITERS``).
    An empty input reads as no items in any format."""
    text = head.decode("utf-8", "surrogateescape").lstrip("\ufeff \t\r\n")
    if not text:
        return "ndjson"
    if text[0] == "[":
        return "json"
    if text[0] == "{":
        return "ndjson"
    return "csv" if header_delimiter(text.splitlines()[0]) is not None else None


def header_delimiter(line: str) -> str | None:
    """The one of ``DELIMITERS`` that makes ``line`` a CSV header, if any."""
    for delimiter in DELIMITERS:
        try:
            record = next(csv.reader([line], delimiter=delimiter, strict=True))
        except (csv.Error, StopIteration):
            continue
        if _header_names(record) is not None:
            return delimiter
    return None


def _header_names(record: list[str] | tuple[str, ...]) -> list[str] | None:
    """The column names of a header (any case, spaces around ignored), or None
    unless it names key and value, and maybe score and not_before, each once."""
    names = [name.strip().lower() for name in record]
    if set(names) <= set(FIELDS) and len(set(names)) == len(names) and {"key", "value"} <= set(names):
        return names
    return None


class _Peeked(io.RawIOBase):
    """An input read once from its start: the ``head`` already read (to tell
    its format), then the rest of ``source``. Nothing is seeked, so a pipe works."""

    def __init__(self, head: bytes, source: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._source = source
        self.consumed = 0  # bytes given out so far, for a progress bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            self.consumed += size
            return size
        chunk = self._source.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.consumed += len(chunk)
        return len(chunk)

    def close(self) -> None:
        self._source.close()
        super().close()


def _head(source: IO[bytes]) -> bytes:
    """The start of ``source``: enough to hold its first line with something on
    it (at most ``SNIFF_SIZE`` bytes, or all of a shorter input)."""
    read = getattr(source, "read1", source.read)  # what is there: a pipe may hold less
    head = b""
    while len(head) < SNIFF_SIZE:
        chunk = read(SNIFF_SIZE - len(head))
        if not chunk:
            break
        head += chunk
        content = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if content[:1] in (b"[", b"{") or b"\n" in content:
            break
    return head


# -- the checked items, spooled ------------------------------------------------

# one record per item: key length, value length, score and not_before (doubles;
# NaN: none), then the key and value bytes; nothing but bytes and numbers is
# ever read back (no pickle)
_RECORD = struct.Struct("<IIdd")
_NONE = math.nan
SPOOL_BLOCK = 1 << 20  # bytes written or read at a time


class ItemSpool:
    """Checked items as ``(key, value, score)``, ``bytes``, ``bytes`` and a finite
    ``float`` (what ``psaddmany`` sends without converting anything), with a
    4th field, a ``datetime``, for a delayed item, in a temporary file that is
    gone once the spool is closed."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="psctl-add-many-")
        self._pending = bytearray()
        self.count = 0

    def __enter__(self) -> ItemSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def add(self, key: bytes, value: bytes, score: float, not_before: float | None = None) -> None:
        pending = self._pending
        pending += _RECORD.pack(len(key), len(value), score, _NONE if not_before is None else not_before)
        pending += key
        pending += value
        self.count += 1
        if len(pending) >= SPOOL_BLOCK:
            self._file.write(pending)
            pending.clear()

    def items(self) -> Iterator[tuple[Any, ...]]:
        """Every item, in the order added, read from the file a block at a time."""
        self._file.write(self._pending)
        self._pending.clear()
        self._file.seek(0)
        read, unpack, head = self._file.read, _RECORD.unpack_from, _RECORD.size
        data = b""
        pos = 0
        while True:
            need = head
            while pos + head <= len(data):
                key_size, value_size, score, not_before = unpack(data, pos)
                start = pos + head
                middle = start + key_size
                end = middle + value_size
                if end > len(data):
                    need = end - pos
                    break
                if not_before != not_before:  # NaN: not delayed
                    yield data[start:middle], data[middle:end], score
                else:
                    yield data[start:middle], data[middle:end], score, _moment(not_before)
                pos = end
            block = read(max(SPOOL_BLOCK, need))
            if not block:
                if pos != len(data):
                    raise RuntimeError("the add-many spool file ends inside a record")
                return
            data = data[pos:] + block
            pos = 0


PROGRESS_ROWS = 1000  # rows between two calls of spool_rows' ``progress``


def spool_rows(
    fp: IO[bytes], format: str, layout: CsvLayout | None = None, progress: Callable[[int], None] | None = None
) -> ItemSpool:
    """Every row of ``fp`` checked and encoded into a new ``ItemSpool``;
    ``InputError`` at the first bad row (the spool is then closed).
    ``progress(rows)`` is called every ``PROGRESS_ROWS`` rows and at the end."""
    from psctl.encoding import encode_value  # the library's own encoding

    spool = ItemSpool()
    try:
        add = spool.add
        rows = rows_from_file(fp, format, layout)
        if progress is not None:
            rows = _reported(rows, progress)
        for row in rows:
            value = row.value
            add(row.key, value if type(value) is bytes else encode_value(value), row.score, row.not_before)  # type: ignore[arg-type]
    except BaseException:
        spool.close()
        raise
    return spool


def spool_input(
    source: Input, format: str, layout: CsvLayout | None = None, progress: Callable[[int], None] | None = None
) -> ItemSpool:
    """``spool_rows`` of an input ``open_input`` opened: its ``InputError``
    names the input too (``jobs.csv: line 3: ...``)."""
    try:
        return spool_rows(source.fp, format, layout, progress)
    except InputError as bad:
        raise InputError(bad.line, bad.reason, source.label) from None


def _reported(rows: Iterator[Row], progress: Callable[[int], None]) -> Iterator[Row]:
    count = 0
    for count, row in enumerate(rows, 1):
        yield row
        if count % PROGRESS_ROWS == 0:
            progress(count)
    progress(count)


# -- reading -----------------------------------------------------------------


def rows_from_file(fp: IO[bytes], format: str, layout: CsvLayout | None = None) -> Iterator[Row]:
    """The rows of ``fp`` (binary) in ``format``; ``InputError`` at the first bad
    one. ``layout``: how a CSV input is laid out (by default, as its header says)."""
    if format == "csv":
        return _csv_rows(fp, layout or CsvLayout())
    if format == "json":
        return _json_array_rows(fp)
    if format == "ndjson":
        return _ndjson_rows(fp)
    raise InvalidArgument(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")


def _csv_rows(fp: IO[bytes], layout: CsvLayout) -> Iterator[Row]:
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    text = io.TextIOWrapper(fp, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        # the first line with something on it: the header, which tells the delimiter
        skipped = 0
        first = text.readline()
        while first and not first.strip():
            skipped, first = skipped + 1, text.readline()
        delimiter = layout.delimiter
        if delimiter is None:
            delimiter = (header_delimiter(first) if layout.columns is None else None) or ","
        reader = csv.reader(itertools.chain([first], text), delimiter=delimiter, strict=True)
        columns: list[str] | tuple[str, ...] | None = layout.columns
        if columns is not None:
            key_at, value_at, score_at, time_at = _places(columns)
        next_line = skipped + 1  # the line the next record starts on
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(skipped + reader.line_num, f"malformed CSV: {exc}") from None
            line, next_line = next_line, skipped + reader.line_num + 1
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if columns is None:
                columns = _csv_header(line, record, delimiter)
                key_at, value_at, score_at, time_at = _places(columns)
                continue
            if len(record) != len(columns):
                raise InputError(line, f"expected {len(columns)} fields ({','.join(columns)}), got {len(record)}")
            yield Row(
                line,
                _key(line, record[key_at]),
                _text_value(line, record[value_at]),
                _score(line, "" if score_at is None else record[score_at]),
                None if time_at is None else _not_before(line, record[time_at]),
            )
    finally:
        try:
            text.detach()  # leave ``fp`` open: it is read again
        except ValueError:  # closed already (Ctrl-C while reading closed the input first)
            pass


def _places(columns: list[str] | tuple[str, ...]) -> tuple[int, int, int | None, int | None]:
    """Where the key, the value, the score and not_before (None: not there) are in a record."""
    def place(name: str) -> int | None:
        return columns.index(name) if name in columns else None

    return columns.index("key"), columns.index("value"), place("score"), place("not_before")


def _csv_header(line: int, record: list[str], delimiter: str) -> list[str]:
    names = _header_names(record)
    if names is None:
        raise InputError(
            line,
            f"the CSV header must name the columns key,value and optionally score and not_before; got "
            f"{delimiter.join(record)!r}"
            " (no header? give --no-header or --columns)",
        )
    return names


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _ndjson_rows(fp: IO[bytes]) -> Iterator[Row]:
    decode = json.JSONDecoder().raw_decode
    space = _JSON_SPACE.match
    for number, raw in enumerate(fp, start=1):
        # without its line end, so that an error at the end of the line is in its last column
        text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        start = space(text).end()  # type: ignore[union-attr]
        body = text[start:] if start else text
        try:
            found, end = decode(body)
        except json.JSONDecodeError as exc:
            reason = "a byte order mark (BOM) inside the input" if body[0] == "\ufeff" else exc.msg
            raise InputError(number, f"invalid JSON: {reason} (column {start + exc.pos + 1})") from None
        except RecursionError:
            raise InputError(number, "invalid JSON: nested too deeply") from None
        except ValueError:  # Python's limit on the digits of an integer
            raise InputError(number, TOO_MANY_DIGITS) from None
        end = space(body, end).end()  # type: ignore[union-attr]
        if end != len(body):
            raise InputError(number, f"invalid JSON: Extra data (column {start + end + 1})")
        yield _json_row(number, found)


def _json_array_rows(fp: IO[bytes]) -> Iterator[Row]:
    for line, found in _JsonArray(fp):
        yield _json_row(line, found)


class _JsonArray:
    """The elements of a JSON array, one at a time, each with the line it starts on.

    A window of the file is decoded at a time; an element cut by the window's
    end is decoded again once more of the file is read (the window grows to
    hold it), so memory follows the largest element, not the file.
    """

    _SPACE = _JSON_SPACE
    # a parse error this close to the window's end may just mean "read more"
    _MARGIN = 64

    def __init__(self, fp: IO[bytes]) -> None:
        self._fp = fp
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._json = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._first = True
        # line numbers: line ``_line`` starts at or before ``_counted`` in ``_buf``
        self._line = 1
        self._counted = 0

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if not self._skip_space():
            return  # no input at all: no items
        if self._buf[self._pos] != "[":
            raise InputError(self._line_at(self._pos), "expected a JSON array of objects, starting with '['")
        self._pos += 1
        if not self._skip_space():
            raise InputError(self._line_at(self._pos), "the JSON array is not closed with ']'")
        if self._buf[self._pos] == "]":
            self._pos += 1
        else:
            while True:
                start = self._pos
                line = self._line_at(start)
                yield line, self._element()
                self._compact()
                if not self._skip_space():
                    raise InputError(self._line_at(self._pos), "the JSON array is not closed with ']'")
                char = self._buf[self._pos]
                self._pos += 1
                if char == "]":
                    break
                if char != ",":
                    raise InputError(self._line_at(self._pos - 1), f"expected ',' or ']' after an item, got {char!r}")
                if not self._skip_space():
                    raise InputError(self._line_at(self._pos), "the JSON array is not closed with ']'")
                if self._buf[self._pos] == "]":
                    raise InputError(self._line_at(self._pos), "a ',' with no item after it")
        if self._skip_space():
            raise InputError(self._line_at(self._pos), "unexpected data after the JSON array")

    def _element(self) -> Any:
        while True:
            try:
                found, self._pos = self._json.raw_decode(self._buf, self._pos)
                return found
            except json.JSONDecodeError as exc:
                cut = exc.pos >= len(self._buf) - self._MARGIN or exc.msg.startswith("Unterminated string")
                if cut and self._fill(len(self._buf) - self._pos):
                    continue
                raise InputError(self._line_at(exc.pos), f"invalid JSON: {exc.msg}") from None
            except RecursionError:
                raise InputError(self._line_at(self._pos), "invalid JSON: nested too deeply") from None
            except ValueError:  # Python's limit on the digits of an integer
                raise InputError(self._line_at(self._pos), TOO_MANY_DIGITS) from None

    def _skip_space(self) -> bool:
        """Moves past white space; False at the end of the input."""
        while True:
            self._pos = self._SPACE.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                return True
            if not self._fill(0):
                return False

    def _fill(self, pending: int) -> bool:
        """Reads more of the file (at least as much as is pending); False at its end."""
        if self._eof:
            return False
        chunk = self._fp.read(max(READ_SIZE, pending))
        if not chunk:
            self._eof = True
            tail = self._decoder.decode(b"", final=True)
            self._buf += tail
            return bool(tail)
        text = self._decoder.decode(chunk)
        if self._first:
            text = text.removeprefix("\ufeff")
            self._first = False
        self._buf += text
        return True

    def _line_at(self, pos: int) -> int:
        self._line += self._buf.count("\n", self._counted, pos)
        self._counted = pos
        return self._line

    def _compact(self) -> None:
        """Forgets what has been read, once there is enough of it to be worth copying."""
        if self._pos > READ_SIZE:
            self._line_at(self._pos)
            self._buf = self._buf[self._pos :]
            self._counted -= self._pos
            self._pos = 0


# -- fields ------------------------------------------------------------------

_HUGE = 1e308  # a score whose magnitude is below this converts to a finite float

_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), "a number")


def _json_row(line: int, found: Any) -> Row:
    # the usual item, {"key": text, "value": text, "score": number}, taken at once;
    # any other passes the checks below, which give the same result or name the fault
    if type(found) is dict and len(found) == 3:
        key, value, score = found.get("key"), found.get("value"), found.get("score")
        if (
            type(key) is str
            and key
            and type(value) is str
            and (type(score) is float and score - score == 0.0 or type(score) is int and -_HUGE < score < _HUGE)
        ):
            try:
                key_bytes, value_bytes = key.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape")
                return Row(line, key_bytes, value_bytes, float(score))
            except UnicodeEncodeError:  # a lone surrogate
                pass
    if not isinstance(found, dict):
        raise InputError(line, f"expected an object with key, value and score, got {_kind(found)}")
    if not found.keys() <= JSON_FIELDS:
        unknown = sorted(set(found) - JSON_FIELDS)[0]
        raise InputError(
            line,
            f"unknown field {unknown!r} (the fields are key or key_base64, value or value_base64, score and "
            "not_before)",
        )
    if "key" in found and "key_base64" in found:
        raise InputError(line, "give either key or key_base64, not both")
    if "key" in found:
        key = found["key"]
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str):
            raise InputError(line, f"key must be a string, got {_kind(key)}")
        key_bytes = _key(line, key)
    elif "key_base64" in found:
        key_bytes = _base64_field(line, "key_base64", found["key_base64"])
        if not key_bytes:
            raise InputError(line, "key is empty")
    else:
        raise InputError(line, "missing field 'key'")
    if "value" in found and "value_base64" in found:
        raise InputError(line, "give either value or value_base64, not both")
    if "value" in found:
        value = _json_value(line, found["value"])
    elif "value_base64" in found:
        value = _base64_field(line, "value_base64", found["value_base64"])
    else:
        raise InputError(line, "missing field 'value'")
    score = found.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float, str, type(None))):
        raise InputError(line, f"score must be a number, got {_kind(score)}")
    return Row(line, key_bytes, value, _score(line, score), _not_before(line, found.get("not_before")))


def _not_before(line: int, when: Any) -> float | None:
    """When a delayed item starts waiting, as unix seconds: ISO 8601 (UTC
    unless it says) or unix seconds, as a number or text; None for null, an
    empty CSV cell, or no field."""
    from psctl.durations import parse_time

    if when is None or isinstance(when, str) and not when.strip():
        return None
    if isinstance(when, bool) or not isinstance(when, (int, float, str)):
        raise InputError(line, f"not_before must be a time (ISO 8601 or Unix seconds), got {_kind(when)}")
    try:
        return parse_time(str(when)).timestamp()
    except ValueError:
        raise InputError(
            line, f"not_before {_shown(when)} is not a time: use ISO 8601 (2026-12-24T03:00Z) or Unix seconds"
        ) from None


def _moment(seconds: float) -> Any:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc)


def _key(line: int, key: str) -> bytes:
    if not key:
        raise InputError(line, "key is empty")
    try:
        return key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InputError(line, "key is not valid Unicode (a lone surrogate)") from None


def _text_value(line: int, value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InputError(line, "value is not valid Unicode (a lone surrogate)") from None


def _json_value(line: int, value: Any) -> bytes | int | float:
    if isinstance(value, str):
        return _text_value(line, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(line, f"value must be a string or a finite number, got {value!r}")
        return value
    raise InputError(line, f"value must be a string or a number, got {_kind(value)} (encode it as text first)")


def _base64_field(line: int, field: str, text: Any) -> bytes:
    """The bytes of ``key_base64`` or ``value_base64``: standard base64, padded."""
    if not isinstance(text, str):
        raise InputError(line, f"{field} must be a string, got {_kind(text)}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(line, f"{field} is not valid base64") from None


def _score(line: int, score: Any) -> float:
    """A finite number; missing, null or an empty CSV cell is 1."""
    if score is None or (isinstance(score, str) and not score.strip()):
        return 1.0
    if isinstance(score, str):
        try:
            number = float(score.strip().replace("_", "!"))  # float() would accept 1_000
        except ValueError:
            raise InputError(line, f"score {_shown(score)} is not a number") from None
    else:
        try:
            number = float(score)
        except OverflowError:
            raise InputError(line, "score is too large") from None
    if not math.isfinite(number):
        raise InputError(line, f"score must be a finite number, got {_shown(score)}")
    return number


def _shown(text: Any, limit: int = 40) -> str:
    shown = repr(text) if isinstance(text, str) else str(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


@dataclass
class Input:
    """An input opened by ``open_input``: ``fp`` reads it from its start (its
    ``head`` included), once; ``label`` names it in messages; ``size`` is its
    size in bytes when known (a regular file), for a progress bar."""

    fp: IO[bytes]
    head: bytes
    label: str
    size: int | None
    _peeked: _Peeked

    @property
    def consumed(self) -> int:
        """Bytes read so far (a buffer's worth ahead of the rows read)."""
        return self._peeked.consumed

    def __enter__(self) -> Input:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fp.close()


def open_input(path: str | None) -> Input:
    """The input to read: a path, or standard input for ``-`` or no path."""
    if path is None or path == "-":
        source, label = sys.stdin.buffer, "standard input"
    else:
        try:
            source, label = open(path, "rb", buffering=0), path
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        size = _size(source)
        head = _head(source)
    except OSError as exc:
        source.close()
        raise InvalidArgument(f"cannot read {label}: {exc.strerror or exc}") from None
    peeked = _Peeked(head, source)
    return Input(io.BufferedReader(peeked, READ_SIZE), head, label, size, peeked)


def _size(source: IO[bytes]) -> int | None:
    """The bytes left to read in ``source``, when it is a regular file."""
    try:
        fd = source.fileno()
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            return None
        return max(found.st_size - os.lseek(fd, 0, os.SEEK_CUR), 0)
    except (OSError, ValueError, io.UnsupportedOperation):  # no file descriptor (a test's stdin)
        return None
