"""Which server a command talks to, and a client for it that cannot hang.

``--url``, else ``REDIS_URL``, else ``REDIS_HOST`` (with ``REDIS_PORT`` and
the rest, read by ``psctl.settings.Settings``) names a server, and then that
server only: when it cannot be reached the command fails (exit 1) and nothing
falls back to the embedded server. With none of them, commands use the
embedded server (``psctl.embedded``), started if needed.

The CLI's client tries to connect once, for at most ``CONNECT_TIMEOUT``
seconds, and never re-sends a command: redis-py's default retries would keep
a user waiting for a dead server far longer, and re-sending ``psadd`` or
``pspull`` after a lost reply could apply it twice.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from psctl.cli import terminal
from psctl.cli.errors import BadUsage, ServerUnavailable
from psctl.settings import Settings, redact_url

CONNECT_TIMEOUT = 2.0  # seconds to establish a connection
DEFAULT_TIMEOUT = 10.0  # seconds to wait for any reply (--timeout)


@dataclass(frozen=True)
class Target:
    settings: Settings
    embedded: bool

    @property
    def where(self) -> str:
        return self.settings.where


def explicit(url: str | None, env: Mapping[str, str]) -> bool:
    """True when the user named a server (``--url``, ``REDIS_URL`` or ``REDIS_HOST``)."""
    return bool(url or env.get("REDIS_URL") or env.get("REDIS_HOST"))


def cluster_wanted(cluster: bool | None, env: Mapping[str, str] | None = None) -> bool:
    return Settings.resolve(os.environ if env is None else env, cluster=cluster or None).cluster


def secrets(url: str | None, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every password the command could come to know, to keep out of its messages."""
    env = os.environ if env is None else env
    found = [env.get("REDIS_PASSWORD")]
    for candidate in (url, env.get("REDIS_URL")):
        if candidate:
            try:
                parts = urlsplit(candidate)
                found.append(parts.password)
                found.extend(parse_qs(parts.query).get("password", []))  # unix://…?password=
            except ValueError:
                pass
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def where(url: str | None, env: Mapping[str, str] | None = None) -> str:
    """The server a command would use, for messages (no password, no I/O)."""
    env = os.environ if env is None else env
    if not explicit(url, env):
        return "the embedded server"
    try:
        shown = Settings.resolve(env, url=url or None).where
    except ValueError:
        shown = redact_url(url or env.get("REDIS_URL", "")) or "the server"
    for secret in secrets(url, env):
        shown = shown.replace(secret, "***")
    return shown


def resolve(url: str | None, cluster: bool | None, env: Mapping[str, str] | None = None) -> Target:
    """The server for this command; starts the embedded one when no other is named."""
    env = os.environ if env is None else env
    try:
        settings = Settings.resolve(env, url=url or None, cluster=cluster or None)
    except ValueError as exc:  # REDIS_PORT=abc, say
        raise BadUsage(str(exc)) from None
    if settings.cluster:
        check_cluster_available()
    if explicit(url, env):
        return Target(settings, embedded=False)
    if settings.cluster:
        raise BadUsage("cluster mode needs a cluster to talk to: give --url or set REDIS_URL")
    embedded = embedded_module()
    found = Target(Settings.resolve(env, url=embedded.ensure_server()), embedded=True)
    if not terminal.stdout_is_terminal():
        sys.stderr.write(f"psctl: using the embedded server at {found.where}; set REDIS_URL to use another\n")
        sys.stderr.flush()
    return found


def embedded_module() -> Any:
    try:
        return importlib.import_module("psctl.embedded")
    except ImportError as exc:
        raise ServerUnavailable(f"the embedded server is not available in this installation ({exc})") from None


def check_cluster_available() -> None:
    if importlib.util.find_spec("psctl.cluster") is None:
        raise BadUsage("--cluster: cluster mode is not available in this version of psctl")


def connect(target: Target, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A psctl client for ``target``: one connection attempt, no re-sent commands,
    ``timeout`` seconds at most for each reply."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {
        "socket_connect_timeout": min(CONNECT_TIMEOUT, timeout),
        "socket_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    settings = target.settings
    if settings.cluster:
        return _cluster_client(settings, options)
    from psctl.client import Redis
    from psctl.settings import sync_pool

    options.update(settings.options)
    return Redis(connection_pool=sync_pool(replace(settings, options=tuple(sorted(options.items())))))


def _cluster_client(settings: Settings, options: dict[str, Any]) -> Any:
    from psctl.cluster import RedisCluster

    options.update(settings.options)
    if settings.url:
        return RedisCluster.from_url(settings.url, **options)
    return RedisCluster(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        ssl=settings.ssl,
        **options,
    )
