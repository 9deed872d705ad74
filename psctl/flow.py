"""Flow control: pausing a stream, its rate limit, its cap on
items held at once and its aging, kept in the stream's own ``NAME:limits``
and enforced inside the scripts that hand items out (``lua/includes/flow.lua``;
aging in every script that reads or writes a score, ``lua/includes/aging.lua``),
so that every worker and client obeys them at once. The plans of ``pspause``,
``psresume`` and ``pslimit``, beside ``operations.py``'s; all three run
``lua/limit-3.lua``.
"""

from __future__ import annotations

import math
import numbers
from datetime import timedelta
from typing import Any

from psctl.errors import InvalidArgument
from psctl.layout import StreamKeys
from psctl.encoding import MAX_SECONDS
from psctl.leases import milliseconds
from psctl.protocol import Call, Plan
from psctl.scripts import script
from psctl.types import Limits

MAX_RATE = 10**9  # tokens per period: far beyond what any server hands out
MAX_HELD = 10**9
DEFAULT_PER = timedelta(seconds=1)  # pslimit's per: a rate is items a second unless told


def pause(keys: StreamKeys) -> Plan:
    """``pspause``: True when the stream was not paused already."""
    changed, _ = yield from _limit(keys, (b"pause",))
    return changed


def resume(keys: StreamKeys) -> Plan:
    """``psresume``: True when the stream was paused; blocked pullers are woken."""
    changed, _ = yield from _limit(keys, (b"resume",))
    return changed


def limit(keys: StreamKeys, rate: Any, per: Any, burst: Any, max_held: Any, aging: Any = None) -> Plan:
    """``pslimit``: sets the rate limit, the cap on held items and aging
    (None: none), or clears them all; a pause stays as it is. Returns the
    limits now set."""
    args = (b"set", *_rate(rate, per, burst), _max_held(max_held), _aging(aging))
    _, limits = yield from _limit(keys, args)
    return limits


def _limit(keys: StreamKeys, args: tuple[Any, ...]) -> Plan:
    limit_script = script("limit")
    reply = yield Call(limit_script, limit_script.keys_of(keys), args)
    return bool(int(reply[0])), limits_of(reply[1:])


def limits_of(fields: Any) -> Limits:
    """``limit-3.lua``'s paused, rate, per_ms, burst, max_held and aging_ms
    (also the end of ``stats-10.lua``'s reply), as ``Limits``."""
    paused, rate, per_ms, burst, most, aging_ms = fields
    return Limits(
        paused=bool(paused),
        rate=None if rate is None else float(rate),
        per=None if per_ms is None else timedelta(milliseconds=int(per_ms)),
        burst=None if burst is None else int(burst),
        max_held=None if most is None else int(most),
        aging=None if aging_ms is None else timedelta(milliseconds=int(aging_ms)),
    )


def _rate(rate: Any, per: Any, burst: Any) -> tuple[bytes, bytes, bytes]:
    """``limit-3.lua``'s ARGV[2..4]: rate, per_ms, burst (empty: no rate limit)."""
    if rate is None:
        if burst is not None:
            raise InvalidArgument(f"burst applies to a rate limit: give rate= with burst={burst!r}")
        if per is not None and per != DEFAULT_PER and per != DEFAULT_PER.total_seconds():
            raise InvalidArgument(f"per applies to a rate limit: give rate= with per={per!r}")
        return b"", b"", b""
    if (
        isinstance(rate, bool)
        or not isinstance(rate, numbers.Real)
        or not math.isfinite(rate)
        or not 0 < rate <= MAX_RATE
    ):
        raise InvalidArgument(f"rate must be a number of items above 0 and at most {MAX_RATE:,}, got {rate!r}")
    per_ms = milliseconds(per, "per")
    if per_ms / rate > MAX_SECONDS * 1000:  # (the wait for a token, in ms, must fit the scripts' integer reply)
        raise InvalidArgument(
            f"rate must give at least one item per {MAX_SECONDS:,} seconds (about 31 years), got {rate!r} per "
            f"{per_ms / 1000:g} seconds"
        )
    if burst is None:  # a period's worth at once, as "N per period" reads
        burst = max(1, math.ceil(rate))
    elif isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_RATE:
        raise InvalidArgument(f"burst must be a whole number from 1 to {MAX_RATE:,}, or None, got {burst!r}")
    text = str(int(rate)) if float(rate).is_integer() else repr(float(rate))  # ("10", not "10.0")
    return text.encode(), str(per_ms).encode(), str(burst).encode()


def _max_held(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HELD:
        raise InvalidArgument(f"max_held must be a whole number from 1 to {MAX_HELD:,}, or None, got {value!r}")
    return str(value).encode()


def _aging(value: Any) -> bytes:
    """``limit-3.lua``'s ARGV[6]: one point per this many whole ms (rounded up,
    at least 1: see includes/aging.lua on precision); empty: no aging."""
    return b"" if value is None else str(milliseconds(value, "aging")).encode()
