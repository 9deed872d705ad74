"""Which server a command talks to, and a client for it that cannot hang.

``--url``, else ``REDIS_URL``, else ``REDIS_HOST`` (with ``REDIS_PORT`` and
the rest, read by ``psctl.settings.Settings``), else the profile's url
(``profiles.py`` chooses) names a server, and then that server only: when it
cannot be reached the command fails (exit 1) and nothing falls back to the
embedded server. With none of them, commands use the embedded server
(``psctl.embedded``), started if needed.

The CLI's client is a psctl client (``psctl.connections``: one connection
attempt, no command ever re-sent) with tighter timeouts: at most
``CONNECT_TIMEOUT`` seconds to connect and ``--timeout`` for each reply, so
that a dead server is an error, never a hang.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from psctl.cli import terminal
from psctl.cli.status import BadUsage, ServerUnavailable
from psctl.settings import Settings
from psctl.urls import redact_url

CONNECT_TIMEOUT = 2.0  # seconds to establish a connection
DEFAULT_TIMEOUT = 10.0  # seconds to wait for any reply (--timeout)
TRUE = {"1", "true", "yes", "on"}  # PSCTL_NO_EMBEDDED
FALSE = {"", "0", "false", "no", "off"}
NAME_ANOTHER = "give --url, set REDIS_URL or use a profile with a url"


class Target:
    """A server to talk to; ``embedded`` when it is psctl's own.

    (A plain class, not a dataclass: one fewer class generated at every start.)
    """

    __slots__ = ("settings", "embedded")

    def __init__(self, settings: Settings, embedded: bool) -> None:
        self.settings = settings
        self.embedded = embedded

    def __repr__(self) -> str:
        return f"Target({self.settings!r}, embedded={self.embedded})"

    @property
    def where(self) -> str:
        return self.settings.where


def explicit(url: str | None, env: Mapping[str, str]) -> bool:
    """True when the user named a server (``--url``, ``REDIS_URL`` or ``REDIS_HOST``)."""
    return bool(url or env.get("REDIS_URL") or env.get("REDIS_HOST"))


def cluster_wanted(cluster: bool | None, env: Mapping[str, str] | None = None) -> bool:
    return Settings.resolve(os.environ if env is None else env, cluster=cluster or None).cluster


def secrets(url: str | None, env: Mapping[str, str] | None = None, password: str | None = None) -> tuple[str, ...]:
    """Every password the command could come to know (``password``: a profile's), to keep out of its messages."""
    env = os.environ if env is None else env
    found = [env.get("REDIS_PASSWORD"), password]
    for candidate in (url, env.get("REDIS_URL")):
        if candidate:
            # read leniently (up to the last "@"): a password may hold an unescaped "#", "?" or "/"
            userinfo, at, _ = candidate.partition("://")[2].rpartition("@")
            if at and ":" in userinfo:
                password = userinfo.partition(":")[2]
                found += [password, unquote(password)]  # as typed, and as sent
            try:
                found.extend(parse_qs(urlsplit(candidate).query).get("password", []))  # unix://…?password=
            except ValueError:
                pass
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def user(
    url: str | None, env: Mapping[str, str] | None = None, username: str | None = None, cluster: bool | None = None
) -> str | None:
    """The user name the command would log in as, when one is given (no I/O).
    ``cluster``: as chosen (a URL naming more nodes with ``addr=`` resolves in
    cluster mode only)."""
    env = os.environ if env is None else env
    try:
        settings = Settings.resolve(env, url=url or None, username=username, cluster=cluster or None)
        if settings.url:
            parts = urlsplit(settings.url)
            in_query = parse_qs(parts.query).get("username", [None])[0]  # unix:///s?username=worker
            return unquote(parts.username or "") or in_query or settings.username
    except ValueError:
        return None
    return settings.username


def where(url: str | None, env: Mapping[str, str] | None = None, cluster: bool | None = None) -> str:
    """The server a command would use, for messages (no password, no I/O);
    ``cluster`` as for ``user``."""
    env = os.environ if env is None else env
    if not explicit(url, env):
        return "the embedded server"
    try:
        return Settings.resolve(env, url=url or None, cluster=cluster or None).where  # (its password hidden)
    except ValueError:  # (read leniently: hide every password it could hold)
        shown = redact_url(url or env.get("REDIS_URL", "")) or "the server"
    for secret in secrets(url, env):
        shown = shown.replace(secret, "***")
    return shown


def resolve(
    url: str | None,
    cluster: bool | None,
    env: Mapping[str, str] | None = None,
    tls_ca: str | None = None,
    quiet: bool = False,
    no_embedded: bool = False,
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca_from: str = "--tls-ca",
) -> Target:
    """The server for this command; starts the embedded one when no other is
    named, unless ``no_embedded`` (or ``PSCTL_NO_EMBEDDED``) forbids it or the
    user's HOME (or XDG_STATE_HOME) is not a folder of their own: then no
    server is an error (a service or a cron job that lost its REDIS_URL must
    fail, not write into a fresh private server).

    Using the embedded server is said on stderr: always when stderr is not a
    terminal (a cron mail or a log, where a job that lost its REDIS_URL must
    be noticed) unless ``quiet``; and whenever this command started the
    server, ``quiet`` or not. ``username``, ``password`` and ``tls_ca`` (named
    by ``tls_ca_from`` in messages): a profile's, or a flag's."""
    env = os.environ if env is None else env
    settings = checked(url, cluster, env, tls_ca, no_embedded, username=username, password=password,
                       tls_ca_from=tls_ca_from)  # fmt: skip
    if explicit(url, env):
        return Target(settings, embedded=False)
    embedded = embedded_module()
    missing = embedded.missing_home()
    if missing is not None:
        raise ServerUnavailable(
            f"no server named, and {missing}, where the embedded server would keep its data: "
            f"{NAME_ANOTHER}; or set HOME or XDG_STATE_HOME to a folder of yours"
        )
    running, started = embedded.start_server()
    # the embedded server has no password: REDIS_USERNAME/REDIS_PASSWORD are another server's
    found = Target(Settings.resolve({}, url=running), embedded=True)
    if started or (not quiet and not terminal.stderr_is_terminal()):
        done = "started" if started else "using"
        sys.stderr.write(f"psctl: {done} the embedded server at {found.where}; to use another, {NAME_ANOTHER}\n")
    problem = embedded.problem()
    if problem is not None:  # reads still work; every change is refused until it can save again
        sys.stderr.write(
            f"psctl: the embedded server runs but {problem}: it refuses every change until it can. "
            f"Free disk space in {embedded.state_dir()}; it resumes by itself\n"
        )
    sys.stderr.flush()
    return found


def checked(
    url: str | None,
    cluster: bool | None,
    env: Mapping[str, str],
    tls_ca: str | None = None,
    no_embedded: bool = False,
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca_from: str = "--tls-ca",
) -> Settings:
    """What ``resolve`` checks before any I/O (``psctl config show`` asks it
    too): the settings of the server named, or of the embedded one when none
    is; ``BadUsage``, or ``ServerUnavailable`` when no server may be used."""
    try:
        settings = Settings.resolve(env, url=url or None, cluster=cluster or None, ssl_ca_certs=tls_ca or None,
                                    username=username, password=password)  # fmt: skip
    except ValueError as exc:  # REDIS_PORT=abc, say
        raise BadUsage(str(exc)) from None
    if settings.cluster:
        check_cluster_available()
    check_tls(settings, tls_ca, explicit(url, env), tls_ca_from)
    if not explicit(url, env):
        if settings.cluster:
            raise BadUsage(f"cluster mode needs a cluster to talk to: {NAME_ANOTHER}")
        forbidden = embedded_forbidden(no_embedded, env)
        if forbidden is not None:
            raise forbidden
    return settings


def embedded_forbidden(no_embedded: bool, env: Mapping[str, str]) -> ServerUnavailable | None:
    """Why a command that names no server fails here (``--no-embedded``,
    ``PSCTL_NO_EMBEDDED``), or None: the embedded server may be used."""
    if no_embedded or no_embedded_env(env):
        given = "--no-embedded" if no_embedded else "PSCTL_NO_EMBEDDED"
        return ServerUnavailable(f"no server named: {NAME_ANOTHER} (the embedded server is off: {given})")
    return None


def no_embedded_env(env: Mapping[str, str]) -> bool:
    """Whether ``PSCTL_NO_EMBEDDED`` forbids the embedded server; a value that
    is neither yes nor no is refused (BadUsage), not taken as no."""
    given = env.get("PSCTL_NO_EMBEDDED", "")
    if given.strip().lower() in TRUE | FALSE:
        return given.strip().lower() in TRUE
    raise BadUsage(f"PSCTL_NO_EMBEDDED={given!r}: expected 1 (or true, yes, on) to forbid the embedded server, "
                   "or 0 (false, no, off)")  # fmt: skip


def embedded_module() -> Any:
    try:
        return importlib.import_module("psctl.embedded")
    except ImportError as exc:
        raise ServerUnavailable(f"the embedded server is not available in this installation ({exc})") from None


def check_tls(settings: Settings, tls_ca: str | None, named: bool, tls_ca_from: str = "--tls-ca") -> None:
    """Refuses a CA file that would not be used, or that cannot be used, before
    any I/O; ``tls_ca_from`` says where ``tls_ca`` was given."""
    if tls_ca and not (named and settings.uses_tls):
        raise BadUsage(
            f"{tls_ca_from} applies to TLS connections only: give a rediss:// URL (or REDIS_SSL=1 with REDIS_HOST), "
            "or leave it out"
        )
    if not (named and settings.uses_tls and settings.ssl_ca_certs):
        return
    given = tls_ca_from if tls_ca else "REDIS_SSL_CA_CERTS"
    import ssl

    try:
        ssl.create_default_context(cafile=settings.ssl_ca_certs)
    except OSError as exc:  # a missing file, or one that holds no certificate (ssl.SSLError)
        reason = exc.strerror or getattr(exc, "reason", None) or str(exc)
        raise BadUsage(f"{given} {settings.ssl_ca_certs}: not a readable CA certificate file ({reason})") from None


def check_cluster_available() -> None:
    if importlib.util.find_spec("psctl.cluster") is None:
        raise BadUsage("--cluster: cluster mode is not available in this version of psctl")


def connect(target: Target, timeout: float = DEFAULT_TIMEOUT, *, waiting: bool = False) -> Any:
    """A psctl client for ``target`` (no retries: ``psctl.connections``) that
    waits at most ``timeout`` seconds for each reply. ``waiting`` (a blocked
    pull) adds the ``POLL`` seconds the server holds each blocked reply, and
    keeps a margin of at least ``POLL`` beyond it."""
    from psctl.operations import POLL
    from psctl.settings import new_client

    per_reply = POLL + max(timeout, POLL) if waiting else timeout
    options = dict(target.settings.options)
    options.update(socket_connect_timeout=min(CONNECT_TIMEOUT, timeout), socket_timeout=per_reply)
    options.setdefault(*driver_info())
    client = new_client(replace(target.settings, options=tuple(sorted(options.items()))))
    # one attempt, always: a command fails fast and says so, and running it
    # again is the retry (safe for reads, ack, release and extend)
    client.ps_retries = 0
    # (what a cluster refuses while it moves a slot or fails over: sent again
    # for up to the reply timeout, not for the library's 20 s)
    client.ps_cluster_wait = min(client.ps_cluster_wait, timeout)
    return client


def driver_info() -> tuple[str, Any]:
    """The connection argument that tells redis-py what ``CLIENT SETINFO``
    reports (``redis-py`` and its version), so that it need not look its own
    version up in the installed packages' metadata: that lookup, done for every
    connection, is ~15 ms of a ~300 ms command on a small machine. The same
    values as redis-py's own defaults; only where they come from differs."""
    import redis

    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # before DriverInfo took over from lib_version
        return "lib_version", redis.__version__
    return "driver_info", DriverInfo(lib_version=redis.__version__)
