"""One command's session, handed to the command (rq's ``pass_cli_config``).

The root callback keeps the global options, as given, in ``GlobalOptions``
(``app.py``). ``pass_session`` (and ``options.output_options``, which adds the
output options) makes each command's ``Session`` from them once, before the
command runs: what the command is, the stream it works on, where its output
goes; then hands it to the command as its first parameter, ``session``.
Nothing changes a session once made, except the client it connects when the
command first asks for one. ``errors.py`` finds it (``recorded``) to word an
error.
Nothing here does I/O before a command asks for it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from psctl.cli import connection, profiles
from psctl.cli.global_options import GlobalOptions
from psctl.cli.status import CliError

if TYPE_CHECKING:
    from psctl.cli.output import Output

F = TypeVar("F", bound=Callable[..., Any])
_SESSION = "psctl.session"  # (the key of the command's session in the Click context's shared ``meta``)


class Session:
    """A command's connection, output and identity (for messages): ``command``
    as typed (``psctl add``), the ``stream`` it works on, if one, ``out``
    (None for a command without output options) and ``quiet``.

    Its settings (``profiles.choose``: flags, environment, profile) are chosen
    when it is made; a mistake in them (the config file, a URL) is raised when
    the command first needs them (``settings``, ``client``), so that a command
    that needs no server (``psctl server status``) still runs."""

    def __init__(
        self,
        options: GlobalOptions | None = None,
        *,
        command: str = "psctl",
        stream: str | None = None,
        out: Output | None = None,
        quiet: bool | None = None,
    ) -> None:
        options = options or GlobalOptions()
        self.debug, self.no_embedded, self.as_json = options.debug, options.no_embedded, options.as_json
        self.command, self.stream, self.out = command, stream, out
        self.quiet = options.quiet if quiet is None else quiet
        self._problem: CliError | None = None
        try:
            self._chosen = profiles.choose(options)
        except CliError as exc:  # (kept for when the settings are needed; messages use the flags')
            self._problem = exc
            timeout = options.timeout or connection.DEFAULT_TIMEOUT
            self._chosen = profiles.Chosen(url=options.url, cluster=options.cluster, tls_ca=options.tls_ca,
                                           timeout=timeout, wait_replicas=options.wait_replicas, sources={})  # fmt: skip
        chosen = self._chosen
        self.url, self.cluster, self.tls_ca, self.timeout = chosen.url, chosen.cluster, chosen.tls_ca, chosen.timeout
        self.wait_replicas: int = chosen.wait_replicas or 0
        # what messages may say, worked out without I/O: never a password
        env = chosen.env
        self.secrets: tuple[str, ...] = connection.secrets(self.url, env, chosen.password)
        self.user = connection.user(self.url, env, chosen.username, self.cluster)
        self._where = connection.where(self.url, env, self.cluster)
        self._client: Any = None
        self._others: list[Any] = []
        self._target: Any = None

    @classmethod
    def recorded(cls, ctx: Any) -> Session:
        """For ``errors.py``: the session of the command that ran under ``ctx``, or,
        when none was made (the error came first), one of the global options."""
        found = ctx.meta.get(_SESSION)
        return found if isinstance(found, Session) else cls(GlobalOptions.of(ctx))

    @property
    def settings(self) -> Any:
        """The settings chosen (``profiles.Chosen``); ``BadUsage`` when they are wrong."""
        if self._problem is not None:
            raise self._problem
        return self._chosen

    @property
    def where(self) -> str:
        """The server, for messages: once resolved, the one the client talks to."""
        return self._target.where if self._target is not None else self._where

    def client(self, *, waiting: bool = False) -> Any:
        """The client; ``waiting`` for a pull that blocks (longer reply timeouts)."""
        if self._client is None:
            self._client = self._replicated(connection.connect(self._target_server(), self.timeout, waiting=waiting))
        return self._client

    def another_client(self, *, waiting: bool = False, timeout: float | None = None) -> Any:
        """A second client of the same server (``psctl work`` waits for work on
        one while it acknowledges on the other), closed with the session;
        ``timeout``: its own reply timeout (default: the session's)."""
        client = self._replicated(connection.connect(self._target_server(), timeout or self.timeout, waiting=waiting))
        self._others.append(client)
        return client

    def _replicated(self, client: Any) -> Any:
        """``client``, its writes waiting for ``--wait-replicas`` replicas for up
        to half the reply timeout (the rest is the reply's)."""
        client.ps_replicas = self.wait_replicas
        client.ps_replicas_timeout = self.timeout / 2
        return client

    def _target_server(self) -> Any:
        if self._target is None:
            self._target = self.settings.target(quiet=self.quiet, no_embedded=self.no_embedded)
        return self._target

    def wants_cluster(self) -> bool:
        """Whether the server is a cluster (``ValueError``: REDIS_PORT=abc, say)."""
        return connection.cluster_wanted(self.cluster, self._chosen.env)

    def needed_keys(self) -> str:
        """The keys the command touches, for a message about permissions."""
        from psctl.layout import REGISTRY, stream_keys

        if not self.stream:
            return f"{REGISTRY} and the keys of every stream"
        try:
            cluster = self.wants_cluster()
        except ValueError:  # REDIS_PORT=abc: reported already
            cluster = bool(self.cluster)
        keys = stream_keys(self.stream, cluster=cluster)
        return ", ".join(str(key) for key in (*keys.every, REGISTRY))

    def close(self) -> None:
        for client in (self._client, *self._others):
            if client is not None:
                client.close()


Decide = Callable[..., "tuple[Output | None, bool]"]


def pass_session(command: F) -> F:
    """``command(session, ...)`` as a Typer command: its first parameter is
    its ``Session``, made once before it runs."""
    return passing_session(command)


def passing_session(command: Callable[..., Any], added: Sequence[inspect.Parameter] = (),
                    decide: Decide | None = None) -> Any:  # fmt: skip
    """``command(session, ...)`` as a Typer command taking ``ctx`` instead of
    ``session``, and the ``added`` parameters too: ``decide(ctx, options,
    **added)`` gives the session's output and quietness from them (bad usage
    raised there comes before any I/O)."""
    import typer  # (a command is made: Typer is imported already)

    signature = inspect.signature(command)
    first, *rest = signature.parameters.values()
    names = [parameter.name for parameter in added]

    @functools.wraps(command)
    def with_session(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
        chosen = {name: kwargs.pop(name) for name in names if name in kwargs}
        options = GlobalOptions.of(ctx)
        out, quiet = decide(ctx, options, **chosen) if decide is not None else (None, options.quiet)
        session = Session(options, command=ctx.command_path, stream=ctx.params.get("name"), out=out, quiet=quiet)
        ctx.meta[_SESSION] = session
        ctx.find_root().call_on_close(session.close)
        return command(session, *args, **kwargs)

    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    with_session.__signature__ = signature.replace(parameters=[context, *rest, *added])  # type: ignore[attr-defined]
    annotations = {name: hint for name, hint in command.__annotations__.items() if name != first.name}
    with_session.__annotations__ = {"ctx": typer.Context, **annotations,
                                    **{parameter.name: parameter.annotation for parameter in added}}  # fmt: skip
    return with_session
