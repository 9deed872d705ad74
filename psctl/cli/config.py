"""``psctl config``: the settings a command would use and where each came
from, and where the config file is (``profiles.py``)."""

import os
import re
from datetime import timedelta
from typing import Any

from psctl.cli import connection
from psctl.cli.group import command_group
from psctl.cli.options import output_options
from psctl.cli.profiles import DEFAULT, Chosen, config_path, load
from psctl.cli.session import Session
from psctl.cli.status import BadUsage, CliError
from psctl.errors import PsctlError
from psctl.durations import shown_duration
from psctl.settings import Settings

config_app = command_group(
    "config",
    "The settings commands use (flags, then the environment, then the profile), and the config file.",
)


@config_app.command("show")
@output_options(raw=False)
def show(session: Session) -> None:
    """Show each setting a command would use, its value, where it came from (a flag, the environment: env VAR,
    the profile: profile NAME, or the default) and any problem that would stop a command. Passwords show as
    ***. Connects to nothing. With a problem, it exits as a command would (2 for bad settings), after
    showing every setting.

    Example: psctl config show
    Example: psctl --profile prod config show
    """
    chosen = session.settings
    trouble = problems(chosen, no_embedded=session.no_embedded)
    session.out.show(rows(chosen, trouble), column="setting")  # type: ignore[union-attr]
    for problem in trouble.values():  # (the first: the one a command would fail with)
        raise problem


@config_app.command("path")
@output_options
def path(session: Session) -> None:
    """Show where the config file is, whether it exists, and what is wrong with it, if anything (it is read
    from $XDG_CONFIG_HOME/psctl/config.toml, by default ~/.config/psctl/config.toml).

    Example: psctl config path -o raw
    """
    found = config_path()
    shown = None if found is None else str(found)
    problem = None
    if found is not None:
        try:
            load(found, None, None)
        except CliError as exc:
            problem = str(exc)
    exists = found is not None and (found.is_file() or found.is_symlink())
    session.out.show(  # type: ignore[union-attr]
        {"path": shown, "exists": exists, "problem": problem}, vertical=True, raw=shown or ""
    )


def problems(chosen: Chosen, *, no_embedded: bool = False) -> dict[str, CliError]:
    """By setting, what would stop a command using ``chosen`` before it connects,
    in the order the command meets them; none when all is well."""
    found = dict(chosen.problems)
    named = chosen.sources["url"] != DEFAULT
    try:
        settings = _settings(chosen)
    except BadUsage as exc:
        return found | {"url": exc}
    if settings is not None:
        try:
            connection.check_tls(settings, chosen.tls_ca, named, chosen.tls_ca_from)
        except BadUsage as exc:
            found["tls_ca"] = exc
    else:
        try:
            forbidden = connection.embedded_forbidden(no_embedded, chosen.env)
        except BadUsage as exc:  # PSCTL_NO_EMBEDDED=foo
            forbidden = exc
        if forbidden is not None:
            found["url"] = forbidden
    if not found:  # (what the checks above do not tell apart, the command's own check finds: --cluster with no url)
        try:
            chosen.check(no_embedded=no_embedded)
        except CliError as exc:
            found["url"] = exc
    return found


def rows(chosen: Chosen, trouble: dict[str, CliError]) -> list[dict[str, Any]]:
    """The settings ``chosen`` as ``config show`` prints them, no password in
    sight, each with its problem (``trouble``: ``problems()``), if any."""
    sources = dict(chosen.sources)
    named = sources["url"] != DEFAULT
    settings = None if "url" in trouble else _settings(chosen)
    profile = chosen.profile
    file = config_path()
    sources["config_file"] = "env XDG_CONFIG_HOME" if file is not None and os.path.isabs(
        os.environ.get("XDG_CONFIG_HOME", "")) else DEFAULT  # fmt: skip
    if named:
        url = connection.where(chosen.url, chosen.env, chosen.cluster)
    else:
        url = None if "url" in trouble else _embedded_url()
        sources["url"] = f"{DEFAULT} (the embedded server)"
    if profile is not None and sources.get("password") == profile.origin:  # (named by the file as written)
        sources["password"] = f"{profile.origin}: password_file {profile.values['password_file']}"
    has_password = bool(settings and (settings.password or sources["password"] != DEFAULT))
    values: dict[str, Any] = {
        "config_file": None if file is None else str(file),
        "profile": None if profile is None else profile.name or "default",
        "url": url,
        "cluster": settings.cluster if settings else bool(chosen.cluster),
        "timeout": shown_duration(timedelta(seconds=chosen.timeout)),
        "wait_replicas": chosen.wait_replicas,
        "username": connection.user(chosen.url, chosen.env, chosen.username, chosen.cluster) or chosen.username
        if named else None,
        "password": "***" if has_password and "password" not in trouble else None,
        "tls_ca": settings.ssl_ca_certs if settings else chosen.tls_ca,
    }
    return [
        {"setting": name, "value": value, "from": sources.get(name, DEFAULT),
         "problem": _reason(str(trouble[name]), chosen) if name in trouble else None}
        for name, value in values.items()
    ]  # fmt: skip


def _reason(message: str, chosen: Chosen) -> str:
    """A problem's message for its row: without the file, table and path the row's other columns name."""
    if chosen.profile is not None:
        message = message.removeprefix(f"{chosen.profile.where}: ")
    named = re.match(r"(password_file|tls_ca|--tls-ca|REDIS_SSL_CA_CERTS) (.*?): (?!give )", message)
    return message[named.end():] if named else message


def _settings(chosen: Chosen) -> Settings | None:
    """The library's settings for the server ``chosen`` names (None: the embedded one); BadUsage when wrong."""
    if chosen.sources["url"] == DEFAULT:
        return None
    try:
        return Settings.resolve(chosen.env, url=chosen.url, cluster=chosen.cluster or None,
                                ssl_ca_certs=chosen.tls_ca, username=chosen.username,
                                password=chosen.password)  # fmt: skip
    except ValueError as exc:  # REDIS_PORT=abc, cluster mode with a unix:// URL, say
        raise BadUsage(str(exc)) from None


def _embedded_url() -> str | None:
    """The embedded server's URL (it need not run), or None when it has no place here."""
    try:
        embedded = connection.embedded_module()
        return None if embedded.missing_home() is not None else embedded.url()
    except (CliError, PsctlError):
        return None
