"""``psctl metrics --serve`` as a server on a network (issue 20): it answers
``/metrics`` only (404 elsewhere, 405 for a method other than GET and HEAD),
and clients that connect and never send, or never finish, cost neither a
thread each nor a socket for ever: a real scrape is answered while hundreds of
them hang, the process keeps a bounded number of threads and open files, and
a stalled connection is cut off after a timeout. Real sockets, a real psctl
process, its threads read from /proc."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testservers import free_port

from .helpers import PSCTL

STALLED = 200


def env_for(url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))}
    return clean | {"REDIS_URL": url}


@pytest.fixture
def served(redis_url: str, r: Any) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A running ``psctl metrics --serve`` (once it answers), and its port."""
    r.psadd("jobs", "a", "v")
    port = free_port()
    server = subprocess.Popen([str(PSCTL), "metrics", "--serve", f"127.0.0.1:{port}"], env=env_for(redis_url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()
                time.sleep(0.05)
        yield server, port
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()


def ask(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), refused.read()


def test_only_metrics_is_served(served: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = served
    status, headers, body = ask(port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain") and b"psctl_up 1.0" in body
    assert b'psctl_stream_items{state="waiting",stream="jobs"} 1.0' in body
    for path in ("/", "/favicon.ico", "/metricsx", "/metrics/", "/other/metrics", "/../metrics"):
        assert ask(port, path)[0] == 404, path
    assert b"psctl_up 1.0" in ask(port, "/metrics?debug=1")[2]  # (a query is no other path)
    head = ask(port, "/metrics", method="HEAD")
    assert head[0] == 200 and head[2] == b""
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = ask(port, "/metrics", method=method)
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    zipped = ask(port, "/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped[1]["Content-Encoding"] == "gzip" and b"psctl_up 1.0" in gzip.decompress(zipped[2])
    openmetrics = ask(port, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics[1]["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics[2].endswith(b"# EOF\n")


def test_bad_requests_get_an_answer_not_a_traceback(served: tuple[subprocess.Popen[bytes], int]) -> None:
    server, port = served
    for request in (b"NONSENSE\r\n\r\n", b"GET /metrics\r\n\r\n", b"GET /metrics HTTP/1.1\r\nX: " + b"x" * 70000):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(request)
            answer = receive_all(sock)
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer
    assert ask(port, "/metrics")[0] == 200
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=20)
    assert server.returncode == 0 and b"Traceback" not in err


def test_a_client_that_resets_its_connection_gets_no_traceback(served: tuple[subprocess.Popen[bytes], int]) -> None:
    server, port = served
    for request in (b"GET /metr", b"GET /metrics HTTP/1.1\r\n\r\n"):  # (reset before it asks; while it is answered)
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(request)
        time.sleep(0.2)  # (the server reads what was sent)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # with a reset, not a goodbye
    assert ask(port, "/metrics")[0] == 200
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=20)
    assert server.returncode == 0 and b"Traceback" not in err, err.decode(errors="replace")


def receive_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_stalled_clients_cost_no_thread_each(served: tuple[subprocess.Popen[bytes], int]) -> None:
    server, port = served
    assert ask(port, "/metrics")[0] == 200
    before = threads(server.pid)
    stalled = []
    try:
        for i in range(STALLED):
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            if i % 2:
                sock.sendall(b"GET /metr")  # half a request, never finished
            stalled.append(sock)
        status, _, body = ask(port, "/metrics")  # a real scrape, while they hang
        assert status == 200 and b"psctl_up 1.0" in body
        assert threads(server.pid) <= max(before, 4), (before, threads(server.pid))
        assert open_files(server.pid) < 160  # (not one per connection for ever: the oldest waiting ones are closed)
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0  # (stopping does not wait for them)
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.slow
def test_a_stalled_client_is_cut_off(served: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = served
    with socket.create_connection(("127.0.0.1", port)) as silent, socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the blank line
        started = time.monotonic()
        for sock in (silent, slow):
            sock.settimeout(60)
            assert receive_all(sock) == b""  # closed (within its timeout: a recv ends at 60 s at most)
        assert time.monotonic() - started < 30
