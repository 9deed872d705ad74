"""``psctl work``: runs a command for every item of a stream, or of
several, with weights (``psctl work a b:3 c -- CMD``), on
leases; the engine is ``psctl.work``. Here: the options, the signals, the
status line, the summary and the exit status."""

import errno
import os
import shutil
import signal
import sys
import time
from collections import deque
from datetime import timedelta
from typing import Annotated, Any

import typer

from psctl import defaults
from psctl.cli import terminal
from psctl.cli.durations import duration_option, shown_duration
from psctl.cli.group import DASHES, StreamsThenCommand
from psctl.cli.options import ExpireIn, Gate, NoExpire, Streams, complete_names, cool_down
from psctl.cli.session import Session, pass_session
from psctl.cli.signals import WORK_STATUS, unstoppable
from psctl.cli.status import BadUsage, ExitStatus
from psctl.wording import counted

commands = typer.Typer()

REDRAW = 0.25  # seconds between two draws of the status line
SOME_FAILED = 123  # as xargs: a command failed (its item was given back, or is dead)
RATE_WINDOW = 5.0  # seconds the status line's items/s is measured over


def _complete_streams_then_command(ctx: typer.Context, incomplete: str) -> list[str]:
    """Before --, one more stream's name (the registered ones not given yet); after it, none (the shell's files)."""
    if ctx.meta.get(DASHES):
        return []
    given = {ctx.params.get("name"), *(ctx.params.get("command") or ())}
    return [name for name in complete_names(ctx, incomplete) if name not in given]


class WorkCommand(StreamsThenCommand):
    # (--timeout after work was once the command's time limit: an old cron line is refused, not reread)
    refused = {
        "--timeout": "work takes --time-limit D for the command's time limit; --timeout (the server's reply "
        "timeout) goes before work: psctl --timeout D work ...",
    }


