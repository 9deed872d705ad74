"""The output formats, in one registry: ``RENDERERS`` maps each name of
``-o/--output`` to its ``Renderer``. A new format is a class here and a line
in the registry; the option's choices, its help and the messages follow.

Each renderer shows a command's result (``show``) and, when it can, streams a
listing of any size (``streamed``: bytes a piece at a time, in bounded
memory). Text from the store is shown literally: what a terminal acts on is
escaped in JSON as in tables, bytes that are not UTF-8 travel as
``value_base64`` (or ``key_base64``) and are bytes again in CSV and raw.
``json`` is imported only to print JSON, ``base64`` only for such bytes,
Rich only to draw a table (``tables.py``).
"""

from __future__ import annotations

import enum
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable

from psctl.cli import terminal
from psctl.cli.fields import BASE64 as _BASE64, number
from psctl.cli.status import BadUsage


class _NoRaw:
    """``Output.show``'s default ``raw``: the command has no bare form."""


NO_RAW = _NoRaw()
NO_ITEMS = "(no items)"  # what a table says of an empty result (JSON: [])


class Shown:
    """What a command hands ``Output.show``: ``data`` (the JSON shape), and
    what other formats show instead when it differs (see ``Output.show``).
    (A plain class, not a dataclass: one fewer class generated at every start.)"""

    __slots__ = ("data", "table", "caption", "column", "vertical", "raw", "csv", "empty")

    def __init__(self, data: Any, table: Any = None, caption: str | None = None, column: str = "name",
                 vertical: bool = False, raw: Any = NO_RAW, csv: Any = None, empty: str = NO_ITEMS) -> None:  # fmt: skip
        self.data, self.table, self.caption, self.column = data, table, caption, column
        self.vertical, self.raw, self.csv, self.empty = vertical, raw, csv, empty


class Renderer:
    """One output format."""

    name = ""
    for_a_person = False  # what a terminal gets unless told otherwise (a table)

    def show(self, shown: Shown) -> None:
        raise NotImplementedError

    def streamed(self, rows: Iterable[dict[str, Any]], raw: Callable[[dict[str, Any]], Any] | None) -> Iterator[bytes]:
        """The bytes of a listing, a piece at a time (none before the first row is read)."""
        raise ValueError(f"{self.name} is not streamed")


class Table(Renderer):
    """A Rich table: a list of objects a column per field, a list of strings one
    column named ``column``, one object a one-row table (a field/value table
    when ``vertical``); an empty result says so in words, dim: ``caption``, else
    ``empty`` (``(no items)``), never ``[]``."""

    name = "table"
    for_a_person = True

    def show(self, shown: Shown) -> None:
        view = shown.data if shown.table is None else shown.table
        if view is None or (isinstance(view, (list, tuple, dict)) and not view):
            from psctl.cli.tables import print_note

            print_note(shown.caption if shown.caption is not None else shown.empty)
            return
        from psctl.cli.tables import print_table

        print_table(view, caption=shown.caption, column=shown.column, vertical=shown.vertical)


class Json(Renderer):
    """One JSON document; a listing streams as one array."""

    name = "json"

    def show(self, shown: Shown) -> None:
        write_text(json_text(shown.data) + "\n")

    def streamed(self, rows: Iterable[dict[str, Any]], raw: Any) -> Iterator[bytes]:
        yield b"["
        for count, row in enumerate(rows):
            yield ((", " if count else "") + json_text(row)).encode("utf-8", "surrogateescape")
        yield b"]\n"


class Ndjson(Renderer):
    """A JSON object per line: each element of a list, or the one object."""

    name = "ndjson"

    def show(self, shown: Shown) -> None:
        rows = shown.data if isinstance(shown.data, list) else [shown.data]
        write_text("".join(json_text(row) + "\n" for row in rows))

    def streamed(self, rows: Iterable[dict[str, Any]], raw: Any) -> Iterator[bytes]:
        for row in rows:
            yield (json_text(row) + "\n").encode("utf-8", "surrogateescape")


class Csv(Renderer):
    """The rows of ``csv`` (else of ``table``, else ``data``) under a header;
    a listing's header is its first row's fields."""

    name = "csv"

    def show(self, shown: Shown) -> None:
        rows = shown.csv if shown.csv is not None else (shown.table if shown.table is not None else shown.data)
        write_text(csv_text(rows if isinstance(rows, list) else [rows], shown.column))

    def streamed(self, rows: Iterable[dict[str, Any]], raw: Any) -> Iterator[bytes]:
        header: list[str] | None = None
        for row in rows:
            flat = _flat(row)
            if header is None:
                header = list(flat)
                yield _csv_line(header).encode("utf-8", "surrogateescape")
            yield _csv_line([_csv_cell(flat.get(name)) for name in header]).encode("utf-8", "surrogateescape")


class Raw(Renderer):
    """Bare values (``raw``): bytes as they are, text and numbers on a line, a
    list one element per line; a listing ``raw(row)`` of each row."""

    name = "raw"

    def show(self, shown: Shown) -> None:
        if shown.raw is NO_RAW:
            raise BadUsage(f"this command has no raw output: {instead_of_raw()}")
        write_raw(shown.raw)

    def streamed(self, rows: Iterable[dict[str, Any]], raw: Callable[[dict[str, Any]], Any] | None) -> Iterator[bytes]:
        if raw is None:
            raise BadUsage(f"this command has no raw output: {instead_of_raw()}")
        for row in rows:
            yield _raw_bytes(raw(row))


