"""The one renderer: a Rich table for a person, JSON for a program.

Commands hand ``Output.show`` plain data, already in the JSON shape the README
documents; the choice between table and JSON is made once per command, from
``--json`` / ``--table`` or else from whether stdout is a terminal. Text from
the store is shown literally: cells are Rich ``Text`` (never markup), what a
terminal acts on is escaped in tables (``terminal.visible``) and JSON alike,
scores read to six digits in tables (every digit elsewhere), and bytes that are not UTF-8 travel as
``value_base64`` (or ``key_base64``). Rich is imported only to draw a table,
``json`` only to print JSON, ``base64`` only for bytes that are not UTF-8.
"""

from __future__ import annotations

import enum
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psctl.cli import terminal
from psctl.cli.status import BadUsage
from psctl.cli.terminal import visible

# Rows that ``keys`` and ``values`` show on a terminal unless --limit says otherwise.
TERMINAL_ROWS = 20

_BASE64 = "_base64"


def text_field(name: str, raw: bytes | str) -> dict[str, str]:
    """``{name: text}``, or ``{name_base64: ...}`` when ``raw`` is not UTF-8.

    A ``str`` may carry undecodable bytes as surrogate escapes (how the
    library returns item keys); those count as not UTF-8 too.
    """
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
            return {name: raw}
        except UnicodeEncodeError:
            raw = raw.encode("utf-8", "surrogateescape")
    try:
        return {name: raw.decode("utf-8")}
    except UnicodeDecodeError:
        import base64

        return {name + _BASE64: base64.b64encode(raw).decode("ascii")}


def iso(moment: Any) -> str | None:
    """A time as the JSON outputs print it: ISO 8601, UTC, with a Z."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def item(key: str, value: bytes | str) -> dict[str, str]:
    """An item as ``pull``, ``values`` and ``get`` print it."""
    return text_field("key", key) | text_field("value", value)


def scored(key: str, score: float) -> dict[str, Any]:
    """An item key and its score, as ``keys`` prints it."""
    return text_field("key", key) | {"score": score}


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


FORMATS = ("table", "json", "ndjson", "csv", "raw")


class Format(str, enum.Enum):
    """The output formats, as a choice Typer lists and completes."""

    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    raw = "raw"


class _NoRaw:
    """``Output.show``'s default ``raw``: the command has no bare form."""


NO_RAW = _NoRaw()


