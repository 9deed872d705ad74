"""The options given before the command (or after it: ``group.hoisted``),
kept in the root context for every command, its session and the choice of
settings (``profiles.choose``)."""

from __future__ import annotations

from typing import Any


class GlobalOptions:
    """The options given before (or after: ``group.hoisted``) the command;
    ``timeout`` and ``wait_replicas`` None when not given; ``given``: whether
    ``timeout``, ``wait_replicas`` and ``profile`` came from a flag or the
    environment (``profiles.FLAG``, ``ENV``)."""

    __slots__ = ("url", "cluster", "timeout", "debug", "tls_ca", "format", "as_json", "as_table", "quiet",
                 "no_embedded", "profile", "wait_replicas", "given")  # fmt: skip

    def __init__(
        self,
        url: str | None = None,
        cluster: bool | None = None,
        timeout: float | None = None,
        debug: bool = False,
        tls_ca: str | None = None,
        *,
        format: str | None = None,
        as_json: bool = False,
        as_table: bool = False,
        quiet: bool = False,
        no_embedded: bool = False,
        profile: str | None = None,
        wait_replicas: int | None = None,
        given: dict[str, str] | None = None,
    ) -> None:
        self.url, self.cluster, self.timeout, self.debug, self.tls_ca = url, cluster, timeout, debug, tls_ca
        # the output options given before the command (a command's own win)
        self.format, self.as_json, self.as_table, self.quiet = format, as_json, as_table, quiet
        self.no_embedded, self.profile, self.given = no_embedded, profile, given or {}
        self.wait_replicas = wait_replicas

    @classmethod
    def of(cls, ctx: Any) -> GlobalOptions:
        """The global options of the command line ``ctx`` belongs to (the defaults
        for a context made without the root callback: completion, a test)."""
        found = ctx.find_root().obj
        return found if isinstance(found, GlobalOptions) else cls()
