"""The runner's overlap of encoding and server work in ``psaddmany``: one call
in flight at a time, kept in order through NOSCRIPT, and no connection left
holding an unread reply after an error."""

from __future__ import annotations

import pytest
import redis

from psctl import operations
from psctl._redispy import take_connection

from .helpers import CuttingProxy


pytestmark = pytest.mark.both_backends


def chunked_items(count: int, on_item=None):
    """``count`` chunks; every chunk sets the key "dup" again (last value wins,
    scores add up), so any reordering of chunks shows."""
    for chunk in range(count):
        for i in range(operations.ADD_CHUNK - 1):
            if on_item is not None:
                on_item(chunk, i)
            yield (f"c{chunk}-{i}", "v", 1)
        yield ("dup", f"from chunk {chunk}", 1)


def test_script_flush_while_a_chunk_is_in_flight(ps, r):
    def flush(chunk, i):
        if i == 0 and chunk in (2, 4):  # chunk - 1 is in flight, or about to be sent
            r.script_flush()

    scores = ps.psaddmany("q", chunked_items(6, flush))
    assert len(scores) == 6 * operations.ADD_CHUNK
    assert [s for s in scores[operations.ADD_CHUNK - 1 :: operations.ADD_CHUNK]] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert ps.psget("q", "dup") == b"from chunk 5"
    assert ps.pslen("q") == 6 * (operations.ADD_CHUNK - 1) + 1


def test_a_bad_item_while_a_chunk_is_in_flight(ps, r):
    def items():
        yield from ((f"k{i}", "v", 1) for i in range(2 * operations.ADD_CHUNK + 5))
        yield ("bad", "v", float("nan"))

    with pytest.raises(ValueError) as raised:
        ps.psaddmany("q", items())
    # the chunks sent before the bad one were applied; the client still works
    assert ps.pslen("q") == 2 * operations.ADD_CHUNK
    # the second chunk was in flight when the bad item was found: its reply was never read
    assert raised.value.__notes__ == [
        f"psaddmany wrote {operations.ADD_CHUNK} items before the failure;"
        f" the {operations.ADD_CHUNK} after them may have been written too"
    ]
    assert ps.psadd("q", "after", "v", 2) == 2.0
    assert ps.pspull("q") == {"after": b"v"}


def test_a_connection_cut_mid_run_spoils_nothing(server, standalone_backend):
    from psctl import Redis

    r = standalone_backend.sync()
    r.flushdb()
    proxy = CuttingProxy(str(server.unixsocket))
    try:
        client = Redis(host="127.0.0.1", port=proxy.port)
        client.psadd("warm", "a", "v")  # the scripts are loaded

        def cut(chunk, i):
            if chunk == 3 and i == 0:
                proxy.cut_next_reply.set()

        client.psaddmany("warm", chunked_items(1))
        with pytest.raises(redis.ConnectionError) as raised:
            client.psaddmany("q", chunked_items(6, cut))
        chunks, rest = divmod(r.pslen("q") - 1, operations.ADD_CHUNK - 1)
        assert rest == 0 and 1 <= chunks < 6  # whole chunks only, and not all of them
        [note] = raised.value.__notes__  # what it says was written is what was
        written = int(note.split()[2])
        assert written % operations.ADD_CHUNK == 0 and written <= chunks * operations.ADD_CHUNK
        assert written == chunks * operations.ADD_CHUNK or note.endswith(
            f"the {operations.ADD_CHUNK} after them may have been written too"
        )
        applied = r.pslen("q")
        assert client.psadd("q", "after", "v") == 1.0  # the pool handed out a sound connection
        assert client.pslen("q") == applied + 1
    finally:
        proxy.close()
        r.flushdb()


def test_psadd_and_a_single_pull_are_one_round_trip_each(standalone_backend, monkeypatch):
    """Counted on the wire: each is one command written and one reply read."""
    from redis.connection import AbstractConnection

    client = standalone_backend.sync()
    client.flushdb()
    client.psadd("q", "warm", "v")  # the scripts are loaded and the name registered
    client.pspull("q", expire_at=None)
    client.psadd("q", "other", "v")
    sent, read = [], []
    send_packed, read_response = AbstractConnection.send_packed_command, AbstractConnection.read_response

    def counting_send(self, command, *args, **kwargs):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return send_packed(self, command, *args, **kwargs)

    def counting_read(self, *args, **kwargs):
        read.append(1)
        return read_response(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    monkeypatch.setattr(AbstractConnection, "read_response", counting_read)
    assert client.psadd("q", "a", "v", 5) == 5.0
    assert client.pspull("q", count=1) == {"a": b"v"}
    assert [command.split(b"\r\n")[2] for command in sent] == [b"EVALSHA", b"EVALSHA"]
    assert len(read) == 2
    monkeypatch.undo()
    client.flushdb()


async def test_hiredis_packing_gives_redis_py_bytes(standalone_backend):
    """The async runner packs a held call with hiredis: byte for byte what
    redis-py would send, for every kind of argument psctl sends."""
    from psctl.runner import _hiredis_pack, _packer

    assert _hiredis_pack is not None, "the test extra installs hiredis"
    client = standalone_backend.async_()
    connection = client.connection_pool.make_connection()
    command = ("EVALSHA", "ab" * 20, 5, "q:t", b"\xff\x00bin", "ünï {x}", 1000, b"-1.5", "", b"")
    packed = _packer(connection)(command)
    expected = b"".join(connection.pack_command(*command))
    assert (packed if isinstance(packed, bytes) else b"".join(packed)) == expected
    sync = standalone_backend.sync().connection_pool.make_connection()
    assert b"".join(_packer(sync, list_of=True)(command)) == b"".join(sync.pack_command(*command)) == expected
    latin = client.connection_pool.make_connection()
    latin.encoder.encoding = "latin-1"
    assert b"".join(_packer(latin)(("SET", "é", "x"))) == b"".join(latin.pack_command("SET", "é", "x"))
    await client.aclose()


def test_script_calls_hand_their_connection_back(standalone_backend):
    """Script calls go straight to a pool connection: after a reply, an error
    reply or a failed connection, the pool has it back and the client works."""
    client = standalone_backend.sync()
    client.flushdb()
    pool = client.connection_pool

    def in_use() -> int:
        return len(pool._in_use_connections)

    assert client.psadd("q", "a", "v", 2) == 2.0
    assert client.pspull("q") == {"a": b"v"}
    assert in_use() == 0
    client.hset("bad:s", "not", "a zset")  # NAME:s of the wrong type: the script's call fails
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.psadd("bad", "a", "v")
    assert in_use() == 0
    connection = take_connection(pool)
    connection.disconnect()  # the next script call finds a closed socket and reconnects
    pool.release(connection)
    assert client.psadd("q", "b", "v") == 1.0
    assert in_use() == 0
    client.flushdb()


def test_script_calls_are_never_retried(server, standalone_backend):
    """A client configured with retries still sends a script call once: its
    reply lost, it raises rather than risk applying the call twice."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from psctl import Redis

    r = standalone_backend.sync()
    r.flushdb()
    proxy = CuttingProxy(str(server.unixsocket))
    try:
        client = Redis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), 3))
        client.psadd("q", "warm", "v")
        proxy.cut_next_reply.set()
        with pytest.raises(redis.ConnectionError):
            client.psadd("q", "a", "v", 5)
        assert r.zscore("q:s", "a") == 5.0  # applied once, its reply lost
        assert client.psadd("q", "a", "v", 5) == 10.0
    finally:
        proxy.close()
        r.flushdb()
