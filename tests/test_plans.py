"""The plans (``operations.py``) and the protocol (``protocol.py``) driven
without a server, the way h11's tests drive its core: each request a plan
yields is answered by a reply, or an exception, given in advance. The
real-server tests (``test_operations.py`` and the rest) stay the proof that the
Lua code works; these pin down the order and content of what is sent."""

from __future__ import annotations

from collections.abc import Generator
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from psctl import operations as op
from psctl.errors import InvalidArgument, StreamsFailed, WrongType
from psctl.layout import REGISTRY, SWEPT, stream_keys
from psctl.protocol import (
    PRIMARIES,
    READ,
    Batch,
    Call,
    Command,
    Direct,
    Pipelined,
    Plain,
    Receive,
    Send,
    Write,
    exchange,
)

from .helpers import counts


def drive(plan: Generator[Any, Any, Any], replies: list[Any]) -> tuple[list[Any], Any]:
    """Runs ``plan``, answering its n-th request with ``replies[n]`` (thrown in
    when it is an exception). Returns the requests and the plan's result; the
    plan must neither ask for more nor leave replies unused."""
    requests: list[Any] = []
    answers = iter(replies)
    try:
        request = plan.send(None)
        while True:
            requests.append(request)
            try:
                reply = next(answers)
            except StopIteration:
                raise AssertionError(f"the plan asked for more: {describe(request)}") from None
            request = plan.throw(reply) if isinstance(reply, BaseException) else plan.send(reply)
    except StopIteration as done:
        assert next(answers, None) is None, "replies left over"
        return requests, done.value


def describe(request: Any) -> Any:
    """A request as plain data, to compare with what a test expects."""
    if isinstance(request, Call):
        return ("call", request.script.name, request.args)
    if isinstance(request, Command):
        return request.args
    if isinstance(request, Batch):
        return [describe(r) for r in request.requests]
    if isinstance(request, Send):
        return ("send", request.call.script.name)
    if isinstance(request, Receive):
        return ("receive", request.call.script.name)
    return request


KEYS = stream_keys("q")


# -- add: registration first, and a note of how far it got -----------------------------


def test_a_new_stream_is_registered_before_it_is_written():
    requests, score = drive(op.add_one(KEYS, "k", "v", 5, False), [[2, None], 1, [1, b"5"], 0])
    assert [describe(r) for r in requests] == [
        ("call", "addone", (b"0", b"0", b"0", b"k", "v", b"5", b"")),  # "registered": no
        ("SADD", REGISTRY, "q"),
        ("call", "addone", (b"0", b"1", b"0", b"k", "v", b"5", b"")),  # now yes: it may create the stream
        ("SADD", REGISTRY, "q"),  # it did: again, in case an unregister ran in between
    ]
    assert score == 5.0


def test_an_existing_stream_takes_one_call():
    requests, score = drive(op.add_one(KEYS, "k", "v", 5, True), [[0, b"7.5"]])
    assert [describe(r) for r in requests] == [("call", "addone", (b"1", b"0", b"0", b"k", "v", b"5", b""))]
    assert score == 7.5


def items(n: int) -> Generator[tuple[str, str, int], None, None]:
    yield from ((f"k{i}", "v", 1) for i in range(n))


def test_add_notes_how_far_it_got_when_a_reply_is_lost():
    lost = ConnectionError("Connection reset by peer")
    plan = op.add(KEYS, items(3 * op.ADD_CHUNK), False)
    with pytest.raises(ConnectionError) as raised:
        drive(plan, [[0], None, [0], None, lost])
    assert raised.value.__notes__ == [
        f"psaddmany wrote {2 * op.ADD_CHUNK} items before the failure; the {op.ADD_CHUNK} after them may have been"
        " written too"
    ]


def test_add_notes_nothing_unknown_when_the_input_is_bad():
    def bad() -> Generator[Any, None, None]:
        yield from items(op.ADD_CHUNK)
        yield ("k", "v", float("nan"))

    with pytest.raises(InvalidArgument) as raised:
        # the first chunk is written; the bad item is found while encoding the next
        drive(op.add(KEYS, bad(), False), [[0]])
    assert raised.value.__notes__ == [f"psaddmany wrote {op.ADD_CHUNK} items before the failure"]


