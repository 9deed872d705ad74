"""The public types (``psctl.types``): one home, importable from ``psctl``
and from where they lived before; the ``TypedDict``s name every field the
replies have; the typing shapes of ``commands.py`` restate the methods'
signatures exactly; plans take no client and read only the clock they are
given. (What a type checker makes of the methods is ``typing_sample.py``,
checked with mypy or pyright by hand: neither is a test dependency.)"""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from datetime import timedelta
from typing import Any

import pytest

import psctl
import psctl.types
from psctl import commands, leases, observing, signatures
from psctl import operations as op
from psctl.layout import stream_keys
from psctl.protocol import Call, Command
from psctl.types import Counters, Failure, Item, KeyRow, Lease, Stats, StopWaiting

pytestmark = pytest.mark.both_backends


def test_every_public_type_is_importable_from_psctl_and_from_its_old_module():
    for name in psctl.types.__all__:
        assert getattr(psctl, name) is getattr(psctl.types, name)
    assert op.StopWaiting is StopWaiting and op.Added is psctl.Added and op.Expired is psctl.Expired
    assert leases.Lease is Lease and leases.DeadItems is psctl.DeadItems
    assert leases.DEFAULT_LEASE is psctl.defaults.LEASE


def fields(typed: Any) -> set[str]:
    return set(typed.__annotations__)


def test_the_stats_dicts_fields_are_what_psstats_gives(ps):
    ps.psadd("q", "k", "v")
    stats = ps.psstats("q")
    assert set(stats) == fields(Stats)
    assert set(stats["counters"]) == fields(Counters) == set(observing.COUNTERS)
    assert ps.psstatsmany(["q"]) == [stats] or set(ps.psstatsmany(["q"])[0]) == fields(Stats)


def test_the_item_dicts_fields_cover_what_psitem_gives(ps):
    ps.psadd("q", "k", "v")
    lease = ps.pslease("q")
    ps.psrelease("q", lease.token, reason="boom")
    item = ps.psitem("q", "k")
    assert set(item) <= fields(Item) and item["state"] in typing.get_args(psctl.types.State)
    assert set(item["last_failure"]) == fields(Failure)
    assert Item.__required_keys__ == {"state"}


def test_the_key_rows_fields_cover_every_state_listed(ps):
    listed = set().union(*observing.LISTED.values())
    assert {"key"} | listed == fields(KeyRow) and KeyRow.__required_keys__ == {"key"}
    assert set(observing.LISTED) == set(typing.get_args(psctl.types.ListedState))
    ps.psadd("q", "k", "v")
    ps.pslease("q")
    [row] = ps.pskeys("q", state="held")
    assert set(row) == {"key", *observing.LISTED["held"]}


@pytest.mark.parametrize(
    "method, shapes",
    [
        (commands.PrioritizedStreamCommands.psadd, signatures.Add),
        (commands.PrioritizedStreamCommands.psaddmany, signatures.AddMany),
        (commands.PrioritizedStreamCommands.pskeys, signatures.Keys),
    ],
)
def test_each_shape_of_a_method_restates_its_parameters_exactly(method: Any, shapes: Any):
    def parameters(function: Any) -> list[inspect.Parameter]:
        return list(inspect.signature(function).parameters.values())

    overloads = typing.get_overloads(shapes.__call__)
    assert len(overloads) >= 3
    for shape in overloads:
        assert [(p.name, p.kind) for p in parameters(shape)] == [(p.name, p.kind) for p in parameters(method)]
        for given, actual in zip(parameters(shape), parameters(method)):
            # (a shape may make its flag required: explain=True, say)
            assert given.default is inspect.Parameter.empty or given.default == actual.default, given


def test_the_methods_are_plain_functions_at_run_time():
    """``@operation`` and ``@shaped`` are for type checkers: nothing is added to
    a call, and ``signatures.py`` is not even imported."""
    for name, member in vars(commands.PrioritizedStreamCommands).items():
        if name.startswith("ps"):
            assert inspect.isfunction(member), name
    code = "import sys, psctl.client; print('psctl.signatures' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "False\n"


# -- plans: no client, no clock but their own ---------------------------------------------

KEYS = stream_keys("q")


def test_a_lease_plan_takes_no_client_and_the_client_gives_the_lease_its_own():
    plan = leases.lease(KEYS, "t0ken", 1, timedelta(minutes=5), None)
    call = plan.send(None)
    assert isinstance(call, Call) and call.args[0] == "t0ken"
    with pytest.raises(StopIteration) as done:
        plan.send([1_700_000_000_000, b"k", b"v", b"3", 1])
    taken = done.value.value
    assert isinstance(taken, Lease) and taken.token == "t0ken" and taken.items == {"k": b"v"}
    assert taken._client is None  # (until the client that ran it gives it itself)
    client = object()
    bound = commands._held_by(client, leases.lease(KEYS, "t0ken", 0, 1, None))
    with pytest.raises(StopIteration) as done:
        bound.send(None)
    assert done.value.value._client is client and not done.value.value


def test_a_waiting_plan_counts_its_wait_on_the_clock_it_is_given():
    now = [50.0]
    plan = op.pull(KEYS, 1, True, False, None, block=1.5, clock=lambda: now[0])
    request = plan.send(None)
    waits = []
    while True:
        if isinstance(request, Command):  # a wait: time passes on the plan's clock only
            waits.append(request.args[2])
            now[0] += float(request.args[2])
            reply: Any = None
        else:
            reply = []
        try:
            request = plan.send(reply)
        except StopIteration as done:
            assert done.value == {}
            break
    assert waits == [b"1.0", b"0.5"]


def test_a_wait_that_ends_within_half_a_millisecond_is_never_blpops_wait_for_ever():
    """BLPOP reads a timeout of 0 as no limit: a wait of 0.4 ms left (a block
    about to end, by the plan's clock) must still go out as 1 ms, not 0."""
    now = [50.0]
    plan = op.pull(KEYS, 1, True, False, None, block=0.0104, clock=lambda: now[0])
    plan.send(None)
    now[0] += 0.01  # the call itself took 10 ms: 0.4 ms of the block are left
    request = plan.send([])
    assert isinstance(request, Command) and request.args[0] == "BLPOP"
    assert float(request.args[2]) == 0.001
