"""Every use of Typer's and Click's internals, in one module: psctl's Click
group, whose commands are built one at a time, when first used, and which
reports every error (``errors.reported``); the command class (a plain usage
line; ``--wait`` alone); the global options accepted after the command.

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

from typer.core import TyperCommand, TyperGroup

from psctl.cli import errors
from psctl.cli.status import BadUsage


class UnreadHelp:
    """A command whose help read only in part (``psctl --help | head -1``) ends
    as any output does when its reader goes away: quietly, exit status 0.
    (Rich, which prints the help, exits 1 when the pipe closes.)"""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        try:
            super().format_help(ctx, formatter)  # type: ignore[misc]
        except SystemExit as exc:  # (nothing else exits while the help is written)
            if exc.code != 1:
                raise
            raise typer.Exit(0) from None


class CatchingGroup(UnreadHelp, TyperGroup):
    """Typer's group, with every error reported the same way (``errors.reported``)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer.TyperException as exc:  # Click's usage errors
            errors.usage_error(exc)
        except BrokenPipeError:  # what an eager option printed went unread (psctl --version | false)
            errors.quiet_broken_pipe()

    def invoke(self, ctx: Any) -> Any:
        with errors.reported(ctx):
            return super().invoke(ctx)


def command_group(name: str, help: str) -> typer.Typer:
    """A group of subcommands (``psctl server …``): its errors reported as the
    root's are, its help shown when it is called bare."""
    return typer.Typer(name=name, cls=CatchingGroup, help=help, no_args_is_help=True, add_completion=False)


class PsctlCommand(UnreadHelp, TyperCommand):
    """Typer's command, with a plain usage line: ``psctl add [OPTIONS] NAME KEY
    VALUE``, where Typer writes required arguments as ``{NAME}``. ``refused``:
    option names refused after the command (before any ``--``), each with the
    message that says why (a name that once meant something else there: an
    old cron line must not silently change meaning); ``hoisted`` leaves them."""

    refused: dict[str, str] = {}

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [_unbraced(piece) for piece in super().collect_usage_pieces(ctx)]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:  # (a TAB: nothing may fail)
            for arg in args:
                if arg == "--":
                    break
                message = self.refused.get(arg.split("=", 1)[0])
                if message is not None:
                    raise BadUsage(message)
        return super().parse_args(ctx, args)  # type: ignore[no-any-return]


def _is_option(arg: str) -> bool:
    """An option's name, not a value: "-5" is a (bad) value, "--count" a name."""
    return arg.startswith("-") and not arg[1:2].isdigit() and arg != "-"


class BareWait(PsctlCommand):
    """A command whose ``--wait`` may stand alone, waiting for ever (``--wait 0``)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        fixed: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                fixed.extend(args[i:])
                break
            fixed.append(arg)
            following = args[i + 1] if i + 1 < len(args) else None
            if arg in ("--wait", "-w") and (following is None or _is_option(following)):
                fixed.append("0")
        return super().parse_args(ctx, fixed)  # type: ignore[no-any-return]


DASHES = "psctl.dashes"  # StreamsThenCommand's mark: the command line had a --


class StreamsThenCommand(PsctlCommand):
    """``psctl work NAME... -- CMD [ARG...]``: Click takes one list of
    arguments at most, and drops the ``--``, so the command's words are
    counted here, before it parses: the words before ``--`` are the streams
    (``NAME`` and the start of ``command``), handed to the command as
    ``streams`` (a hidden parameter: whatever was given for it is replaced);
    with no ``--``, the first word alone (``psctl work jobs ./run``). Whether
    a ``--`` was given is in ``ctx.meta[DASHES]`` (for the completion: stream
    names before it, none after)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        after = len(args) - args.index("--") - 1 if "--" in args else None
        ctx.meta[DASHES] = after is not None
        rest = super().parse_args(ctx, args)
        if ctx.resilient_parsing:  # (a TAB: nothing is run, and nothing may fail)
            return rest  # type: ignore[no-any-return]
        words = [ctx.params["name"], *(ctx.params.get("command") or ())]
        split = 1 if after is None else len(words) - after
        if split < 1:
            raise BadUsage("give the stream's name before --, e.g. psctl work jobs -- ./process-one")
        ctx.params["streams"], ctx.params["command"] = words[:split], words[split:]
        return rest  # type: ignore[no-any-return]