class Output:
    """Where a command's result goes, and in which ``format``: a Rich table for
    a person; JSON (one document), NDJSON (an object per line), CSV or raw
    (bare values, a value's bytes as they are) for programs. ``quiet``:
    nothing at all (a command that succeeds prints nothing)."""

    def __init__(self, format: str = "json", quiet: bool = False) -> None:
        self.format, self.quiet = format, quiet

    @property
    def table(self) -> bool:
        return self.format == "table"

    @classmethod
    def choose(cls, as_json: bool = False, as_table: bool = False, output: str | None = None,
               quiet: bool = False) -> Output:  # fmt: skip
        chosen = {name for name, on in (("json", as_json), ("table", as_table)) if on}
        if output is not None:
            output = getattr(output, "value", output)
            if output not in FORMATS:
                raise BadUsage(f"-o {output!r}: choose one of {', '.join(FORMATS)}")
            chosen.add(output)
        if len(chosen) > 1:
            raise BadUsage(f"--json, --table and -o ask for different outputs ({', '.join(sorted(chosen))}): give one")
        format = chosen.pop() if chosen else ("table" if terminal.stdout_is_terminal() else "json")
        return cls(format, quiet)

    def show(
        self,
        data: Any,
        *,
        table: Any = None,
        caption: str | None = None,
        column: str = "name",
        vertical: bool = False,
        raw: Any = NO_RAW,
        csv: Any = None,
    ) -> None:
        """Prints ``data`` in the chosen format. A table shows ``table``
        (``data`` when None): a list of objects is a table with a column per
        field; a list of strings one column named ``column``; one object a
        one-row table (a field/value table when ``vertical``); an empty result
        prints ``[]`` or ``caption``. NDJSON writes each element of a list (or
        the object) on a line; CSV the rows of ``csv`` (else of ``table``, else
        ``data``) under a header; raw writes ``raw``: bytes as they are, text
        and numbers on a line, a list one element per line."""
        if self.quiet:
            return
        if self.format == "json":
            _write(json_text(data) + "\n")
        elif self.format == "ndjson":
            rows = data if isinstance(data, list) else [data]
            _write("".join(json_text(row) + "\n" for row in rows))
        elif self.format == "csv":
            rows = csv if csv is not None else (table if table is not None else data)
            _write(csv_text(rows if isinstance(rows, list) else [rows], column))
        elif self.format == "raw":
            if raw is NO_RAW:
                raise BadUsage("this command has no raw output: use -o json, ndjson, csv or table")
            write_raw(raw)
        else:
            view = data if table is None else table
            if view is None or (isinstance(view, (list, tuple, dict)) and not view):
                _write((visible(caption) if caption is not None else "[]") + "\n")
                return
            _print_table(view, caption=caption, column=column, vertical=vertical)

    def stream(self, rows: Iterable[dict[str, Any]], *, raw: Any = None) -> int:
        """Writes ``rows`` as they come (bounded memory whatever their number),
        for the formats that stream: JSON (an array), NDJSON, CSV (the first
        row's fields as header) and raw (``raw(row)`` of each). Output is
        written about 64 KiB at a time, and at the end. Returns how many rows."""
        if self.quiet:
            return sum(1 for _ in rows)
        if self.format == "raw" and raw is None:
            raise BadUsage("this command has no raw output: use -o json, ndjson, csv or table")
        if self.format == "table":
            raise ValueError("a table is not streamed")
        pending: list[bytes] = []
        size = count = 0
        header: list[str] | None = None
        if self.format == "json":
            pending.append(b"[")
        for row in rows:
            if self.format == "json":
                piece = ((", " if count else "") + json_text(row)).encode("utf-8", "surrogateescape")
            elif self.format == "ndjson":
                piece = (json_text(row) + "\n").encode("utf-8", "surrogateescape")
            elif self.format == "csv":
                flat = _flat(row)
                if header is None:
                    header = list(flat)
                    pending.append(_csv_line(header).encode("utf-8", "surrogateescape"))
                piece = _csv_line([_csv_cell(flat.get(name)) for name in header]).encode("utf-8", "surrogateescape")
            else:
                piece = _raw_bytes(raw(row))
            pending.append(piece)
            size += len(piece)
            count += 1
            if size >= STREAM_BUFFER:
                _write_bytes(b"".join(pending))
                pending.clear()
                size = 0
        if self.format == "json":
            pending.append(b"]\n")
        if pending:
            _write_bytes(b"".join(pending))
        return count


# bytes a streamed listing gathers before it writes them
STREAM_BUFFER = 1 << 16


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
        _write_bytes(bytes(value))
    elif isinstance(value, list):
        _write_bytes(b"".join(_raw_bytes(element) for element in value))
    elif value is not None:
        _write(_raw_text(value) + "\n")


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


# -- tables ------------------------------------------------------------------


def _print_table(view: Any, *, caption: str | None, column: str, vertical: bool) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    if isinstance(view, Mapping) and vertical:
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for field, value in view.items():
            table.add_row(Text(field), _cell(field, value))
    else:
        rows = [view] if isinstance(view, Mapping) else list(view)
        if rows and all(isinstance(row, Mapping) for row in rows):
            columns = _columns(rows)
            for name in columns:
                table.add_column(name, justify="right" if _numeric(rows, name) else "left", overflow="fold")
            for row in rows:
                table.add_row(*(_row_cell(row, name) for name in columns))
        else:
            table.add_column(column, overflow="fold")
            for value in rows:
                table.add_row(_cell(column, value))
    class _Console(Console):
        def on_broken_pipe(self) -> None:  # Rich's exits 1: ours is quiet, 0, as for JSON (errors.py)
            raise BrokenPipeError

    console = _Console(file=sys.stdout, markup=False, emoji=False, highlight=False)
    console.print(table)
    if caption:
        console.print(Text(visible(caption), style="dim"))


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Field names in order of first appearance; ``value_base64`` shares ``value``'s column."""
    seen: dict[str, None] = {}
    for row in rows:
        for field in row:
            seen[field.removesuffix(_BASE64)] = None
    return list(seen)