def test_add_sends_each_chunk_while_encoding_the_next_and_counts():
    plan = op.add(KEYS, items(2 * op.ADD_CHUNK + 1), False, summary=True)
    refused_second = [0, 1, b"gated"]  # the first item of the second chunk refused
    requests, found = drive(plan, [[0], None, refused_second, None, [0]])
    assert [describe(r)[0] for r in requests] == ["call", "send", "receive", "send", "receive"]
    assert found == counts(2 * op.ADD_CHUNK, gated=1)


def test_a_chunk_whose_stream_was_deleted_meanwhile_registers_it_again():
    plan = op.add(KEYS, items(op.ADD_CHUNK + 1), False, summary=True)
    requests, found = drive(plan, [[0], None, [2], 1, [1], 1])
    assert [describe(r) if isinstance(r, Command) else describe(r)[0] for r in requests] == [
        "call", "send", "receive", ("SADD", REGISTRY, "q"), "call", ("SADD", REGISTRY, "q"),
    ]  # fmt: skip
    assert requests[4].args[:2] == (b"0", b"1")  # the chunk again, saying it registered the name
    assert found == counts(op.ADD_CHUNK + 1)


# -- pull: waiting, with a clock of the test's own ----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(op, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def pull_waiting(block: float, stop: Any = None) -> Generator[Any, Any, Any]:
    return op.pull(KEYS, 1, True, False, None, block=block, stop=stop)


def test_a_waiting_pull_blocks_a_second_at_a_time_until_its_deadline(clock: Clock):
    plan = pull_waiting(2.5)
    request = plan.send(None)
    seen = []
    while True:
        seen.append(describe(request))
        if isinstance(request, Command):  # a wait: time passes
            clock.now += float(request.args[2])
            reply: Any = None
        else:
            reply = []  # nothing to pull
        try:
            request = plan.send(reply)
        except StopIteration as done:
            assert done.value == {}
            break
    waits = [step for step in seen if isinstance(step, tuple) and step[0] == "BLPOP"]
    assert [w[2] for w in waits] == [b"1.0", b"1.0", b"0.5"]  # never past the deadline
    assert seen[0][1] == "pullone" and len(seen) == 7  # a pull before and after each wait


def test_a_waiting_pull_takes_what_a_wake_up_brings(clock: Clock):
    requests, pulled = drive(pull_waiting(0), [[], [b"q:wake", b"1"], [b"k", b"v"]])
    assert [describe(r)[0] for r in requests] == ["call", "BLPOP", "call"]
    assert pulled == {"k": b"v"}


def test_stop_ends_a_wait_before_and_after_it_and_says_when_it_is_blocked(clock: Clock):
    stop = op.StopWaiting()
    plan = pull_waiting(0, stop)
    assert describe(plan.send(None))[1] == "pullone"
    wait = plan.send([])
    assert wait.args[0] == "BLPOP" and stop.waiting  # blocked in a wait: safe to cut short
    stop.set()
    with pytest.raises(StopIteration) as done:
        plan.send(None)  # the wait ended: no pull after it
    assert done.value.value == {} and not stop.waiting
    already = op.StopWaiting()
    already.set()
    requests, pulled = drive(pull_waiting(5, already), [[]])
    assert len(requests) == 1 and pulled == {}  # set before: never waits


# -- expire: paging, the bad streams, the registry's order ---------------------------------


def layout(name: str) -> Any:
    return stream_keys(name)


