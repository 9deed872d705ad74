"""The DURATION grammar: ``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1w``, and
compound ones, ``1h30m``, ``2d12h``, ``1.5h`` (seconds when there is no unit);
and the TIME grammar: ISO 8601 or Unix seconds. (The command line's
``--for 15m`` and ``--at ...``, and the ``not_before`` of ``psctl.readers``.)"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

MAX_SECONDS = 10**9  # (psctl.encoding.MAX_SECONDS: what is written can always be read back)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(rf"\s*({_NUMBER})\s*", re.ASCII)
_COMPOUND = re.compile(rf"\s*(?:{_NUMBER}\s*[smhdw]\s*)+", re.IGNORECASE | re.ASCII)
_PART = re.compile(rf"({_NUMBER})\s*([smhdw])", re.IGNORECASE | re.ASCII)


def parse_duration(text: str) -> timedelta:
    """A DURATION as a ``timedelta``; ``ValueError`` naming the accepted forms otherwise."""
    plain = _PLAIN.fullmatch(text)
    if plain is not None:
        seconds = float(plain[1])
    elif _COMPOUND.fullmatch(text) is not None:
        parts = _PART.findall(text)
        units = [unit.lower() for _, unit in parts]
        if len(set(units)) != len(units):
            raise ValueError(f"{text!r} is not a duration: each unit at most once (1h30m, not 1h1h)")
        seconds = sum(float(number) * UNITS[unit.lower()] for number, unit in parts)
    else:
        raise ValueError(
            f"{text!r} is not a duration: use seconds or numbers with s, m, h, d or w "
            "(90, 90s, 15m, 2h, 1d, 1w, 1h30m)"
        )
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is too long a duration: at most {MAX_SECONDS:,} seconds (about 31 years)")
    return timedelta(seconds=seconds)


def shown_duration(value: timedelta) -> str:
    """A duration the way DURATION arguments are written: ``60s``, ``90s``,
    ``5m``, ``1h30m``, ``1d`` (seconds up to two minutes, as people say them)."""
    seconds = value.total_seconds()
    if seconds != int(seconds) or seconds <= 0 or seconds < 120:
        return f"{seconds:g}s"
    parts = []
    for unit, size in sorted(UNITS.items(), key=lambda pair: -pair[1]):
        if unit == "w" and seconds % size:
            continue  # 10d, not 1w3d
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    return "".join(parts)


_UNIX = re.compile(rf"\s*({_NUMBER})\s*", re.ASCII)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)  # (psctl.encoding.LATEST)


def parse_time(text: str) -> datetime:
    """A TIME as an aware ``datetime``: ISO 8601 (``2026-12-24T03:00``,
    ``2026-12-24 03:00:00+01:00``, ``...Z``; naive means UTC), or Unix
    seconds (``1798081200``); ``ValueError`` naming the accepted forms otherwise."""
    unix = _UNIX.fullmatch(text)
    try:
        if unix is not None:
            moment = datetime.fromtimestamp(float(unix[1]), timezone.utc)
        else:
            moment = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError, OSError):
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2026-12-24T03:00, with Z or +01:00 for a zone; UTC when "
            "none) or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment >= LATEST:
        raise ValueError(f"{text!r} is too late a time")
    return moment
