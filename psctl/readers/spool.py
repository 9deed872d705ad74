"""The checked items of an input, spooled to a temporary file."""

from __future__ import annotations

import math
import struct
import tempfile
from collections.abc import Iterator
from typing import Any

from psctl.readers.fields import moment

# -- the checked items, spooled ------------------------------------------------

# one record per item: key length, value length, score and not_before (doubles;
# NaN: none), then the key and value bytes; nothing but bytes and numbers is
# ever read back (no pickle)
_RECORD = struct.Struct("<IIdd")
_NONE = math.nan
SPOOL_BLOCK = 1 << 20  # bytes written or read at a time


class ItemSpool:
    """Checked items as ``(key, value, score)``, ``bytes``, ``bytes`` and a finite
    ``float`` (what ``psaddmany`` sends without converting anything), with a
    4th field, a ``datetime``, for a delayed item, in a temporary file that is
    gone once the spool is closed."""

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

    def add(self, key: bytes, value: bytes, score: float, not_before: float | None = None) -> None:
        pending = self._pending
        pending += _RECORD.pack(len(key), len(value), score, _NONE if not_before is None else not_before)
        pending += key
        pending += value
        self.count += 1
        if len(pending) >= SPOOL_BLOCK:
            self._file.write(pending)
            pending.clear()

    def items(self) -> Iterator[tuple[Any, ...]]:
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
                key_size, value_size, score, not_before = unpack(data, pos)
                start = pos + head
                middle = start + key_size
                end = middle + value_size
                if end > len(data):
                    need = end - pos
                    break
                if not_before != not_before:  # NaN: not delayed
                    yield data[start:middle], data[middle:end], score
                else:
                    yield (
                        data[start:middle],
                        data[middle:end],
                        score,
                        moment(not_before),
                    )
                pos = end
            block = read(max(SPOOL_BLOCK, need))
            if not block:
                if pos != len(data):
                    raise RuntimeError("the add-many spool file ends inside a record")
                return
            data = data[pos:] + block
            pos = 0
