"""Server URLs: the ones psctl refuses before redis-py reads them, how a URL
is shown with its password hidden, and the one parameter psctl reads itself,
``addr`` (more nodes of a cluster to start from). Used by the settings, the
clients' ``from_url`` and the command line."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from psctl.errors import InvalidArgument

SCHEMES = ("redis", "rediss", "unix")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")
_DB_PATH = re.compile(r"/?|/[0-9]+")  # (no path, or the database's number)
# More nodes of a cluster to start from, as go-redis reads them:
# redis://HOST:PORT?addr=HOST2:PORT2&addr=HOST3:PORT3
ADDR = "addr"
ADDR_ALONE = (
    "the URL parameter 'addr' names more nodes of a Redis Cluster: it takes cluster mode "
    "(--cluster, REDIS_CLUSTER=1, a profile's cluster = true; RedisCluster, cluster=True)"
)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``: whatever follows the
    first ``:`` of the user information (up to the last ``@``), so that even a
    password holding an unescaped ``#``, ``?`` or ``/`` is hidden whole, and a
    ``password=`` query parameter; the same in text meant as a URL that has
    no ``://`` (``user:password@host``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # (not a URL: "user:password@host", say, given without its scheme)
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{host}"
    return _QUERY_PASSWORD.sub(r"\1***", f"{scheme}{sep}{rest}")


def check_url(url: str) -> None:
    """Refuses a URL redis-py would misread or fail on, with a message that
    holds no part of it beyond its scheme (a password could be anywhere in a
    malformed one): a database that is not a number (redis-py would use
    database 0, or read ``/0/5`` as 5), a bad IPv6 host, a unix:// URL with
    no path or with a host, an unknown query parameter or one whose value
    redis-py cannot read (``?db=x``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        shown = f" starting with {scheme!r}" if sep and len(scheme) < 20 else ""
        raise InvalidArgument(f"a server URL starts with redis://, rediss:// or unix://; got one{shown}")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # "redis://[::1/0", "redis://[not-an-address]"
        raise InvalidArgument("the URL's host is not a host name, nor an IPv6 address in brackets ([::1])") from None
    if scheme.lower() == "unix":
        if hostname:
            raise InvalidArgument(
                "a unix:// URL has no host, only the socket's full path: unix:///PATH (three slashes)"
            )
        if parts.path in ("", "/"):
            raise InvalidArgument("a unix:// URL names the socket by its full path, unix:///PATH; this one has none")
    else:
        userinfo, at, _ = rest.rpartition("@")
        if at and "@" not in parts.netloc or any(c in userinfo for c in "/?#"):
            raise InvalidArgument(
                "the URL's user name or password holds a character a URL reserves ('/', '?', '#' or '@'): "
                "write them as %2F, %3F, %23 and %40, or give the password in REDIS_PASSWORD"
            )
        try:
            parts.port
        except ValueError:
            raise InvalidArgument("the URL's port is not a number from 0 to 65535") from None
        if not _DB_PATH.fullmatch(parts.path):
            raise InvalidArgument(
                "the URL's path is the database's number, alone (redis://HOST:PORT/DB); this one is not"
            )
    names = parse_qs(parts.query, keep_blank_values=True)
    if not names:
        return
    from psctl._redispy import url_parameter_readable, url_parameters  # (redis-py: only for a URL with parameters)

    for name, values in names.items():
        if name == ADDR:
            if scheme.lower() == "unix":
                raise InvalidArgument("the URL parameter 'addr' names more nodes of a Redis Cluster: not for a unix:// URL")
            for value in values:
                _node(value)
            continue
        if name not in url_parameters():
            hint = ": for TLS, use a rediss:// URL" if name.lower() in ("ssl", "tls") else ""
            raise InvalidArgument(f"the URL parameter {name!r} is not one redis-py takes{hint}")
        if not url_parameter_readable(name, values[0]):
            expected = ": the database's number" if name == "db" else ""
            raise InvalidArgument(f"the URL parameter {name!r} has a value redis-py cannot read{expected}")


def seed_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A checked URL without its ``addr`` parameters, and the nodes a cluster
    client starts from: the URL's own host (as redis-py reads it), then each
    ``addr``; none without an ``addr``. redis-py reads one host from a URL and
    tries each of these until one answers. Names and values are read as
    ``parse_qs`` reads them (``%61ddr`` is ``addr``, ``+`` a space), as
    redis-py would; split by hand, as ``urlunsplit`` would turn
    ``redis://?…`` into ``redis:``."""
    rest, hash_, fragment = url.partition("#")
    base, question, query = rest.partition("?")
    kept: list[str] = []
    named: list[str] = []
    for piece in query.split("&") if question else ():
        name, _, value = piece.partition("=")
        if unquote_plus(name) == ADDR:
            named.append(unquote_plus(value))
        else:
            kept.append(piece)
    if not named:
        return url, []
    bare = base + (f"?{'&'.join(kept)}" if kept else "") + hash_ + fragment
    parts = urlsplit(base)
    own = [(unquote(parts.hostname), 6379 if parts.port is None else parts.port)] if parts.hostname else []
    return bare, [*own, *(_node(value) for value in named)]


_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _node(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:7000`` for IPv6), as the URL parameter ``addr`` gives a node."""
    try:
        parts = urlsplit(f"//{value}")
        host, port = parts.hostname, parts.port
        if host and ":" in host:
            ipaddress.IPv6Address(host)
        elif host and not _HOST_NAME.fullmatch(host):
            host = None
    except ValueError:
        host = port = None
    if not host or not port or "@" in value or parts.path or parts.query or parts.fragment:
        raise InvalidArgument("the URL parameter 'addr' is a node's HOST:PORT ([::1]:7000 for IPv6); one is not")
    return host, port
