"""The acknowledger: all the talking to the server about what is held, from
one thread. It reports what the jobs did, a few at a time (one ``psack`` per
lease for all its items that succeeded; a failed one given back with a delay
that doubles per delivery, or to the dead items by the lease's
``max_deliveries``), has the lease keeper extend what is still held and give
back what a stop left unstarted."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from psctl.leases import MAX_LEASE
from psctl.work.board import Board
from psctl.work.executor import Executor, Job, Kind, Verdict
from psctl.work.fair import Picks
from psctl.work.leasekeeper import LeaseKeeper
from psctl.work.options import Item, Tally, shown
from psctl.work.patience import UNANSWERED, ServerLost
from psctl.wording import counted


class Acknowledger:
    def __init__(
        self, board: Board, client: Any, keeper: LeaseKeeper, executor: Executor, tally: Tally,
        warn: Callable[[str], None], take: Callable[[Any, str], None],
    ) -> None:  # fmt: skip
        self._board, self._client, self._keeper, self._executor = board, client, keeper, executor
        self._tally, self._warn, self._take = tally, warn, take
        # (a client without it, as the engine's tests' fake: acknowledgements only)
        self._acklease: Callable[..., Any] | None = getattr(client, "psacklease", None)

    def acknowledge(self) -> None:
        """Reports what the jobs did, as they end: everything that ended since
        the last round at once; gives back what a stop left unstarted, and
        extends the leases, until the runners and the feeder are done."""
        board, clock = self._board, self._board.clock
        while True:
            with board.lock:
                while not board.finished and not board.returning and (board.runners or board.feeding):
                    due = self._keeper.next_due() - clock.now()
                    if due <= 0:
                        break
                    clock.wait(board.ended, due)
                if not board.finished and not board.returning and not (board.runners or board.feeding):
                    return
                few = 0 < len(board.finished) < board.options.jobs and board.runners
            if few and self._executor.gather:  # more are likely to end soon: one acknowledgement for them all
                time.sleep(self._executor.gather)
            with board.lock:
                finished = list(board.finished)
                board.finished.clear()
                board.reporting = len(finished)
                returning, board.returning = board.returning, []
            try:
                if returning:
                    self._keeper.give_back(returning)
                if finished:
                    self.report(finished)
                self._keeper.extend_due()
            except ServerLost:
                return
            finally:
                with board.lock:
                    board.reporting = 0
                    if board.held() == 0:
                        board.room.notify()  # (a feeder waiting for the last item to end: idle now?)

    def report(self, finished: list[Job]) -> None:
        board = self._board
        succeeded: dict[tuple[str, str], list[str]] = {}  # (stream, token) -> keys
        back: list[Item] = []
        failed: list[tuple[Item, Verdict]] = []
        for job in finished:
            for item, verdict in self._executor.verdicts(job):
                kind = verdict.kind
                if kind is Kind.DONE:
                    succeeded.setdefault((item.stream, item.token), []).append(item.key)
                elif kind is Kind.ABANDONED:
                    self._keeper.untrack(item.token)  # nothing can reach the server: the lease gives the item back
                elif kind is Kind.BACK:
                    back.append(item)  # a stop: back at once, not as a failure
                else:
                    failed.append((item, verdict))
        last = len(succeeded) - 1
        for i, ((stream, token), keys) in enumerate(succeeded.items()):
            acked = self._ack(stream, token, keys, lease_too=i == last)
            if acked < len(keys):  # (their lease ran out, or someone removed or acknowledged them meanwhile)
                late = len(keys) - acked
                self._warn(f"{late} item(s) were no longer held by this worker when done (their lease ran out, "
                           "or they were removed): not counted as done; they may run again")  # fmt: skip
            with board.lock:
                self._tally.done += acked
                self._tally.streams[stream] = self._tally.streams.get(stream, 0) + acked
            self._keeper.untrack(token, len(keys))
        if back:
            self._keeper.give_back(back)
        for item, verdict in failed:
            self._fail(item, verdict)

    def _ack(self, stream: str, token: str, keys: list[str], lease_too: bool) -> int:
        """Acknowledges ``keys`` of the lease ``token`` in ``stream``; with ``lease_too``, when
        the queue is short of its target and no lease is under way, leases the
        next items in the same script call (``psacklease``: as BullMQ's
        completion hands back the next job), so that the steady state costs
        one round trip for both. Sent once: if its reply is lost, the
        acknowledgement alone is sent again (safe); what it leased comes back
        when that lease runs out. With several streams, it leases only
        ``stream``'s first picks of what the queue lacks, when it is
        ``stream``'s turn (``Shares.first``): the others are left to the feeder."""
        options, board = self._board.options, self._board
        want, picks = self._claim(stream) if lease_too and self._acklease is not None else (0, None)
        if want:
            try:
                acked, lease = self._acklease(
                    stream, token, keys, count=want, lease=options.lease, max_deliveries=options.max_deliveries,
                    gate=options.gate, expire_at=options.expire_at,
                )  # fmt: skip
            except UNANSWERED as exc:  # (it may have acknowledged them: sent again, they count as done)
                board.patience.trouble(exc, board.clock.now(), "acknowledger")
                self._settle(picks, stream, 0)  # (what it may have leased comes back by itself)
                self._psack(stream, token, keys)
                return len(keys)
            else:
                board.patience.answered()
                self._settle(picks, stream, len(lease.items))
                self._take([(stream, lease)], "acknowledger")
                return int(acked)
            finally:
                with board.lock:
                    if board.leasing == "acknowledger":
                        board.leasing = None
                        board.room.notify()
        return self._psack(stream, token, keys)

    def _settle(self, picks: Picks | None, stream: str, got: int) -> None:
        """With several streams, ``stream`` gave ``got`` items for its ``picks`` (``Shares.settle``)."""
        board = self._board
        if picks is not None and board.shares is not None:
            with board.lock:
                board.shares.settle(picks, stream, got, board.clock.now(), told=False)  # (an acklease never waits)

    def _psack(self, stream: str, token: str, keys: list[str]) -> int:
        """``psack``, tried again while the server does not answer (safe: it acts only on what the token holds)."""
        options = self._board.options
        return int(
            self._board.patience.call(
                self._client.psack, stream, token, keys, gate=options.gate, expire_at=options.expire_at
            )
        )

    def _claim(self, stream: str) -> tuple[int, Picks | None]:
        """How many items to lease with an acknowledgement in ``stream``:
        what the queue lacks of the feeder's target, when it lacks any and no
        lease is under way (then the acknowledger's until it is done); with
        several streams, ``stream``'s picks of it (and the picks); 0 otherwise."""
        board, options, shares = self._board, self._board.options, self._board.shares
        with board.lock:
            if not board.state.leases or board.leasing is not None:
                return 0, None
            left = MAX_LEASE if options.limit is None else options.limit - board.taken
            want = min(board.target - len(board.queue), MAX_LEASE, left)
            picks = None
            if shares is not None and want > 0:
                picks = shares.plan(want, shares.ready(board.clock.now()))
                want = shares.first(picks, stream)
            if want <= 0:
                return 0, None
            board.leasing = "acknowledger"
            return want, picks

    def _fail(self, item: Item, verdict: Verdict) -> None:
        """A failed item goes back with the back-off (or the delay its verdict
        chose), or to the dead items on its last delivery (or at once)."""
        options, board = self._board.options, self._board
        if verdict.warning is not None:
            self._warn(verdict.warning)
        dead = verdict.kind is Kind.DEAD or item.delivery >= options.max_deliveries
        delay = options.retry_delay_for(item.delivery) if verdict.delay is None else verdict.delay
        extra = {"dead": True} if verdict.kind is Kind.DEAD else {}
        board.patience.call(
            self._client.psrelease, item.stream, item.token, [item.key], delay=delay, reason=verdict.reason, **extra
        )
        with board.lock:
            if dead:
                self._tally.dead += 1
            else:
                self._tally.failed += 1
        if dead:  # (said whatever -q says: an item is lost to the dead items)
            after = "at once" if verdict.kind is Kind.DEAD else f"after {counted(item.delivery, 'delivery', 'deliveries')}"
            self._warn(f"{shown(item.key)} is dead {after}: {verdict.reason}")
        self._keeper.untrack(item.token)