@commands.command(cls=WorkCommand)
@pass_session
def work(
    session: Session,
    name: Streams,
    command: Annotated[
        list[str],
        typer.Argument(
            metavar="-- CMD [ARG...]", show_default=False, autocompletion=_complete_streams_then_command,
            help="The command to run for each item (no shell: give one, sh -c '...', if you need it).",
        ),
    ],
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", metavar="N", min=1, max=1000, help="Run up to N commands at once.")
    ] = 1,
    lease: Annotated[
        timedelta | None,
        duration_option(
            "--lease", default=shown_duration(defaults.LEASE),
            help="How long a lease holds its items; extended while their commands run.",
        ),
    ] = None,
    time_limit: Annotated[
        timedelta | None,
        duration_option(
            "--time-limit",
            help="Stop a command that runs longer, stopped or not (a failure: its item is given back).",
        ),
    ] = None,
    max_deliveries: Annotated[
        int,
        typer.Option(
            "--max-deliveries", metavar="N", min=1,
            help="An item whose command failed on each of N deliveries goes to the dead items (see psctl dead).",
        ),
    ] = defaults.MAX_DELIVERIES,
    retry_delay: Annotated[
        timedelta | None,
        duration_option(
            "--retry-delay", default=shown_duration(defaults.RETRY_DELAY),
            help=f"A failed item comes back after this, doubled per delivery (at most {shown_duration(defaults.MAX_RETRY_DELAY)}).",
        ),
    ] = None,
    gate: Gate = False,
    expire_in: ExpireIn = None,
    no_expire: NoExpire = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", metavar="N", min=1, show_default=False, help="Stop after N items."),
    ] = None,
    idle_exit: Annotated[
        timedelta | None,
        duration_option("--idle-exit", help="Stop after this long with nothing to do (0: as soon as the stream is empty)."),
    ] = None,
    grace: Annotated[
        timedelta | None,
        duration_option(
            "--grace", default=shown_duration(defaults.GRACE),
            help="On Ctrl-C, SIGTERM or SIGHUP, let running commands finish this long, then stop them.",
        ),
    ] = None,
    patience: Annotated[
        timedelta | None,
        duration_option(
            "--patience", default=shown_duration(defaults.PATIENCE),
            help="How long to keep trying a server that stopped answering (or refuses writes: a full disk), then exit 1.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout (instead of a line on stderr).")
    ] = False,
    streams: Annotated[list[str] | None, typer.Option("--streams", hidden=True)] = None,  # (StreamsThenCommand's)
) -> None:  # fmt: skip
    """Run a command for every item, most urgent first: the value on stdin, the item in PSCTL_* variables.

    Exit 0 acknowledges the item (gated and cooled down as a pull's would be); any other exit, a signal or
    --time-limit gives it back for another try, later each time, with why (exit status 3, killed by SIGKILL,
    timed out after 5 s, and the last line it wrote to stderr: see psctl dead and psctl item); after
    --max-deliveries it is dead, and said so on stderr, -q or not. Items are
    leased, so a worker that dies loses nothing: its items come back when the lease runs out, and its
    commands die with it. Waits for work when the stream is empty (--idle-exit to stop instead). Ctrl-C,
    SIGTERM or SIGHUP (a closed terminal) stops taking items and lets running commands finish (--grace);
    a second Ctrl-C stops them at once; Ctrl-Z is ignored (a stopped worker's leases would run out while its
    commands go on). A command has no terminal to read (stdin is the value); its output passes through
    (stderr through psctl, which keeps its last line); what it leaves running in its session is stopped
    when it exits. A reader that goes away (| head) stops the work quietly: the commands that fail for
    that give their items back uncounted.

    Several streams (a b:3 c --): while several have work, items are taken in smooth weighted round-robin
    (b:3 gets 3 for every 1 of a), each by priority within its stream; an empty or paused stream never holds
    up the others, which share its part. --limit and the summary count all of them.

    Variables: PSCTL_STREAM (the item's stream), PSCTL_KEY (PSCTL_KEY_BASE64 for a key holding a NUL byte;
    for a key over 32 KiB, PSCTL_KEY_FILE names a file holding it), PSCTL_SCORE, PSCTL_DELIVERY (1 on the first),
    PSCTL_WORKER (one value per psctl work). Exit status: 0 every command succeeded, 123 some failed
    (as xargs), 1 the server was lost, 2 bad usage, 126/127 a command could not be started (its item goes
    back uncounted), 129/130/143 a signal stopped running commands.

    Example: psctl work jobs -j 4 -- ./process-one
    Example: psctl work jobs --idle-exit 0 --time-limit 5m -- sh -c 'curl -fsS -d @- https://example.com/hook'
    Example: psctl work mail --limit 100 --idle-exit 0 -q -- python send.py   (from cron: silent unless one fails)
    Example: psctl work mail bulk urgent:5 -j 4 -- ./send   (5 of urgent for every one of mail and of bulk)
    """
    from psctl.errors import InvalidArgument
    from psctl.work import WorkOptions
    from psctl.work.fair import from_words, shown

    try:
        weights = from_words(streams or [name])
    except InvalidArgument as exc:
        raise BadUsage(str(exc)) from None

    seconds = {
        "--lease": _seconds(lease, defaults.LEASE),
        "--time-limit": None if time_limit is None else time_limit.total_seconds(),
        "--retry-delay": _seconds(retry_delay, defaults.RETRY_DELAY),
        "--grace": _seconds(grace, defaults.GRACE),
        "--patience": _seconds(patience, defaults.PATIENCE),
    }
    if seconds["--lease"] < 1:  # type: ignore[operator]
        raise BadUsage("--lease must be at least 1s: it is extended every third of it while a command runs")
    for option in ("--time-limit", "--patience"):
        if seconds[option] is not None and seconds[option] <= 0:  # type: ignore[operator]
            raise BadUsage(f"{option} must be more than 0")
    options = WorkOptions(
        name=shown(weights),
        streams=weights if len(weights) > 1 else (),
        command=(_executable(command), *command[1:]),
        jobs=jobs,
        lease=seconds["--lease"],  # type: ignore[arg-type]
        time_limit=seconds["--time-limit"],
        max_deliveries=max_deliveries,
        retry_delay=seconds["--retry-delay"],  # type: ignore[arg-type]
        gate=gate,
        expire_at=cool_down(expire_in, no_expire),
        limit=limit,
        idle_exit=None if idle_exit is None else idle_exit.total_seconds(),
        grace=seconds["--grace"],  # type: ignore[arg-type]
        patience=seconds["--patience"],  # type: ignore[arg-type]
    )
    client = session.client()
    _reachable(client)
    # (the lease that waits for work: a frozen server is noticed within --patience, not the reply timeout)
    feeder_timeout = min(session.timeout, options.patience)
    feeder = session.another_client(waiting=True, timeout=feeder_timeout)
    # (a cluster's reshard or failover: ridden out by the clients, but never for longer than --patience)
    # (the class's: 0 for a standalone server, the library's 20 s for a cluster)
    client.ps_cluster_wait = feeder.ps_cluster_wait = min(type(client).ps_cluster_wait, options.patience)
    status = _run(client, feeder, options, as_json or session.as_json, quiet=session.quiet, feeder_timeout=feeder_timeout)
    raise typer.Exit(status)


