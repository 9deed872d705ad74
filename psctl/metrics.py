"""Prometheus metrics of streams, with the official
``prometheus_client`` package: a collector that reads ``psstatsmany`` at every
collection, for ``psctl metrics`` and for applications that serve their own
``/metrics``::

    from prometheus_client import REGISTRY
    from psctl.metrics import StreamsCollector

    REGISTRY.register(StreamsCollector(client))          # every registered stream
    REGISTRY.register(StreamsCollector(client, ["jobs"]))  # or some

The metrics (each labelled with its ``stream``):

- ``psctl_up``: 1 when the server (on a cluster, a node of it) answered the
  last collection, 0 when not (then nothing else is exported);
- ``psctl_stream_items{state}``: waiting, held, overdue, gated, cooling, dead;
- ``psctl_items_total{event}``: the counters (added, updated, refused,
  pulled, leased, acked, released, redelivered, dead, expired, removed);
- ``psctl_top_score``, ``psctl_bottom_score``: the highest and lowest score
  waiting (absent when none waits);
- ``psctl_next_cool_down_end_timestamp_seconds``: when the next cool-down
  ends (absent when none);
- ``psctl_paused``: 1 while the stream is paused, else 0;
- ``psctl_rate_limit_per_second``, ``psctl_rate_limit_burst``,
  ``psctl_rate_limit_tokens``: its rate limit in items per second, its burst
  and the tokens left in its bucket now (absent without a rate limit);
- ``psctl_max_held``: the most items its leases may hold at once (absent
  without one);
- ``psctl_aging_seconds``: the wait that gives a waiting item one point of
  priority (absent without aging);
- ``psctl_stream_failed``: 1 for a stream whose keys could not be read (a key
  of the wrong type, an ACL, its cluster node down), whose other metrics are
  then absent.

``MetricsServer`` serves a registry at ``/metrics`` (``psctl metrics
--serve``), in a way fit to face a network: stalled clients cost no thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from psctl.errors import PsctlError, StreamsFailed
from psctl.observing import COUNTERS
from psctl.protocol import NODE_FAILURES, UNREACHED

STATES = ("waiting", "delayed", "held", "overdue", "gated", "cooling", "dead")
# what a collection may meet when servers are down (redis-py's cluster errors are not all RedisErrors)
SERVER_DOWN = (*NODE_FAILURES, PsctlError)


class StreamsCollector(Collector):
    """Collects the stats of ``names`` (every registered stream when None)
    through ``client`` (a sync psctl client), one round trip per server per
    collection. ``error`` keeps the last collection's failure, if any, and
    ``found`` the stats it read (``psstatsmany``'s).

    ``connect``: makes the client (when ``client`` is None) at the first
    collection, and again at each one until it is made, so that a collector
    whose server does not answer yet still says so (``psctl_up 0``)."""

    def __init__(self, client: Any, names: Iterable[str] | None = None, *, connect: Any = None) -> None:
        self.client, self.connect = client, connect
        self.names = None if names is None else list(names)
        self.error: BaseException | None = None
        self.found: list[dict[str, Any]] = []

    def describe(self) -> list[Metric]:
        return []  # (nothing to collect when registered: the server is asked only when scraped)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("psctl_up", "1 when the server answered the last collection, else 0.")
        failed_streams: dict[str, BaseException] = {}
        try:
            if self.client is None:
                self.client = self.connect()
            found = self.client.psstatsmany(self.names)
            self.error = None
        except StreamsFailed as partial:
            found = list(partial.done.values())
            failed_streams = partial.failed
            self.error = partial
        except SERVER_DOWN as exc:
            self.error, self.found = exc, []
            up.add_metric([], 0)
            yield up
            return
        self.found = found
        up.add_metric([], 1 if self._answered(found, failed_streams) else 0)
        yield up
        yield from _families(found, failed_streams)

    def _answered(self, found: list[Any], failed: dict[str, BaseException]) -> bool:
        """Whether a server answered: the registry (read when no names were
        given), a stream's keys, or an error of its own (a stream whose node
        did not answer is no answer)."""
        return bool(self.names is None or found or any(not isinstance(e, UNREACHED) for e in failed.values()))


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
    next_due = GaugeMetricFamily(
        "psctl_next_delayed_due_timestamp_seconds", "When the next delayed item of the stream starts waiting (unix time).",
        labels=["stream"],
    )  # fmt: skip
    broken = GaugeMetricFamily(
        "psctl_stream_failed", "1 for a stream whose keys could not be read.", labels=["stream"]
    )
    flow = _flow_families()
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
        if stats["next_delayed_due"] is not None:
            next_due.add_metric([stream], stats["next_delayed_due"].timestamp())
        _add_flow(flow, stream, stats)
    for name in failed:
        broken.add_metric([_label(name)], 1)
    yield from (items, events, top, bottom, next_end, next_due, *flow.values(), broken)


def _flow_families() -> dict[str, GaugeMetricFamily]:
    """The gauges of a stream's flow control, by the field they show."""
    helps = {
        "paused": ("psctl_paused", "1 while the stream is paused, else 0."),
        "rate": ("psctl_rate_limit_per_second", "The stream's rate limit, in items per second."),
        "burst": ("psctl_rate_limit_burst", "The most items the stream's rate limit hands out at once."),
        "tokens": ("psctl_rate_limit_tokens", "The tokens left in the stream's rate limit's bucket now."),
        "max_held": ("psctl_max_held", "The most items the stream's leases may hold at once."),
        "aging": ("psctl_aging_seconds", "The wait that gives one of the stream's waiting items a point of priority."),
    }
    return {field: GaugeMetricFamily(name, text, labels=["stream"]) for field, (name, text) in helps.items()}


