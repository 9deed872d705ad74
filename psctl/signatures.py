"""How type checkers see the ``ps*`` methods of ``commands.py``: one method
serves the sync and the async clients, so each states its reply's type once
and is marked with ``operation`` (a reply of that type on a sync client, a
coroutine of one on an async client), or, when the reply's shape follows an
argument, with ``shaped`` and the shapes below (a ``Protocol`` with an
overload per shape, each restating the method's parameters:
``tests/test_types.py`` checks that they match).

Only type checkers import this module; at run time ``commands.py`` marks its
methods with functions that return them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Protocol, TypeVar, cast, overload

from psctl.runner import AsyncRunner, SyncRunner
from psctl.types import AddSummary, Added, KeyRow

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")
A = TypeVar("A")
D = TypeVar("D")
Awaited = Coroutine[Any, Any, T]  # what an async client's method returns


class Operation(Generic[P, T]):
    """A ``ps*`` method as type checkers see it: called on a sync client
    (``Redis``, ``RedisCluster``) it returns ``T``, on an async one a
    coroutine of ``T``."""

    @overload
    def __get__(self, client: None, owner: type) -> Operation[P, T]: ...
    @overload
    def __get__(self, client: SyncRunner, owner: type | None = None) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncRunner, owner: type | None = None) -> Callable[P, Awaited[T]]: ...
    @overload
    def __get__(self, client: object, owner: type | None = None) -> Callable[P, Any]: ...
    def __get__(self, client: Any, owner: Any = None) -> Any:
        raise NotImplementedError  # (never made: see operation)


def operation(method: Callable[Concatenate[Any, P], T]) -> Operation[P, T]:
    """Marks a method as an ``Operation`` for type checkers; returns it unchanged."""
    return cast("Operation[P, T]", method)


class Shaped(Generic[S, A]):
    """A ``ps*`` method whose reply's shape follows its arguments, as type
    checkers see it: ``S`` on a sync client, ``A`` on an async one (each a
    ``Protocol`` with an overload per shape)."""

    @overload
    def __get__(self, client: None, owner: type) -> Shaped[S, A]: ...
    @overload
    def __get__(self, client: SyncRunner, owner: type | None = None) -> S: ...
    @overload
    def __get__(self, client: AsyncRunner, owner: type | None = None) -> A: ...
    @overload
    def __get__(self, client: object, owner: type | None = None) -> Any: ...
    def __get__(self, client: Any, owner: Any = None) -> Any:
        raise NotImplementedError  # (never made: see shaped)


def shaped(shapes: type[D]) -> Callable[[Callable[..., Any]], D]:
    """Marks a method as having the ``shapes`` (a ``Shaped``) for type checkers; returns it unchanged."""
    return lambda method: cast(D, method)


R1 = TypeVar("R1", covariant=True)
R2 = TypeVar("R2", covariant=True)
R3 = TypeVar("R3", covariant=True)


class Add(Protocol[R1, R2]):
    """``psadd``: ``R1`` the new score (or None), ``R2`` with ``explain=True`` an ``Added``."""

    @overload
    def __call__(
        self, name: str, key: str, value: Any, score: float = 1, readd: bool = False, *,
        replace: bool = False, explain: Literal[False] = False, delay: timedelta | datetime | None = None,
        replicas: int | None = None, replicas_timeout: float | None = None,
    ) -> R1: ...  # fmt: skip
    @overload
    def __call__(
        self, name: str, key: str, value: Any, score: float = 1, readd: bool = False, *,
        replace: bool = False, explain: Literal[True], delay: timedelta | datetime | None = None,
        replicas: int | None = None, replicas_timeout: float | None = None,
    ) -> R2: ...  # fmt: skip
    @overload
    def __call__(
        self, name: str, key: str, value: Any, score: float = 1, readd: bool = False, *,
        replace: bool = False, explain: bool = False, delay: timedelta | datetime | None = None,
        replicas: int | None = None, replicas_timeout: float | None = None,
    ) -> R1 | R2: ...  # fmt: skip
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # (lets typing.get_overloads list them)


class AddShapes(Shaped[Add[float | None, Added], Add[Awaited[float | None], Awaited[Added]]]):
    pass


class AddMany(Protocol[R1, R2]):
    """``psaddmany``: ``R1`` each item's new score, ``R2`` with ``summary=True`` the counts."""

    @overload
    def __call__(
        self, name: str, items: Iterable[Any], readd: bool = False, *, summary: Literal[False] = False,
        replace: bool = False, stop: Any = None, delay: timedelta | datetime | None = None,
        replicas: int | None = None, replicas_timeout: float | None = None,
    ) -> R1: ...  # fmt: skip
    @overload
    def __call__(
        self, name: str, items: Iterable[Any], readd: bool = False, *, summary: Literal[True],
        replace: bool = False, stop: Any = None, delay: timedelta | datetime | None = None,
        replicas: int | None = None, replicas_timeout: float | None = None,
    ) -> R2: ...  # fmt: skip
    @overload
    def __call__(
        self, name: str, items: Iterable[Any], readd: bool = False, *, summary: bool = False,
        replace: bool = False, stop: Any = None, delay: timedelta | datetime | None = None,
        replicas: int | None = None, replicas_timeout: float | None = None,
    ) -> R1 | R2: ...  # fmt: skip
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # (lets typing.get_overloads list them)


class AddManyShapes(
    Shaped[
        AddMany[list[float | None], AddSummary],
        AddMany[Awaited[list[float | None]], Awaited[AddSummary]],
    ]
):
    pass


class Keys(Protocol[R1, R2, R3]):
    """``pskeys``: ``R1`` the keys, ``R2`` with ``withscores=True`` (key, score)
    pairs, ``R3`` with ``state=`` a row per key."""

    @overload
    def __call__(
        self, name: str, withscores: Literal[False] = False, limit: int | None = None, start: int = 0,
        below: float | None = None, *, state: None = None,
    ) -> R1: ...  # fmt: skip
    @overload
    def __call__(
        self, name: str, withscores: Literal[True], limit: int | None = None, start: int = 0,
        below: float | None = None, *, state: None = None,
    ) -> R2: ...  # fmt: skip
    @overload
    def __call__(
        self, name: str, withscores: bool = False, limit: int | None = None, start: int = 0,
        below: float | None = None, *, state: str,
    ) -> R3: ...  # fmt: skip
    @overload
    def __call__(
        self, name: str, withscores: bool = False, limit: int | None = None, start: int = 0,
        below: float | None = None, *, state: str | None = None,
    ) -> R1 | R2 | R3: ...  # fmt: skip
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # (lets typing.get_overloads list them)


Pairs = list[tuple[str, float]]


class KeysShapes(
    Shaped[
        Keys[list[str], Pairs, list[KeyRow]],
        Keys[Awaited[list[str]], Awaited[Pairs], Awaited[list[KeyRow]]],
    ]
):
    pass
