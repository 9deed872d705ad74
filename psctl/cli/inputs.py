"""Items for ``add-many``: CSV, a JSON array or NDJSON, read as a stream.

``rows_from_file(fp, format)`` yields one ``Row`` per item from a binary file
and raises ``InputError`` naming the line (physical lines, counted from 1; a
CSV header is line 1) at the first thing wrong. It holds one item at a time.

``add-many`` reads its input once: ``spool_rows`` checks every row and writes
it, already encoded as the library sends it, to an ``ItemSpool`` (a temporary
file of length-prefixed records), so that the whole input is checked before
anything is written; the spool is then read back as one stream of items for
one ``psaddmany`` call. Memory stays constant whatever the size of the input.
The input is read once, from its start: to tell its format, the first line is
peeked at and then read again from memory (``open_input``), so that standard
input, a pipe or ``<(cmd)`` work as well as a file.

Every format carries the same fields: ``key`` (required, not empty), ``value``
(required: text, or a number in JSON), and ``score`` (optional, default 1; a
finite number). JSON items may give ``value_base64`` instead of ``value``, so
that the output of ``psctl values`` and ``psctl pull`` can be fed back in.
Text that is not UTF-8 passes through byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import io
import json
import json.scanner
import math
import re
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from psctl.cli.status import BadUsage

FORMATS = ("csv", "json", "ndjson")
EXTENSIONS = {".csv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}
FIELDS = ("key", "value", "score")
JSON_FIELDS = frozenset({"key", "value", "value_base64", "score"})

READ_SIZE = 1 << 16  # bytes read at a time from the file
SNIFF_SIZE = 1 << 16  # bytes looked at, at most, to tell an input's format
# CSV's default limit of 128 KiB per field would refuse large values
CSV_FIELD_LIMIT = (1 << 31) - 1
TOO_MANY_DIGITS = f"invalid JSON: a number with more than {sys.get_int_max_str_digits()} digits"


class InputError(ValueError):
    """Bad input, at a line of the file."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


@dataclass(slots=True)
class Row:
    line: int
    key: bytes
    value: bytes | int | float
    score: float

    def item(self) -> tuple[bytes, bytes | int | float, float]:
        """The ``(key, value, score)`` that ``psaddmany`` takes."""
        return self.key, self.value, self.score


# -- choosing the format -----------------------------------------------------


def format_from_name(path: str | Path) -> str | None:
    return EXTENSIONS.get(Path(path).suffix.lower())


def sniff(head: bytes) -> str | None:
    """The format of an input starting with ``head``, when that makes it
    unambiguous: a JSON array starts with ``[``, NDJSON with ``{``, CSV with a
    header naming ``key`` and ``value``. An empty input reads as no items in
    any format."""
    text = head.decode("utf-8", "surrogateescape").lstrip("\ufeff \t\r\n")
    if not text:
        return "ndjson"
    if text[0] == "[":
        return "json"
    if text[0] == "{":
        return "ndjson"
    first_line = text.splitlines()[0]
    try:
        header = next(csv.reader([first_line]))
    except (csv.Error, StopIteration):
        return None
    if {"key", "value"} <= {name.strip() for name in header}:
        return "csv"
    return None


