"""What psctl raises, besides redis-py's own errors.

    PsctlError
    ├── InvalidArgument (also a ValueError): bad input, refused before anything is sent
    ├── WrongType (also a redis ResponseError): a stream's key holds another type; nothing was changed
    ├── StreamsFailed: an operation over many streams failed on some of them
    ├── NotReplicated: a write was done, but fewer replicas than asked for have it
    └── ServerError (also a RuntimeError): the embedded or a test server did not start or stop

The command line maps these types to its exit statuses (``psctl/cli/errors.py``).
``WrongType`` is made on first use, with redis-py's ``ResponseError`` as a
base: the embedded server's warm path and ``psctl --help`` import this module
and must not import redis-py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from psctl.wording import counted

if TYPE_CHECKING:
    from redis.exceptions import ResponseError


class PsctlError(Exception):
    """Every error psctl raises itself."""


class InvalidArgument(PsctlError, ValueError):
    """An argument psctl refuses before sending anything (``except ValueError`` catches it too)."""


class ServerError(PsctlError, RuntimeError):
    """The server binary is missing, or the server did not start or stop."""


# the scripts' own message: "WRONGTYPE KEYS[4] (jobs:exp) holds a string, not a zset" (lua/includes/keycheck.lua)
_WRONG_TYPE = re.compile(r"WRONGTYPE KEYS\[(\d+)\] \((.*)\) holds an? (\w+), not an? (\w+)", re.DOTALL)
_KIND = {"hash": "hash", "zset": "sorted set", "set": "set", "list": "list", "string": "string"}


def _wrong_type_class() -> type:
    from redis.exceptions import ResponseError

    class WrongType(PsctlError, ResponseError):
        """A key of the stream holds a type psctl does not keep there (written by
        another tool, say). The script failed before its first write: nothing was
        changed, and trying again fails the same way until the key is fixed."""

        def __init__(self, key: Any, found: str, expected: str) -> None:
            self.key, self.found, self.expected = key, found, expected
            shown = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else key
            super().__init__(
                f"WRONGTYPE {shown} holds a {_KIND.get(found, found)} where psctl keeps a "
                f"{_KIND.get(expected, expected)}; nothing was changed"
            )

        def __reduce__(self) -> Any:
            return (type(self), (self.key, self.found, self.expected))

    WrongType.__module__, WrongType.__qualname__ = __name__, "WrongType"
    return WrongType


def wrong_type(error: ResponseError, keys: tuple[Any, ...]) -> Exception | None:
    """The scripts' WRONGTYPE error as a ``WrongType`` naming the key, or None
    for any other error."""
    found = _WRONG_TYPE.match(str(error))
    if found is None:
        return None
    index = int(found[1]) - 1
    key = keys[index] if 0 <= index < len(keys) else found[2]
    return __getattr__("WrongType")(key, found[3], found[4])  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    if name == "WrongType":
        made = globals().get("WrongType")
        if made is None:
            made = globals()["WrongType"] = _wrong_type_class()
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class StreamsFailed(PsctlError):
    """Some streams of an operation over many streams failed; the others were
    done. ``done`` holds the result for those, ``failed`` each failed stream's
    error."""

    def __init__(self, operation: str, done: dict[str, Any], failed: dict[str, BaseException]) -> None:
        self.done, self.failed = done, failed
        listed = "; ".join(
            f"{', '.join(repr(name) for name in names)}: {error}" for names, error in grouped(failed)
        )  # fmt: skip
        super().__init__(f"{operation} failed on {counted(len(failed), 'stream')} ({listed}); every other stream was done")


class NotReplicated(PsctlError):
    """A write asked for ``replicas=N`` was done on the master, but only
    ``acknowledged`` of its replicas had it within the timeout: a failover
    now could undo it. ``result`` is what the operation returned (the scores
    added, the count acknowledged, the items pulled): the write stands on
    the master, and sending it again would apply it twice."""

    def __init__(self, operation: str, wanted: int, acknowledged: int, timeout: float, result: Any) -> None:
        self.operation, self.wanted, self.acknowledged, self.timeout = operation, wanted, acknowledged, timeout
        self.result = result
        super().__init__(
            f"{operation} was done on the master, but only {acknowledged} of {counted(wanted, 'replica')} "
            f"acknowledged it within {timeout:g}s: a failover now could undo it"
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.operation, self.wanted, self.acknowledged, self.timeout, self.result))


def grouped(failed: dict[str, BaseException]) -> list[tuple[list[str], BaseException]]:
    """The failed streams, those whose errors read the same together (the
    streams of one node that is down, say), in order of first failure."""
    groups: dict[str, tuple[list[str], BaseException]] = {}
    for name, error in failed.items():
        groups.setdefault(str(error), ([], error))[0].append(name)
    return list(groups.values())


# Replies that say the server did not carry a command out, for now: the same
# command may succeed later. Its disk is full (MISCONF); it is a replica
# (READONLY) or lost its master (MASTERDOWN); it is out of memory (OOM), still
# loading its data (LOADING), running a long script (BUSY) or short of replicas
# (NOREPLICAS); a cluster is moving slots or down (TRYAGAIN, CLUSTERDOWN).
_REFUSED_FOR_NOW = (
    "MISCONF", "READONLY", "MASTERDOWN", "OOM", "LOADING", "BUSY", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN"
)  # fmt: skip
# redis-py's classes for some of them, whose messages it gives without the code
_REFUSAL_CLASSES = {
    "MasterDownError": "MASTERDOWN", "ReadOnlyError": "READONLY", "OutOfMemoryError": "OOM",
    "BusyLoadingError": "LOADING", "TryAgainError": "TRYAGAIN", "ClusterDownError": "CLUSTERDOWN",
}  # fmt: skip


# a command inside a script refused by an ACL: not a NOPERM reply, but an error
# of the script (Valkey: "ACL failure in script: …"; Redis 7: "The user executing
# the script can't run this command or subcommand …")
ACL_IN_SCRIPT = re.compile(r"ACL failure in script|user executing the script can't", re.IGNORECASE)


def acl_denied(error: BaseException) -> bool:
    """Whether an ACL refused what was asked: a command, a key, or a command a script runs."""
    from redis.exceptions import NoPermissionError

    return isinstance(error, NoPermissionError) or ACL_IN_SCRIPT.search(str(error)) is not None


# What redis-py's cluster clients raise when a cluster did not run a command
# because its slots are moving or a node is failing over: it gave up following
# MOVED/ASK/TRYAGAIN replies ("TTL exhausted"), a slot has no master for now,
# or no node answered its refresh of the topology. (Each is raised before the
# command is sent, or after replies that say it did not run.)
_CLUSTER_GAVE_UP = ("TTL exhausted", "not covered", "cannot be connected")


def cluster_moving(error: BaseException) -> str | None:
    """Why a Redis Cluster did not run a command, when ``error`` says it did
    not and a moment may mend it: a slot being moved (TRYAGAIN, ASK, MOVED),
    a failover under way (CLUSTERDOWN), or redis-py giving up on either (see
    ``_CLUSTER_GAVE_UP``). Nothing was done, so even a request that is not
    safe to repeat may be sent again. None for any other error."""
    import redis.exceptions as rx

    message = str(error).split(" script: ")[0]
    if isinstance(error, rx.ClusterDownError):
        return message if message.startswith(("CLUSTERDOWN", "MASTERDOWN")) else f"CLUSTERDOWN {message}"
    if isinstance(error, rx.TryAgainError):
        return message if message.startswith("TRYAGAIN") else f"TRYAGAIN {message}"
    if isinstance(error, rx.AskError):  # (and MovedError)
        return f"{'MOVED' if isinstance(error, rx.MovedError) else 'ASK'} {message}"
    if isinstance(error, (rx.ClusterError, rx.RedisClusterException)) and any(
        part in message for part in _CLUSTER_GAVE_UP
    ):
        return f"the cluster is moving slots or failing over ({message.strip()})"
    if isinstance(error, rx.ResponseError) and message.split(" ", 1)[0] in ("TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK"):
        return message
    return None


def refused_for_now(error: BaseException) -> str | None:
    """The server's reply, code first (``MISCONF Errors writing to the AOF
    file: No space left on device``), when ``error`` is a refusal that may
    pass (see ``_REFUSED_FOR_NOW``): nothing was done. None for any other
    error."""
    import redis.exceptions

    moving = cluster_moving(error)
    if moving is not None:
        return moving
    message = str(error).split(" script: ")[0]  # (inside a script: which line says nothing here)
    for name, code in _REFUSAL_CLASSES.items():
        cls = getattr(redis.exceptions, name, None)
        if cls is not None and isinstance(error, cls):
            return message if message.startswith(code) else f"{code} {message}"
    if isinstance(error, redis.exceptions.ResponseError) and message.split(" ", 1)[0] in _REFUSED_FOR_NOW:
        return message
    return None
