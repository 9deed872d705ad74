"""The rows of a CSV input."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from typing import IO

from psctl.readers.detect import CsvLayout, header_delimiter, header_names
from psctl.readers.fields import (
    InputError,
    Row,
    checked_key,
    checked_not_before,
    checked_score,
    checked_text,
)
from psctl.wording import counted

# CSV's default limit of 128 KiB per field would refuse large values
CSV_FIELD_LIMIT = (1 << 31) - 1


def csv_rows(fp: IO[bytes], layout: CsvLayout) -> Iterator[Row]:
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
                raise InputError(
                    line,
                    f"expected {counted(len(columns), 'field')} ({','.join(columns)}), got {len(record)}",
                )
            yield Row(
                line,
                checked_key(line, record[key_at]),
                checked_text(line, record[value_at]),
                checked_score(line, "" if score_at is None else record[score_at]),
                None if time_at is None else checked_not_before(line, record[time_at]),
            )
    finally:
        try:
            text.detach()  # leave ``fp`` open: it is read again
        except ValueError:  # closed already (Ctrl-C while reading closed the input first)
            pass


def _places(
    columns: list[str] | tuple[str, ...],
) -> tuple[int, int, int | None, int | None]:
    """Where the key, the value, the score and not_before (None: not there) are in a record."""

    def place(name: str) -> int | None:
        return columns.index(name) if name in columns else None

    return (
        columns.index("key"),
        columns.index("value"),
        place("score"),
        place("not_before"),
    )


def _csv_header(line: int, record: list[str], delimiter: str) -> list[str]:
    names = header_names(record)
    if names is None:
        raise InputError(
            line,
            f"the CSV header must name the columns key,value and optionally score and not_before; got "
            f"{delimiter.join(record)!r}"
            " (no header? give --no-header or --columns)",
        )
    return names
