"""Concurrent pullers never share a purged item: threads of the sync client,
tasks of the async client, each with its own connections."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter


def test_threads_pulling_never_share_an_item(redis_url, r):
    from psctl import Redis

    total = 6000
    Redis.from_url(redis_url).psaddmany("q", ((f"k{i}", str(i), i % 50) for i in range(total)))
    got: list[list[str]] = [[] for _ in range(6)]

    def worker(out: list[str]) -> None:
        client = Redis.from_url(redis_url)
        while pulled := client.pspull("q", count=7, expire_at=None):
            out.extend(pulled)
        client.close()

    threads = [threading.Thread(target=worker, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(key for out in got for key in out)
    assert len(counts) == total
    assert set(counts.values()) == {1}
    assert sum(1 for out in got if out) > 1  # they really did run side by side


async def test_async_tasks_pulling_never_share_an_item(redis_url, r):
    from psctl import AsyncRedis

    total = 3000
    client = AsyncRedis.from_url(redis_url)
    await client.psaddmany("q", [(f"k{i}", "v", 1) for i in range(total)])

    async def worker() -> list[str]:
        mine = []
        while pulled := await client.pspull("q", count=5, expire_at=None):
            mine.extend(pulled)
        return mine

    results = await asyncio.gather(*(worker() for _ in range(8)))
    await client.aclose()
    counts = Counter(key for out in results for key in out)
    assert len(counts) == total and set(counts.values()) == {1}