def _unbraced(piece: str) -> str:
    return piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece


def rewrapped(doc: str) -> str:
    """A docstring as help: each paragraph's lines joined into one (the help
    wraps them to the terminal's width), except ``Example:`` lines, one each."""
    paragraphs = []
    for paragraph in doc.strip().split("\n\n"):
        lines = [line.strip() for line in paragraph.splitlines()]
        if any(line.startswith("Example:") for line in lines):
            paragraphs.append("\n".join(lines))
        else:
            paragraphs.append(" ".join(lines))
    return "\n\n".join(paragraphs)


def _plain_arguments(command: Any) -> Any:
    """``command`` without the ``<str>`` type Typer shows beside every text
    argument in the help (the metavar says what it is)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", "") == "argument" and param.metavar:
            base = type(param.type)
            plain = type("PlainText", (base,), {"get_metavar": lambda self, *args, **kwargs: ""})
            param.type = plain()
    for sub in getattr(command, "commands", {}).values():
        _plain_arguments(sub)
    return command


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


def lazy_group(command_apps: Sequence[typer.Typer], groups: Sequence[typer.Typer] = (),
               order: Sequence[str] = ()) -> type[CatchingGroup]:  # fmt: skip
    """A group class for the root ``typer.Typer(cls=...)``: its commands are the
    commands registered on each of ``command_apps`` and the ``groups`` (each
    with a name and ``add_completion=False``), each built on first use, listed
    in ``order`` (those it does not name after, in the order given)."""

    class LazyGroup(CatchingGroup):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            found = _builders(command_apps, groups, options.get("rich_markup_mode"))
            ordered = {name: found[name] for name in order if name in found}
            self.commands = LazyCommands(ordered | found)

        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            return super().parse_args(ctx, hoisted(self, ctx, args))  # type: ignore[no-any-return]

    return LazyGroup


def check_output_options(ctx: Any, asked: list[str]) -> None:
    """Output options (``asked``) given for a command that has none are bad usage
    (``psctl -o csv work …``), said before anything runs."""
    if not asked or ctx.invoked_subcommand is None:
        return
    command = ctx.command.get_command(ctx, ctx.invoked_subcommand)
    if command is None or hasattr(command, "commands"):  # (a group: each of its commands has them)
        return
    own = {name for param in command.params for name in getattr(param, "opts", ())}
    for option in asked:
        if option not in own:
            raise BadUsage(f"psctl {ctx.invoked_subcommand} takes no {option}: it has no output format to choose")


def given_by(ctx: Any, name: str) -> str | None:
    """Whether the parameter ``name`` was given as a flag ("flag") or by its
    environment variable ("env"), or not at all (None): Click's parameter source."""
    source = getattr(ctx.get_parameter_source(name), "name", None)
    return {"COMMANDLINE": "flag", "ENVIRONMENT": "env"}.get(source or "")


def click_command(app: typer.Typer) -> Any:
    """The Click command Typer makes of ``app`` (for completion scripts)."""
    from typer.main import get_command

    return get_command(app)


class HelpPage:
    """What ``--help`` says of one command, as plain text: the manual's source
    (``manual.py``). ``arguments`` and ``options`` are pairs of what is typed
    (``-n, --count N``) and what it does, with Click's ``[default: 1]``,
    ``[env var: …]`` and ``[required]`` (``-h, --help`` is left out: every
    command takes it). (A plain class, not a dataclass: this module is loaded
    at every start, and only the manual's generator makes these.)"""

    __slots__ = ("path", "usage", "help", "arguments", "options", "is_group")
    path: str  # "psctl server status"
    usage: str  # "psctl server status [OPTIONS]"
    help: str
    arguments: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]
    is_group: bool

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields[name])


