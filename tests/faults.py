"""A small TCP proxy for fault tests: forwards bytes between a client and the
test server, and on request swallows the next reply and cuts the connection
(the command reached the server, the client never hears back)."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class CuttingProxy:
    def __init__(self, upstream: str | tuple[str, int]) -> None:
        self.upstream = upstream  # a unix socket path, or a TCP (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_next_reply = threading.Event()
        self.replies_swallowed = 0
        self._replies_to_pass: int | None = None  # see cut_reply
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if isinstance(self.upstream, tuple):
                server = socket.create_connection(self.upstream)
            else:
                server = socket.socket(socket.AF_UNIX)
                server.connect(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def cut_reply(self, n: int) -> None:
        """Swallows the ``n``-th reply from now (1: the next) and cuts that
        connection: one request at a time, each reply arrives as one chunk."""
        with self._lock:
            self._replies_to_pass = n - 1

    def _cut_now(self) -> bool:
        if self.cut_next_reply.is_set():
            self.cut_next_reply.clear()
            return True
        with self._lock:
            if self._replies_to_pass is None:
                return False
            if self._replies_to_pass == 0:
                self._replies_to_pass = None
                return True
            self._replies_to_pass -= 1
            return False

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if replies and self._cut_now():
                    self.replies_swallowed += 1
                    break
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closing = True
        self.listener.close()


class SilentServer:
    """Accepts connections and never answers: a hung server."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                self.held.append(self.listener.accept()[0])

    def close(self) -> None:
        self.listener.close()
        for sock in self.held:
            sock.close()
