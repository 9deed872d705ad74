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

from collections.abc import Callable, Iterator
from typing import IO

from psctl.errors import InvalidArgument
from psctl.readers.csvrows import csv_rows
from psctl.readers.detect import (
    DELIMITERS,
    EXTENSIONS,
    FORMATS,
    NO_HEADER,
    CsvLayout,
    Input,
    columns_option,
    delimiter_for,
    delimiter_option,
    format_from_name,
    open_input,
    sniff,
)
from psctl.readers.fields import FIELDS, InputError, Row, json_row
from psctl.readers.jsonrows import json_array_rows, ndjson_rows
from psctl.readers.spool import ItemSpool

__all__ = [
    "DELIMITERS",
    "EXTENSIONS",
    "FIELDS",
    "FORMATS",
    "NO_HEADER",
    "CsvLayout",
    "Input",
    "InputError",
    "ItemSpool",
    "Row",
    "columns_option",
    "delimiter_for",
    "delimiter_option",
    "format_from_name",
    "json_row",
    "open_input",
    "rows_from_file",
    "sniff",
    "spool_input",
    "spool_rows",
]

# -- reading -----------------------------------------------------------------


def rows_from_file(fp: IO[bytes], format: str, layout: CsvLayout | None = None) -> Iterator[Row]:
    """The rows of ``fp`` (binary) in ``format``; ``InputError`` at the first bad
    one. ``layout``: how a CSV input is laid out (by default, as its header says)."""
    if format == "csv":
        return csv_rows(fp, layout or CsvLayout())
    if format == "json":
        return json_array_rows(fp)
    if format == "ndjson":
        return ndjson_rows(fp)
    raise InvalidArgument(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")


PROGRESS_ROWS = 1000  # rows between two calls of spool_rows' ``progress``


def spool_rows(
    fp: IO[bytes],
    format: str,
    layout: CsvLayout | None = None,
    progress: Callable[[int], None] | None = None,
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
            add(
                row.key,
                value if type(value) is bytes else encode_value(value),
                row.score,
                row.not_before,
            )  # type: ignore[arg-type]
    except BaseException:
        spool.close()
        raise
    return spool


def spool_input(
    source: Input,
    format: str,
    layout: CsvLayout | None = None,
    progress: Callable[[int], None] | None = None,
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
