"""Faults between client and server: nothing applied twice, recovery without
the caller doing anything, no unbounded wait."""

from __future__ import annotations

import time

import pytest
import redis
import redis.asyncio

from psctl import AsyncRedis, Redis
from psctl._redispy import take_connection
from psctl.layout import stream_keys
from psctl.scripts import script
from testservers import start_server

from .helpers import CuttingProxy, SilentServer


@pytest.fixture
def proxy(server, r):
    if server is None or server.unixsocket is None:
        pytest.fail("the fault tests need the session's own server (run without --redis-url)")
    p = CuttingProxy(str(server.unixsocket))
    yield p
    p.close()


def test_a_lost_reply_is_not_resent(proxy, r):
    client = Redis(host="127.0.0.1", port=proxy.port)  # the constructor redis-py would retry with
    assert client.psadd("q", "a", "v", 1) == 1.0
    proxy.cut_next_reply.set()
    with pytest.raises(redis.ConnectionError):
        client.psadd("q", "a", "v", 5)
    assert proxy.replies_swallowed == 1
    assert r.zscore("q:s", "a") == 6.0  # applied exactly once
    assert client.psadd("q", "a", "v", 1) == 7.0  # and the next call works


def test_a_lost_pull_reply_is_not_resent(proxy, r):
    client = Redis.from_url(f"redis://127.0.0.1:{proxy.port}")
    client.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    client.pspull("empty")  # the script is loaded: the cut reply is the pull's own
    proxy.cut_next_reply.set()
    with pytest.raises(redis.ConnectionError):
        client.pspull("q", expire_at=None)
    assert r.pskeys("q") == ["b"]  # one item popped, not two
    assert client.pspull("q", expire_at=None) == {"b": b"v"}


async def test_async_lost_reply_is_not_resent(proxy, r):
    client = AsyncRedis(host="127.0.0.1", port=proxy.port)
    await client.psadd("q", "a", "v", 1)
    proxy.cut_next_reply.set()
    with pytest.raises(redis.ConnectionError):
        await client.psadd("q", "a", "v", 5)
    assert r.zscore("q:s", "a") == 6.0
    assert await client.psadd("q", "a", "v", 1) == 7.0
    await client.aclose()


