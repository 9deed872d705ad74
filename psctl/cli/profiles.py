"""The config file, its profiles, and the settings a command uses, each with
where it came from (``psctl config show``).

The file is ``$XDG_CONFIG_HOME/psctl/config.toml`` (``~/.config/psctl/config.toml``)::

    [default]                     # used when no profile is named
    timeout = "5s"
    wait_replicas = 1             # every write waits for a replica (--wait-replicas)

    [profiles.prod]               # --profile prod, or PSCTL_PROFILE=prod
    url = "rediss://prod-redis:6380/0"
    username = "worker"
    password_file = "~/.config/psctl/prod.password"

Keys: ``url``, ``cluster``, ``timeout``, ``wait_replicas``, ``username``,
``password_file``, ``tls_ca``. A named profile is read on its own: it does not inherit from
``[default]``. A password is never in the file (a ``password`` key, or one in
the ``url``, is refused): ``password_file`` names a file of the user's own
that only they can read.

Each setting comes from the first of: a flag, the environment, the profile,
the default (the embedded server; a 10 s reply timeout; no wait for replicas). The server's
settings (``url``, ``username``, the password, ``tls_ca``, ``cluster``) are
one group: the one place that names the server (``--url``; else
``REDIS_URL`` or ``REDIS_HOST``; else the profile's ``url``) gives them all,
and a flag given (``--cluster``, ``--tls-ca``) still wins. So a ``--url`` or
a ``REDIS_URL`` never receives a profile's user name or password, and a
profile's server never receives ``REDIS_USERNAME``, ``REDIS_PASSWORD``,
``REDIS_SSL_CA_CERTS`` or ``REDIS_CLUSTER``, which go with ``REDIS_URL``.

The file is read when a command runs (its ``Session`` is made), never for
``--help``, ``--version`` or a completion script; ``tomllib`` is imported
then. A TAB reads it for the profiles' names, and for the server whose
stream names it offers.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psctl.cli import connection
from psctl.cli.status import BadUsage, CliError
from psctl.durations import MAX_SECONDS
from psctl.urls import check_url, redact_url
from psctl.wording import typed

if TYPE_CHECKING:
    from psctl.cli.global_options import GlobalOptions

KEYS = ("url", "cluster", "timeout", "wait_replicas", "username", "password_file", "tls_ca")
SERVER_KEYS = ("cluster", "username", "password_file", "tls_ca")  # (those that go with a url)
SERVER_ENV = ("REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_SSL_CA_CERTS", "REDIS_CLUSTER")
LEAST_TIMEOUT = 0.01  # seconds
EXPECTED_URL = "expected redis://HOST[:PORT][/DB], rediss://… or unix:///PATH"
# the keys that hold no text: what each may be, and how a message says so
_KINDS: dict[str, tuple[Any, str]] = {
    "cluster": (bool, "true or false"), "timeout": ((str, int, float), 'a DURATION ("5s")'),
    "wait_replicas": (int, "a whole number from 0"),
}  # fmt: skip
FLAG, ENV, DEFAULT = "flag", "env", "default"  # (what ``GlobalOptions.given`` says of an option)


def config_path() -> Path | None:
    """Where the config file is (whether or not it exists); None without a home."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is ignored
        try:
            base = str(Path.home() / ".config")
        except RuntimeError:
            return None
    return Path(base) / "psctl" / "config.toml"


