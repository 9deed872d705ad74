"""The ``ps*`` methods, shared by every psctl client.

Each method only names its plan (``operations.py``) and hands it to
``self._ps_run``, which the client's runner implements sync or async, the way
redis-py's command mixins return ``self.execute_command(...)``.

One method serves both kinds of client, so its return type is written once,
as the reply's (``-> int``); ``@operation`` tells type checkers that a call
gives that reply on a sync client and a coroutine of it on an async one, and
``@shaped`` names the shapes of a reply that follows an argument
(``psadd(..., explain=True)``). Both come from ``signatures.py``, for type
checkers only: at run time a method is the plain function.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from psctl import defaults, flow, leases, observing
from psctl import operations as op
from psctl.layout import StreamKeys, stream_keys
from psctl.protocol import Plan

if TYPE_CHECKING:
    from psctl.signatures import AddManyShapes, AddShapes, KeysShapes, operation, shaped
    from psctl.types import AckLease, DeadItems, Expired, Item, KeyRow, Lease, Limits, Stats
else:  # nothing added to a call, nor to the import

    def operation(method: Any) -> Any:
        return method

    def shaped(shapes: Any) -> Any:
        return operation

    AddShapes = AddManyShapes = KeysShapes = None


def _held_by(client: Any, plan: Plan) -> Plan:
    """``plan`` (a lease's), its ``Lease`` given the client that ran it, for
    ``Lease.ack`` and the rest to go through."""
    lease = yield from plan
    lease._client = client
    return lease


def _next_held_by(client: Any, plan: Plan) -> Plan:
    """``plan`` (an ``AckLease``'s), its lease given the client that ran it."""
    acked = yield from plan
    acked.lease._client = client
    return acked


class _StreamCommandsBase:
    _ps_cluster = False
    _ps_run: Any  # the runner mixin's: runs a plan, sync or async
    # Every write waits until this many replicas have it (``replicas=`` on a
    # call overrides it), up to ``ps_replicas_timeout`` seconds.
    ps_replicas = 0
    ps_replicas_timeout = 1.0

    def _ps_keys(self, name: str) -> StreamKeys:
        return stream_keys(name, cluster=self._ps_cluster)

    def _ps_write(self, operation: str, plan: Plan, replicas: int | None = None, timeout: float | None = None) -> Any:
        """Runs ``plan`` (a write), then, when replicas are asked for (by the call
        or the client's ``ps_replicas``), waits until that many have it, on the
        connections that carried it (``operations.replicated``)."""
        wanted = self.ps_replicas if replicas is None else replicas
        if not wanted:
            return self._ps_run(plan)
        waited = self.ps_replicas_timeout if timeout is None else timeout
        return self._ps_run(op.replicated(plan, operation, wanted, waited), hold=True)


class ItemCommands(_StreamCommandsBase):
    """Adding, taking, reading and changing a stream's items."""

    @shaped(AddShapes)
    def psadd(
        self,
        name: str,
        key: str,
        value: Any,
        score: float = 1,
        readd: bool = False,
        *,
        replace: bool = False,
        explain: bool = False,
        delay: timedelta | datetime | None = None,
        replicas: int | None = None,
        replicas_timeout: float | None = None,
    ) -> Any:
        """Adds an item, or adds ``score`` to its score (``replace``: sets it to
        ``score``): the new score, or ``None`` when its key is refused (gated,
        cooling down, held by a lease or dead). ``delay``: the item is kept now
        but waits (is pulled, leased, listed) only from then: a ``timedelta``
        from the server's clock, or a ``datetime`` (naive means UTC); an add to
        a delayed key without one keeps its time. With ``explain``, a
        ``psctl.types.Added`` instead: ``(score, reason, until)``, saying
        why a key was refused, or until when it is delayed.

        ``replicas``: returns only once that many replicas have the write
        (waiting up to ``replicas_timeout`` seconds), else raises
        ``psctl.errors.NotReplicated``; the client's ``ps_replicas`` when
        None (which every write but ``psexpire`` waits for)."""
        plan = op.add_one(self._ps_keys(name), key, value, score, readd, explain, replace, delay)
        return self._ps_write("psadd", plan, replicas, replicas_timeout)

    @shaped(AddManyShapes)
    def psaddmany(
        self,
        name: str,
        items: Iterable[Any],
        readd: bool = False,
        *,
        summary: bool = False,
        replace: bool = False,
        stop: Any = None,
        delay: timedelta | datetime | None = None,
        replicas: int | None = None,
        replicas_timeout: float | None = None,
    ) -> Any:
        """``psadd`` for many ``(key, value, score)`` items, about a thousand per script call.
        An item may give its own delay as a 4th field (``(key, value, score,
        delay)``); ``delay`` applies to those that give none.

        Returns each item's new score (``None`` when refused); with ``summary``,
        only ``{"added": n, "refused": m, "refused_by": {"held": …, "dead": …,
        "gated": …, "cooling": …}}``, in memory that does not grow with the
        input. ``replace``: each score is set to the one given instead of added
        to, so that adding the same items again changes nothing (what makes an
        interrupted ingest safe to run again). ``stop`` (a ``psctl.StopWaiting``
        or a ``threading.Event``), once set, ends the add before its next chunk:
        the call returns the scores (or counts) of the items written until then,
        a whole number of chunks from the start. ``replicas``: as ``psadd``'s."""
        plan = op.add(self._ps_keys(name), items, readd, summary, replace, stop, delay)
        return self._ps_write("psaddmany", plan, replicas, replicas_timeout)

    @operation
    def pspull(
        self,
        name: str,
        count: int = 1,
        purge: bool = True,
        gate: bool = False,
        expire_at: timedelta | datetime | None = defaults.COOL_DOWN,
        block: float | None = None,
        stop: Any = None,
    ) -> dict[str, Any]:
        """Atomically takes up to ``count`` of the highest-scored items: ``{key: value}`` in pull order.

        ``block``: when the stream is empty, wait up to that many seconds (0: no
        limit) for an item, then pull as usual; ``{}`` when none came. ``stop``
        (a ``psctl.StopWaiting`` or a ``threading.Event``) ends the wait early."""
        return self._ps_write("pspull", op.pull(self._ps_keys(name), count, purge, gate, expire_at, block, stop))

    @shaped(KeysShapes)
    def pskeys(
        self,
        name: str,
        withscores: bool = False,
        limit: int | None = None,
        start: int = 0,
        below: float | None = None,
        *,
        state: str | None = None,
    ) -> Any:
        """Item keys, highest score first; ``(key, score)`` pairs with ``withscores``.
        ``start``: from that rank (0, the highest, by default), for reading page
        by page; ``below``: only the keys scored strictly below it.

        ``state`` ("waiting", "delayed", "held", "cooling", "gated", "dead"):
        the keys in that state instead, as dicts with what applies to each:
        ``until`` (delayed, cooling), ``token`` and ``deadline`` (held),
        ``score``, ``deliveries``, ``reason`` (dead, and delayed: a retry's)
        and ``failed_at`` (dead); at most
        ``limit``. ``pskeyspage`` reads them a page at a time."""
        if state is not None:
            return self._ps_run(observing.in_state(self._ps_keys(name), state, limit))
        return self._ps_run(op.keys_(self._ps_keys(name), withscores, limit, start, below))

    @operation
    def pskeyspage(self, name: str, state: str, start: Any = 0, count: int = 1000) -> tuple[list[KeyRow], str | None]:
        """One page of ``pskeys(name, state=...)``, to list a state of any size
        in bounded memory: ``(rows, following)``, ``following`` where the next
        page starts, None after the last. Pages are not a snapshot."""
        return self._ps_run(observing.state_page(self._ps_keys(name), state, start, count))

    @operation
    def psvalues(self, name: str, limit: int | None = None, start: int = 0, withscores: bool = False) -> dict[str, Any]:
        """``{key: value}`` of every item (or the ``limit`` highest-scored), in
        pull order; ``{key: (value, score)}`` with ``withscores``. ``start``: from
        that rank, for reading page by page (pages are not a snapshot: items
        added or taken in between shift the ranks)."""
        return self._ps_run(op.values(self._ps_keys(name), limit, start, withscores))

    @operation
    def psvaluespage(
        self, name: str, start: int = 0, count: int = 1000, withscores: bool = False
    ) -> tuple[dict[str, Any], int | None]:
        """One page of ``psvalues``, to read a stream of any size in bounded
        memory: ``(items, following)``, ``following`` the rank to ask for next,
        None after the last page. Pages are not a snapshot: items added or taken
        between two calls shift the ranks."""
        return self._ps_run(op.values_next(self._ps_keys(name), start, count, withscores))

    @operation
    def psscores(self, name: str, keys: Sequence[str]) -> list[float | None]:
        """The score of each of ``keys``, ``None`` for a key that is not waiting in the stream."""
        return self._ps_run(op.scores(self._ps_keys(name), list(keys)))

    @operation
    def psexists(self, name: str) -> bool:
        """Whether the stream holds anything: items, gates, cool-downs, leases, dead items, counters."""
        return self._ps_run(op.exists(self._ps_keys(name)))

    @operation
    def psget(self, name: str, key: str) -> Any:
        """An item's value, or ``None``."""
        return self._ps_run(op.get(self._ps_keys(name), key))

    @operation
    def pslen(self, name: str) -> int:
        """The number of items."""
        return self._ps_run(op.length(self._ps_keys(name)))

    @operation
    def psincrement(self, name: str, key: str, score: float) -> float | None:
        """Adds ``score`` to an existing item's score (waiting or delayed); ``None``
        (and no entry made) when there is no such item."""
        return self._ps_write("psincrement", op.increment(self._ps_keys(name), key, score))

    @operation
    def psdeletebelowthreshold(self, name: str, threshold: float, gate: bool = False) -> list[str]:
        """Removes the items scored strictly below ``threshold``; returns their keys."""
        return self._ps_write("psdeletebelowthreshold", op.delete_below(self._ps_keys(name), threshold, gate))

    @operation
    def psdecrement_all(self, name: str, decrement: float) -> int:
        """Subtracts ``decrement`` from every score (waiting and delayed items);
        returns how many items changed."""
        return self._ps_write("psdecrement_all", op.decrement_all(self._ps_keys(name), decrement))

    @operation
    def psremove(
        self,
        name: str,
        keys: Iterable[str],
        gate: bool = False,
        *,
        dry_run: bool = False,
        replicas: int | None = None,
        replicas_timeout: float | None = None,
    ) -> int:
        """Removes the given items whole, waiting, delayed, held or dead
        (acknowledging a ``purge=False`` pull, say), with every record they
        have; returns how many there were, each once. ``dry_run``: only counts
        them. ``replicas``: as ``psadd``'s."""
        return self._ps_write("psremove", op.remove(self._ps_keys(name), keys, gate, dry_run), replicas, replicas_timeout)

    @operation
    def psdelete(self, name: str) -> bool:
        """Deletes the stream's keys and its registry entry; ``True`` when there was anything."""
        return self._ps_write("psdelete", op.delete(self._ps_keys(name), self._ps_keys))

    @operation
    def pslift(self, name: str, keys: Iterable[Any], *, dry_run: bool = False) -> int:
        """Ends the gates and cool-downs of ``keys`` without adding them: how
        many had one. ``dry_run``: only counts them."""
        return self._ps_write("pslift", observing.lift(self._ps_keys(name), keys, dry_run))


class ObservingCommands(_StreamCommandsBase):
    """What is due ended, and what the streams hold, told."""

    @operation
    def psexpire(self) -> Expired:
        """Ends what is due in every registered stream, by the server's clock:
        cool-downs (``{name: ended}`` for streams with any), leases that ran
        out, delayed items. Pulls and leases do the same for their stream as
        they go; this frees the memory of streams nobody touches."""
        return self._ps_run(op.expire(self._ps_keys))

    @operation
    def psnames(self) -> list[str]:
        """Registered stream names, sorted. On a cluster, the first call after
        the registry's node changed (a failover) registers again the streams
        that hold data and are missing from it."""
        return self._ps_run(op.names())

    @operation
    def psstats(self, name: str) -> Stats:
        """A stream's state and counters, in one round trip, by the server's
        clock: ``{"name", "waiting", "delayed", "next_delayed_due", "held",
        "overdue", "overdue_capped", "gated", "cooling", "next_cool_down_end",
        "dead", "top_score", "bottom_score", "counters", "server_time"}``
        (``cooling``: cool-downs still to end; ``overdue``: held items whose
        lease ran out, not yet returned)."""
        return self._ps_run(observing.stats(self._ps_keys(name)))

    @operation
    def psstatsmany(self, names: Iterable[str] | None = None) -> list[Stats]:
        """``psstats`` of each of ``names`` (every registered stream when None),
        in one round trip per server: a list, in the order of ``names`` (sorted
        when None)."""
        return self._ps_run(observing.stats_many(self._ps_keys, names))

    @operation
    def psitem(self, name: str, key: str) -> Item:
        """Where an item stands, by the server's clock: ``{"state": "held"|"dead"|
        "delayed"|"waiting"|"cooling"|"gated"|"absent"}`` with what applies:
        ``score``, ``until`` (the lease's deadline, when a delayed item starts
        waiting, or the cool-down's end), ``deliveries``, ``gated``,
        ``last_failure`` (``{"reason", "at", "delivery"}``)."""
        return self._ps_run(observing.item(self._ps_keys(name), key))


class LeaseCommands(_StreamCommandsBase):
    """Leases: items held under a token until acknowledged, given back or run out."""

    @operation
    def pslease(
        self,
        name: str,
        count: int = 1,
        lease: timedelta | float = defaults.LEASE,
        max_deliveries: int | None = None,
        block: float | None = None,
        stop: Any = None,
    ) -> Lease:
        """Takes up to ``count`` (at most 1000) of the highest-scored items and
        holds them under a new token until ``lease`` has passed (server clock):
        a ``psctl.types.Lease``, empty when nothing was waiting. ``block`` and
        ``stop`` wait as ``pspull``'s do; an item leased ``max_deliveries``
        times goes to the dead set when its lease runs out or is released."""
        plan = leases.lease(self._ps_keys(name), leases.new_token(), count, lease, max_deliveries, block, stop)
        return self._ps_write("pslease", _held_by(self, plan))

    @operation
    def psack(
        self,
        name: str,
        token: str,
        keys: Iterable[Any] | None = None,
        gate: bool = False,
        expire_at: timedelta | datetime | None = defaults.COOL_DOWN,
        *,
        replicas: int | None = None,
        replicas_timeout: float | None = None,
    ) -> int:
        """Finishes held items of ``token`` (all it holds when ``keys`` is None):
        they leave the stream, gated and cooled down as a pull's would be. Keys it
        no longer holds are skipped; returns how many were acknowledged.
        ``replicas``: as ``psadd``'s (an acknowledgement a failover undoes
        holds its items again, to be delivered again)."""
        plan = leases.ack(self._ps_keys(name), token, keys, gate, expire_at)
        return self._ps_write("psack", plan, replicas, replicas_timeout)

    @operation
    def psacklease(
        self,
        name: str,
        token: str,
        keys: Iterable[Any] | None = None,
        *,
        count: int = 1,
        lease: timedelta | float = defaults.LEASE,
        max_deliveries: int | None = None,
        gate: bool = False,
        expire_at: timedelta | datetime | None = defaults.COOL_DOWN,
        replicas: int | None = None,
        replicas_timeout: float | None = None,
    ) -> AckLease:
        """``psack(name, token, keys, gate, expire_at)`` then ``pslease(name,
        count, lease, max_deliveries)``, in one script call: a
        ``psctl.types.AckLease``, ``(acked, lease)``. Never waits; ``count=0``
        only acknowledges (an empty lease). Sent once, never again (it leases:
        a lost reply loses nothing, the items come back on their deadline).
        Keys past the first thousand are acknowledged first, by ``psack``.
        ``replicas``: as ``psadd``'s."""
        plan = leases.ack_lease(
            self._ps_keys(name), token, keys, gate, expire_at, leases.new_token(), count, lease, max_deliveries
        )
        return self._ps_write("psacklease", _next_held_by(self, plan), replicas, replicas_timeout)

    @operation
    def psrelease(
        self,
        name: str,
        token: str,
        keys: Iterable[Any] | None = None,
        score: float | None = None,
        delay: Any = None,
        attempted: bool = True,
        reason: Any = None,
        *,
        dead: bool = False,
        replicas: int | None = None,
        replicas_timeout: float | None = None,
    ) -> int:
        """Gives held items of ``token`` back (all it holds when ``keys`` is
        None): at once, or delayed until ``delay`` (a timedelta or seconds) has
        passed, with their remembered score or ``score``; returns how many.
        ``reason`` (text, or an exception; kept up to 2 KiB) is kept as each
        item's last failure, with the time and the delivery (``psdead``,
        ``psitem``). ``attempted=False`` gives back items that were not worked
        on (a worker that stops): their delivery is not counted, no failure is
        kept, and they never go to the dead items. ``dead=True`` sends them to
        the dead items now, ``reason`` kept, whatever their deliveries and
        ``max_deliveries`` (``score`` and ``delay`` do not apply to them then,
        as to an item at its ``max_deliveries``). ``replicas``: as ``psadd``'s."""
        plan = leases.release(self._ps_keys(name), token, keys, score, delay, attempted, reason, dead)
        return self._ps_write("psrelease", plan, replicas, replicas_timeout)

    @operation
    def psextend(self, name: str, token: str, lease: timedelta | float) -> datetime | None:
        """Moves the deadline of what ``token`` still holds to ``lease`` from now:
        the new deadline (UTC), or None when it holds nothing any more."""
        return self._ps_write("psextend", leases.extend(self._ps_keys(name), token, lease))

    def psleased(
        self,
        name: str,
        count: int = 1,
        lease: timedelta | float = defaults.LEASE,
        max_deliveries: int | None = None,
        block: float | None = None,
        stop: Any = None,
    ) -> leases.Leased:
        """``with`` (or ``async with``) ``psleased(...) as lease``: a ``pslease``
        whose items are acknowledged on a normal exit and given back on an
        exception."""
        options = {"count": count, "lease": lease, "max_deliveries": max_deliveries, "block": block, "stop": stop}
        return leases.Leased(self, name, options)

    @operation
    def psdead(self, name: str, limit: int | None = None) -> DeadItems:
        """``{key: value}`` of the items that ran out of deliveries, highest last
        score first, as ``psrequeue`` gives them back: a ``psctl.types.DeadItems``, whose
        ``.deliveries``, ``.reasons`` and ``.failed_at`` say how many leases
        each had and why and when its last delivery failed."""
        return self._ps_run(leases.dead(self._ps_keys(name), limit))

    @operation
    def psrequeue(self, name: str, keys: Iterable[Any] | None = None, score: float | None = None) -> int:
        """Puts dead items back (all when ``keys`` is None), deliveries and last
        failure forgotten, with their last score or ``score``; returns how many."""
        return self._ps_write("psrequeue", leases.requeue(self._ps_keys(name), keys, score))


class FlowCommands(_StreamCommandsBase):
    """Flow control: kept in the stream, enforced by every pull and lease."""

    @operation
    def pspause(self, name: str) -> bool:
        """Pauses the stream: pulls and leases hand nothing out (blocking ones
        wait) until ``psresume``; adds, acknowledgements and releases go on.
        True when it was not paused already."""
        return self._ps_write("pspause", flow.pause(self._ps_keys(name)))

    @operation
    def psresume(self, name: str) -> bool:
        """Ends a pause, waking blocked pulls and leases. True when the stream was paused."""
        return self._ps_write("psresume", flow.resume(self._ps_keys(name)))

    @operation
    def pslimit(
        self,
        name: str,
        rate: float | None = None,
        per: timedelta | float = timedelta(seconds=1),
        burst: int | None = None,
        max_held: int | None = None,
        aging: timedelta | float | None = None,
    ) -> Limits:
        """Sets the stream's limits, enforced inside every pull and lease, by
        the server's clock: at most ``rate`` items handed out per ``per`` (a
        token bucket of ``burst`` tokens, ``rate`` by default: a call gets at
        most the tokens there are, a blocking one waits for the next), at
        most ``max_held`` items held by leases at once, and ``aging``: a
        waiting item gains one point of priority per ``aging`` waited (a
        ``timedelta`` or seconds, whole ms rounded up, at least 1 ms), so
        that none starves behind newer items of higher priority, at no cost
        per pull. With no limits given, clears them (a pause stays). Returns
        the limits now set (``psctl.types.Limits``).

        With aging, every score psctl shows or takes is *effective* (the
        score given + the points gained); ``NAME:s`` keeps it less the points
        every waiting item has gained since a per-stream epoch, so that its
        order is the order by effective score with nothing rewritten as time
        passes. A tool that knows only the data layout still reads and writes the
        stream, but its raw scores are offset while aging is on, and after
        it was turned off while items waited. Scores are doubles: the round
        trip adds an error of about the points gained × 2⁻⁵² (1 ms aging for
        a year: ~10⁻⁵; 1 s aging, 30 years: ~10⁻⁷), so a threshold equal to
        a score just shown may fall on either side of it."""
        return self._ps_write("pslimit", flow.limit(self._ps_keys(name), rate, per, burst, max_held, aging))


class PrioritizedStreamCommands(ItemCommands, ObservingCommands, LeaseCommands, FlowCommands):
    """Every ``ps*`` method, for every psctl client (sync or async, standalone or cluster)."""
