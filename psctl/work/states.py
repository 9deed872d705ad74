"""The worker's states and every transition between them, in one table (as
h11's ``_state.py`` does for a connection): the rest of the engine asks
``WorkState`` what a state allows and tells it what happened (``handle``);
it keeps no flags of its own. No IO, no lock, no clock: the engine calls it
under its lock.

A stop asked from outside (a signal, ``stop()``) is not an event here at
once: a signal handler may not take the engine's lock, so it posts the
request and the supervisor hands it in (``STOP``, ``FORCE``) on its next
round.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    WORKING = "working"  # leases, starts, reports
    DRAINING = "draining"  # leases nothing more (the limit, idleness); what was taken runs to its end
    STOPPING = "stopping"  # asked to stop (or halted): what was taken and not started goes back; the grace runs
    TERMINATING = "terminating"  # the grace is over: running commands are asked to end (SIGTERM, then SIGKILL)
    KILLING = "killing"  # stopped at once (a second request): running commands are killed
    LOST = "lost"  # the server owed an answer for the patience: nothing more is asked of it, everything is stopped
    FAILED = "failed"  # an unexpected error: as lost, and the error goes to the caller


class Event(Enum):
    LIMIT = "limit"  # --limit items were taken
    IDLE = "idle"  # nothing to do for --idle-exit
    STOP = "stop"  # a stop was asked for (a signal, stop())
    FORCE = "force"  # a second stop, or one asked to be at once
    UNREAD = "unread"  # the reader of the commands' output went away (| head): the work halts itself
    UNSTARTABLE = "unstartable"  # a command could not be started: the work halts itself
    GRACE_OVER = "grace over"
    CUT_SHORT = "cut short"  # a running command was stopped because of a stop (the outcome: "forced")
    LOST = "lost"
    ERROR = "error"


W, D, S, T, K, L, F = State
_HALTS = (Event.UNREAD, Event.UNSTARTABLE)

# (state, event) -> next state; a pair that is not here is a bug in the engine (IllegalTransition)
TRANSITIONS: dict[tuple[State, Event], State] = {
    (W, Event.LIMIT): D,
    (W, Event.IDLE): D,
    **{(state, Event.STOP): S for state in (W, D)},
    **{(state, Event.STOP): state for state in (S, T, K, L, F)},  # (asked again, or too late: changes nothing)
    **{(state, event): S for state in (W, D) for event in _HALTS},
    **{(state, event): state for state in (S, T, K) for event in _HALTS},
    (S, Event.GRACE_OVER): T,
    **{(state, Event.FORCE): K for state in (W, D, S, T, K)},
    **{(state, Event.FORCE): state for state in (L, F)},
    **{(state, Event.CUT_SHORT): state for state in (T, K)},
    **{(state, Event.LOST): L for state in (W, D, S, T, K)},
    **{(state, Event.ERROR): F for state in State},
}

# what each state allows
LEASES = {W}  # new leases are taken
STARTS = {W, D}  # queued items are started
STOPPED = {S, T, K}  # a stop is under way: a new request to stop makes it at once
GIVEN_UP = {L, F}  # nothing more is said to the server; what runs is stopped; nothing is reported


class IllegalTransition(Exception):
    """The engine told the state table of an event its state cannot have."""


class WorkState:
    """Where the work is, why it will end, and how it ended (``outcome``)."""

    __slots__ = ("cut_short", "given_up", "halted", "leases", "reason", "starts", "state", "stopped")

    def __init__(self) -> None:
        self._become(State.WORKING)
        self.reason: str | None = None  # why DRAINING: "limit" or "idle"
        self.halted: str | None = None  # why the work halted itself: "unstartable" wins over "unread"
        self.cut_short = False  # a running command was stopped because of a stop

    def handle(self, event: Event) -> State:
        """The state after ``event``; raises ``IllegalTransition`` for an event its state cannot have."""
        try:
            after = TRANSITIONS[self.state, event]
        except KeyError:
            raise IllegalTransition(f"{event.value!r} in state {self.state.value!r}") from None
        if event in (Event.LIMIT, Event.IDLE):
            self.reason = event.value
        elif event in _HALTS and self.halted != Event.UNSTARTABLE.value:
            self.halted = event.value
        elif event is Event.CUT_SHORT:
            self.cut_short = True
        self._become(after)
        return after

    def _become(self, state: State) -> None:
        """``state`` is where the work is now; what it allows (asked under
        the engine's lock for every item: attributes, not a look-up each time)."""
        self.state = state
        self.leases = state in LEASES  # new leases are taken
        self.starts = state in STARTS  # queued items are started
        self.stopped = state in STOPPED  # a stop is under way
        self.given_up = state in GIVEN_UP  # nothing more is said to the server

    @property
    def outcome(self) -> str:
        """How the work ended: error, lost, unstartable, unread, forced, stopped, limit or idle."""
        if self.state is State.FAILED:
            return "error"
        if self.state is State.LOST:
            return "lost"
        if self.halted is not None:  # (its running commands stopped after the grace or not)
            return self.halted
        if self.cut_short:
            return "forced"
        if self.state is State.DRAINING and self.reason is not None:
            return self.reason
        return "stopped"
