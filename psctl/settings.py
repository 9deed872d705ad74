"""Connection settings from keyword arguments and the environment, and one
connection pool per distinct settings.

First match wins: explicit keyword arguments, ``REDIS_URL``, then
``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_DB`` / ``REDIS_USERNAME`` /
``REDIS_PASSWORD`` / ``REDIS_SSL``; ``REDIS_SSL_CA_CERTS`` names a CA file and
``REDIS_CLUSTER=1`` asks for the cluster clients. ``REDIS_USERNAME`` and
``REDIS_PASSWORD`` also apply to a URL that carries no user name or password.
A password is kept out of every ``repr``.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from psctl.errors import InvalidArgument
from psctl.urls import ADDR_ALONE, check_url, redact_url, seed_nodes

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    url: str | None = field(default=None, repr=False)
    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca_certs: str | None = None  # a CA file for rediss:// or REDIS_SSL
    cluster: bool = False
    # further redis-py keyword arguments, as sorted (name, value) pairs so that
    # settings stay hashable
    options: tuple[tuple[str, Any], ...] = ()

    def __repr__(self) -> str:
        shown = [f"url={redact_url(self.url)!r}"] if self.url else []
        for f in fields(self):
            if f.repr and getattr(self, f.name) != f.default:
                shown.append(f"{f.name}={getattr(self, f.name)!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def uses_tls(self) -> bool:
        return self.url.startswith("rediss://") if self.url else self.ssl

    @property
    def where(self) -> str:
        """The server as a URL, for messages: never the password."""
        if self.url:
            return redact_url(self.url)
        host = f"[{self.host}]" if ":" in self.host else self.host  # (an IPv6 address)
        return f"{'rediss' if self.ssl else 'redis'}://{host}:{self.port}/{self.db}"

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, **explicit: Any) -> Settings:
        env = os.environ if env is None else env
        names = {f.name for f in fields(cls)}
        chosen = {k: v for k, v in explicit.items() if k in names and v is not None}
        options = tuple(sorted((k, v) for k, v in explicit.items() if k not in names and v is not None))
        if "cluster" not in chosen and env.get("REDIS_CLUSTER"):
            chosen["cluster"] = env["REDIS_CLUSTER"].lower() in _TRUE
        if "ssl_ca_certs" not in chosen and env.get("REDIS_SSL_CA_CERTS"):
            chosen["ssl_ca_certs"] = env["REDIS_SSL_CA_CERTS"]
        if "url" not in chosen and "host" not in chosen:
            if env.get("REDIS_URL"):
                chosen["url"] = env["REDIS_URL"]
            else:
                chosen.update(_from_env(env))
        if "url" in chosen:
            check_url(chosen["url"])
            chosen.update(_credentials_for(chosen["url"], chosen, env))
            if not chosen.get("cluster") and seed_nodes(chosen["url"])[1]:
                raise InvalidArgument(f"{ADDR_ALONE} ({redact_url(chosen['url'])})")
            if chosen.get("cluster") and chosen["url"].lower().startswith("unix://"):
                shown = redact_url(chosen["url"])
                raise InvalidArgument(f"cluster mode takes a redis:// or rediss:// URL, not a unix:// socket ({shown})")
        return replace(cls(options=options), **chosen)

    def connection_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.options)
        if self.ssl_ca_certs and self.uses_tls:
            kwargs["ssl_ca_certs"] = self.ssl_ca_certs
        if not self.url:
            kwargs.update(host=self.host, port=self.port, db=self.db, username=self.username, password=self.password)
        else:  # a URL's own user name and password win (redis-py reads them over these)
            kwargs.update({k: v for k, v in (("username", self.username), ("password", self.password)) if v})
        return kwargs


def _credentials_for(url: str, chosen: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """``REDIS_USERNAME`` / ``REDIS_PASSWORD`` for a URL that carries no user
    name or password of its own (``redis://host:6379/0``): a password kept out
    of the URL, where ``ps`` and shell histories would show it, is still used.
    A URL's own credentials, and explicit keyword arguments, win."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    found: dict[str, str] = {}
    if "username" not in chosen and env.get("REDIS_USERNAME") and not (parts.username or "username" in query):
        found["username"] = env["REDIS_USERNAME"]
    if "password" not in chosen and env.get("REDIS_PASSWORD") and not (parts.password or "password" in query):
        found["password"] = env["REDIS_PASSWORD"]
    return found


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if env.get("REDIS_HOST"):
        found["host"] = _host(env["REDIS_HOST"])
    for name, key, most in (("REDIS_PORT", "port", 65535), ("REDIS_DB", "db", None)):
        if env.get(name):
            given = env[name]
            if not given.strip().isdigit() or most is not None and int(given) > most:
                upto = f" from 0 to {most}" if most else ""
                raise InvalidArgument(f"{name} must be a whole number{upto}, got {redact_url(given)!r}")
            found[key] = int(given)
    if env.get("REDIS_USERNAME"):
        found["username"] = env["REDIS_USERNAME"]
    if env.get("REDIS_PASSWORD"):
        found["password"] = env["REDIS_PASSWORD"]
    if env.get("REDIS_SSL"):
        found["ssl"] = env["REDIS_SSL"].lower() in _TRUE
    return found


def _host(given: str) -> str:
    """``REDIS_HOST``: a host name or an address (IPv6 without brackets), not a
    URL nor ``user:password@host`` (shown with its password hidden)."""
    odd = any(c in given for c in "@/?#[]") or any(c.isspace() for c in given)
    if ":" in given and not odd:
        import ipaddress

        try:
            ipaddress.IPv6Address(given)
        except ValueError:
            odd = True
    if odd:
        raise InvalidArgument(
            f"REDIS_HOST {redact_url(given)!r} is not a host name or address: "
            "a URL goes in REDIS_URL, a port in REDIS_PORT, a password in REDIS_PASSWORD"
        )
    return given


_lock = threading.Lock()
_sync_pools: dict[Settings, Any] = {}
_sync_clusters: dict[Settings, Any] = {}
# asyncio connections belong to the event loop that made them: one per loop
_async_pools: weakref.WeakKeyDictionary[Any, dict[Settings, Any]] = weakref.WeakKeyDictionary()
_async_clusters: weakref.WeakKeyDictionary[Any, dict[Settings, Any]] = weakref.WeakKeyDictionary()


def _shared(cache: dict[Settings, Any], settings: Settings, make: Callable[[], Any]) -> Any:
    with _lock:
        found = cache.get(settings)
        if found is None:
            found = cache[settings] = make()
        return found


def _shared_in_loop(
    caches: weakref.WeakKeyDictionary[Any, dict[Settings, Any]], settings: Settings, make: Callable[[], Any]
) -> Any:
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop to tie it to: not shared
        return make()
    with _lock:
        cache = caches.setdefault(loop, {})
    return _shared(cache, settings, make)


def sync_pool(settings: Settings) -> Any:
    import redis

    return _shared(_sync_pools, settings, lambda: make_pool(settings, redis))


def async_pool(settings: Settings) -> Any:
    import redis.asyncio

    return _shared_in_loop(_async_pools, settings, lambda: make_pool(settings, redis.asyncio))


def sync_cluster(settings: Settings) -> Any:
    """One ``psctl.RedisCluster`` per settings: it keeps a pool per node itself."""
    from psctl.cluster import RedisCluster

    return _shared(_sync_clusters, settings, lambda: make_cluster(settings, RedisCluster))


def async_cluster(settings: Settings) -> Any:
    from psctl.cluster import AsyncRedisCluster

    return _shared_in_loop(_async_clusters, settings, lambda: make_cluster(settings, AsyncRedisCluster))


def new_client(settings: Settings) -> Any:
    """A sync psctl client for ``settings`` with a pool (or, for a cluster,
    pools) of its own, shared with no one: the CLI's, whose settings carry
    one command's timeouts."""
    if settings.cluster:
        from psctl.cluster import RedisCluster

        return make_cluster(settings, RedisCluster)
    import redis

    from psctl.client import Redis

    return Redis(connection_pool=make_pool(settings, redis))


def make_cluster(settings: Settings, cls: Any) -> Any:
    """A cluster client of class ``cls`` (sync or async) for ``settings``."""
    kwargs = settings.connection_kwargs()
    kwargs.pop("db", None)  # a cluster has only database 0
    if settings.url:
        return cls.from_url(settings.url, **kwargs)
    return cls(ssl=settings.ssl, **kwargs)


def make_pool(settings: Settings, module: Any) -> Any:
    """A connection pool of ``module`` (``redis`` or ``redis.asyncio``) for
    ``settings``, with psctl's safe defaults for whatever they leave unset."""
    from psctl.connections import safe_kwargs

    scheme = urlsplit(settings.url).scheme if settings.url else "rediss" if settings.ssl else "redis"
    timed = module.__name__ == "redis"  # sync pools only
    kwargs = safe_kwargs(settings.connection_kwargs(), module.retry.Retry, scheme if timed else None)
    if settings.url:
        return module.ConnectionPool.from_url(settings.url, **kwargs)
    if settings.ssl:
        kwargs["connection_class"] = module.SSLConnection
    return module.ConnectionPool(**kwargs)
