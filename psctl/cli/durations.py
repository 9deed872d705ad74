"""DURATION and TIME options as Typer ``parser``s: the grammars are the
library's (``psctl.durations``); a mistake's message reaches the user as it is."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psctl.durations import parse_duration, parse_time, shown_duration

__all__ = ["duration_option", "duration_parameter", "shown_duration", "time_parameter"]


def duration_parameter(text: str) -> timedelta:
    """``parse_duration`` as a Typer ``parser``."""
    import typer

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def duration_option(*names: str, help: str, metavar: str = "DURATION", default: str | None = None, **more: Any) -> Any:
    """A DURATION option (``typer.Option``), parsed by ``duration_parameter``:
    ``default`` is the default as the help shows it (none shown without it)."""
    import typer

    return typer.Option(
        *names, metavar=metavar, parser=duration_parameter, show_default=default or False, help=help, **more
    )


def time_parameter(text: str) -> datetime:
    """``parse_time`` as a Typer ``parser``."""
    import typer

    try:
        return parse_time(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
