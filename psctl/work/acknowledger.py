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

from psctl.work.board import Board
from psctl.work.executor import Executor, Job, Kind, Verdict
from psctl.work.leasekeeper import LeaseKeeper
from psctl.work.options import Item, Tally, shown
from psctl.work.patience import ServerLost

GATHER = 0.005  # seconds the acknowledger waits for more jobs to end, to acknowledge them together


class Acknowledger:
    def __init__(
        self, board: Board, client: Any, keeper: LeaseKeeper, executor: Executor, tally: Tally,
        warn: Callable[[str], None],
    ) -> None:  # fmt: skip
        self._board, self._client, self._keeper, self._executor = board, client, keeper, executor
        self._tally, self._warn = tally, warn

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
            if few:  # more are likely to end soon: one acknowledgement for them all
                time.sleep(GATHER)
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

    def report(self, finished: list[Job]) -> None:
        options, board = self._board.options, self._board
        succeeded: dict[str, list[str]] = {}
        back: list[Item] = []
        failed: list[tuple[Item, Verdict]] = []
        for job in finished:
            for item, verdict in self._executor.verdicts(job):
                kind = verdict.kind
                if kind is Kind.DONE:
                    succeeded.setdefault(item.token, []).append(item.key)
                elif kind is Kind.ABANDONED:
                    self._keeper.untrack(item.token)  # nothing can reach the server: the lease gives the item back
                elif kind is Kind.BACK:
                    back.append(item)  # a stop: back at once, not as a failure
                else:
                    failed.append((item, verdict))
        for token, keys in succeeded.items():
            acked = board.patience.call(
                self._client.psack, options.name, token, keys, gate=options.gate, expire_at=options.expire_at
            )
            if acked < len(keys):
                late = len(keys) - acked
                self._warn(f"{late} item(s) ran longer than their lease, which ran out: they may run again")
            with board.lock:
                self._tally.done += len(keys)
            self._keeper.untrack(token, len(keys))
        if back:
            self._keeper.give_back(back)
        for item, verdict in failed:
            self._fail(item, verdict)

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
            self._client.psrelease, options.name, item.token, [item.key], delay=delay, reason=verdict.reason, **extra
        )
        with board.lock:
            if dead:
                self._tally.dead += 1
            else:
                self._tally.failed += 1
        if dead:  # (said whatever -q says: an item is lost to the dead items)
            after = "at once" if verdict.kind is Kind.DEAD else f"after {item.delivery} deliveries"
            self._warn(f"{shown(item.key)} is dead {after}: {verdict.reason}")
        self._keeper.untrack(item.token)