class _Peeked(io.RawIOBase):
    """An input read once from its start: the ``head`` already read (to tell
    its format), then the rest of ``source``. Nothing is seeked, so a pipe works."""

    def __init__(self, head: bytes, source: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        chunk = self._source.read(len(buffer))
        buffer[: len(chunk)] = chunk
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

# one record per item: key length, value length, score (a double), then the key
# and value bytes; nothing but bytes and numbers is ever read back (no pickle)
_RECORD = struct.Struct("<IId")
SPOOL_BLOCK = 1 << 20  # bytes written or read at a time


class ItemSpool:
    """Checked items as ``(key, value, score)``, ``bytes``, ``bytes`` and a finite
    ``float`` (what ``psaddmany`` sends without converting anything), in a
    temporary file that is gone once the spool is closed."""

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

    def add(self, key: bytes, value: bytes, score: float) -> None:
        pending = self._pending
        pending += _RECORD.pack(len(key), len(value), score)
        pending += key
        pending += value
        self.count += 1
        if len(pending) >= SPOOL_BLOCK:
            self._file.write(pending)
            pending.clear()

    def items(self) -> Iterator[tuple[bytes, bytes, float]]:
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
                key_size, value_size, score = unpack(data, pos)
                start = pos + head
                middle = start + key_size
                end = middle + value_size
                if end > len(data):
                    need = end - pos
                    break
                yield data[start:middle], data[middle:end], score
                pos = end
            block = read(max(SPOOL_BLOCK, need))
            if not block:
                if pos != len(data):
                    raise RuntimeError("the add-many spool file ends inside a record")
                return
            data = data[pos:] + block
            pos = 0


def spool_rows(fp: IO[bytes], format: str) -> ItemSpool:
    """Every row of ``fp`` checked and encoded into a new ``ItemSpool``;
    ``InputError`` at the first bad row (the spool is then closed)."""
    from psctl.encoding import encode_value  # the library's own encoding

    spool = ItemSpool()
    try:
        add = spool.add
        for row in rows_from_file(fp, format):
            value = row.value
            add(row.key, value if type(value) is bytes else encode_value(value), row.score)  # type: ignore[arg-type]
    except BaseException:
        spool.close()
        raise
    return spool


# -- reading -----------------------------------------------------------------


def rows_from_file(fp: IO[bytes], format: str) -> Iterator[Row]:
    """The rows of ``fp`` (binary) in ``format``; ``InputError`` at the first bad one."""
    if format == "csv":
        return _csv_rows(fp)
    if format == "json":
        return _json_array_rows(fp)
    if format == "ndjson":
        return _ndjson_rows(fp)
    raise ValueError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")


def _csv_rows(fp: IO[bytes]) -> Iterator[Row]:
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    text = io.TextIOWrapper(fp, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.reader(text, strict=True)
        header: list[str] | None = None
        next_line = 1  # the line the next record starts on
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(reader.line_num, f"malformed CSV: {exc}") from None
            line, next_line = next_line, reader.line_num + 1
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if header is None:
                header = _csv_header(line, record)
                continue
            if len(record) != len(header):
                raise InputError(
                    line, f"expected {len(header)} fields ({','.join(header)}), got {len(record)}"
                )
            fields = dict(zip(header, record))
            yield Row(
                line,
                _key(line, fields["key"]),
                _text_value(line, fields["value"]),
                _score(line, fields.get("score", "")),
            )
    finally:
        text.detach()  # leave ``fp`` open: it is read again


def _csv_header(line: int, record: list[str]) -> list[str]:
    names = [name.strip() for name in record]
    unknown = [name for name in names if name not in FIELDS]
    if unknown or len(set(names)) != len(names) or not {"key", "value"} <= set(names):
        raise InputError(
            line, f"the CSV header must name the columns key,value and optionally score; got {','.join(record)!r}"
        )
    return names


def _ndjson_rows(fp: IO[bytes]) -> Iterator[Row]:
    # json.loads less its per-call Python layers: the scanner it runs, on a line
    # that holds one value; anything else goes through json.loads itself
    scan = json.scanner.make_scanner(json.JSONDecoder())
    for number, raw in enumerate(fp, start=1):
        text = raw.decode("utf-8", "surrogateescape")
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            found, end = scan(text, 0)
            if end != len(text) and text[end:].strip(" \t\n\r"):
                raise ValueError("extra data")
        except (StopIteration, ValueError, RecursionError):  # leading space, or not valid JSON
            found = _json_line(number, text)
        yield _json_row(number, found)


def _json_line(number: int, text: str) -> Any:
    """``json.loads(text)``, or ``InputError`` saying why not."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(number, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise InputError(number, "invalid JSON: nested too deeply") from None
    except ValueError:  # Python's limit on the digits of an integer
        raise InputError(number, TOO_MANY_DIGITS) from None


def _json_array_rows(fp: IO[bytes]) -> Iterator[Row]:
    for line, found in _JsonArray(fp):
        yield _json_row(line, found)


class _JsonArray:
    """The elements of a JSON array, one at a time, each with the line it starts on.

    A window of the file is decoded at a time; an element cut by the window's
    end is decoded again once more of the file is read (the window grows to
    hold it), so memory follows the largest element, not the file.
    """

    _SPACE = re.compile(r"[ \t\n\r]*")
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
        raise InputError(line, f"unknown field {unknown!r} (the fields are key, value and score)")
    if "key" not in found:
        raise InputError(line, "missing field 'key'")
    key = found["key"]
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if not isinstance(key, str):
        raise InputError(line, f"key must be a string, got {_kind(key)}")
    if "value" in found and "value_base64" in found:
        raise InputError(line, "give either value or value_base64, not both")
    if "value" in found:
        value = _json_value(line, found["value"])
    elif "value_base64" in found:
        value = _base64_value(line, found["value_base64"])
    else:
        raise InputError(line, "missing field 'value'")
    score = found.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float, str, type(None))):
        raise InputError(line, f"score must be a number, got {_kind(score)}")
    return Row(line, _key(line, key), value, _score(line, score))


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


def _base64_value(line: int, value: Any) -> bytes:
    if not isinstance(value, str):
        raise InputError(line, f"value_base64 must be a string, got {_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(line, "value_base64 is not valid base64") from None


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


def open_input(path: str | None) -> tuple[IO[bytes], bytes, str]:
    """The binary input to read (a path, or standard input for ``-`` or no
    path), its first bytes (for ``sniff``; they are read again from the
    input), and its name for messages."""
    if path is None or path == "-":
        source, label = sys.stdin.buffer, "standard input"
    else:
        try:
            source, label = open(path, "rb", buffering=0), path
        except OSError as exc:
            raise BadUsage(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        head = _head(source)
    except OSError as exc:
        source.close()
        raise BadUsage(f"cannot read {label}: {exc.strerror or exc}") from None
    return io.BufferedReader(_Peeked(head, source), READ_SIZE), head, label