def _reachable(client: Any) -> None:
    """A server that cannot be reached at the start is an error at once (exit
    1), not a wait. One that answers but refuses commands for now (its disk
    full: MISCONF refuses even PING; LOADING, ...) is reached: the worker rides
    the refusal out for --patience, saying why, as it would mid-run."""
    from psctl.errors import refused_for_now

    try:
        client.ping()
    except Exception as exc:
        if refused_for_now(exc) is None:
            raise


def _seconds(value: timedelta | None, default: timedelta) -> float:
    return (default if value is None else value).total_seconds()


def _executable(command: list[str]) -> str:
    """The command's program, checked before anything is leased (exit 2 when it cannot run)."""
    if not command:
        raise BadUsage("give the command to run after --, e.g. psctl work jobs -- ./process-one")
    program = command[0]
    found = program if os.sep in program else shutil.which(program)
    if found is None:
        raise BadUsage(f"cannot run {program!r}: no such command on PATH")
    if not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise BadUsage(f"cannot run {program!r}: not an executable file")
    return program


def _run(
    client: Any, feeder: Any, options: Any, as_json: bool, quiet: bool = False, feeder_timeout: float | None = None
) -> int:
    from psctl.work import CommandRunner, Engine

    line = StatusLine(options.name) if terminal.stderr_is_terminal() and not quiet else None

    def warn(message: str) -> None:
        if line is not None:
            line.clear()
        _say(f"psctl work: {terminal.one_line(message)}\n")  # (keys and the commands' own words, escaped)

    runner = CommandRunner(options.command, options.time_limit)
    worker = Engine(client, feeder, options, runner, warn=warn, feeder_timeout=feeder_timeout)
    told_stop = told_suspend = False
    suspend_asked = []  # (noted by the handler, said by the supervisor: no writing in a signal handler)

    def on_tick(tally: Any) -> None:
        nonlocal told_stop, told_suspend
        if suspend_asked and not told_suspend:
            told_suspend = True
            warn(
                "Ctrl-Z is ignored: a stopped worker would stop extending its leases while its commands go on, "
                "and their items would run again elsewhere; Ctrl-C stops it (running commands may finish)"
            )
        if worker.signal is not None and not told_stop:
            told_stop = True
            if tally.running:
                warn(
                    f"stopping: {counted(tally.running, 'running command')} may finish within {options.grace:g} s "
                    "(Ctrl-C again to stop them now)"
                )
        if line is not None:
            line.draw(tally)

    def on_signal(signum: int, frame: Any) -> None:
        worker.request_stop(signum)

    sys.stdout.flush()
    sys.stderr.flush()
    previous = {number: signal.signal(number, on_signal) for number in WORK_STATUS}
    try:
        with unstoppable(lambda: suspend_asked.append(True)):
            outcome = worker.run(on_tick)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if line is not None:
            line.clear()
    tally = worker.snapshot()
    failed = tally.failed + tally.dead > 0
    if not (quiet and outcome in ("limit", "idle", "unread") and not failed):  # -q: nothing when all went as asked
        # (whatever ended the work, an unexpected error too: what was done is said)
        _summarize(options.name, tally, outcome, worker.signal, as_json=as_json, several=bool(options.streams))
    if worker.error is not None:
        raise worker.error
    if outcome == "lost":
        if worker.refusal is not None:
            why = f"the server refused commands for {options.patience:g} s ({worker.refusal})"
        else:
            why = f"the server did not answer for {options.patience:g} s"
        _say(f"psctl work: {why}: stopped; the leases give back what it held\n")
        return ExitStatus.SERVER
    if outcome == "unstartable":  # as xargs and the shells: 127 not found, 126 found but not run
        return 127 if getattr(worker.unstartable, "errno", None) == errno.ENOENT else 126
    if outcome == "forced":
        return WORK_STATUS.get(signal.Signals(worker.signal or signal.SIGINT), 130)
    # ("unread": a reader that goes away, | head, ends psctl quietly, 0, as it does any command)
    return SOME_FAILED if failed else ExitStatus.OK


