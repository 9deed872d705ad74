"""Prometheus metrics of streams (SPEC §8), with the official
``prometheus_client`` package: a collector that reads ``psstatsmany`` at every
collection, for ``psctl metrics`` and for applications that serve their own
``/metrics``::

    from prometheus_client import REGISTRY
    from psctl.metrics import StreamsCollector

    REGISTRY.register(StreamsCollector(client))          # every registered stream
    REGISTRY.register(StreamsCollector(client, ["jobs"]))  # or some

The metrics (each labelled with its ``stream``):

- ``psctl_up``: 1 when the server answered the last collection, 0 when not
  (then nothing else is exported);
- ``psctl_stream_items{state}``: waiting, held, overdue, gated, cooling, dead;
- ``psctl_items_total{event}``: the counters (added, updated, refused,
  pulled, leased, acked, released, redelivered, dead, expired, removed);
- ``psctl_top_score``, ``psctl_bottom_score``: the highest and lowest score
  waiting (absent when none waits);
- ``psctl_next_cool_down_end_timestamp_seconds``: when the next cool-down
  ends (absent when none);
- ``psctl_stream_failed``: 1 for a stream whose keys could not be read (a key
  of the wrong type, an ACL), whose other metrics are then absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from psctl.errors import PsctlError, StreamsFailed
from psctl.observing import COUNTERS

STATES = ("waiting", "held", "overdue", "gated", "cooling", "dead")


class StreamsCollector(Collector):
    """Collects the stats of ``names`` (every registered stream when None)
    through ``client`` (a sync psctl client), one round trip per server per
    collection. ``error`` keeps the last collection's failure, if any."""

    def __init__(self, client: Any, names: Iterable[str] | None = None) -> None:
        self.client = client
        self.names = None if names is None else list(names)
        self.error: BaseException | None = None

    def describe(self) -> list[Metric]:
        return []  # (nothing to collect when registered: the server is asked only when scraped)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("psctl_up", "1 when the server answered the last collection, else 0.")
        failed_streams: dict[str, BaseException] = {}
        try:
            found = self.client.psstatsmany(self.names)
            self.error = None
        except StreamsFailed as partial:
            found = list(partial.done.values())
            failed_streams = partial.failed
            self.error = partial
        except (RedisError, PsctlError, OSError) as exc:
            self.error = exc
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _families(found, failed_streams)


def _families(found: list[dict[str, Any]], failed: dict[str, BaseException]) -> Iterator[Metric]:
    items = GaugeMetricFamily("psctl_stream_items", "Items of a stream, by state.", labels=["stream", "state"])
    events = CounterMetricFamily(
        "psctl_items", "What psctl did to a stream's items, by event, since the stream's counters began.",
        labels=["stream", "event"],
    )  # fmt: skip
    top = GaugeMetricFamily("psctl_top_score", "The highest score of a waiting item.", labels=["stream"])
    bottom = GaugeMetricFamily("psctl_bottom_score", "The lowest score of a waiting item.", labels=["stream"])
    next_end = GaugeMetricFamily(
        "psctl_next_cool_down_end_timestamp_seconds", "When the next cool-down of the stream ends (unix time).",
        labels=["stream"],
    )  # fmt: skip
    broken = GaugeMetricFamily(
        "psctl_stream_failed", "1 for a stream whose keys could not be read.", labels=["stream"]
    )
    for stats in found:
        stream = _label(stats["name"])
        for state in STATES:
            items.add_metric([stream, state], stats[state])
        for event in COUNTERS:
            events.add_metric([stream, event], stats["counters"][event])
        if stats["top_score"] is not None:
            top.add_metric([stream], stats["top_score"])
            bottom.add_metric([stream], stats["bottom_score"])
        if stats["next_cool_down_end"] is not None:
            next_end.add_metric([stream], stats["next_cool_down_end"].timestamp())
    for name in failed:
        broken.add_metric([_label(name)], 1)
    yield from (items, events, top, bottom, next_end, broken)


def _label(name: str) -> str:
    """A stream name as a label value: its bytes as UTF-8, undecodable ones escaped."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
