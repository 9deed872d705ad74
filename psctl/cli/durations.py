"""DURATION arguments: ``90``, ``90s``, ``15m``, ``2h``, ``1d`` (seconds when no unit)."""

from __future__ import annotations

import math
import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*", re.IGNORECASE | re.ASCII)


def parse_duration(text: str) -> timedelta:
    """A DURATION as a ``timedelta``; ``ValueError`` naming the accepted forms otherwise."""
    found = _DURATION.fullmatch(text)
    if found is None:
        raise ValueError(
            f"{text!r} is not a duration: use seconds or a number with s, m, h or d (90, 90s, 15m, 2h, 1d)"
        )
    seconds = float(found[1]) * UNITS[found[2].lower() or "s"]
    if not math.isfinite(seconds) or seconds > timedelta.max.total_seconds():
        raise ValueError(f"{text!r} is too long a duration")
    return timedelta(seconds=seconds)


def duration_parameter(text: str) -> timedelta:
    """``parse_duration`` as a Typer ``parser``: its message reaches the user as it is."""
    import typer

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
