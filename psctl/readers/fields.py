"""One item's fields, checked: a row of any format becomes a ``Row`` here,
or an ``InputError`` naming its line and what is wrong."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

from psctl.errors import InvalidArgument

FIELDS = ("key", "value", "score", "not_before")
JSON_FIELDS = frozenset({"key", "key_base64", "value", "value_base64", "score", "not_before"})


class InputError(InvalidArgument):
    """Bad input, at a line of the file; ``source`` names the input, when known."""

    def __init__(self, line: int, message: str, source: str | None = None) -> None:
        super().__init__(f"{source}: line {line}: {message}" if source else f"line {line}: {message}")
        self.line = line
        self.reason = message
        self.source = source


@dataclass(slots=True)
class Row:
    line: int
    key: bytes
    value: bytes | int | float
    score: float
    not_before: float | None = None  # unix seconds: delayed until then

    def item(self) -> tuple[Any, ...]:
        """The ``(key, value, score)`` that ``psaddmany`` takes, with a 4th
        field, a ``datetime``, for a delayed item."""
        if self.not_before is None:
            return self.key, self.value, self.score
        return self.key, self.value, self.score, moment(self.not_before)


_HUGE = 1e308  # a score whose magnitude is below this converts to a finite float

_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    type(None): "null",
}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), "a number")


def json_row(line: int, found: Any) -> Row:
    # the usual item, {"key": text, "value": text, "score": number}, taken at once;
    # any other passes the checks below, which give the same result or name the fault
    if type(found) is dict and len(found) == 3:
        key, value, score = found.get("key"), found.get("value"), found.get("score")
        if (
            type(key) is str
            and key
            and type(value) is str
            and (type(score) is float and score - score == 0.0 or type(score) is int and -_HUGE < score < _HUGE)
        ):
            try:
                key_bytes, value_bytes = (
                    key.encode("utf-8", "surrogateescape"),
                    value.encode("utf-8", "surrogateescape"),
                )
                return Row(line, key_bytes, value_bytes, float(score))
            except UnicodeEncodeError:  # a lone surrogate
                pass
    if not isinstance(found, dict):
        raise InputError(line, f"expected an object with key, value and score, got {_kind(found)}")
    if not found.keys() <= JSON_FIELDS:
        unknown = sorted(set(found) - JSON_FIELDS)[0]
        raise InputError(
            line,
            f"unknown field {unknown!r} (the fields are key or key_base64, value or value_base64, score and "
            "not_before)",
        )
    if "key" in found and "key_base64" in found:
        raise InputError(line, "give either key or key_base64, not both")
    if "key" in found:
        key = found["key"]
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str):
            raise InputError(line, f"key must be a string, got {_kind(key)}")
        key_bytes = checked_key(line, key)
    elif "key_base64" in found:
        key_bytes = _base64_field(line, "key_base64", found["key_base64"])
        if not key_bytes:
            raise InputError(line, "key is empty")
    else:
        raise InputError(line, "missing field 'key'")
    if "value" in found and "value_base64" in found:
        raise InputError(line, "give either value or value_base64, not both")
    if "value" in found:
        value = _json_value(line, found["value"])
    elif "value_base64" in found:
        value = _base64_field(line, "value_base64", found["value_base64"])
    else:
        raise InputError(line, "missing field 'value'")
    score = found.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float, str, type(None))):
        raise InputError(line, f"score must be a number, got {_kind(score)}")
    return Row(
        line,
        key_bytes,
        value,
        checked_score(line, score),
        checked_not_before(line, found.get("not_before")),
    )


def checked_not_before(line: int, when: Any) -> float | None:
    """When a delayed item starts waiting, as unix seconds: ISO 8601 (UTC
    unless it says) or unix seconds, as a number or text; None for null, an
    empty CSV cell, or no field."""
    from psctl.durations import parse_time

    if when is None or isinstance(when, str) and not when.strip():
        return None
    if isinstance(when, bool) or not isinstance(when, (int, float, str)):
        raise InputError(
            line,
            f"not_before must be a time (ISO 8601 or Unix seconds), got {_kind(when)}",
        )
    try:
        return parse_time(str(when)).timestamp()
    except ValueError:
        raise InputError(
            line,
            f"not_before {_shown(when)} is not a time: use ISO 8601 (2026-12-24T03:00Z) or Unix seconds",
        ) from None


def moment(seconds: float) -> Any:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc)


def checked_key(line: int, key: str) -> bytes:
    if not key:
        raise InputError(line, "key is empty")
    try:
        return key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InputError(line, "key is not valid Unicode (a lone surrogate)") from None


def checked_text(line: int, value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InputError(line, "value is not valid Unicode (a lone surrogate)") from None


def _json_value(line: int, value: Any) -> bytes | int | float:
    if isinstance(value, str):
        return checked_text(line, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(line, f"value must be a string or a finite number, got {value!r}")
        return value
    raise InputError(
        line,
        f"value must be a string or a number, got {_kind(value)} (encode it as text first)",
    )


def _base64_field(line: int, field: str, text: Any) -> bytes:
    """The bytes of ``key_base64`` or ``value_base64``: standard base64, padded."""
    if not isinstance(text, str):
        raise InputError(line, f"{field} must be a string, got {_kind(text)}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(line, f"{field} is not valid base64") from None


def checked_score(line: int, score: Any) -> float:
    """A finite number; missing, null or an empty CSV cell is 1."""
    if score is None or (isinstance(score, str) and not score.strip()):
        return 1.0
    if isinstance(score, str):
        try:
            number = float(score.strip().replace("_", "!"))  # float() would accept 1_000
        except ValueError:
            raise InputError(line, f"score {_shown(score)} is not a number") from None
    else:
        try:
            number = float(score)
        except OverflowError:
            raise InputError(line, "score is too large") from None
    if not math.isfinite(number):
        raise InputError(line, f"score must be a finite number, got {_shown(score)}")
    return number


def _shown(text: Any, limit: int = 40) -> str:
    shown = repr(text) if isinstance(text, str) else str(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