def test_expire_pages_only_the_streams_with_more_due():
    replies = [
        None,  # PRIMARIES: a standalone server
        {b"a", b"b"},  # SMEMBERS
        [[1000, 1, 1], [3, 0, 1]],  # a: a full page, more may be due; b: done, alive
        [[10, 0, 0]],  # a again: done, and no key left
        [1],  # SREM a
        [0],  # EXISTS a: still gone
    ]
    requests, expired = drive(op.expire(layout), replies)
    assert [describe(r) for r in requests] == [
        PRIMARIES,
        ("SMEMBERS", REGISTRY),
        [("call", "expire", (op.EXPIRE_CHUNK,)), ("call", "expire", (op.EXPIRE_CHUNK,))],
        [("call", "expire", (op.EXPIRE_CHUNK,))],
        [("SREM", REGISTRY, "a")],
        [("EXISTS", *layout("a").holding_data)],
    ]
    assert requests[2].requests[0].keys == op.script("expire").keys_of(layout("a"))
    assert expired == {"a": 1010, "b": 3}


def test_expire_finishes_every_good_stream_and_names_the_bad_ones():
    bad = WrongType("bad:t", "string", "hash")
    with pytest.raises(StreamsFailed) as raised:
        drive(op.expire(layout), [None, {b"bad", b"good"}, [bad, [1000, 1, 1]], [[5, 0, 1]]])
    assert raised.value.failed == {"bad": bad}
    assert raised.value.done == {"good": 1005}


# -- names: a cluster's registry heals itself ------------------------------------------


def cluster_key(name: str, field: str) -> bytes:
    return getattr(stream_keys(name, cluster=True), field).encode()


READ_REGISTRY = [("call", "registered", ()), ("SMEMBERS", REGISTRY)]  # the marker, beside the registry


def test_a_standalone_registry_is_read_as_it_is():
    requests, names = drive(op.names(), [None, {b"b", b"a"}])
    assert [describe(r) for r in requests] == [PRIMARIES, ("SMEMBERS", REGISTRY)]
    assert names == ["a", "b"]


def test_a_cluster_registry_known_whole_is_read_in_one_call():
    requests, names = drive(op.names(), [["n1", "n2"], [None, {b"b", b"a"}]])
    assert [describe(r) for r in requests] == [PRIMARIES, READ_REGISTRY]
    assert requests[1].requests[0].keys == (REGISTRY, SWEPT)  # (one slot: one node, one round trip)
    assert names == ["a", "b"]


def test_a_sweep_registers_what_holds_data_and_marks_the_registry_whole():
    replies = [
        ["n1", "n2"],
        [b"ab12", {b"known"}],  # a sweep is due: the registry's server is ab12 now
        [({"n1": 7}), [cluster_key("known", "values"), cluster_key("lost", "scores"), b"{user}:t", b"plain"]],
        ["zset", "string"],  # TYPEs: lost's scores, user's "values" (a string: no stream's)
        [{"n1": 0}, [cluster_key("lost", "values"), cluster_key("fake", "values")]],
        ["string"],  # fake's values: not a hash (lost is found already: not asked again)
        [0, [cluster_key("other", "dead")]],  # n2, in one page
        [b"zset"],
        2,  # SADD
        1,  # marked
    ]
    requests, names = drive(op.names(), replies)
    assert [describe(r) for r in requests] == [
        PRIMARIES,
        READ_REGISTRY,
        ("SCAN", 0, "COUNT", op.SWEEP_COUNT),
        [("TYPE", cluster_key("lost", "scores")), ("TYPE", b"{user}:t")],  # (not known's, nor plain's)
        ("SCAN", 7, "COUNT", op.SWEEP_COUNT),
        [("TYPE", cluster_key("fake", "values"))],
        ("SCAN", 0, "COUNT", op.SWEEP_COUNT),
        [("TYPE", cluster_key("other", "dead"))],
        ("SADD", REGISTRY, "lost", "other"),
        ("call", "swept", (b"ab12",)),
    ]
    assert [r.node for r in requests[2:7:2]] == ["n1", "n1", "n2"]
    assert names == ["known", "lost", "other"]


