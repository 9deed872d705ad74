"""Server URLs: the ones psctl refuses before redis-py reads them, and how a
URL is shown with its password hidden. Used by the settings, the clients'
``from_url`` and the command line."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from psctl.errors import InvalidArgument

SCHEMES = ("redis", "rediss", "unix")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


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
    malformed one)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        shown = f" starting with {scheme!r}" if sep and len(scheme) < 20 else ""
        raise InvalidArgument(f"a server URL starts with redis://, rediss:// or unix://; got one{shown}")
    parts = urlsplit(url)
    if scheme.lower() != "unix":
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
    names = parse_qs(parts.query, keep_blank_values=True)
    if not names:
        return
    from psctl._redispy import url_parameters  # (redis-py: only for a URL with parameters)

    for name in names:
        if name not in url_parameters():
            hint = ": for TLS, use a rediss:// URL" if name.lower() in ("ssl", "tls") else ""
            raise InvalidArgument(f"the URL parameter {name!r} is not one redis-py takes{hint}")