class Profile:
    """A table of the config file: its ``name`` (None: ``[default]``), where it
    is (``origin``, for messages and ``config show``), its checked ``values``."""

    __slots__ = ("name", "path", "values")

    def __init__(self, name: str | None, path: Path, values: Mapping[str, Any]) -> None:
        self.name, self.path, self.values = name, path, values

    @property
    def origin(self) -> str:
        """Where its settings come from, for ``config show`` (whose ``file`` row names the file)."""
        return f"profile {self.name or 'default'}"

    @property
    def where(self) -> str:
        """The file and the table, for messages: ``FILE: [profiles.NAME]``."""
        return f"{self.path}: {self._table}"

    def password(self) -> str | None:
        """The password its ``password_file`` holds (read now), or None."""
        given = self.values.get("password_file")
        if given is None:
            return None
        path = self._path(given)
        where = f"{self.where}: password_file {path}"
        try:
            with open(path, "rb") as file:
                mode = os.fstat(file.fileno()).st_mode
                if stat.S_IMODE(mode) & 0o077:
                    raise BadUsage(
                        f"{where}: others may read it (mode {stat.S_IMODE(mode):04o}): "
                        f"make it yours alone (chmod 600 {path})"
                    )
                text = file.read().decode("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise BadUsage(f"{where}: cannot read it ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise BadUsage(f"{where}: not UTF-8 text") from None
        if not text:
            raise BadUsage(f"{where}: the file is empty")
        if "\n" in text or "\r" in text:
            raise BadUsage(f"{where}: the file holds more than one line: give the password alone")
        return text

    def tls_ca(self) -> str | None:
        given = self.values.get("tls_ca")
        return None if given is None else str(self._path(given))

    @property
    def _table(self) -> str:
        return f"[profiles.{self.name}]" if self.name else "[default]"

    def _path(self, given: str) -> Path:
        """A path of the file: ``~`` is the home folder, a relative one is the config file's folder's."""
        try:
            return self.path.parent / Path(given).expanduser()
        except RuntimeError:  # ~ with no home folder to stand for
            raise BadUsage(f"{self.where}: {given}: no home folder for ~ to stand for") from None


def load(path: Path, name: str | None, named_by: str | None) -> Profile | None:
    """The profile ``name`` (None: ``[default]``, if any) of the config file
    at ``path``, named as ``named_by`` says (``--profile prod``,
    ``PSCTL_PROFILE=prod``); the whole file checked first."""
    tables = _read(path)
    if tables is None:
        if name is not None:
            raise BadUsage(f"{named_by}: no such profile: there is no config file ({path})")
        return None
    profiles = _checked(path, tables)
    if name is None:
        return profiles.get(None)
    if name not in profiles:
        known = ", ".join(sorted({n or "default" for n in profiles})) or "none"
        raise BadUsage(f"{named_by}: no such profile in {path} (profiles: {known})")
    return profiles[name]


def _read(path: Path) -> dict[str, Any] | None:
    """The config file's tables; None when there is no file."""
    import tomllib

    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        if path.is_symlink():  # a link to nothing is a mistake, not "no file"
            raise BadUsage(f"{path}: the config file is a link to {os.readlink(path)}, which does not exist") from None
        return None
    except OSError as exc:
        raise BadUsage(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        what = re.sub(r"\s*\(at line.*?\)", "", str(exc)) or "not valid TOML"
        at = f":{found[1]}" if found else ""
        raise BadUsage(f"{path}{at}: not valid TOML: {what}") from None
    except UnicodeDecodeError:
        raise BadUsage(f"{path}: not valid TOML: not UTF-8 text") from None


def _checked(path: Path, tables: Mapping[str, Any]) -> dict[str | None, Profile]:
    """Every profile of the file (``[default]`` under None, and as "default"
    when named), each checked; ``BadUsage`` naming the first mistake."""
    for key in tables:
        if key not in ("default", "profiles"):
            raise BadUsage(f"{path}: unknown table or key {key!r}: the file holds [default] and [profiles.NAME] tables")
    found: dict[str | None, Profile] = {}
    named = tables.get("profiles", {})
    if not isinstance(named, dict):
        raise BadUsage(f"{path}: profiles must be tables, [profiles.NAME]")
    if "default" in named:
        raise BadUsage(f"{path}: [profiles.default]: write it as [default]")
    if "default" in tables:
        found[None] = found["default"] = _profile(path, None, tables["default"])
    for name, values in named.items():
        found[name] = _profile(path, name, values)
    return found


def _profile(path: Path, name: str | None, values: Any) -> Profile:
    table = f"[profiles.{name}]" if name else "[default]"
    where = f"{path}: {table}"
    if not isinstance(values, dict):
        raise BadUsage(f"{where} must be a table of settings")
    for key, value in values.items():
        if key == "password":
            raise BadUsage(f"{where}: no password in the config file: put it in a file only you can read, "
                           "and name that file with password_file")  # fmt: skip
        if key not in KEYS:
            raise BadUsage(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
        expected = _KINDS.get(key, (str, "text"))
        if isinstance(value, bool) and key != "cluster" or not isinstance(value, expected[0]) or (
            key == "wait_replicas" and value < 0
        ):
            kind = expected[1]
            raise BadUsage(f"{where}: {key} must be {kind}, got {_shown(value)}")
        if isinstance(value, str) and not value:
            raise BadUsage(f"{where}: {key} is empty")
    checked = dict(values)
    if "timeout" in values:
        checked["timeout"] = timeout_seconds(values["timeout"], f"{where}: timeout")
    if "url" in values:
        checked_url(values["url"], f"{where}: url")
        if _url_password(values["url"]):
            raise BadUsage(f"{where}: url {redact_url(values['url'])!r} holds a password: take it out of the url, "
                           "put it in a file only you can read, and name that file with password_file")  # fmt: skip
    else:
        lone = [key for key in SERVER_KEYS if key in values]
        if lone:
            raise BadUsage(f"{where}: {', '.join(lone)} without a url: they go with the server the url names")
    return Profile(name, path, checked)


def _shown(value: Any) -> str:
    """A TOML value, for a message: text quoted as the other messages quote
    what was given, with any password it could hold hidden; a number or a
    boolean as it is typed (``wording.typed``); the kind of an array or a
    table (which could hold a password), not its contents."""
    if isinstance(value, str):
        return repr(redact_url(value))
    if isinstance(value, (bool, int, float)):
        return typed(value)
    return "an array" if isinstance(value, list) else "a table" if isinstance(value, dict) else "a date or time"


def _url_password(url: str) -> bool:
    return redact_url(url) != url


def timeout_seconds(value: Any, given: str) -> float:
    """A timeout (a DURATION, or a number of seconds) as seconds, at least ``LEAST_TIMEOUT``."""
    if isinstance(value, str):
        from psctl.durations import parse_duration

        try:
            seconds = parse_duration(value).total_seconds()
        except ValueError as exc:  # (it shows the value: a password there is hidden too)
            raise BadUsage(f"{given}: {str(exc).replace(repr(value), _shown(value))}") from None
    else:
        seconds = float(value)
    if not LEAST_TIMEOUT <= seconds <= MAX_SECONDS:
        raise BadUsage(f"{given} must be from {LEAST_TIMEOUT} to {MAX_SECONDS:,} seconds, got {typed(seconds)}")
    return seconds


def profile_names(incomplete: str) -> list[str]:
    """The profiles of the config file starting with ``incomplete`` (for a TAB:
    none when the file is missing or wrong)."""
    path = config_path()
    try:
        tables = _read(path) if path is not None else None
        found = {name or "default" for name in _checked(path, tables)} if path and tables else set()
    except (CliError, OSError, ValueError):
        return []
    return sorted(name for name in found if name.startswith(incomplete))


# -- the server's URL -------------------------------------------------------------------------

_SCHEME_MISTYPED = re.compile(r"(?i)(rediss?|unix)(?::/|/{1,3})(.*)")
_OTHER_SCHEMES = ("tcp", "http", "https", "redis-socket")


def checked_url(url: str, given: str) -> None:
    """Refuses a URL psctl cannot use, saying what was ``given`` (``--url``,
    ``REDIS_URL``, a profile's url) as it was given, its password hidden, and
    what is expected (BadUsage)."""
    from psctl.errors import InvalidArgument

    try:
        check_url(url)
    except InvalidArgument as exc:
        shown = redact_url(url)
        scheme, sep, _ = url.partition("://")
        if sep and scheme.lower() in ("redis", "rediss", "unix"):
            raise BadUsage(f"{given} {shown!r}: {exc}") from None
        suggested = _suggested(shown)
        hint = f" (did you mean {suggested}?)" if suggested else ""
        what = "a server URL" if sep else "a URL"
        raise BadUsage(f"{given} {shown!r} is not {what}; {EXPECTED_URL}{hint}") from None


def _suggested(shown: str) -> str | None:
    """What a URL without its scheme, or with a scheme mistyped, was meant to be."""
    scheme, sep, rest = shown.partition("://")
    if sep:
        return f"redis://{rest}" if scheme.lower() in _OTHER_SCHEMES and rest else None
    mistyped = _SCHEME_MISTYPED.fullmatch(shown)
    if mistyped and mistyped[2]:
        kind, rest = mistyped[1].lower(), mistyped[2]
        return f"unix:///{rest.lstrip('/')}" if kind == "unix" else f"{kind}://{rest}"
    if shown.lower().startswith("unix:"):  # a socket, by a path that is not a full one: nothing to suggest
        return None
    if shown.startswith("/"):
        return f"unix://{shown}"
    if shown and not any(c.isspace() for c in shown):
        return f"redis://{shown}"
    return None


# -- the settings a command uses ----------------------------------------------------------------


class Chosen:
    """The settings a command uses and, by setting, where each came from
    (``sources``): what ``connection.resolve`` is given, ``env`` the
    environment it reads (a profile's server: without ``SERVER_ENV``);
    ``problems``: by setting, why it cannot be used (a password file that
    cannot be read), raised when the server is needed, shown by ``config show``."""

    __slots__ = ("url", "cluster", "tls_ca", "timeout", "wait_replicas", "username", "password", "env", "profile",
                 "sources", "problems")  # fmt: skip

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, values.get(name))
        self.problems = self.problems or {}

    @property
    def tls_ca_from(self) -> str:
        """How the CA file was given, for messages: ``--tls-ca``, or the profile's file and table."""
        from_flag = self.sources.get("tls_ca", "").startswith(FLAG)
        return "--tls-ca" if from_flag or self.profile is None else f"{self.profile.where}: tls_ca"

    def target(self, *, quiet: bool = False, no_embedded: bool = False) -> Any:
        """The server (``connection.Target``): ``connection.resolve`` given these settings."""
        for problem in self.problems.values():
            raise problem
        return connection.resolve(self.url, self.cluster, self.env, quiet=quiet, **self._server(no_embedded))

    def check(self, *, no_embedded: bool = False) -> None:
        """What ``target`` checks before any I/O (``connection.checked``), and nothing more."""
        connection.checked(self.url, self.cluster, self.env, **self._server(no_embedded))

    def _server(self, no_embedded: bool) -> dict[str, Any]:
        return {"tls_ca": self.tls_ca, "no_embedded": no_embedded, "username": self.username,
                "password": self.password, "tls_ca_from": self.tls_ca_from}  # fmt: skip


def choose(options: GlobalOptions, env: Mapping[str, str] | None = None) -> Chosen:
    """The settings for a command given ``options``: flags, then ``env``
    (default ``os.environ``), then the profile, then the defaults (see the
    module's docstring). ``BadUsage`` for a bad config file, profile or URL."""
    env = os.environ if env is None else env
    given = options.given
    profile_name = options.profile
    quoted = shlex.quote(profile_name or "")
    named_by = f"PSCTL_PROFILE={quoted}" if given.get("profile") == ENV else f"--profile {quoted}"
    if profile_name == "":
        raise BadUsage(f"{named_by}: expected a profile's NAME (the file's [default] is used when none is named)")
    path = config_path()
    profile = None
    if path is not None:
        profile = load(path, profile_name, named_by)
    elif profile_name is not None:
        raise BadUsage(f"{named_by}: no such profile: no home folder to find the config file in")
    sources: dict[str, str] = {}
    values: dict[str, Any] = {"profile": profile, "env": env}
    sources["profile"] = _named_by(given.get("profile"), "--profile", "PSCTL_PROFILE") if profile_name else (
        profile.origin if profile else DEFAULT)
    for key, flag, variable, default in (
        ("timeout", "--timeout", "PSCTL_TIMEOUT", connection.DEFAULT_TIMEOUT),
        ("wait_replicas", "--wait-replicas", "PSCTL_WAIT_REPLICAS", 0),
    ):
        values[key], sources[key] = _setting(options, profile, key, flag, variable, default)
    if options.url:
        checked_url(options.url, "--url")
        values["url"], server = options.url, "flag --url"
    elif env.get("REDIS_URL"):
        checked_url(env["REDIS_URL"], "REDIS_URL")
        server = "env REDIS_URL"
    elif env.get("REDIS_HOST"):
        server = "env REDIS_HOST"
    elif profile is not None and "url" in profile.values:
        server = profile.origin
    else:
        server = DEFAULT
    sources["url"] = server
    if profile is not None and server == profile.origin:
        _from_profile(values, sources, profile, env)
    else:
        _from_environment(values, sources, server, env)
    if options.cluster:
        values["cluster"], sources["cluster"] = True, "flag --cluster"
    if options.tls_ca:
        values["tls_ca"], sources["tls_ca"] = options.tls_ca, "flag --tls-ca"
    values["sources"] = sources
    return Chosen(**values)


def _setting(
    options: GlobalOptions, profile: Profile | None, key: str, flag: str, variable: str, default: Any
) -> tuple[Any, str]:
    """A setting that is not the server's (``timeout``, ``wait_replicas``) and
    where it came from: its flag or variable, else the profile, else ``default``."""
    value = getattr(options, key)
    if value is not None:
        return value, _named_by(options.given.get(key), flag, variable)
    if profile is not None and key in profile.values:
        return profile.values[key], profile.origin
    return default, DEFAULT


def _named_by(given: str | None, flag: str, variable: str) -> str:
    return f"flag {flag}" if given == FLAG else f"env {variable}" if given == ENV else DEFAULT


def _from_profile(values: dict[str, Any], sources: dict[str, str], profile: Profile, env: Mapping[str, str]) -> None:
    """The server's settings from ``profile``, which names it; none from ``SERVER_ENV``."""
    origin = profile.origin
    values["env"] = {name: value for name, value in env.items() if name not in SERVER_ENV}
    values["url"] = profile.values["url"]
    values["cluster"] = profile.values.get("cluster", False)
    values["tls_ca"] = profile.tls_ca()
    values["username"] = profile.values.get("username")
    try:
        values["password"] = profile.password()
    except BadUsage as exc:  # (for when the server is needed: config show shows the rest)
        values["problems"] = {"password": exc}
    for key, source in (("cluster", "cluster"), ("tls_ca", "tls_ca"), ("username", "username"),
                        ("password", "password_file")):  # fmt: skip
        sources[key] = origin if source in profile.values else DEFAULT
    if _user_in_url(values["url"]):
        sources["username"] = origin


def _from_environment(values: dict[str, Any], sources: dict[str, str], server: str, env: Mapping[str, str]) -> None:
    """Where the server's settings come from when a flag or the environment names
    the server (the values: ``psctl.settings.Settings.resolve``, as ever), or none does."""
    url = values.get("url") or env.get("REDIS_URL")
    named = server != DEFAULT

    def source(variable: str, in_url: bool = False) -> str:
        if in_url:
            return server
        return f"env {variable}" if named and env.get(variable) else DEFAULT

    sources["cluster"] = "env REDIS_CLUSTER" if env.get("REDIS_CLUSTER") else DEFAULT
    sources["tls_ca"] = source("REDIS_SSL_CA_CERTS")
    sources["username"] = source("REDIS_USERNAME", bool(url) and _user_in_url(url))
    sources["password"] = source("REDIS_PASSWORD", bool(url) and _url_password(url))


def _user_in_url(url: str) -> bool:
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
        return bool(parts.username) or "username" in parse_qs(parts.query)
    except ValueError:
        return False
