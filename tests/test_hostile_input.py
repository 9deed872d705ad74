"""Hostile input to the library: any argument either works or raises
ValueError/TypeError with nothing written; any bytes survive the round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psctl.layout import stream_keys

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def is_finite_number(x) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


@SETTINGS
@given(score=anything)
def test_any_score_is_accepted_or_refused_before_sending(r, score):
    r.flushdb()
    if is_finite_number(score):
        assert r.psadd("q", "k", "v", score) == float(score)
    else:
        with pytest.raises(ValueError):
            r.psadd("q", "k", "v", score)
        with pytest.raises(ValueError):
            r.psaddmany("q", [("ok", "v", 1), ("k", "v", score)])
        assert r.dbsize() == 0


@SETTINGS
@given(item=anything | st.tuples(anything, anything, anything) | st.tuples(anything))
def test_any_item_shape_works_or_raises_with_nothing_written(r, item):
    r.flushdb()
    try:
        r.psaddmany("q", [("first", "v", 1), item])
    except (ValueError, TypeError):
        assert r.dbsize() == 0
        return
    # it worked: the item is stored as given, the way redis-py would send it
    key, value, score = (*item, 1) if len(item) == 2 else item
    raw_key = key if isinstance(key, bytes) else str(key).encode()
    if isinstance(value, float):
        raw_value = repr(value).encode()
    else:
        raw_value = value if isinstance(value, bytes) else str(value).encode()
    assert r.hget("q:t", raw_key) == raw_value
    assert r.zscore("q:s", raw_key) == float(score) + (1 if raw_key == b"first" else 0)


@SETTINGS
@given(key=st.binary(max_size=64), value=st.binary(max_size=256))
def test_every_byte_survives_in_keys_and_values(r, key, value):
    r.flushdb()
    r.psadd("q", key, value, 2)
    (got,) = r.pskeys("q")
    assert got.encode("utf-8", "surrogateescape") == key
    assert r.psget("q", got) == value
    assert r.pspull("q", expire_at=None) == {got: value}


@SETTINGS
@given(name=st.text(alphabet=st.sampled_from("{}: ab\n✓"), min_size=1, max_size=12))
def test_names_with_braces_colons_and_spaces(r, name):
    r.flushdb()
    r.psaddmany(name, [("a", "1", 1), ("b", "2", 2)])
    assert r.psnames() == [name]
    assert r.exists(*stream_keys(name).all) == 2
    assert r.pspull(name, count=5, gate=True) == {"b": b"2", "a": b"1"}
    assert r.psdelete(name) is True
    assert r.dbsize() == 0


def test_every_byte_value_0_to_255_one_by_one(r):
    r.psaddmany("q", [(bytes([b]), bytes([b]) * 3, b) for b in range(256)])
    pulled = r.pspull("q", count=300)
    assert len(pulled) == 256
    assert {k.encode("utf-8", "surrogateescape"): v for k, v in pulled.items()} == {
        bytes([b]): bytes([b]) * 3 for b in range(256)
    }


def test_megabyte_keys_and_values(r):
    key, value = "k" * 1_000_000, bytes(range(256)) * 4096
    assert r.psadd("q", key, value, 3) == 3.0
    assert r.pskeys("q") == [key]
    assert r.pspull("q") == {key: value}
    assert r.psadd("q", key, value) is None  # cooling down, even for a 1 MB key


@pytest.mark.parametrize("name", [None, "", 5, b"bytes"])
def test_bad_names_raise_before_sending(r, name):
    with pytest.raises(ValueError):
        r.psadd(name, "k", "v")
    assert r.dbsize() == 0


# a few bytes that make hard UTF-8: the separator decode_keys joins with, a lead
# byte cut short, continuation bytes, a surrogate's encoding, an overlong form
tricky_bytes = st.lists(st.sampled_from([b"\n", b"\xe2", b"\x82", b"\xac", b"\xed\xa0\x80", b"\xc0\xaf", b"a", b"\xff"]))


@given(keys=st.lists(st.binary(max_size=12) | tricky_bytes.map(b"".join), max_size=30))
def test_decoding_keys_together_is_decoding_each(keys):
    """A pull decodes its item keys in one go: exactly as one by one."""
    from psctl.operations import decode_key, decode_keys

    assert decode_keys(keys) == [decode_key(key) for key in keys]
    assert decode_keys([key.decode("utf-8", "surrogateescape") for key in keys]) == [decode_key(k) for k in keys]


def test_pulled_keys_round_trip_through_the_joined_decode(ps):
    keys = [bytes([b]) + b"\xe2\x82" for b in range(256)] + [b"line\nbreak", b"\xf0\x9f\x98"]
    ps.psaddmany("q", [(key, b"v", 1) for key in keys])
    pulled = ps.pspull("q", count=len(keys))
    assert sorted(key.encode("utf-8", "surrogateescape") for key in pulled) == sorted(keys)
