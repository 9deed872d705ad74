"""Key names of a prioritized stream: the one place they are built.

On a standalone server a stream NAME lives in ``NAME:t``, ``NAME:s``,
``NAME:exc`` and ``NAME:exp``; the registry of names is ``:ps:keys``. Beside
them, ``NAME:wake`` holds short-lived wake-up tokens for blocked pulls, five
keys hold leases, two the delayed items, one the items' last failures,
``NAME:stats`` the counters and ``NAME:limits`` the stream's flow control
(``SUFFIXES``). Each script names the keys it
takes, by the names of ``SUFFIXES``, in its ``-- @keys`` line (``scripts.py``).

In Redis Cluster every key of a stream must hash to one slot, and two names
must never share a key:

- a name without braces is wrapped: ``jobs`` -> ``{jobs}:t``;
- a name with braces is prefixed with a tag of its own: its hash tag when it
  has one, so that ``{tenant-7}:jobs`` -> ``{tenant-7}{tenant-7}:jobs:t``
  still shares a node with every other ``{tenant-7}`` stream; else its text
  without the braces (``}jobs`` -> ``{jobs}}jobs:t``), or ``_``.

The prefix ends at its first ``}`` and the name follows whole, so the name can
be read back from any of its keys (no two names share one: ``cluster_stream_of``),
and a wrapped brace-free name (two braces) never equals a prefixed one (three
or more). Beside the registry, in its slot, a cluster keeps ``SWEPT``: the
server that held the registry when it was last known whole (``operations.names``).

A name that is not UTF-8 (as psctl hands such names back: ``str`` with
surrogate escapes) gets its keys as ``bytes``, so that they reach the server
byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter

from psctl.errors import InvalidArgument

REGISTRY = ":ps:keys"
# Beside the registry in its slot (its hash tag is the registry's whole name):
# the run_id of the server that held the registry when a sweep last found every
# stream in it. Only a cluster has it (``operations.names``).
SWEPT = "{:ps:keys}:swept"

Key = str | bytes


# Each key of a stream is NAME plus one of these. No suffix ends another one, so
# that two names can never make the same key.
SUFFIXES = {
    "values": ":t",  # hash: item key -> value
    "scores": ":s",  # sorted set: item key -> score (waiting items)
    "gated": ":exc",  # set: keys refused until re-added
    "cooling": ":exp",  # sorted set: key -> unix time its cool-down ends
    # beside the four of SPEC §1:
    "wake": ":wake",  # list: wake-up tokens for blocked pullers
    "held": ":held",  # hash: held item key -> the token of the lease holding it
    "leases": ":leases",  # sorted set: token -> lease deadline (unix ms, server clock)
    "lease": ":lease",  # hash: token -> msgpack {max_deliveries, key, ...}
    "deliveries": ":dlv",  # hash: item key -> how many leases it has had
    "dead": ":dead",  # sorted set: dead item key -> its last score
    "stats": ":stats",  # hash: counter -> what the scripts did, cumulative (SPEC §8)
    "delayed": ":delayed",  # sorted set: delayed item key -> unix ms it becomes waiting
    "delayed_scores": ":dscores",  # sorted set: delayed item key -> the score it will wait with
    "failures": ":fail",  # hash: item key -> msgpack {reason, unix ms, delivery}: its last failure
    "limits": ":limits",  # hash: flow control (SPEC §12): paused, rate, per_ms, burst, max_held, tokens, at
}

# The Redis type of each key (what a script checks before its first write).
KINDS = {
    "values": "hash",
    "scores": "zset",
    "gated": "set",
    "cooling": "zset",
    "wake": "list",
    "held": "hash",
    "leases": "zset",
    "lease": "hash",
    "deliveries": "hash",
    "dead": "zset",
    "stats": "hash",
    "delayed": "zset",
    "delayed_scores": "zset",
    "failures": "hash",
    "limits": "hash",
}


# The keys that hold a stream's data, by their names in SUFFIXES: while any
# exists, the stream belongs in the registry (the wake-up list is gone within a
# minute anyway; the counters and the limits outlive the items).
DATA = (
    "values", "scores", "gated", "cooling", "held", "leases", "lease", "deliveries", "dead", "delayed",
    "delayed_scores", "failures",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RegistryKeys:
    """The keys of the registry's scripts, by the names their ``-- @keys`` lines use."""

    registry: Key
    swept: Key