def _summarize(name: str, tally: Any, outcome: str, signum: int | None, *, as_json: bool, several: bool) -> None:
    """The summary: with ``several`` streams, what each one's done too."""
    seconds = tally.seconds
    if as_json:
        import json

        summary: dict[str, Any] = {"done": tally.done, "failed": tally.failed, "dead": tally.dead,
                                   "seconds": round(seconds, 3)}  # fmt: skip
        if several:
            summary["streams"] = tally.streams
        try:
            sys.stdout.write(json.dumps(summary) + "\n")
            sys.stdout.flush()
        except OSError:  # (a closed terminal)
            pass
        return
    why = {
        "limit": "the limit was reached",
        "idle": "nothing left to do",
        "stopped": f"stopped by {_signal_name(signum)}",
        "forced": f"stopped by {_signal_name(signum)}, running commands ended",
        "lost": "the server was lost",
        "unstartable": "a command could not be started",
        "unread": "the reader of its output went away",
        "error": "an error ended it",
    }.get(outcome, outcome)
    rate = tally.done / seconds if seconds > 0 else 0.0
    each = f" ({', '.join(f'{stream} {done}' for stream, done in tally.streams.items())})" if several else ""
    _say(
        f"psctl work {name}: {tally.done} done{each}, {tally.failed} failed, {tally.dead} dead "
        f"in {seconds:.1f} s ({rate:.1f} items/s; {why})\n"
    )


def _say(text: str) -> None:
    """A message on stderr; none once stderr is gone (a closed terminal: EIO),
    which must not end the work before its commands are seen to."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except OSError:
        pass


def _signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum else "a signal"


class StatusLine:
    """One line on stderr (a terminal), drawn over and over: running, done,
    failed, dead, items/s over the last few seconds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.drawn_at = 0.0
        self.shown = False
        self.samples: deque[tuple[float, int]] = deque()

    def draw(self, tally: Any) -> None:
        now = time.monotonic()
        self.samples.append((now, tally.done))
        while self.samples and now - self.samples[0][0] > RATE_WINDOW:
            self.samples.popleft()
        if now - self.drawn_at < REDRAW:
            return
        self.drawn_at = now
        first_at, first_done = self.samples[0]
        rate = (tally.done - first_done) / (now - first_at) if now > first_at else 0.0
        _say(
            f"\r\x1b[2Kpsctl work {self.name}: {tally.running} running, {tally.done} done, "
            f"{tally.failed} failed, {tally.dead} dead, {rate:.1f} items/s"
        )
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            _say("\r\x1b[2K")
            self.shown = False
