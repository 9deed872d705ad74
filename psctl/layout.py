"""Key names of a prioritized stream: the one place they are built.

On a standalone server a stream NAME lives in ``NAME:t``, ``NAME:s``,
``NAME:exc`` and ``NAME:exp``; the registry of names is ``:ps:keys``. Beside
them, ``NAME:wake`` holds short-lived wake-up tokens for blocked pulls. In
Redis Cluster a name without a hash tag is wrapped in one (``{NAME}:t``, ...),
so that a stream's keys share a slot and each script runs on one node.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

REGISTRY = ":ps:keys"


@dataclass(frozen=True, slots=True)
class StreamKeys:
    name: str
    values: str  # hash: item key -> value
    scores: str  # sorted set: item key -> score
    gated: str  # set: keys refused until re-added
    cooling: str  # sorted set: key -> unix time its cool-down ends
    wake: str  # list: wake-up tokens for blocked pullers (an extra beside the four)

    @property
    def all(self) -> tuple[str, str, str, str]:
        """The four keys of SPEC §1, in the order every 4-key script takes them."""
        return (self.values, self.scores, self.gated, self.cooling)

    @property
    def all_and_wake(self) -> tuple[str, str, str, str, str]:
        """``all`` and the wake-up list: the keys of the add scripts."""
        return (self.values, self.scores, self.gated, self.cooling, self.wake)


def has_hash_tag(name: str) -> bool:
    """True when Redis Cluster would hash only part of ``name`` (a non-empty ``{...}``)."""
    start = name.find("{")
    if start < 0:
        return False
    end = name.find("}", start + 1)
    return end > start + 1


def stream_keys(name: str, *, cluster: bool = False) -> StreamKeys:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a stream name must be a non-empty string, got {name!r}")
    return _stream_keys(name, cluster)


@lru_cache(maxsize=1024)  # built for every call: a service uses a few names over and over
def _stream_keys(name: str, cluster: bool) -> StreamKeys:
    base = f"{{{name}}}" if cluster and not has_hash_tag(name) else name
    return StreamKeys(name, f"{base}:t", f"{base}:s", f"{base}:exc", f"{base}:exp", f"{base}:wake")