def test_a_primary_that_fails_leaves_the_registry_to_be_swept_again():
    replies = [
        ["n1", "n2"],
        [b"ab12", set()],
        ConnectionError("n1 is down"),
        [0, [cluster_key("lost", "values")]],
        ["hash"],
        1,  # SADD: what the others hold is registered all the same; no mark
    ]
    requests, names = drive(op.names(), replies)
    assert describe(requests[-1]) == ("SADD", REGISTRY, "lost")
    assert names == ["lost"]


def test_a_user_not_allowed_the_sweep_reads_the_registry_as_it_is():
    denied = ResponseError("ACL failure in script: User worker has no permissions to run the 'info' command")
    requests, names = drive(op.names(), [["n1"], [denied, {b"a"}]])
    assert [describe(r) for r in requests] == [PRIMARIES, READ_REGISTRY]
    assert names == ["a"]
    other = ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    for replies in ([other, {b"a"}], [None, other]):  # any other error is the caller's
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            drive(op.names(), [["n1"], replies])


def test_unregistering_removes_first_then_puts_back_what_exists_again():
    requests, removed = drive(op._unregister(["x", "y"], layout), [[1, 1], [0, 2], 1])
    assert [describe(r) for r in requests] == [
        [("SREM", REGISTRY, "x"), ("SREM", REGISTRY, "y")],
        [("EXISTS", *layout("x").holding_data), ("EXISTS", *layout("y").holding_data)],
        ("SADD", REGISTRY, "y"),  # re-created meanwhile: it stays registered
    ]
    assert removed == 2


def test_delete_is_never_repeated_but_the_registry_may_be():
    requests, deleted = drive(op.delete(KEYS, layout), [5, [1], [0]])
    assert requests[0].args[0] == "DEL" and requests[0].safe is False
    assert all(r.safe for r in requests[1].requests + requests[2].requests)
    assert deleted is True


# -- an acknowledgement and the next lease in one call ---------------------------------------


def test_an_ack_and_lease_is_one_call_sent_once():
    from psctl import leases

    plan = leases.ack_lease(KEYS, "old", None, True, None, "new", 2, 60, 3)
    requests, (acked, lease) = drive(plan, [[2, 1500, [b"a"], [b"A"], [b"5"], []]])
    assert [describe(r) for r in requests] == [
        ("call", "acklease", (b"old", b"1", b"none", b"0", 2, "new", 60000, 3, b"all"))
    ]
    assert requests[0].safe is False  # it leases: never sent again
    assert acked == 2 and lease.token == "new" and lease.items == {"a": b"A"} and lease.scores == {"a": 5.0}
    sent = exchange(requests[0])
    assert type(next(sent)) is Direct  # on the path that never resends
    with pytest.raises(ConnectionError):
        sent.throw(ConnectionError("lost"))  # and a lost reply is not sent again


def test_an_ack_and_lease_acks_keys_past_the_last_thousand_first_and_count_0_only_acks():
    from psctl import leases

    keys = [f"k{i}" for i in range(2500)]
    requests, (acked, lease) = drive(leases.ack_lease(KEYS, "old", iter(keys), False, None, "new", 1, 60, None),
                                     [1, 2, [3]])  # fmt: skip
    assert [(r.script.name, r.safe, len(r.args)) for r in requests] == [
        ("ack", True, 5 + 1000), ("ack", True, 5 + 1000), ("acklease", False, 9 + 500)
    ]
    assert acked == 6 and not lease and lease.token == "new"
    requests, (acked, lease) = drive(leases.ack_lease(KEYS, "old", ["a"], False, None, "new", 0, 60, None), [1])
    assert [describe(r) for r in requests] == [("call", "ack", (b"old", b"0", b"none", b"0", b"keys", b"a"))]
    assert requests[0].safe and acked == 1 and not lease
    requests, (acked, _) = drive(leases.ack_lease(KEYS, "old", [], False, None, "new", 1, 60, None), [[0]])
    assert [describe(r) for r in requests] == [("call", "acklease", (b"old", b"0", b"none", b"0", 1, "new", 60000, 0, b"keys"))]


# -- a release marked dead ----------------------------------------------------------------


