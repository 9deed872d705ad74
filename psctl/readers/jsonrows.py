"""The rows of a JSON array or of NDJSON, read as a stream."""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Iterator
from typing import IO, Any

from psctl.readers.detect import READ_SIZE
from psctl.readers.fields import InputError, Row, json_row

TOO_MANY_DIGITS = f"invalid JSON: a number with more than {sys.get_int_max_str_digits()} digits"
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def ndjson_rows(fp: IO[bytes]) -> Iterator[Row]:
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
        yield json_row(number, found)


def json_array_rows(fp: IO[bytes]) -> Iterator[Row]:
    for line, found in _JsonArray(fp):
        yield json_row(line, found)


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
            raise InputError(
                self._line_at(self._pos),
                "expected a JSON array of objects, starting with '['",
            )
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
                    raise InputError(
                        self._line_at(self._pos),
                        "the JSON array is not closed with ']'",
                    )
                char = self._buf[self._pos]
                self._pos += 1
                if char == "]":
                    break
                if char != ",":
                    raise InputError(
                        self._line_at(self._pos - 1),
                        f"expected ',' or ']' after an item, got {char!r}",
                    )
                if not self._skip_space():
                    raise InputError(
                        self._line_at(self._pos),
                        "the JSON array is not closed with ']'",
                    )
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