def test_the_proxy_would_catch_a_resend(proxy, r):
    """Control: a plain redis-py client with retries (the default since redis-py 6)
    does resend, and the proxy test sees it."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    plain = redis.Redis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), 3),
                        retry_on_error=[redis.ConnectionError])  # fmt: skip
    add = script("add")
    args = (add.sha, add.numkeys, *add.keys_of(stream_keys("q")), "0", "1", "0", "", "3", "a", "v", "5")
    plain.script_load(add.source)
    proxy.cut_next_reply.set()
    plain.evalsha(*args)
    assert r.zscore("q:s", "a") == 10.0  # sent twice


def test_reconnects_after_client_kill(ps, r):
    ps.psadd("q", "a", "v")
    r.client_kill_filter(_type="normal", skipme=True)
    if hasattr(ps, "idle"):
        ps.idle(0.05)  # an async client notices the close on its running event loop
    assert ps.psadd("q", "a", "v") == 2.0
    assert ps.pspull("q", expire_at=None) == {"a": b"v"}


def test_works_after_a_server_restart(tmp_path):
    sock = tmp_path / "s.sock"
    first = start_server(tmp_path / "data", unixsocket=sock)
    client = Redis.from_url(f"unix://{sock}")
    try:
        client.psadd("q", "a", "v")
    finally:
        first.stop()
    second = start_server(tmp_path / "data", unixsocket=sock)  # empty, and no scripts cached
    try:
        assert client.psadd("q", "b", "v", 3) == 3.0
        assert client.pspull("q") == {"b": b"v"}
    finally:
        client.close()
        second.stop()


def test_a_server_that_never_answers_times_out():
    silent = SilentServer()
    try:
        client = Redis(host="127.0.0.1", port=silent.port, socket_timeout=0.5)
        client.ps_retries = 0  # (one wait, not four: see the retry tests)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.pslen("q")
        assert time.monotonic() - started < 10  # its 0.5 s, not the default 30 s (loose: a loaded machine)
        assert Redis(host="127.0.0.1", port=silent.port).connection_pool.connection_kwargs["socket_timeout"] == 30.0
    finally:
        silent.close()


def test_waits_are_bounded_by_the_kernel_on_blocking_sockets(server, r):
    """A sync client from a URL waits on a blocking socket whose reads and
    writes the kernel bounds (SO_RCVTIMEO/SO_SNDTIMEO): no poll() before each."""
    import socket
    import struct

    client = Redis.from_url(server.url, socket_timeout=2.5)
    assert client.psadd("q", "a", "v") == 1.0
    connection = take_connection(client.connection_pool)
    try:
        assert connection._sock.gettimeout() is None  # blocking: Python adds no poll()
        for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
            raw = connection._sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("@ll"))
            assert struct.unpack("@ll", raw) == (2, 500_000)
    finally:
        client.connection_pool.release(connection)


@pytest.mark.parametrize("parser", ["hiredis", "python"])
@pytest.mark.parametrize("call", ["script", "command"])
def test_a_silent_server_times_out_through_a_url_client(call, parser):
    from redis._parsers import _RESP2Parser

    silent = SilentServer()
    try:
        options = {"parser_class": _RESP2Parser} if parser == "python" else {}
        client = Redis.from_url(f"redis://127.0.0.1:{silent.port}/0", socket_timeout=0.4, **options)
        client.ps_retries = 0
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError, match="Timeout reading from"):
            client.psadd("q", "a", "v") if call == "script" else client.pslen("q")
        assert 0.35 <= time.monotonic() - started < 10  # its 0.4 s, not the default 30 s
    finally:
        silent.close()


@pytest.mark.slow
def test_a_server_that_stops_reading_is_a_write_timeout(server, r):
    """A command bigger than the socket buffers while the server is busy (a
    script that spins for 4 s, reading nothing meanwhile): the write ends as a
    TimeoutError, and the client then works. The kernel bounds each send(): a
    first one that fills the buffers returns, the next one times out."""
    import threading

    spin = "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1e6 + (t[2] - t0[2]) > 4e6"
    client = Redis.from_url(server.url, socket_timeout=0.5)
    client.ping()
    # the script is sent before the write begins (not a thread given 0.1 s to send
    # it): the server reads it no later than the write's first bytes, and spins
    spinner = take_connection(r.connection_pool)
    spinner.send_command("EVAL", spin, 0)
    spun: list[float] = []
    busy = threading.Thread(target=lambda: (spinner.read_response(), spun.append(time.monotonic())))
    busy.start()
    try:
        with pytest.raises(redis.TimeoutError, match="Timeout writing to"):
            client.set("k", b"x" * 20_000_000)
        raised = time.monotonic()
    finally:
        busy.join()
        r.connection_pool.release(spinner)
    # the write gave up while the server still read nothing (by order, not by a
    # bound in seconds: a loaded CI machine once took 2.1 s over its two timeouts)
    assert raised < spun[0]
    assert client.psadd("q", "a", "v") == 1.0


def test_an_unreachable_server_fails_fast():
    from testservers import free_port

    client = Redis(host="127.0.0.1", port=free_port())
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.psadd("q", "a", "v")
    assert time.monotonic() - started < 3  # refused at once, not its 5 s connect timeout (loose: a loaded machine)


# -- a stream that holds data is registered, whatever connection fails when (issue 11, point 3)


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
@pytest.mark.parametrize("many", [False, True], ids=["psadd", "psaddmany"])
def test_a_stream_with_data_is_registered_whichever_reply_is_lost(proxy, r, cut, many):
    """The n-th reply of a first add is swallowed and its connection cut: if the
    stream now holds data, its name is in the registry (else psexpire would
    never see it, and its cool-downs would never end)."""
    client = Redis(host="127.0.0.1", port=proxy.port)
    client.pslen("warm")  # a connection exists
    client.psadd("other", "x", "v")  # the scripts are loaded
    proxy.cut_reply(cut)
    try:
        if many:
            client.psaddmany("fresh", [("a", "v", 1), ("b", "v", 2)])
        else:
            client.psadd("fresh", "a", "v")
    except redis.ConnectionError:
        pass
    proxy.cut_reply(10**9)  # no more cuts
    if r.exists("fresh:t", "fresh:s"):
        assert r.sismember(":ps:keys", "fresh")


# -- nothing unsafe to repeat is resent, whatever the retry settings (issue 11, point 4)


@pytest.mark.parametrize("kind", ["pool", "single-connection"])
def test_an_increment_whose_reply_is_lost_is_not_resent(proxy, r, kind):
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = Redis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), 3),
                   single_connection_client=kind == "single-connection")  # fmt: skip
    client.psadd("q", "a", "v", 1)
    client.psincrement("q", "a", 1)  # (a script, if it is one, is loaded)
    proxy.cut_next_reply.set()
    with pytest.raises(redis.ConnectionError):
        client.psincrement("q", "a", 5)
    assert r.zscore("q:s", "a") == 7.0  # 1 + 1 + 5: applied once
    assert client.psincrement("q", "a", 1) == 8.0  # and the client works on


@pytest.fixture
def cluster_proxies(cluster):
    """A cutting proxy in front of each node of the cluster, and the address
    remap that sends a cluster client through them."""
    proxies = {node.port: CuttingProxy(("127.0.0.1", node.port)) for node in cluster.nodes}

    def remap(address):
        host, port = address
        return ("127.0.0.1", proxies[port].port) if port in proxies else address

    yield proxies, remap
    for p in proxies.values():
        p.close()


@pytest.mark.parametrize("operation", ["psincrement", "psadd"])
def test_a_cluster_client_with_retries_sends_a_script_once(cluster, rc, cluster_proxies, operation):
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from psctl import RedisCluster
    from psctl.layout import stream_keys

    proxies, remap = cluster_proxies
    client = RedisCluster.from_url(cluster.url, retry=Retry(NoBackoff(), 3), address_remap=remap)
    client.psadd("q", "a", "v", 1)
    client.psincrement("q", "a", 1)
    scores = stream_keys("q", cluster=True).scores
    node = client.get_node_from_key(scores)
    proxies[int(node.port) if int(node.port) in proxies else next(
        p for p, proxy in proxies.items() if proxy.port == int(node.port))].cut_next_reply.set()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        getattr(client, operation)("q", "a", *(("v", 5) if operation == "psadd" else (5,)))
    assert rc.zscore(scores, "a") == 7.0  # applied once
    client.close()


async def test_an_async_client_with_retries_sends_an_increment_once(proxy, r):
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = AsyncRedis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), 3))
    await client.psadd("q", "a", "v", 1)
    await client.psincrement("q", "a", 1)
    proxy.cut_next_reply.set()
    with pytest.raises(redis.ConnectionError):
        await client.psincrement("q", "a", 5)
    assert r.zscore("q:s", "a") == 7.0
    await client.aclose()


# -- safe requests are sent again, the others never (issue 13) --------------------------


@pytest.mark.parametrize("operation", ["psack", "psrelease", "psextend", "pslen", "psdead"])
def test_a_lost_reply_to_a_safe_call_is_sent_again_and_succeeds(proxy, r, operation):
    client = Redis(host="127.0.0.1", port=proxy.port)
    client.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    lease = client.pslease("q")
    args = {"psack": ("q", lease.token), "psrelease": ("q", lease.token), "psextend": ("q", lease.token, 60),
            "pslen": ("q",), "psdead": ("q",)}[operation]  # fmt: skip
    harmless = (args[0], "no-such-token", *args[2:]) if len(args) > 1 else args
    getattr(client, operation)(*harmless)  # the script is loaded: the cut reply is the call's own
    proxy.cut_next_reply.set()
    getattr(client, operation)(*args)  # no error: the reply was lost, the call made again
    assert proxy.replies_swallowed == 1
    if operation == "psack":
        assert r.hget("q:t", "a") is None and r.zscore("q:exp", "a") is not None  # finished, once
        assert r.hlen("q:held") == 0
    if operation == "psrelease":
        assert r.pskeys("q") == ["a", "b"] and r.hlen("q:held") == 0


def test_a_lost_reply_to_a_lease_is_not_sent_again_and_loses_nothing(proxy, r):
    client = Redis(host="127.0.0.1", port=proxy.port)
    client.psaddmany("q", [("a", "v", 2), ("b", "v", 1)])
    client.pslease("q", lease=0.3)  # the script is loaded
    client.psexpire()
    time.sleep(0.35)
    client.psexpire()  # "a" is back
    proxy.cut_next_reply.set()
    with pytest.raises(redis.ConnectionError):
        client.pslease("q", lease=0.3)
    assert r.pslen("q") == 1  # one lease taken, not two
    time.sleep(0.35)
    assert client.pslease("q", count=2).items.keys() == {"a", "b"}  # the lost lease's item came back


def test_a_lost_reply_to_a_requeue_is_not_sent_again(proxy, r):
    """SPEC §6 names the safe operations; psrequeue is not one of them (a
    requeued item may be leased and die again before a resend arrives)."""
    client = Redis(host="127.0.0.1", port=proxy.port)
    client.psadd("q", "a", "v", 1)
    client.psrelease("q", client.pslease("q", max_deliveries=1).token)  # a: dead
    client.psrequeue("q", ["no-such-key"])  # the script is loaded: the cut reply is the call's own
    proxy.cut_next_reply.set()
    with pytest.raises(redis.ConnectionError):
        client.psrequeue("q")
    assert proxy.replies_swallowed == 1 and r.pskeys("q") == ["a"]  # it ran, once


def test_a_safe_call_gives_up_after_its_retries(r):
    silent = SilentServer()
    try:
        client = Redis(host="127.0.0.1", port=silent.port, socket_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.pslen("q")
        # sent 1 + 3 times, with pauses of 0.1, 0.2 and 0.4 s between
        assert len(silent.held) == 4 and 1.4 <= time.monotonic() - started < 10
    finally:
        silent.close()