def test_a_release_marked_dead_says_so_in_place_of_attempted():
    from psctl import leases

    requests, released = drive(leases.release(KEYS, "t", None, None, None, reason="bad", dead=True), [[1, 1]])
    assert describe(requests[0]) == ("call", "release", (b"t", b"", 0, b"dead", b"1", b"bad", b"all"))
    assert released == 1
    requests, _ = drive(leases.release(KEYS, "t", ["k"], 3, 5, reason=None, dead=True), [[1, 1]])
    assert describe(requests[0]) == ("call", "release", (b"t", b"3.0", 5000, b"dead", b"0", b"", b"keys", b"k"))
    with pytest.raises(InvalidArgument):
        next(leases.release(KEYS, "t", None, None, None, attempted=False, dead=True))


# -- the protocol: NOSCRIPT refills, the scripts' own errors ---------------------------------


def steps(request: Any, replies: list[Any]) -> tuple[list[Any], Any]:
    return drive(exchange(request), replies)


def test_a_missing_script_is_loaded_and_the_call_sent_again():
    call = Call(op.script("addone"), op.script("addone").keys_of(KEYS), (b"0", b"0", b"k", b"v", b"1"))
    sent, reply = steps(call, [NoScriptError("NOSCRIPT"), "sha", [0, b"1"]])
    assert [type(s) for s in sent] == [Direct, Plain, Direct]
    assert sent[1] == ("SCRIPT LOAD", call.script.source) and sent[0] == sent[2]
    assert reply == [0, b"1"]


def test_a_missing_script_in_flight_is_loaded_and_called_again_in_order():
    keys = op.script("add").keys_of(KEYS)
    call = Call(op.script("add"), keys, (b"0", b"0"))
    assert steps(Send(call), [None])[0] == [Write(("EVALSHA", call.script.sha, len(keys), *keys, b"0", b"0"))]
    sent, reply = steps(Receive(call), [NoScriptError("NOSCRIPT"), "sha", [0]])
    assert sent[0] is READ and type(sent[1]) is Plain and type(sent[2]) is Direct
    assert reply == [0]


def test_a_batch_loads_each_missing_script_once_and_sends_only_those_again():
    expire = op.script("expire")
    calls = tuple(Call(expire, expire.keys_of(layout(n)), (5,), safe=True) for n in "abc")
    first = [NoScriptError("NOSCRIPT"), [1, 0, 1], NoScriptError("NOSCRIPT")]
    sent, replies = steps(Batch(calls), [first, "sha", [[2, 0, 1], [3, 0, 1]]])
    assert type(sent[0]) is Pipelined and len(sent[0]) == 3
    assert sent[1] == ("SCRIPT LOAD", expire.source)  # once, for both
    assert type(sent[2]) is Pipelined and [c[3] for c in sent[2]] == ["a:t", "c:t"]
    assert replies == [[2, 0, 1], [1, 0, 1], [3, 0, 1]]


def test_a_batch_holds_only_requests_safe_to_repeat():
    with pytest.raises(ValueError, match="safe to repeat"):
        Batch((Command(("DEL", "x"), safe=False),))


def test_the_scripts_errors_become_psctls_types():
    call = Call(op.script("pull"), KEYS.all, (1, b"1", b"0", b"none", b"0"))
    with pytest.raises(WrongType) as wrong:
        steps(call, [ResponseError("WRONGTYPE KEYS[4] (q:exp) holds a string, not a zset script: on @user_script:9.")])
    assert (wrong.value.key, wrong.value.found, wrong.value.expected) == ("q:exp", "string", "zset")
    assert isinstance(wrong.value, ResponseError)  # `except redis.ResponseError` still catches it
    with pytest.raises(InvalidArgument, match="^the score of item k would not be a finite number"):
        steps(call, [ResponseError("NOTFINITE the score of item k would not be a finite number; nothing was"
                                   " changed script: on @user_script:3.")])  # fmt: skip
    other = ResponseError("ERR something else")
    with pytest.raises(ResponseError) as raised:
        steps(call, [other])
    assert raised.value is other
