"""The one renderer: a Rich table for a person, JSON for a program.

Commands hand ``Output.show`` plain data, already in the JSON shape the README
documents; the choice between table and JSON is made once per command, from
``--json`` / ``--table`` or else from whether stdout is a terminal. Text from
the store is shown literally: cells are Rich ``Text`` (never markup), control
characters are escaped on a terminal, and bytes that are not UTF-8 travel as
``value_base64`` (or ``key_base64``). Rich is imported only to draw a table,
``json`` only to print JSON, ``base64`` only for bytes that are not UTF-8.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from psctl.cli import terminal
from psctl.cli.status import BadUsage

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
        text = json.dumps(data, **options)
    return text


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


class Output:
    """Where a command's result goes: ``table`` True for a Rich table, False for JSON."""

    def __init__(self, table: bool) -> None:
        self.table = table

    @classmethod
    def choose(cls, as_json: bool, as_table: bool) -> Output:
        if as_json and as_table:
            raise BadUsage("--json and --table cannot be used together")
        return cls(as_table or (not as_json and terminal.stdout_is_terminal()))

    def show(
        self,
        data: Any,
        *,
        table: Any = None,
        caption: str | None = None,
        column: str = "name",
        vertical: bool = False,
    ) -> None:
        """Prints ``data``: as JSON, or as a table of ``table`` (``data`` when None).

        A list of objects is a table with a column per field; a list of
        strings one column named ``column``; one object a one-row table (a
        field/value table when ``vertical``). An empty result prints ``[]``.
        """
        if not self.table:
            _write(json_text(data) + "\n")
            return
        view = data if table is None else table
        if view is None or (isinstance(view, (list, tuple, dict)) and not view):
            _write((caption if caption is not None else "[]") + "\n")
            return
        _print_table(view, caption=caption, column=column, vertical=vertical)


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
    console = Console(file=sys.stdout, markup=False, emoji=False, highlight=False)
    console.print(table)
    if caption:
        console.print(Text(caption, style="dim"))


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


def _cell(name: str, value: Any) -> Any:
    from rich.text import Text

    if name.endswith(_BASE64):
        return _base64_cell(value)
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, float):
        return Text(number(value))
    if isinstance(value, (bytes, bytearray)):
        return Text(visible(bytes(value).decode("utf-8", "backslashreplace")))
    return Text(visible(str(value)))


def number(value: float) -> str:
    """A score as a person reads it: ``5`` rather than ``5.0``, every digit otherwise."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


# compiled by re on first use (and cached), not at every start
_CONTROL = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"


def visible(text: str) -> str:
    """``text`` safe for a terminal: control characters (an escape sequence could
    restyle or rewrite the screen) and undecodable bytes shown as ``\\xNN``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return re.sub(_CONTROL, lambda found: f"\\x{ord(found[0]):02x}", text)


# -- JSON --------------------------------------------------------------------


def _write(text: str) -> None:
    """UTF-8 on stdout whatever the locale says: JSON is UTF-8 (RFC 8259)."""
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
        stream.flush()
        return
    stream.flush()
    data = memoryview(text.encode("utf-8", "surrogateescape"))
    while data:  # a signal handled mid-write (Ctrl-C while a pull prints) leaves a partial write
        data = data[buffer.write(data) :]
    buffer.flush()
