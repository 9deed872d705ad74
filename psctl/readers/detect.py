"""What an input is: its format (from its name or its first bytes), a CSV's
layout and delimiter, and ``open_input``, which reads its head once and
hands the whole of it back from its start."""

from __future__ import annotations

import csv
import io
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from psctl.errors import InvalidArgument
from psctl.readers.fields import FIELDS

FORMATS = ("csv", "json", "ndjson")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
NO_HEADER = (
    "key",
    "value",
    "score",
)  # the columns of a CSV without a header, unless --columns says

# the CSV delimiters told from a header, in the order tried
DELIMITERS = (",", "\t", ";", "|")
DELIMITER_NAMES = {"\\t": "\t", "tab": "\t"}

READ_SIZE = 1 << 16  # bytes read at a time from the file
SNIFF_SIZE = 1 << 16  # bytes looked at, at most, to tell an input's format


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
    if header_names(names) is None:
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
        if header_names(record) is not None:
            return delimiter
    return None


def header_names(record: list[str] | tuple[str, ...]) -> list[str] | None:
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
    except (
        OSError,
        ValueError,
        io.UnsupportedOperation,
    ):  # no file descriptor (a test's stdin)
        return None