def _add_flow(flow: dict[str, GaugeMetricFamily], stream: str, stats: dict[str, Any]) -> None:
    """A stream's flow control as samples of ``flow``: each limit only when set."""
    flow["paused"].add_metric([stream], 1 if stats["paused"] else 0)
    if stats["rate"] is not None:
        flow["rate"].add_metric([stream], stats["rate"] / stats["per"].total_seconds())
    for field in ("burst", "tokens", "max_held"):
        if stats[field] is not None:
            flow[field].add_metric([stream], stats[field])
    if stats["aging"] is not None:
        flow["aging"].add_metric([stream], stats["aging"].total_seconds())


def _label(name: str) -> str:
    """A stream name as a label value: its bytes as UTF-8, undecodable ones and
    what a terminal would act on escaped (``\\xff``, ``\\x1b``) as psctl shows
    them everywhere: the text format is read on terminals too (``curl``)."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return re.sub(_CONTROL, _escape, text)


# what psctl.cli.terminal.visible escapes (the library does not import the CLI;
# tests/test_cli_terminal_safety.py checks that the two agree)
_CONTROL = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"


def _escape(found: re.Match[str]) -> str:
    code = ord(found[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class MetricsServer:
    """Serves a registry's metrics at ``GET /metrics`` (and ``HEAD``) over
    HTTP, through ``prometheus_client``'s exposition (content negotiation,
    gzip); any other path is 404, any other method 405.

    It is made to face a network: every connection is served by one thread
    with asyncio, so clients that connect and then say nothing cost a socket,
    not a thread; a client must send its request within ``timeout`` seconds
    and read the answer within as long again, or it is cut off; past
    ``max_connections`` open at once, the oldest still waiting for its request
    is closed for the newcomer. Collections run one at a time in one more
    thread, so that a slow server delays scrapes but never the others' I/O.

    The socket is bound when made (an address in use raises ``OSError`` at
    once); ``run()`` serves until ``stop()``, which is safe from a signal
    handler or another thread.
    """

    def __init__(self, registry: Any, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 5.0,
                 max_connections: int = 128) -> None:  # fmt: skip
        import socket

        from prometheus_client import make_wsgi_app

        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        self._socket = socket.create_server((host, port), family=family, backlog=128)
        self.address: tuple[str, int] = self._socket.getsockname()[:2]
        self.timeout, self.max_connections = timeout, max_connections
        self._app = make_wsgi_app(registry)
        self._loop: Any = None
        self._stopped: Any = None
        self._stop_asked = False

    def run(self) -> None:
        import asyncio

        asyncio.run(self._serve())

    def stop(self) -> None:
        self._stop_asked = True
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None:
            try:
                loop.call_soon_threadsafe(stopped.set)
            except RuntimeError:  # the loop is closed: it stopped already
                pass

    async def _serve(self) -> None:
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        if self._stop_asked:  # (asked before the loop ran)
            self._stopped.set()
        waiting: dict[Any, None] = {}  # connections still waiting for their request, oldest first
        open_now: set[Any] = set()
        collector = ThreadPoolExecutor(max_workers=1, thread_name_prefix="psctl-metrics")

        async def connected(reader: Any, writer: Any) -> None:
            if len(open_now) >= self.max_connections:
                oldest = next(iter(waiting), None)
                if oldest is None:  # (every one is being answered: the newcomer waits no turn)
                    writer.transport.abort()
                    return
                del waiting[oldest]
                oldest.transport.abort()
            open_now.add(writer)
            waiting[writer] = None
            try:
                await self._answer(reader, writer, waiting, collector)
            except asyncio.CancelledError:  # (the server stops: so does each connection, quietly)
                pass
            finally:
                waiting.pop(writer, None)
                open_now.discard(writer)
                writer.transport.abort()  # (nothing, once closed; else a client too slow to answer)

        server = await asyncio.start_server(connected, sock=self._socket, limit=_HEAD_LIMIT)
        try:
            await self._stopped.wait()
        finally:
            server.close()
            for writer in list(open_now):
                writer.transport.abort()
            collector.shutdown(wait=False, cancel_futures=True)

    async def _answer(self, reader: Any, writer: Any, waiting: dict[Any, None], collector: Any) -> None:
        import asyncio

        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
        except asyncio.LimitOverrunError:
            head = None
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return  # (said nothing in time, or went away)
        waiting.pop(writer, None)
        if head is None:
            status, headers, body, method = "431 Request Header Fields Too Large", [], b"", "GET"
        else:
            method, status, headers, body = self._route(head)
            if status is None:
                try:
                    status, headers, body = await asyncio.get_running_loop().run_in_executor(
                        collector, self._collect, head
                    )
                except Exception as exc:  # (a collector of the application's that failed: said, not raised)
                    status, headers = "500 Internal Server Error", [("Content-Type", "text/plain")]
                    body = f"collecting the metrics failed: {type(exc).__name__}\n".encode()
        lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers),
                 f"Content-Length: {len(body)}", "Connection: close", "", ""]  # fmt: skip
        writer.write("\r\n".join(lines).encode("latin-1") + (b"" if method == "HEAD" else body))
        writer.close()  # (once all is sent)
        try:
            await asyncio.wait_for(writer.wait_closed(), self.timeout * 2)
        except (asyncio.TimeoutError, ConnectionError):
            return  # (it does not read: cut off)

    def _route(self, head: bytes) -> tuple[str, str | None, list[tuple[str, str]], bytes]:
        """The method, and the answer unless the metrics are the answer (status None)."""
        from urllib.parse import urlsplit

        words = head.split(b"\r\n", 1)[0].split(b" ")
        if len(words) != 3 or not words[2].startswith(b"HTTP/1."):
            return "GET", "400 Bad Request", [("Content-Type", "text/plain")], b"a bad HTTP request\n"
        method, target = words[0].decode("latin-1"), words[1].decode("latin-1")
        text = [("Content-Type", "text/plain")]
        if urlsplit(target).path != "/metrics":
            return method, "404 Not Found", text, b"not found: the metrics are at /metrics\n"
        if method not in ("GET", "HEAD"):
            return method, "405 Method Not Allowed", [("Allow", "GET, HEAD"), *text], b"use GET or HEAD\n"
        return method, None, [], b""

    def _collect(self, head: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        """The metrics, in the format and encoding the request accepts (prometheus_client decides)."""
        from urllib.parse import urlsplit

        request, *fields = head.decode("latin-1").split("\r\n")
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics",
                   "QUERY_STRING": urlsplit(request.split(" ")[1]).query}  # fmt: skip
        for field in fields:
            name, _, value = field.partition(":")
            if name.strip().lower() in ("accept", "accept-encoding"):
                environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            answer["status"], answer["headers"] = status, headers

        body = b"".join(self._app(environ, start_response))
        return answer["status"], answer["headers"], body


_HEAD_LIMIT = 1 << 16  # bytes of a request's line and headers, at most
