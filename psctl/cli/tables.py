"""Tables for a person: Rich tables of plain data, cells as literal text
(never markup; what a terminal acts on escaped), scores to six digits, and
columns fitted to the terminal's width. Rich is imported only to draw one."""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from psctl.cli.fields import BASE64 as _BASE64
from psctl.cli.terminal import visible


def print_table(view: Any, *, caption: str | None, column: str, vertical: bool) -> None:
    from rich import box
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
    console = _console()
    console.print(table)
    if caption:
        print_note(caption, console)


def print_note(note: str, console: Any = None) -> None:
    """A line about the table (or the lack of one: ``(no items)``), dim."""
    from rich.text import Text

    (console or _console()).print(Text(visible(note), style="dim"))


def _console() -> Any:
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # Rich's exits 1: ours is quiet, 0, as for JSON (errors.py)
            raise BrokenPipeError

    return _Console(file=sys.stdout, markup=False, emoji=False, highlight=False)


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
    if name.endswith(_BASE64):
        return _base64_cell(value)
    return _path_breaking_text()(cell_text(value), style="dim" if value is None else "")


@functools.cache
def _path_breaking_text() -> type:
    """Rich's ``Text``, but one word too long for its column that holds a
    ``/`` (a path, a URL, a key named like one) breaks after a ``/`` rather
    than mid-name: ``/srv/app/.venv/bin/`` then ``valkey-server``."""
    from rich.cells import cell_len
    from rich.measure import Measurement
    from rich.text import Text

    class PathBreakingText(Text):
        def wrap(self, console: Any, width: int, **options: Any) -> Any:
            plain = self.plain
            if cell_len(plain) <= width or "/" not in plain or any(char.isspace() for char in plain):
                return super().wrap(console, width, **options)
            lines = self.divide(_slash_breaks(plain, width))
            return Text.wrap(Text("\n").join(lines), console, width, **options)  # (a piece wider still: folded)

        def __rich_measure__(self, console: Any, options: Any) -> Any:
            measured = super().__rich_measure__(console, options)
            pieces = _SLASHED.findall(self.plain) if "/" in self.plain else []
            least = max((cell_len(piece) for piece in pieces), default=measured.minimum)
            return Measurement(min(measured.minimum, least), measured.maximum)

    return PathBreakingText


_SLASHED = re.compile(r"[^/]*/|[^/]+$")  # each name with the / after it


def _slash_breaks(text: str, width: int) -> list[int]:
    """Where lines of at most ``width`` cells break ``text``: after a ``/``."""
    from rich.cells import cell_len

    breaks, line = [], 0
    for found in _SLASHED.finditer(text):
        size = cell_len(found[0])
        if line and line + size > width:
            breaks.append(found.start())
            line = 0
        line += size
    return breaks


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
