"""One command's session: the global options, the client once the command
asks for it, where its output goes, and what it is (for messages).

The root callback makes the session (``app.py``); ``output_options`` decides
its output; the commands ask it for a client; ``errors.CatchingGroup`` reads
it to word an error. Nothing here does I/O before a command asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psctl.cli import connection

if TYPE_CHECKING:
    import typer

    from psctl.cli.output import Output


class Session:
    def __init__(
        self,
        url: str | None = None,
        cluster: bool | None = None,
        timeout: float = connection.DEFAULT_TIMEOUT,
        debug: bool = False,
        tls_ca: str | None = None,
        *,
        format: str | None = None,
        as_json: bool = False,
        as_table: bool = False,
        quiet: bool = False,
        no_embedded: bool = False,
    ) -> None:
        self.url, self.cluster, self.timeout, self.debug, self.tls_ca = url, cluster, timeout, debug, tls_ca
        # the output options given before the command (a command's own win)
        self.format, self.as_json, self.as_table, self.quiet = format, as_json, as_table, quiet
        self.no_embedded = no_embedded
        # what messages may say, worked out without I/O: never a password
        self.where = connection.where(url)
        self.secrets: tuple[str, ...] = connection.secrets(url)
        self.user = connection.user(url)
        self.command = "psctl"  # the command that runs, as typed (for messages)
        self.stream: str | None = None  # the stream it works on, if one
        self.out: Output | None = None  # set by output_options
        self._client: Any = None
        self._others: list[Any] = []
        self._target: Any = None

    @classmethod
    def of(cls, ctx: typer.Context) -> Session:
        """The session of the command ``ctx`` belongs to, told which command runs
        and on which stream."""
        found = ctx.find_root().obj
        if not isinstance(found, Session):  # a context made without the root callback (tests, completion)
            found = ctx.find_root().obj = cls()
        found.command = ctx.command_path
        found.stream = ctx.params.get("name")
        return found

    def client(self, *, waiting: bool = False) -> Any:
        """The client; ``waiting`` for a pull that blocks (longer reply timeouts)."""
        if self._client is None:
            self._client = connection.connect(self._target_server(), self.timeout, waiting=waiting)
        return self._client

    def another_client(self, *, waiting: bool = False, timeout: float | None = None) -> Any:
        """A second client of the same server (``psctl work`` waits for work on
        one while it acknowledges on the other), closed with the session;
        ``timeout``: its own reply timeout (default: the session's)."""
        client = connection.connect(self._target_server(), timeout or self.timeout, waiting=waiting)
        self._others.append(client)
        return client

    def _target_server(self) -> Any:
        if self._target is None:
            self._target = connection.resolve(
                self.url, self.cluster, tls_ca=self.tls_ca, quiet=self.quiet, no_embedded=self.no_embedded
            )
            self.where = self._target.where
        return self._target

    def needed_keys(self) -> str:
        """The keys the command touches, for a message about permissions."""
        from psctl.layout import REGISTRY, stream_keys

        if not self.stream:
            return f"{REGISTRY} and the keys of every stream"
        try:
            cluster = connection.cluster_wanted(self.cluster)
        except ValueError:  # REDIS_PORT=abc: reported already
            cluster = bool(self.cluster)
        keys = stream_keys(self.stream, cluster=cluster)
        return ", ".join(str(key) for key in (*keys.every, REGISTRY))

    def close(self) -> None:
        for client in (self._client, *self._others):
            if client is not None:
                client.close()
