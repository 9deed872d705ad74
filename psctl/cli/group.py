"""psctl's Click group, whose commands are built one at a time, when first used.

Typer makes a Click command of a function by reading its signature and type
hints, about half a millisecond a command. ``psctl len x`` runs one command,
so the group builds that one, not all of them, on every start; ``--help`` and
shell completion list, and so build, them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, Sequence
from functools import partial
from typing import Any

import typer

from psctl.cli.errors import CatchingGroup


class LazyCommands(MutableMapping[str, Any]):
    """Click commands by name, each made by its builder on first access."""

    def __init__(self, builders: dict[str, Callable[[], Any]]) -> None:
        self._builders = builders
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = self._builders[name]()
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._builders[name] = lambda: command
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._builders[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


def lazy_group(command_apps: Sequence[typer.Typer], groups: Sequence[typer.Typer] = ()) -> type[CatchingGroup]:
    """A group class for the root ``typer.Typer(cls=...)``: its commands are the
    commands registered on each of ``command_apps`` and the ``groups`` (each
    with a name and ``add_completion=False``), in that order, each built on
    first use."""

    class LazyGroup(CatchingGroup):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            self.commands = LazyCommands(_builders(command_apps, groups, options.get("rich_markup_mode")))

    return LazyGroup


def _builders(
    command_apps: Sequence[typer.Typer], groups: Sequence[typer.Typer], markup: Any
) -> dict[str, Callable[[], Any]]:
    # get_command_from_info is what Typer itself calls for each command of a
    # group (the same signature in the Typer versions pyproject.toml allows)
    from typer.main import get_command, get_command_from_info

    found: dict[str, Callable[[], Any]] = {}
    for commands in command_apps:
        for info in commands.registered_commands:
            name = info.name or info.callback.__name__.lower().replace("_", "-")  # type: ignore[union-attr]
            found[name] = partial(
                get_command_from_info,
                info,
                pretty_exceptions_short=commands.pretty_exceptions_short,
                rich_markup_mode=markup,
            )
    for group in groups:
        found[group.info.name] = partial(get_command, group)  # type: ignore[index]
    return found