def help_pages(app: typer.Typer) -> list[HelpPage]:
    """The root of ``app`` and every command under it, depth first, in the
    order ``--help`` lists them; hidden commands and parameters left out."""
    pages: list[HelpPage] = []

    def walk(command: Any, ctx: Any) -> None:
        records = [(param, param.get_help_record(ctx)) for param in command.params]
        pages.append(HelpPage(
            path=ctx.command_path,
            usage=" ".join([ctx.command_path, *command.collect_usage_pieces(ctx)]),
            help=command.help or "",
            arguments=tuple(record for param, record in records
                            if record and getattr(param, "param_type_name", "") == "argument"),
            options=tuple(record for param, record in records
                          if record and getattr(param, "param_type_name", "") == "option"),
            is_group=hasattr(command, "commands"),
        ))  # fmt: skip
        for name in getattr(command, "commands", {}):
            sub = command.commands[name]
            if not sub.hidden:
                walk(sub, typer.Context(sub, info_name=name, parent=ctx))

    root = click_command(app)
    walk(root, typer.Context(root, info_name=app.info.name))
    return pages


# The root's options, which may also follow the command: those that take a
# value, and flags. A command's own option of the same name would win; none
# has one (one meaning per option name: tests/test_cli_habits.py walks them).
GLOBAL_VALUES = frozenset({"--url", "--tls-ca", "--timeout", "--wait-replicas", "--profile", "--output", "-o"})
GLOBAL_FLAGS = frozenset({"--cluster", "--no-embedded", "--debug", "--json", "--table", "--quiet", "-q"})


def hoisted(group: Any, ctx: Any, args: list[str]) -> list[str]:
    """``args`` with the root's options that follow the command moved before
    it, so that ``psctl len jobs --url …`` means ``psctl --url … len jobs``.
    Nothing after ``--`` moves, nor an option the command has itself."""
    start = _command_index(args)
    if start is None:
        return args
    command = group.get_command(ctx, args[start])
    if command is None:
        return args
    end = start + 1
    own = _options_of(command)
    refused = getattr(command, "refused", {})
    subcommands = getattr(command, "commands", None)
    if subcommands is not None and end < len(args) and not args[end].startswith("-"):
        sub = command.get_command(ctx, args[end])
        if sub is not None:
            own |= _options_of(sub)
            end += 1
    moved, kept = [], []
    rest = args[end:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            kept += rest[i:]
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if name in refused:  # (left for the command to refuse)
            kept.append(arg)
            i += 1
        elif name in own:
            takes = own[name]
            kept += rest[i : i + (2 if takes and "=" not in arg else 1)]
            i += 2 if takes and "=" not in arg else 1
        elif name in GLOBAL_VALUES:
            step = 1 if "=" in arg else 2
            moved += rest[i : i + step]
            i += step
        elif arg in GLOBAL_FLAGS:
            moved.append(arg)
            i += 1
        else:
            kept.append(arg)
            i += 1
    return [*args[:start], *moved, *args[start:end], *kept]


def _command_index(args: list[str]) -> int | None:
    """Where the command's name is: the first argument that is no root option or its value."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        if arg in GLOBAL_VALUES:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return i
    return None


def _options_of(command: Any) -> dict[str, bool]:
    """Each option name of ``command``, and whether it takes a value."""
    found: dict[str, bool] = {}
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", "") != "option":
            continue
        takes = not getattr(param, "is_flag", False) and not getattr(param, "count", False)
        for name in (*param.opts, *param.secondary_opts):
            found[name] = takes
    return found


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
            found[name] = partial(_built, get_command_from_info, info, commands.pretty_exceptions_short, markup)
    for group in groups:
        found[group.info.name] = partial(_built_group, get_command, group)  # type: ignore[index]
    return found


def _built(build: Any, info: Any, short: bool, markup: Any) -> Any:
    _polish(info)
    return _plain_arguments(build(info, pretty_exceptions_short=short, rich_markup_mode=markup))


def _built_group(build: Any, group: typer.Typer) -> Any:
    for info in group.registered_commands:
        _polish(info)
    return _plain_arguments(build(group))


def _polish(info: Any) -> None:
    """The command's help rewrapped, and its class ours unless it has its own."""
    import inspect

    if info.help is None and info.callback is not None and info.callback.__doc__:
        info.help = rewrapped(inspect.getdoc(info.callback) or "")
    if info.cls in (None, TyperCommand):  # (Typer's default)
        info.cls = PsctlCommand
