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
from psctl.work.executor import Executor, Job, Kind
from psctl.work.leasekeeper import LeaseKeeper
from psctl.work.options import Tally, shown
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
        back: list[Job] = []
        failed: list[tuple[Job, str | None, str | None]] = []
        for job in finished:
            item = job.item
            verdict = self._executor.verdict(job)
            if verdict.kind is Kind.ABANDONED:
                self._keeper.untrack(item.token)  # nothing can reach the server: the lease gives the item back
            elif verdict.kind is Kind.BACK:
                back.append(job)  # a stop: back at once, not as a failure
            elif verdict.kind is Kind.DONE:
                succeeded.setdefault(item.token, []).append(item.key)
            else:
                failed.append((job, verdict.reason, verdict.warning))
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
            self._keeper.give_back(job.item for job in back)
        for job, reason, warning in failed:
            item = job.item
            if warning is not None:
                self._warn(warning)
            board.patience.call(
                self._client.psrelease, options.name, item.token, [item.key],
                delay=options.retry_delay_for(item.delivery), reason=reason,
            )  # fmt: skip
            dead = item.delivery >= options.max_deliveries
            with board.lock:
                if dead:
                    self._tally.dead += 1
                else:
                    self._tally.failed += 1
            if dead:  # (said whatever -q says: an item is lost to the dead items)
                self._warn(f"{shown(item.key)} is dead after {item.delivery} deliveries: {reason}")
            self._keeper.untrack(item.token)
