"""DURATION and TIME options as Typer ``parser``s: the grammars are the
library's (``psctl.durations``); a mistake's message reaches the user as it is."""

from __future__ import annotations

from datetime import datetime, timedelta

from psctl.durations import parse_duration, parse_time, shown_duration

__all__ = ["duration_parameter", "shown_duration", "time_parameter"]


def duration_parameter(text: str) -> timedelta:
    """``parse_duration`` as a Typer ``parser``."""
    import typer

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def time_parameter(text: str) -> datetime:
    """``parse_time`` as a Typer ``parser``."""
    import typer

    try:
        return parse_time(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
