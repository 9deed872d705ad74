"""Each script's keys are said once, in its ``-- @keys`` line, and its
header's ``KEYS[i]`` lines agree with it (no plan restates them)."""

from __future__ import annotations

import re

import pytest

from psctl.layout import SUFFIXES, stream_keys
from psctl.scripts import _FILE_NAME, lua_dir, script

NAMES = sorted(match["name"] for path in lua_dir().glob("*.lua") if (match := _FILE_NAME.match(path.name)))
BY_SUFFIX = {suffix: name for name, suffix in SUFFIXES.items()}


@pytest.mark.parametrize("name", NAMES)
def test_the_header_names_the_keys_of_the_keys_line_in_order(name: str) -> None:
    found = script(name)
    header = (lua_dir() / f"{name}-{found.numkeys}.lua").read_text().split("]]", 1)[0]
    documented = re.findall(r"^\s+KEYS\[(\d+)\]\s+NAME(:\w+)", header, re.MULTILINE)
    assert [int(i) for i, _ in documented] == list(range(1, found.numkeys + 1))
    assert tuple(BY_SUFFIX[suffix] for _, suffix in documented) == found.key_names


@pytest.mark.parametrize("name", NAMES)
def test_a_calls_keys_come_from_the_keys_line(name: str) -> None:
    keys = stream_keys("q")
    found = script(name)
    assert found.keys_of(keys) == tuple(getattr(keys, field) for field in found.key_names)
    assert len(found.keys_of(keys)) == found.numkeys


def test_a_script_without_a_keys_line_is_refused(tmp_path, monkeypatch) -> None:
    from psctl import scripts

    (tmp_path / "includes").mkdir()
    (tmp_path / "bad-1.lua").write_text("--[[\n  KEYS[1]  NAME:s\n]]\nreturn redis.call('ZCARD', KEYS[1])\n")
    monkeypatch.setattr(scripts, "lua_dir", lambda: tmp_path)
    scripts.script.cache_clear()
    try:
        with pytest.raises(ValueError, match="has no '-- @keys' line"):
            scripts.script("bad")
        (tmp_path / "bad-1.lua").write_text("-- @keys scores stats\nreturn redis.call('ZCARD', KEYS[1])\n")
        with pytest.raises(ValueError, match="not 1 keys of a stream"):
            scripts.script("bad")
    finally:
        scripts.script.cache_clear()