def _numeric(rows: Sequence[Mapping[str, Any]], name: str) -> bool:
    values = [row[name] for row in rows if name in row]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _row_cell(row: Mapping[str, Any], name: str) -> Any:
    if name + _BASE64 in row:
        return _base64_cell(row[name + _BASE64])
    return _cell(name, row.get(name))


def _base64_cell(encoded: str) -> Any:
    from rich.text import Text

    return Text(f"(base64) {encoded}", style="italic")


def row_text(row: Mapping[str, Any], name: str) -> str:
    """What a table shows in ``row``'s cell of column ``name``."""
    if name + _BASE64 in row:
        return f"(base64) {row[name + _BASE64]}"
    return cell_text(row.get(name))


def _cell(name: str, value: Any) -> Any:
    from rich.text import Text

    if name.endswith(_BASE64):
        return _base64_cell(value)
    return Text(cell_text(value), style="dim" if value is None else "")


def cell_text(value: Any) -> str:
    """What a table cell shows of ``value``: ``-`` for none, a number rounded
    (``rounded``), text and bytes ``visible``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return rounded(value)
    if isinstance(value, (bytes, bytearray)):
        return visible(bytes(value).decode("utf-8", "backslashreplace"))
    return visible(str(value))


def number(value: float) -> str:
    """A score as a program reads it (CSV, raw): ``5`` rather than ``5.0``, every digit otherwise."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


SIGNIFICANT = 6  # digits of a score a table shows (JSON, CSV and raw show every one)


def rounded(value: float) -> str:
    """A score as a person reads it in a table: a whole number whole, others to
    ``SIGNIFICANT`` digits but never fewer than the whole part's (a Unix time
    stays a time); beyond 1e15 or under 1e-4, in exponent form."""
    size = abs(value)
    if not math.isfinite(value):
        return repr(value)
    if value.is_integer() and size < 1e15:
        return str(int(value))
    if size < 1 or size >= 1e15:
        return f"{value:.{SIGNIFICANT}g}"
    whole = len(str(int(size)))
    text = f"{value:.{max(SIGNIFICANT - whole, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# the most columns a table's first column (what each row is: a stream, a key)
# takes when others must fit beside it; a longer name folds onto more lines
NAME_WIDTH = 24
GAP = 3  # columns between two columns of a table (padding, divider, padding)


def fitted(rows: list[dict[str, Any]], priority: Sequence[str], width: int) -> tuple[list[dict[str, Any]], list[str]]:
    """``rows`` with only the columns that fit in ``width`` columns: the first
    (what each row is) always, at least ``NAME_WIDTH`` wide when its text is,
    then those of ``priority``, in that order, as long as they fit; and the names of
    the columns left out. A column is never crushed: it is shown whole or not."""
    from rich.cells import cell_len

    first, *others = _columns(rows)

    def widest(name: str) -> int:
        return max(cell_len(name), *(cell_len(row_text(row, name)) for row in rows))

    used = min(widest(first), NAME_WIDTH, width)
    kept = {first}
    for name in (name for name in priority if name in others):
        used += GAP + widest(name)
        if used > width:  # (and none after it: a less wanted column never shows without a more wanted one)
            break
        kept.add(name)
    shown = [{field: value for field, value in row.items() if field.removesuffix(_BASE64) in kept} for row in rows]
    return shown, [name for name in others if name not in kept]


def table_width() -> int:
    """The columns a table may take: the terminal's (or ``COLUMNS``), as Rich measures it."""
    from rich.console import Console

    return Console(file=sys.stdout).width


# -- JSON --------------------------------------------------------------------


def _write(text: str) -> None:
    """UTF-8 on stdout whatever the locale says: JSON is UTF-8 (RFC 8259)."""
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
        stream.flush()
        return
    _write_bytes(text.encode("utf-8", "surrogateescape"))


def _write_bytes(data: bytes) -> None:
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
