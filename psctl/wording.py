"""How messages word what they quote: a count with its noun ("1 item", "2
items") and a value as a person would type it (``true``, ``1e12``), not as
Python prints it (``True``, ``1e+12``)."""

from __future__ import annotations

from typing import Any


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 item``, ``2 items``; ``plural`` where an s is not it (``deliveries``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def typed(value: Any) -> str:
    """``value`` as it is typed in a config file (TOML) or on the command
    line: ``true``, ``1e12``, ``0.5``, ``"text"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # the shorter of the two spellings that is exact
        short = f"{value:g}"
        return (short if float(short) == value else repr(value)).replace("e+", "e")
    if isinstance(value, int):
        return str(value)
    import json

    return json.dumps(value, ensure_ascii=False)
