"""The feeder: leases items several at a time, whenever fewer than a third of
its target wait in the queue, up to the target (the prefetch, or about 50 ms
of work at the rate the runners take items: ``WorkOptions.queue_target``),
waiting for work with the blocking lease's wake-up; it notices the limit and
idleness."""

from __future__ import annotations

import collections
import math
import threading
from typing import Any

from redis.crc import key_slot
from redis.exceptions import TimeoutError as NoReply

from psctl.layout import stream_keys
from psctl.leases import MAX_LEASE
from psctl.operations import POLL
from psctl.work.board import Board
from psctl.work.leasekeeper import LeaseKeeper
from psctl.work.options import Item
from psctl.work.patience import FIRST_PAUSE, LONGEST_PAUSE, UNANSWERED
from psctl.work.states import Event

BUSY_WAIT = 0.25  # seconds between looks at an empty stream while items run (with --idle-exit)
LOW_WATER = 3  # the feeder leases more once fewer than a third of its target wait
RATE_EVERY = 0.02  # seconds at least between two looks at the runners' rate


class Feeder:
    """``client.pslease`` (which may wait for work: give it longer reply
    timeouts, ``reply_timeout``) into the board's queue."""

    def __init__(self, board: Board, client: Any, keeper: LeaseKeeper, reply_timeout: float = 0.0) -> None:
        self._board, self._client, self._keeper = board, client, keeper
        # how long the client waits for a reply beyond a blocked wait: a lease that
        # timed out was owed that long (when unknown, from when it failed)
        self._reply_timeout = reply_timeout
        self._rate = 0.0  # items/s the runners take, smoothed
        self._seen = (0, 0.0)  # (board.started, when) at the last look
        self._waiter = Waiter(board, client) if board.shares is not None else None

    def feed(self) -> None:
        board = self._board
        try:
            self._feed()
        finally:
            with board.lock:
                board.feeding = False
                board.patience.forget("feeder")  # (it asks nothing more)
                board.ended.notify()

    def _feed(self) -> None:
        board, options, clock = self._board, self._board.options, self._board.clock
        idle_since: float | None = None
        pause = FIRST_PAUSE
        while True:
            with board.lock:
                # leases of several items at once, before the runners run out: once
                # fewer than a third of the target wait, as many as fill the queue to it
                self._aim()
                while board.state.leases and (len(board.queue) >= board.low_water or board.leasing is not None):
                    board.room.wait()  # (or the acknowledger leases, with its acknowledgement)
                if not board.state.leases:
                    return
                self._aim()
                left = MAX_LEASE if options.limit is None else options.limit - board.taken
                want = min(board.target - len(board.queue), MAX_LEASE, left)
                if left <= 0:  # --limit reached: the runners finish what was taken
                    board.change(Event.LIMIT)
                    return
                busy = board.held() > 0
                board.leasing = "feeder"
            now = clock.now()
            if busy:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            try:
                leases, order = self._lease(max(want, 1), self._block(busy, idle_since, now))
            except UNANSWERED as exc:  # a lease whose reply was lost comes back by itself
                self._done_leasing()
                failed_at = clock.now()
                owed_since = failed_at - self._reply_timeout if isinstance(exc, NoReply) else failed_at
                board.patience.trouble(exc, owed_since, "feeder")
                self._pause(pause)
                pause = min(pause * 2, LONGEST_PAUSE)
                continue
            except BaseException:
                self._done_leasing()
                raise
            board.patience.answered()
            pause = FIRST_PAUSE
            self._done_leasing(leases, order)
            if any(lease for _, lease in leases):
                idle_since = None
            elif options.idle_exit is not None and (retry := self._held_back(leases)) is not None:
                idle_since = None  # items wait, held back by the limits (SPEC §12): not idle
                self._pause(retry)
            elif busy and options.idle_exit is not None:
                self._while_busy()
            elif (
                not busy and options.idle_exit is not None and idle_since is not None
                and clock.now() - idle_since >= options.idle_exit
            ):  # fmt: skip
                with board.lock:
                    if board.held() == 0 and board.state.leases:
                        board.change(Event.IDLE)
                        return

    def _lease(self, want: int, block: float | None) -> tuple[list[tuple[str, Any]], list[str] | None]:
        """Leases up to ``want`` items, waiting for work for ``block`` seconds
        (as ``pslease``'s): (stream, lease) pairs, and with several streams
        the order of the picks (the queue's order)."""
        options, board = self._board.options, self._board
        if board.shares is None:
            lease = self._client.pslease(
                options.name, count=want, lease=options.lease, max_deliveries=options.max_deliveries, block=block,
                stop=board.wait,
            )  # fmt: skip
            return [(options.name, lease)], None
        clock = board.clock
        deadline = None if block is None else math.inf if block == 0 else clock.now() + block
        while True:
            leases, order = self._several(want, everyone=block is None)
            if any(lease for _, lease in leases) or deadline is None or board.wait.is_set():
                return leases, order
            assert self._waiter is not None
            if not self._waiter.wait(deadline):
                return leases, order

    def _several(self, want: int, everyone: bool) -> tuple[list[tuple[str, Any]], list[str]]:
        """Up to ``want`` items from the streams that may have work (with
        ``everyone``, from every stream: nothing is waited for), shared out
        in smooth weighted round-robin (``fair``): one lease per stream
        picked; what a stream did not give goes to the others, in more
        rounds (each leaves out the streams that gave fewer than asked, or
        takes all it asked)."""
        board, options, shares = self._board, self._board.options, self._board.shares
        assert shares is not None
        leases: list[tuple[str, Any]] = []
        order: list[str] = []
        short: set[str] = set()  # the streams that gave fewer than asked (not asked again in this call)
        try:
            while want > 0:
                now = board.clock.now()
                with board.lock:
                    among = [name for name in (shares.weights if everyone else shares.ready(now)) if name not in short]
                    picks = shares.plan(want, among)
                if not picks.counts:
                    return leases, order
                order += picks.order
                for name, count in list(picks.counts.items()):
                    lease = self._client.pslease(
                        name, count=count, lease=options.lease, max_deliveries=options.max_deliveries
                    )
                    leases.append((name, lease))
                    got = len(lease.items)
                    want -= got
                    if got < count:
                        short.add(name)
                    with board.lock:
                        shares.settle(picks, name, got, now, lease.retry_in)
        except BaseException:
            self.take(leases, "feeder", order)  # (what it took is the worker's: kept, extended, run)
            raise
        return leases, order

    def _measure(self, started: int, now: float) -> float:
        """The rate the runners take items at (items/s), smoothed, given how
        many they took so far (``started``)."""
        before, then = self._seen
        if then == 0.0:
            self._seen = (started, now)
        elif now - then >= RATE_EVERY:
            rate = (started - before) / (now - then)
            self._rate = rate if rate > self._rate else 0.7 * self._rate + 0.3 * rate  # (up at once, down slowly)
            self._seen = (started, now)
        return self._rate

    def _block(self, busy: bool, idle_since: float | None, now: float) -> float | None:
        """How long a lease waits for work: for ever (0) by default; with
        --idle-exit, what is left of it while nothing runs (None: no wait), and
        no wait while items run (``_while_busy`` waits here instead, so that
        idleness is noticed as soon as the last item ends, not at the server's
        next tick)."""
        idle_exit = self._board.options.idle_exit
        if idle_exit is None:
            return 0
        if busy:
            return None
        left = idle_exit - (now - (idle_since or now))
        return left if left > 0 else None

    def _held_back(self, leases: list[tuple[str, Any]]) -> float | None:
        """With --idle-exit, after leases that took nothing: how long until a
        stream whose waiting items its limits hold back (a rate limit's next
        token, ``max_held``) may hand some out, ``BUSY_WAIT`` at most; None
        when no stream's are (empty, paused, or only delayed items ahead:
        idle, as it always was)."""
        board = self._board
        if board.shares is None:
            waits = [(name, lease.retry_in) for name, lease in leases if lease.retry_in is not None]
        else:  # (what each stream's last lease said: this round may not have leased them all)
            now = board.clock.now()
            with board.lock:
                waits = [(name, max(due - now, 0.0)) for name, due in board.shares.due.items() if due != math.inf]
        try:
            held = [retry for name, retry in waits if self._client.pslen(name) > 0]
        except UNANSWERED:  # (the next lease meets the same trouble, and deals with it)
            return BUSY_WAIT
        return min(*held, BUSY_WAIT) if held else None

    def _while_busy(self) -> None:
        """With --idle-exit, the stream empty while items are still held: waits
        until they are all reported (then idleness is looked at), for
        ``BUSY_WAIT`` at most (then the stream is looked at again), or the end."""
        board = self._board
        with board.lock:
            if board.held() > 0 and board.state.leases:
                board.clock.wait(board.room, BUSY_WAIT)

    def _aim(self) -> None:
        """How many items to keep queued, now (the lock is held)."""
        board = self._board
        board.target = target = board.options.queue_target(self._measure(board.started, board.clock.now()))
        board.low_water = max(1, target // LOW_WATER)

    def _done_leasing(self, leases: list[tuple[str, Any]] | None = None, order: list[str] | None = None) -> None:
        """The feeder's lease is over (``leases``: what it took, if any, in the picks' ``order``)."""
        board = self._board
        if leases:
            self.take(leases, "feeder", order)
            return
        with board.lock:
            board.leasing = None

    def take(self, leases: list[tuple[str, Any]], who: str, order: list[str] | None = None) -> None:
        """The items of ``leases`` ((stream, lease) pairs) go to the queue (or
        back, after a stop), in the picks' ``order`` when given (each stream's
        items by priority, the streams interleaved as they were picked: b a b
        c b, not b b b a c); ``who``'s lease is over."""
        board = self._board
        tokens: dict[str, tuple[int, str]] = {}  # the leases that took items: how many, in which stream
        taken: list[Item] = []
        for stream, lease in leases:
            scores, deliveries = lease.scores, lease.deliveries
            items = [Item(lease.token, key, value, scores[key], deliveries[key], stream)
                     for key, value in lease.items.items()]  # fmt: skip
            if items:  # (an acknowledgement that found nothing more to lease: no lease to keep)
                tokens[lease.token] = (len(items), stream)
                taken += items
        if order is not None and len(leases) > 1:
            taken = _interleaved(taken, order)
        with board.lock:
            if board.leasing == who:
                board.leasing = None
                board.room.notify()
            if not taken:
                return
            if board.state.leases:
                board.queue.extend(taken)
                for token, (count, stream) in tokens.items():
                    self._keeper.track(token, count, stream)
                board.taken += len(taken)
                board.announce_work()
                return
            board.returning.extend(taken)  # a stop came while it leased: back at once, unstarted
            board.ended.notify()

    def _pause(self, seconds: float) -> None:
        """Sleeps, unless the work stops meanwhile (a stop, idleness, a lost server)."""
        board, clock = self._board, self._board.clock
        end = clock.now() + seconds
        while clock.now() < end and not board.wait.is_set():
            clock.sleep(min(0.05, end - clock.now()))


def _interleaved(items: list[Item], order: list[str]) -> list[Item]:
    """``items`` (each stream's in its order) in the order of the streams'
    picks: a stream that gave fewer than picked is passed over."""
    by_stream: dict[str, collections.deque[Item]] = {}
    for item in items:
        by_stream.setdefault(item.stream, collections.deque()).append(item)
    interleaved = [by_stream[name].popleft() for name in order if by_stream.get(name)]
    return interleaved


class Waiter:
    """Waits, while none of several streams has work, until one may have:
    BLPOP on their wake-up lists (``NAME:wake``: an add, ``psresume`` and
    ``pslimit`` push a token), for ``POLL`` seconds at most (items written
    with plain commands, delayed items come due). One BLPOP takes the keys of
    one server, and in a cluster of one slot: there, one BLPOP per slot, each
    in a thread of its own, and the first to end (woken, or at its timeout)
    ends the wait; one still under way when the next wait begins is not sent
    again (at most one per slot at a time)."""

    def __init__(self, board: Board, client: Any) -> None:
        self._board, self._client = board, client
        shares = board.shares
        assert shares is not None
        cluster = getattr(client, "_ps_cluster", False) is True
        slots: dict[int, dict[bytes, str]] = {}  # wake-up list -> its stream, by slot (one server: one "slot")
        for name in shares.weights:
            key = stream_keys(name, cluster=cluster).wake
            raw = key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")
            slots.setdefault(key_slot(raw) if cluster else 0, {})[raw] = name
        self.slots = list(slots.values())
        self._woken = threading.Event()  # a BLPOP of a thread ended
        self._under_way: set[int] = set()  # the slots whose BLPOP is under way (threads)

    def wait(self, deadline: float) -> bool:
        """Waits until a stream may have work, ``deadline`` (on the worker's
        clock) or a stop: whether to look again (not at the deadline or a stop)."""
        board, shares, clock = self._board, self._board.shares, self._board.clock
        assert shares is not None
        now = clock.now()
        with board.lock:
            shares.wait_longer(shares.weights, now + POLL)  # (a wake-up, or POLL: every stream is waited on)
            until = min(deadline, shares.next_ready())
        if board.wait.is_set() or now >= deadline:
            return False
        if until > now:
            timeout = repr(math.ceil((until - now) * 1000) / 1000)  # (in whole ms, rounded up: "0" waits for ever)
            if len(self.slots) == 1:
                self._woke(self.slots[0], self._client.execute_command("BLPOP", *self.slots[0], timeout))
            else:
                self._each_slot(timeout, until - now)
        return not board.wait.is_set()

    def _each_slot(self, timeout: str, seconds: float) -> None:
        """A BLPOP per slot (but those under way), in threads; waits for the first to end."""
        self._woken.clear()
        with self._board.lock:
            starting = [i for i in range(len(self.slots)) if i not in self._under_way]
            self._under_way.update(starting)
        for i in starting:
            threading.Thread(target=self._blpop, args=(i, timeout), name="psctl-wake", daemon=True).start()
        # (a BLPOP started now ends by its timeout, with a margin for the server's tick; one
        # under way since an earlier, longer wait is not waited for beyond this wait's end)
        self._woken.wait(seconds + (1.0 if starting else 0.0))

    def _blpop(self, i: int, timeout: str) -> None:
        try:
            self._woke(self.slots[i], self._client.execute_command("BLPOP", *self.slots[i], timeout))
        except Exception:  # noqa: BLE001 - the feeder's next lease meets the same trouble, and deals with it
            pass
        finally:
            with self._board.lock:
                self._under_way.discard(i)
            self._woken.set()

    def _woke(self, slot: dict[bytes, str], reply: Any) -> None:
        """A BLPOP's ``reply``: the stream whose token it took may have work."""
        if reply:
            key = reply[0] if isinstance(reply[0], bytes) else reply[0].encode("utf-8", "surrogateescape")
            shares = self._board.shares
            assert shares is not None
            with self._board.lock:
                shares.woken(slot[key])