REGISTRY_KEYS = RegistryKeys(REGISTRY, SWEPT)


@dataclass(frozen=True, slots=True)
class StreamKeys:
    name: str
    member: Key  # the name as the registry holds it
    values: Key
    scores: Key
    gated: Key
    cooling: Key
    wake: Key
    held: Key
    leases: Key
    lease: Key
    deliveries: Key
    dead: Key
    stats: Key
    delayed: Key
    delayed_scores: Key
    failures: Key
    limits: Key

    @property
    def all(self) -> tuple[Key, Key, Key, Key]:
        """The four keys of a stream: values, scores, gates, cool-downs."""
        return (self.values, self.scores, self.gated, self.cooling)

    @property
    def leasing(self) -> tuple[Key, ...]:
        """The keys of leases."""
        return (self.held, self.leases, self.lease, self.deliveries, self.dead)

    @property
    def holding_data(self) -> tuple[Key, ...]:
        """The keys that hold the stream's data (``DATA``): while any exists, the stream stays registered."""
        return _data_keys(self)

    @property
    def every(self) -> tuple[Key, ...]:
        """Every key the stream may have (what ``psdelete`` deletes)."""
        return (
            *self.all, self.wake, *self.leasing, self.stats, self.delayed, self.delayed_scores, self.failures, self.limits
        )


def hash_tag(name: str) -> str | None:
    """What Redis Cluster hashes of ``name`` when that is only part of it: the
    text between its first ``{`` and the first ``}`` after it, if not empty."""
    start = name.find("{")
    if start < 0:
        return None
    end = name.find("}", start + 1)
    return name[start + 1 : end] if end > start + 1 else None


def has_hash_tag(name: str) -> bool:
    """True when Redis Cluster would hash only part of ``name`` (a non-empty ``{...}``)."""
    return hash_tag(name) is not None


def cluster_base(name: str) -> str:
    """The prefix of a stream's keys in a cluster (see the module's docstring)."""
    if "{" not in name and "}" not in name:
        return f"{{{name}}}"
    tag = hash_tag(name) or name.replace("{", "").replace("}", "") or "_"
    return f"{{{tag}}}{name}"


_data_keys = attrgetter(*DATA)
# (suffix, its key's name in SUFFIXES) of the keys that hold data
_DATA_SUFFIXES = tuple((SUFFIXES[field], field) for field in DATA)


def cluster_stream_of(key: Key) -> tuple[str, str] | None:
    """The stream whose data a cluster key holds, if it is one of those keys
    psctl builds (``DATA``): its name and the key's name in ``SUFFIXES``
    (whose ``KINDS`` says the type it must have); else None."""
    text = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key
    for suffix, field in _DATA_SUFFIXES:
        if text.endswith(suffix):  # (no suffix ends another one: at most one does)
            base = text[: -len(suffix)]
            end = base.find("}")
            # a brace-free name is the whole tag; any other follows its prefix whole
            name = base[1:end] if end == len(base) - 1 else base[end + 1 :]
            if base.startswith("{") and name and cluster_base(name) == base:
                return name, field
            return None
    return None


def stream_keys(name: str, *, cluster: bool = False) -> StreamKeys:
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"a stream name must be a non-empty string, got {name!r}")
    return _stream_keys(name, cluster)


@lru_cache(maxsize=1024)  # built for every call: a service uses a few names over and over
def _stream_keys(name: str, cluster: bool) -> StreamKeys:
    base = cluster_base(name) if cluster else name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # not UTF-8: its bytes, as they were given
        raw = base.encode("utf-8", "surrogateescape")
        member = name.encode("utf-8", "surrogateescape")
        return StreamKeys(name, member, **{field: raw + suffix.encode() for field, suffix in SUFFIXES.items()})
    return StreamKeys(name, name, **{field: base + suffix for field, suffix in SUFFIXES.items()})
