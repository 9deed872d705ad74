"""The fields of psctl's outputs, in the shapes the README documents:
text as it is, bytes that are not UTF-8 as ``..._base64``, times in ISO 8601
(UTC, with a Z), scores as numbers. Every command builds its data with these;
the formats (``formats.py``) then show it."""

from __future__ import annotations

from typing import Any

BASE64 = "_base64"  # the suffix of a field whose bytes are not UTF-8


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

        return {name + BASE64: base64.b64encode(raw).decode("ascii")}


def iso(moment: Any) -> str | None:
    """A time as the JSON outputs print it: ISO 8601, UTC, with a Z."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """A value of the library's as the JSON outputs print it: a time in ISO 8601
    (``iso``), a duration in seconds, anything else as it is."""
    from datetime import datetime, timedelta

    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def item(key: str, value: bytes | str) -> dict[str, str]:
    """An item as ``pull``, ``values`` and ``get`` print it."""
    return text_field("key", key) | text_field("value", value)


def scored(key: str, score: float) -> dict[str, Any]:
    """An item key and its score, as ``keys`` prints it."""
    return text_field("key", key) | {"score": score}


def number(value: float) -> str:
    """A score as a program reads it (CSV, raw): ``5`` rather than ``5.0``, every digit otherwise."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
