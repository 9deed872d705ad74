"""Each script's keys are said once, in its ``-- @keys`` line, and its
header's ``KEYS[i]`` lines agree with it (no plan restates them)."""

from __future__ import annotations

import re

import pytest

from psctl.layout import REGISTRY, REGISTRY_KEYS, SUFFIXES, SWEPT, stream_keys
from psctl.scripts import _FILE_NAME, REGISTRY_FIELDS, lua_dir, script

NAMES = sorted(match["name"] for path in lua_dir().glob("*.lua") if (match := _FILE_NAME.match(path.name)))
REGISTRY_SCRIPTS = ["registered", "swept"]  # the registry's keys, not a stream's
STREAM_SCRIPTS = [name for name in NAMES if name not in REGISTRY_SCRIPTS]
BY_SUFFIX = {suffix: name for name, suffix in SUFFIXES.items()}
BY_KEY = {getattr(REGISTRY_KEYS, field): field for field in REGISTRY_FIELDS}


def _header(name: str) -> str:
    return (lua_dir() / f"{name}-{script(name).numkeys}.lua").read_text().split("]]", 1)[0]


@pytest.mark.parametrize("name", STREAM_SCRIPTS)
def test_the_header_names_the_keys_of_the_keys_line_in_order(name: str) -> None:
    found = script(name)
    documented = re.findall(r"^\s+KEYS\[(\d+)\]\s+NAME(:\w+)", _header(name), re.MULTILINE)
    assert [int(i) for i, _ in documented] == list(range(1, found.numkeys + 1))
    assert tuple(BY_SUFFIX[suffix] for _, suffix in documented) == found.key_names


@pytest.mark.parametrize("name", REGISTRY_SCRIPTS)
def test_a_registry_scripts_header_names_the_registrys_keys_in_order(name: str) -> None:
    found = script(name)
    documented = re.findall(r"^\s+KEYS\[(\d+)\]\s+(\S+)", _header(name), re.MULTILINE)
    assert [int(i) for i, _ in documented] == list(range(1, found.numkeys + 1))
    assert tuple(BY_KEY[key] for _, key in documented) == found.key_names
    assert found.keys_of(REGISTRY_KEYS) == (REGISTRY, SWEPT)


@pytest.mark.parametrize("name", STREAM_SCRIPTS)
def test_a_calls_keys_come_from_the_keys_line(name: str) -> None:
    keys = stream_keys("q")
    found = script(name)
    assert found.keys_of(keys) == tuple(getattr(keys, field) for field in found.key_names)
    assert len(found.keys_of(keys)) == found.numkeys


def test_the_scripts_that_take_the_registrys_keys_are_known_here() -> None:
    assert [name for name in NAMES if set(script(name).key_names) <= REGISTRY_FIELDS] == REGISTRY_SCRIPTS


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


INCLUDES = sorted(path.stem for path in (lua_dir() / "includes").glob("*.lua"))


def _code(text: str) -> str:
    """Lua text without its comments (block ones first) and string literals."""
    text = re.sub(r"--[^\n]*", "", re.sub(r"--\[\[.*?\]\]", "", text, flags=re.DOTALL))
    return re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)


@pytest.mark.parametrize("name", INCLUDES)
def test_an_include_takes_the_keys_it_works_on_as_parameters(name: str) -> None:
    """No include reads a caller's locals: every key it touches comes in a
    parameter (a key, or ``K``, the script's keys by name), never KEYS[i]."""
    code = _code((lua_dir() / "includes" / f"{name}.lua").read_text())
    parameters = {p.strip() for group in re.findall(r"function\s+\w+\(([^)]*)\)", code) for p in group.split(",")}
    for key_name in SUFFIXES:
        bare = re.findall(rf"(?<![.\w]){key_name}\b", code)
        if bare:
            assert key_name in parameters, f"includes/{name}.lua uses {key_name!r} without taking it"
    assert not re.search(r"KEYS\[", code), f"includes/{name}.lua indexes KEYS itself"
    assert not re.search(r"\b(keys_by_name|kinds_by_key)\b", code), f"includes/{name}.lua calls the caller's tables"


def test_the_includes_an_include_needs_come_once_and_first(tmp_path, monkeypatch) -> None:
    from psctl import scripts

    (tmp_path / "includes").mkdir()
    (tmp_path / "includes" / "base.lua").write_text("local function base() return 1 end\n")
    (tmp_path / "includes" / "upper.lua").write_text("-- @include base\nlocal function upper() return base() end\n")
    (tmp_path / "both-1.lua").write_text(
        "--[[\n  KEYS[1]  NAME:s\n-- @keys scores\n]]\n-- @include upper\n-- @include base\nreturn upper()\n"
    )
    monkeypatch.setattr(scripts, "lua_dir", lambda: tmp_path)
    scripts.script.cache_clear()
    try:
        source = scripts.script("both").source
    finally:
        scripts.script.cache_clear()
    assert source.count("local function base()") == 1
    assert source.index("local function base()") < source.index("local function upper()")
    assert source.splitlines()[0] == "local scores = KEYS[1]"


@pytest.mark.parametrize("name", NAMES)
def test_the_clock_is_read_in_one_place(name: str) -> None:
    """Only includes/clock.lua asks the server for TIME."""
    text = (lua_dir() / f"{name}-{script(name).numkeys}.lua").read_text()
    assert "TIME\"" not in _code(text).replace(" ", "")


def test_every_script_and_include_a_text_names_exists() -> None:
    texts = [path.read_text() for path in lua_dir().rglob("*.lua")]
    for path in ("psctl/layout.py", "psctl/scripts.py", "psctl/operations.py", "psctl/leases.py", "psctl/observing.py"):
        texts.append((lua_dir().parent / path).read_text())
    named = {m for text in texts for m in re.findall(r"\b(?:includes/)?[a-z]+-?\d*\.lua\b", text)}
    missing = [n for n in named if not (lua_dir() / n).exists() and not (lua_dir() / "includes" / n).exists()]
    assert missing == []
