"""The feeder: leases items several at a time, whenever fewer than a third of
its target wait in the queue, up to the target (the prefetch, or about 50 ms
of work at the rate the runners take items: ``WorkOptions.queue_target``),
waiting for work with the blocking lease's wake-up; it notices the limit and
idleness."""

from __future__ import annotations

from typing import Any

from redis.exceptions import TimeoutError as NoReply

from psctl.leases import MAX_LEASE
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
                lease = self._client.pslease(
                    options.name, count=max(want, 1), lease=options.lease, max_deliveries=options.max_deliveries,
                    block=self._block(busy, idle_since, now), stop=board.wait,
                )  # fmt: skip
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
            self._done_leasing(lease)
            if lease:
                idle_since = None
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

    def _done_leasing(self, lease: Any = None) -> None:
        """The feeder's lease is over (``lease``: what it took, if any)."""
        board = self._board
        if lease:
            self.take(lease, "feeder")
            return
        with board.lock:
            board.leasing = None

    def take(self, lease: Any, who: str) -> None:
        """``lease``'s items go to the queue (or back, after a stop); ``who``'s lease is over."""
        board = self._board
        scores, deliveries = lease.scores, lease.deliveries
        items = [Item(lease.token, key, value, scores[key], deliveries[key]) for key, value in lease.items.items()]
        with board.lock:
            if board.leasing == who:
                board.leasing = None
                board.room.notify()
            if not items:  # (an acknowledgement that found nothing more to lease: no lease to keep)
                return
            if board.state.leases:
                board.queue.extend(items)
                self._keeper.track(lease.token, len(items))
                board.taken += len(items)
                board.announce_work()
                return
            board.returning.extend(items)  # a stop came while it leased: back at once, unstarted
            board.ended.notify()

    def _pause(self, seconds: float) -> None:
        """Sleeps, unless the work stops meanwhile (a stop, idleness, a lost server)."""
        board, clock = self._board, self._board.clock
        end = clock.now() + seconds
        while clock.now() < end and not board.wait.is_set():
            clock.sleep(min(0.05, end - clock.now()))
