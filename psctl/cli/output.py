"""Where a command's result goes: ``Output``, the one sink every command hands
plain data to, in the JSON shape the README documents (``fields.py``).

The format is chosen once per command, from ``-o``, ``--json`` / ``--table``
or else from whether stdout is a terminal; how each format shows data is its
renderer's business (``formats.RENDERERS``), never the command's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from psctl.cli import terminal
from psctl.cli.formats import FORMATS, NO_ITEMS, NO_RAW, RENDERERS, Shown, write_bytes
from psctl.cli.status import BadUsage

# Rows that ``keys`` and ``values`` show on a terminal unless --limit says otherwise.
TERMINAL_ROWS = 20
# bytes a streamed listing gathers before it writes them
STREAM_BUFFER = 1 << 16


class Output:
    """Where a command's result goes, and in which ``format`` (a name of
    ``formats.RENDERERS``); ``quiet``: nothing at all (a command that succeeds
    prints nothing)."""

    def __init__(self, format: str = "json", quiet: bool = False) -> None:
        self.format, self.quiet = format, quiet
        self.renderer = RENDERERS[format]()

    @property
    def table(self) -> bool:
        """Whether a person reads it: a screenful, fitted to the terminal."""
        return self.renderer.for_a_person

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
        empty: str = NO_ITEMS,
    ) -> None:
        """Prints ``data`` in the chosen format. A table shows ``table``
        (``data`` when None): a list of objects is a table with a column per
        field; a list of strings one column named ``column``; one object a
        one-row table (a field/value table when ``vertical``); an empty result
        says so, dim: ``caption``, else ``empty`` (JSON prints ``[]``). NDJSON
        writes each element of a list (or the object) on a line; CSV the rows
        of ``csv`` (else of ``table``, else ``data``) under a header; raw
        writes ``raw``: bytes as they are, text and numbers on a line, a list
        one element per line."""
        if self.quiet:
            return
        self.renderer.show(Shown(data, table, caption, column, vertical, raw, csv, empty))

    def stream(self, rows: Iterable[dict[str, Any]], *, raw: Callable[[dict[str, Any]], Any] | None = None) -> int:
        """Writes ``rows`` as they come (bounded memory whatever their number),
        for the formats that stream: JSON (an array), NDJSON, CSV (the first
        row's fields as header) and raw (``raw(row)`` of each). Output is
        written about 64 KiB at a time, and at the end. Returns how many rows."""
        if self.quiet:
            return sum(1 for _ in rows)
        counted = _Counted(rows)
        pending: list[bytes] = []
        size = 0
        for piece in self.renderer.streamed(counted, raw):
            pending.append(piece)
            size += len(piece)
            if size >= STREAM_BUFFER:
                write_bytes(b"".join(pending))
                pending.clear()
                size = 0
        if pending:
            write_bytes(b"".join(pending))
        return counted.count


class _Counted:
    """``rows``, counted as they are read."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self._rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self._rows:
            self.count += 1
            yield row