RENDERERS: dict[str, type[Renderer]] = {cls.name: cls for cls in (Table, Json, Ndjson, Csv, Raw)}
FORMATS = tuple(RENDERERS)
# the choice Typer lists and completes
Format = enum.Enum("Format", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]
FORMAT_HELP = (
    f"Output format: {', '.join(FORMATS[:-1])} or {FORMATS[-1]} (default: a table on a terminal, else JSON)."
)


def instead_of_raw() -> str:
    """What a command without a raw form offers: ``use -o json, ndjson, csv or table``."""
    programs = [name for name, cls in RENDERERS.items() if not cls.for_a_person and cls is not Raw]
    people = [name for name, cls in RENDERERS.items() if cls.for_a_person]
    return f"use -o {', '.join(programs)} or {' or '.join(people)}"


# -- JSON ----------------------------------------------------------------------


def json_text(data: Any) -> str:
    try:
        return _dumps(data, allow_nan=False)
    except ValueError:  # an infinite score, written by another tool: strict JSON has no Infinity
        return _with_infinities(data)


def _dumps(data: Any, **options: Any) -> str:
    import json

    text = json.dumps(data, ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a name holding undecodable bytes: escape, stay valid JSON
        return json.dumps(data, **options)
    # json escapes only C0 controls: DEL, C1 and bidi controls would reach a terminal
    # as they are (the same string to any JSON reader either way)
    if text.isascii() and "\x7f" not in text:
        return text
    return re.sub(_JSON_UNSAFE, _json_escape, text)


_JSON_UNSAFE = f"[{terminal.ACTS_ON}]"


def _json_escape(found: re.Match[str]) -> str:
    return f"\\u{ord(found[0]):04x}"


def _with_infinities(data: Any) -> str:
    """JSON with each infinite number written ``1e999`` (or ``-1e999``): valid
    JSON that parsers read as the largest number they have (Python's as
    infinity), where ``Infinity`` is not JSON at all. NaN, which no score can
    be, is ``null``."""
    import math
    import secrets

    marker = f"psctl-{secrets.token_hex(16)}"  # a string no data holds

    def swap(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None if math.isnan(value) else f"{marker}{'+' if value > 0 else '-'}"
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [swap(item) for item in value]
        return value

    text = _dumps(swap(data))
    return text.replace(f'"{marker}+"', "1e999").replace(f'"{marker}-"', "-1e999")


# -- CSV and raw -------------------------------------------------------------


def _flat(row: Any, prefix: str = "") -> dict[str, Any]:
    """An object's fields, nested objects' as ``outer.inner``. A CSV cell holds
    bytes as they are: ``value_base64`` is the ``value`` column, decoded (so
    that every row of a listing has the same columns, whatever its bytes)."""
    if not isinstance(row, Mapping):
        return {prefix or "value": row}
    flat: dict[str, Any] = {}
    for field, value in row.items():
        if field.endswith(_BASE64) and isinstance(value, str):
            import base64

            field, value = field.removesuffix(_BASE64), base64.b64decode(value).decode("utf-8", "surrogateescape")
        name = f"{prefix}.{field}" if prefix else field
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, name))
        else:
            flat[name] = value
    return flat


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, Mapping)):
        return json_text(value)
    if isinstance(value, float):  # 5 rather than 5.0; 1e999 for an infinite score, as in JSON
        return number(value) if math.isfinite(value) else json_text(value)
    return str(value)


def _csv_line(cells: list[str]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def csv_text(rows: list[Any], column: str = "name") -> str:
    """Rows (objects, or scalars in one column named ``column``) as CSV with a header."""
    if not rows:
        return ""
    flats = [_flat(row, "" if isinstance(row, Mapping) else column) for row in rows]
    header: dict[str, None] = {}
    for flat in flats:
        header.update(dict.fromkeys(flat))
    names = list(header)
    return _csv_line(names) + "".join(_csv_line([_csv_cell(flat.get(name)) for name in names]) for flat in flats)


def write_raw(value: Any) -> None:
    """Bytes as they are; text and numbers, then a newline; a list, each of its
    elements the same way, bytes then followed by a newline too."""
    if isinstance(value, (bytes, bytearray)):
        write_bytes(bytes(value))
    elif isinstance(value, list):
        write_bytes(b"".join(_raw_bytes(element) for element in value))
    elif value is not None:
        write_text(_raw_text(value) + "\n")


def _raw_bytes(value: Any) -> bytes:
    """One element of a raw list: bytes as they are, text or a number, then a newline."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) + b"\n"
    return (_raw_text(value) + "\n").encode("utf-8", "surrogateescape")


def _raw_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number(value) if value == value and abs(value) != float("inf") else json_text(value)
    return str(value)


# -- the sink: stdout ---------------------------------------------------------


def write_text(text: str) -> None:
    """UTF-8 on stdout whatever the locale says: JSON is UTF-8 (RFC 8259)."""
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
        stream.flush()
        return
    write_bytes(text.encode("utf-8", "surrogateescape"))


def write_bytes(data: bytes) -> None:
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # (a test's stdout of text only)
        stream.write(data.decode("utf-8", "surrogateescape"))
        stream.flush()
        return
    stream.flush()
    view = memoryview(data)
    while view:  # a signal handled mid-write (Ctrl-C while a pull prints) leaves a partial write
        view = view[buffer.write(view) :]
    buffer.flush()
