"""``psctl config``: the settings a command would use and where each came
from, and where the config file is (``profiles.py``)."""

from datetime import timedelta
from typing import Any


from psctl.cli import connection
from psctl.cli.group import command_group
from psctl.cli.options import output_options
from psctl.cli.profiles import DEFAULT, Chosen, config_path
from psctl.cli.session import Session
from psctl.cli.status import BadUsage
from psctl.durations import shown_duration
from psctl.settings import Settings

config_app = command_group(
    "config",
    "The settings commands use (flags, then the environment, then the profile), and the config file.",
)


@config_app.command("show")
@output_options(raw=False)
def show(session: Session) -> None:
    """Show each setting a command would use, its value and where it came from: a flag, the environment (env
    VAR), the profile (profile NAME in FILE) or the default. Passwords show as ***. Connects to nothing.

    Example: psctl config show
    Example: psctl --profile prod config show
    """
    session.out.show(rows(session.settings), column="setting")  # type: ignore[union-attr]


@config_app.command("path")
@output_options
def path(session: Session) -> None:
    """Show where the config file is, and whether it exists (it is read from $XDG_CONFIG_HOME/psctl/config.toml,
    by default ~/.config/psctl/config.toml).

    Example: psctl config path -o raw
    """
    found = config_path()
    shown = None if found is None else str(found)
    session.out.show(  # type: ignore[union-attr]
        {"path": shown, "exists": found is not None and found.is_file()}, vertical=True, raw=shown or ""
    )


def rows(chosen: Chosen) -> list[dict[str, Any]]:
    """The settings ``chosen`` as ``config show`` prints them, no password in sight."""
    sources = chosen.sources
    named = sources["url"] != DEFAULT
    settings = None
    if named:
        try:
            settings = Settings.resolve(chosen.env, url=chosen.url, cluster=chosen.cluster or None,
                                        ssl_ca_certs=chosen.tls_ca, username=chosen.username,
                                        password=chosen.password)  # fmt: skip
        except ValueError as exc:  # REDIS_PORT=abc, say
            raise BadUsage(str(exc)) from None
    profile = chosen.profile
    values: dict[str, Any] = {
        "profile": None if profile is None else profile.name or "default",
        "url": connection.where(chosen.url, chosen.env) if named else "the embedded server",
        "cluster": settings.cluster if settings else bool(chosen.cluster),
        "timeout": shown_duration(timedelta(seconds=chosen.timeout)),
        "username": connection.user(chosen.url, chosen.env, chosen.username) if named else None,
        "password": "***" if settings and (settings.password or sources["password"] != DEFAULT) else None,
        "tls_ca": settings.ssl_ca_certs if settings else None,
    }
    return [{"setting": name, "value": value, "from": sources.get(name, DEFAULT)} for name, value in values.items()]
